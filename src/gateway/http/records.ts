/**
 * From a schema-valid request body to the records the TransactionService sends: the configurable
 * limits (413), the topic rules (403), and the conversion of key/value/headers to bytes.
 */
import type { OutgoingRecord } from '../../pool/producer-port.js';
import type { RecordLimits } from '../defaults.js';
import { HttpProblem, type FieldError, type ProblemCode } from './problems.js';
import type { RecordInput, TransactionRequest } from './schemas.js';
import type { Principal } from './auth.js';
import { escapePointerToken } from './validation-errors.js';


/**
 * How deeply a record's JSON `value` may nest. JSON.parse takes any depth, but serialising the
 * value (and the idempotency fingerprint) recurses once per level and would overflow the stack
 * (about 10,000 levels: a 20 KB body). 1000 is the default limit of Jackson's parser.
 */
export const MAX_VALUE_DEPTH = 1000;

/** The nesting depth of a parsed JSON value, counted without recursion; stops once past `limit`. */
export function jsonDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    const d = depth + 1;
    if (d > deepest) deepest = d;
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, d]);
  }
  return deepest;
}

/**
 * A UTF-16 surrogate without its pair (JSON allows the escape "\ud800"). It has no UTF-8 form:
 * Buffer.from() would write U+FFFD in its place. A record value keeps it, escaped, in its JSON text.
 */
const LONE_SURROGATE = /\p{Cs}/u;

/** Keys and header names and values that cannot be written as the UTF-8 text they claim to be. */
function unencodableStrings(body: TransactionRequest): FieldError[] {
  const errors: FieldError[] = [];
  const detail = 'contains a lone UTF-16 surrogate (an unpaired "\\ud800"-style escape), which has no UTF-8 form (a key that is really bytes goes in keyBase64)';
  body.records.forEach((input, i) => {
    if (input.key !== undefined && LONE_SURROGATE.test(input.key)) errors.push({ pointer: `/records/${i}/key`, detail });
    for (const [name, value] of Object.entries(input.headers ?? {}) as Array<[string, string]>) {
      if (LONE_SURROGATE.test(name) || LONE_SURROGATE.test(value)) errors.push({ pointer: `/records/${i}/headers/${escapePointerToken(name)}`, detail });
    }
  });
  return errors;
}


export interface PreparedRecords {
  records: OutgoingRecord[];
  /** Each topic named, with the highest partition the request names (-1 when it names none). */
  topics: Map<string, number>;
}

export interface PrepareOptions {
  limits: RecordLimits;
  /** The caller when API keys are on; undefined when auth is off. */
  principal?: Principal | undefined;
  /** Topics no client may write (the idempotency topic, Kafka's own "__" topics). */
  isInternalTopic(topic: string): boolean;
}

function valueBytes(record: RecordInput): Buffer | null {
  if (record.valueBase64 !== undefined) return Buffer.from(record.valueBase64, 'base64');
  if (Object.hasOwn(record, 'value')) return Buffer.from(JSON.stringify(record.value), 'utf8');
  return null;
}

function keyBytes(record: RecordInput): Buffer | undefined {
  if (record.keyBase64 !== undefined) return Buffer.from(record.keyBase64, 'base64');
  if (record.key !== undefined) return Buffer.from(record.key, 'utf8');
  return undefined;
}

function fail(code: ProblemCode, detail: string, errors: FieldError[]): never {
  throw new HttpProblem(code, detail, { extensions: { errors } });
}

export function prepareRecords(body: TransactionRequest, opts: PrepareOptions): PreparedRecords {
  const { limits, principal } = opts;
  if (body.records.length > limits.maxRecords) {
    fail('TXGATE_TOO_MANY_RECORDS', `a request may carry at most ${limits.maxRecords} records (got ${body.records.length}); split it into several requests`, [
      { pointer: '/records', detail: `at most ${limits.maxRecords} records` },
    ]);
  }
  const unencodable = unencodableStrings(body);
  if (unencodable.length > 0) {
    fail('TXGATE_INVALID_REQUEST', `${unencodable[0]!.pointer} ${unencodable[0]!.detail}`, unencodable);
  }
  // Before any other work on the records: serialising a too-deep value would overflow the stack.
  const tooDeep: FieldError[] = [];
  body.records.forEach((input, i) => {
    if (Object.hasOwn(input, 'value') && jsonDepth(input.value, MAX_VALUE_DEPTH) > MAX_VALUE_DEPTH) {
      tooDeep.push({ pointer: `/records/${i}/value`, detail: `nested more than ${MAX_VALUE_DEPTH} levels deep` });
    }
  });
  if (tooDeep.length > 0) {
    fail('TXGATE_VALUE_TOO_DEEP', `record value ${tooDeep[0]!.pointer} is ${tooDeep[0]!.detail}; at most ${MAX_VALUE_DEPTH} levels are allowed (send deeper documents as valueBase64)`, tooDeep);
  }
  const internal: FieldError[] = [];
  const forbidden: FieldError[] = [];
  const tooManyHeaders: FieldError[] = [];
  const tooLarge: FieldError[] = [];
  const records: OutgoingRecord[] = [];
  const topics = new Map<string, number>();

  body.records.forEach((input, i) => {
    const at = `/records/${i}`;
    if (opts.isInternalTopic(input.topic)) {
      internal.push({ pointer: `${at}/topic`, detail: `"${input.topic}" is an internal topic` });
    } else if (principal && !principal.mayWrite(input.topic)) {
      forbidden.push({ pointer: `${at}/topic`, detail: `API key "${principal.name}" may not write to "${input.topic}"` });
    }
    // The schema guarantees string values (additionalProperties: string), which Static<> cannot express.
    const headerEntries = Object.entries(input.headers ?? {}) as Array<[string, string]>;
    if (headerEntries.length > limits.maxHeadersPerRecord) {
      tooManyHeaders.push({ pointer: `${at}/headers`, detail: `${headerEntries.length} headers; at most ${limits.maxHeadersPerRecord} are allowed` });
    }
    const key = keyBytes(input);
    const value = valueBytes(input);
    let size = (key?.length ?? 0) + (value?.length ?? 0);
    for (const [name, v] of headerEntries) size += Buffer.byteLength(name) + Buffer.byteLength(v);
    if (size > limits.maxRecordBytes) {
      tooLarge.push({ pointer: at, detail: `${size} bytes of key, value and headers; at most ${limits.maxRecordBytes} are allowed` });
    }
    const record: OutgoingRecord = { topic: input.topic, value };
    if (input.partition !== undefined) record.partition = input.partition;
    if (key !== undefined) record.key = key;
    if (headerEntries.length > 0) record.headers = Object.fromEntries(headerEntries);
    records.push(record);
    topics.set(input.topic, Math.max(topics.get(input.topic) ?? -1, input.partition ?? -1));
  });

  if (internal.length > 0) {
    fail('TXGATE_INTERNAL_TOPIC', `${internal[0]!.detail} and cannot be written through the gateway`, internal);
  }
  if (forbidden.length > 0) {
    fail('TXGATE_TOPIC_FORBIDDEN', `${forbidden[0]!.detail}; ask the operator to add the topic to the key's allowlist`, forbidden);
  }
  if (tooManyHeaders.length > 0) {
    fail('TXGATE_TOO_MANY_HEADERS', `record ${tooManyHeaders[0]!.pointer} has ${tooManyHeaders[0]!.detail}`, tooManyHeaders);
  }
  if (tooLarge.length > 0) {
    fail('TXGATE_RECORD_TOO_LARGE', `record ${tooLarge[0]!.pointer} has ${tooLarge[0]!.detail}; store large payloads elsewhere and send a reference`, tooLarge);
  }
  return { records, topics };
}

/** 404s for topics that do not exist and partitions beyond a topic's count. */
export function checkTopicsExist(body: TransactionRequest, partitionCounts: Map<string, number | null>): void {
  const unknownTopics: FieldError[] = [];
  const unknownPartitions: FieldError[] = [];
  body.records.forEach((input, i) => {
    const count = partitionCounts.get(input.topic);
    if (count === null || count === undefined) {
      unknownTopics.push({ pointer: `/records/${i}/topic`, detail: `topic "${input.topic}" does not exist` });
    } else if (input.partition !== undefined && input.partition >= count) {
      unknownPartitions.push({
        pointer: `/records/${i}/partition`,
        detail: `topic "${input.topic}" has ${count} partition${count === 1 ? '' : 's'} (0 to ${count - 1}); there is no partition ${input.partition}`,
      });
    }
  });
  if (unknownTopics.length > 0) {
    const names = [...new Set(unknownTopics.map((e) => /"([^"]*)"/.exec(e.detail)![1]))];
    fail('TXGATE_UNKNOWN_TOPIC', `topic${names.length > 1 ? 's' : ''} ${names.map((n) => `"${n}"`).join(', ')} do${names.length > 1 ? '' : 'es'} not exist; the gateway does not create topics, create ${names.length > 1 ? 'them' : 'it'} first`, unknownTopics);
  }
  if (unknownPartitions.length > 0) {
    fail('TXGATE_UNKNOWN_PARTITION', `${unknownPartitions[0]!.detail}; omit "partition" to let Kafka choose`, unknownPartitions);
  }
}
