/**
 * The idempotency fingerprint of a request: sha256 over a canonical JSON text of the parsed body,
 * so that the same request sent with its object keys in another order (or other whitespace) is
 * still recognised as the same request.
 */
import { createHash } from 'node:crypto';

/** JSON text with every object's keys sorted (by UTF-16 code units) and no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    // undefined and functions have no JSON form; a parsed JSON body never contains them.
    if (text === undefined) throw new TypeError(`cannot canonicalise a ${typeof value}`);
    return text;
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  }
  const entries = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

export function requestFingerprint(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}
