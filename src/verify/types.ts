/** Types shared by the verifier's load driver, checker and report. */

/** Where Kafka put a record: as a gateway's 200 reports it, or as read back. */
export interface Position {
  topic: string;
  partition: number;
  /** A decimal string (Kafka offsets are 64-bit). */
  offset: string;
}

/** One record as the verifier sent it. Its key is unique within the run: it names the record. */
export interface SentRecord {
  topic: string;
  key: string;
  /** The value's JSON text, which is what the gateway writes for a JSON `value`. */
  value: string;
}

/**
 * How one lane of a request ended. A lane is one client retrying one Idempotency-Key until it
 * gets a definitive answer; a request has one lane, or one per gateway with `race`.
 */
export type LaneOutcome =
  | { kind: 'acknowledged'; positions: Position[]; replayed: boolean }
  | { kind: 'failed'; status: number; code?: string | undefined }
  /** No definitive answer before the give-up deadline: the records may or may not be written. */
  | { kind: 'undecided'; last: string };

export interface SentRequest {
  /** The request number within the run. */
  id: number;
  idempotencyKey: string;
  records: SentRecord[];
  outcomes: LaneOutcome[];
}

/** A record read back from Kafka (read_committed), key and value as UTF-8 text. */
export interface ReadRecord extends Position {
  key: string | null;
  value: string | null;
}

/** Counts of everything that must not happen. Any non-zero count fails the run. */
export interface RecordAnomalies {
  /** Records of acknowledged requests that are not in Kafka. */
  lost: number;
  /** Records (of any request) present more than once. */
  duplicated: number;
  /** Requests with some, but not all, of their records present. */
  partial: number;
  /** Present records of requests that got a definitive failure. */
  phantom: number;
  /** Present records of acknowledged requests with no copy at the position the 200 reported. */
  misplaced: number;
  /** Copies with this run's record key but another topic or value than was sent. */
  corrupt: number;
  /** Records with this run's key prefix that no request sent. */
  unexpected: number;
  /** Requests whose definitive answers disagree (two 200s with other positions, or a 200 and a failure). */
  conflicting: number;
}

export interface Example {
  kind: keyof RecordAnomalies;
  idempotencyKey?: string | undefined;
  recordKey?: string | undefined;
  detail: string;
}

/** What the checker derives from the requests, their answers and the records read back. */
export interface CheckResult {
  anomalies: RecordAnomalies;
  requests: {
    sent: number;
    acknowledged: number;
    /** Definitive failures (a 4xx other than 408/409/429): nothing of them may be written. */
    failed: number;
    undecided: number;
    /** Undecided requests with every record present once (committed, answer not received). */
    undecidedPresent: number;
    /** Undecided requests with no record present (never committed). */
    undecidedAbsent: number;
  };
  records: {
    sent: number;
    /** Records of acknowledged requests. */
    acknowledged: number;
    /** Copies of this run's records read back (corrupt and unexpected ones included). */
    read: number;
    /** Copies beyond the first of duplicated records. */
    extraCopies: number;
  };
  /** Up to a few examples per anomaly kind, to start an investigation from. */
  examples: Example[];
}
