/**
 * Request bodies: application/json only, as UTF-8, and every number exactly as sent. Parsing
 * refusals are input refusals, thrown as problems by catalogue code (see error-mapping.ts).
 */
import { isUtf8 } from 'node:buffer';
import type { GatewayPart } from './context.js';
import { HttpProblem, type FieldError } from './problems.js';
import { jsonDepth, MAX_VALUE_DEPTH } from './records.js';
import { escapePointerToken, MAX_REPORTED_FIELD_ERRORS } from './validation-errors.js';

export const registerJsonBody: GatewayPart = (app, { limits }) => {
  // Only application/json: a text/plain body must get 415, not a schema error.
  app.removeContentTypeParser('text/plain');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: limits.maxBodyBytes }, (request, body, done) => {
    const bytes = body as Buffer;
    // toString() would turn invalid bytes into U+FFFD and write that instead of what was sent.
    if (!isUtf8(bytes)) {
      done(new HttpProblem('TXGATE_INVALID_JSON', 'the body is not valid UTF-8, which JSON requires', { extensions: { errors: [{ pointer: '', detail: 'not valid UTF-8' }] } }), undefined);
      return;
    }
    const text = bytes.toString('utf8');
    void parseJson(request, text, (err, parsed) => {
      if (err) return done(err, undefined);
      const inexact = inexactNumbers(text, parsed);
      if (inexact.length === 0) return done(null, parsed);
      done(
        new HttpProblem('TXGATE_INVALID_REQUEST', `${inexact[0]!.pointer}: ${inexact[0]!.detail}${inexact.length > 1 ? ` (and ${inexact.length - 1} more, see "errors")` : ''}`, {
          extensions: { errors: inexact },
        }),
        undefined,
      );
    });
  });
};

/** A number whose JSON text does not survive parsing, in place of its value (see inexactNumbers). */
class InexactNumber {
  constructor(
    readonly source: string,
    readonly value: number,
  ) {}
}

/**
 * A number written with at most 15 digits and no exponent is exact as a double: only numbers
 * (after ":", "[" or ",") that are longer or have an exponent need a look. Not base64 text, say.
 */
const MAYBE_INEXACT = /[:,[]\s*-?(?:\d[\d.]{15}|[\d.]+[eE])/;

/**
 * The numbers in a JSON body that a double cannot hold (12345678901234567890, 1e400, 1e-400):
 * written back, they would be another number (12345678901234567000, null, 0), silently. Each
 * with a JSON Pointer. Needs the source text that JSON.parse passes revivers (Node 22+).
 */
function inexactNumbers(text: string, parsed: unknown): FieldError[] {
  if (!MAYBE_INEXACT.test(text)) return [];
  // The reviver recurses once per level; a document this deep is refused for its depth anyway.
  if (jsonDepth(parsed, MAX_VALUE_DEPTH + 3) > MAX_VALUE_DEPTH + 3) return [];
  let found = false;
  const revived: unknown = JSON.parse(text, (_key: string, value: unknown, context?: { source?: string }) => {
    if (typeof value !== 'number' || context?.source === undefined || sameNumber(context.source, value)) return value;
    found = true;
    return new InexactNumber(context.source, value);
  });
  if (!found) return [];
  const errors: FieldError[] = [];
  const stack: Array<[unknown, string]> = [[revived, '']];
  while (stack.length > 0 && errors.length < MAX_REPORTED_FIELD_ERRORS) {
    const [value, pointer] = stack.pop()!;
    if (value instanceof InexactNumber) {
      const shown = value.source.length > 40 ? `${value.source.slice(0, 37)}...` : value.source;
      errors.push({
        pointer,
        detail: `the number ${shown} has no exact double-precision form and would be written as ${JSON.stringify(value.value)}; send it as a string, or the record value as valueBase64`,
      });
    } else if (value !== null && typeof value === 'object') {
      const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
      // Reversed onto the stack so the errors come out in document order.
      for (let i = entries.length - 1; i >= 0; i--) stack.push([entries[i]![1], `${pointer}/${escapePointerToken(entries[i]![0])}`]);
    }
  }
  return errors;
}

/** Whether a JSON number's text and the double it parsed to denote the same decimal number. */
function sameNumber(source: string, value: number): boolean {
  return Number.isFinite(value) && decimalForm(source) === decimalForm(String(value));
}

/** sign, significant digits and exponent ("-12e3" for -12000, -12e3 or -12.000e3), or the text itself if it is no decimal. */
function decimalForm(text: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return text;
  const fraction = m[3] ?? '';
  const digits = m[2]! + fraction;
  // Loops, not /0+$/: that regex backtracks quadratically over a long run of zeros.
  let first = 0;
  while (first < digits.length && digits.charCodeAt(first) === 48) first++;
  if (first === digits.length) return '0';
  let end = digits.length;
  while (digits.charCodeAt(end - 1) === 48) end--;
  return `${m[1]}${digits.slice(first, end)}e${Number(m[4] ?? 0) - fraction.length + (digits.length - end)}`;
}
