/**
 * Turns Ajv's validation errors into RFC 9457 field errors: one JSON Pointer per bad field and a
 * sentence a person can act on. Ajv already reports `instancePath` as a JSON Pointer; for
 * `required` and `additionalProperties` the pointer is extended to the property itself.
 */
import type { FieldError } from './problems.js';

/** The subset of Ajv's ErrorObject this module reads (kept structural: Fastify re-exports Ajv's type loosely). */
export interface AjvErrorLike {
  instancePath: string;
  schemaPath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string | undefined;
}

export const MAX_REPORTED_FIELD_ERRORS = 20;

const RECORD_FIELDS = ['topic', 'partition', 'key', 'keyBase64', 'value', 'valueBase64', 'headers'];
const RECORD_PATH = /^\/records\/\d+$/;

export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

function describe(error: AjvErrorLike): FieldError {
  const path = error.instancePath;
  switch (error.keyword) {
    case 'required': {
      const name = String(error.params['missingProperty']);
      return { pointer: `${path}/${escapePointerToken(name)}`, detail: `"${name}" is required` };
    }
    case 'additionalProperties': {
      const name = String(error.params['additionalProperty']);
      const allowed = path === '' ? ['records'] : RECORD_PATH.test(path) ? RECORD_FIELDS : [];
      const hint = allowed.length > 0 ? ` (allowed: ${allowed.join(', ')})` : '';
      return { pointer: `${path}/${escapePointerToken(name)}`, detail: `unknown field "${name}"${hint}` };
    }
    case 'not': {
      // schemas.ts: allOf[0] forbids key+keyBase64, allOf[1] forbids value+valueBase64.
      if (error.schemaPath.includes('/allOf/0/')) {
        return { pointer: `${path}/keyBase64`, detail: 'give either "key" or "keyBase64", not both' };
      }
      if (error.schemaPath.includes('/allOf/1/')) {
        return { pointer: `${path}/valueBase64`, detail: 'give either "value" or "valueBase64", not both' };
      }
      break;
    }
    case 'pattern': {
      if (path.endsWith('/topic')) {
        return { pointer: path, detail: 'must be a Kafka topic name: 1 to 249 characters from a-z, A-Z, 0-9, ".", "_" and "-"' };
      }
      if (path.endsWith('Base64')) {
        return { pointer: path, detail: 'must be standard base64 (A-Z, a-z, 0-9, "+", "/", padded with "=")' };
      }
      break;
    }
    case 'minItems': {
      if (path === '/records') return { pointer: path, detail: 'must contain at least one record' };
      break;
    }
  }
  return { pointer: path, detail: error.message ?? `failed the "${error.keyword}" check` };
}

export function fieldErrorsFromAjv(errors: readonly AjvErrorLike[]): FieldError[] {
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const error of errors) {
    const field = describe(error);
    const id = `${field.pointer}\u0000${field.detail}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(field);
    if (out.length >= MAX_REPORTED_FIELD_ERRORS) break;
  }
  return out;
}

/** One sentence naming the first problem, for `detail`. */
export function summarizeFieldErrors(errors: readonly FieldError[]): string {
  const first = errors[0];
  if (!first) return 'the request body does not match the schema';
  const where = first.pointer === '' ? 'the body' : first.pointer;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more, see "errors")` : '';
  return `${where}: ${first.detail}${more}`;
}
