/**
 * The Idempotency-Key request header: 1 to 255 printable ASCII characters (0x20 to 0x7E).
 * When API keys are on, the key is scoped by the caller's principal so two clients that happen to
 * pick the same key never see each other's outcome.
 */
import { HttpProblem } from './problems.js';
import { IDEMPOTENCY_KEY_PATTERN } from './schemas.js';

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
/** The same pattern the OpenAPI document publishes. */
const PRINTABLE_ASCII = new RegExp(IDEMPOTENCY_KEY_PATTERN);

/** Returns the key as sent, undefined when the header is absent; throws a 400 problem otherwise. */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header)) {
    throw new HttpProblem('TXGATE_INVALID_IDEMPOTENCY_KEY', 'send the Idempotency-Key header once, not several times');
  }
  if (!PRINTABLE_ASCII.test(header)) {
    throw new HttpProblem(
      'TXGATE_INVALID_IDEMPOTENCY_KEY',
      `the Idempotency-Key must be 1 to 255 printable ASCII characters (got ${header.length} characters` +
        `${/[^\x20-\x7E]/.test(header) ? ', some outside 0x20-0x7E' : ''}); a UUID is a good choice`,
    );
  }
  return header;
}

/**
 * Principal names never contain "/" (auth.ts), so "<principal>/<key>" cannot collide
 * between principals.
 */
export function scopeIdempotencyKey(key: string, principal: string | undefined): string {
  return principal === undefined ? key : `${principal}/${key}`;
}
