/**
 * The checkable requests the verifier sends. Every record names itself: its key is
 * `<key prefix><run id>-<request>-<index>` and its value is JSON with the run id, the request
 * number and the record index (padded to the asked size), so a reader can tell this run's records
 * from anything else in the topic and match each to the request that sent it.
 */
import { randomBytes } from 'node:crypto';
import type { SentRecord } from './types.js';

/** A run id: sortable by start time, unique without coordination. */
export function newRunId(now = Date.now()): string {
  return `${now.toString(36)}${randomBytes(3).toString('hex')}`;
}

/** Idempotency keys and record keys must be printable ASCII (the gateway's key rule). */
const PRINTABLE = /^[\x21-\x7e]*$/;

export function assertKeyPart(name: string, value: string): void {
  if (!PRINTABLE.test(value)) throw new Error(`${name} may only hold printable ASCII without spaces, got ${JSON.stringify(value)}`);
}

/** What every record key of the run starts with. */
export function runKeyPrefix(keyPrefix: string, runId: string): string {
  return `${keyPrefix}${runId}-`;
}

export function idempotencyKey(keyPrefix: string, runId: string, request: number): string {
  return `${runKeyPrefix(keyPrefix, runId)}${request}`;
}

export interface PayloadShape {
  keyPrefix: string;
  runId: string;
  topics: string[];
  recordsPerRequest: number;
  /** The approximate size of each value's JSON text; never below the unpadded JSON. */
  valueBytes: number;
}

/** The records of request `request`. Records are spread over the topics in turn. */
export function buildRecords(shape: PayloadShape, request: number): SentRecord[] {
  const records: SentRecord[] = [];
  for (let index = 0; index < shape.recordsPerRequest; index++) {
    const topic = shape.topics[(request + index) % shape.topics.length]!;
    const base = { run: shape.runId, request, record: index, pad: '' };
    const padding = Math.max(0, shape.valueBytes - JSON.stringify(base).length);
    records.push({
      topic,
      key: `${idempotencyKey(shape.keyPrefix, shape.runId, request)}-${index}`,
      value: JSON.stringify({ ...base, pad: 'x'.repeat(padding) }),
    });
  }
  return records;
}

/**
 * The POST /v1/transactions body. The value goes as JSON (`value`), which the gateway writes as
 * its JSON text: JSON.stringify of the parsed object, which is the text built above.
 */
export function requestBody(records: SentRecord[]): string {
  return `{"records":[${records.map((r) => `{"topic":${JSON.stringify(r.topic)},"key":${JSON.stringify(r.key)},"value":${r.value}}`).join(',')}]}`;
}
