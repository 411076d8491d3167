/**
 * RFC 9457 problem details. Every error the gateway sends is one of the problems of the error
 * catalogue (src/error-catalogue.ts): each has a stable `type` URI and `code` (clients branch on
 * those, never on `detail`), and the HTTP status it always comes with.
 */
import { PROBLEM_ENTRIES, type ProblemCode } from '../../error-catalogue.js';

export type { ProblemCode } from '../../error-catalogue.js';

/**
 * A relative reference, resolved against the request's URL (RFC 9457 allows it): each type is a
 * page the gateway itself serves (problem-pages.ts), so it resolves wherever the gateway runs.
 */
export const PROBLEM_TYPE_BASE = '/problems/';
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface ProblemKind {
  slug: string;
  title: string;
  status: number;
}

/** The catalogue's problems, in its order: what GET /problems and the OpenAPI document list. */
export const PROBLEMS: Readonly<Record<ProblemCode, ProblemKind>> = Object.fromEntries(
  PROBLEM_ENTRIES.map(([code, { slug, title, status }]) => [code, { slug, title, status }]),
) as Record<ProblemCode, ProblemKind>;

/** One field-level problem; `pointer` is an RFC 6901 JSON Pointer into the request body. */
export interface FieldError {
  pointer: string;
  detail: string;
}

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: ProblemCode;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export function problemType(code: ProblemCode): string {
  return PROBLEM_TYPE_BASE + PROBLEMS[code].slug;
}

/**
 * Thrown anywhere in request handling; the gateway's error handler turns it into the response.
 * `headers` carries e.g. Retry-After or WWW-Authenticate.
 */
export class HttpProblem extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(
    code: ProblemCode,
    detail: string,
    opts: { extensions?: Record<string, unknown>; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(detail, { cause: opts.cause });
    this.name = 'HttpProblem';
    this.code = code;
    this.status = PROBLEMS[code].status;
    this.extensions = opts.extensions ?? {};
    this.headers = opts.headers ?? {};
  }

  toDocument(instance?: string): ProblemDocument {
    const kind = PROBLEMS[this.code];
    const doc: ProblemDocument = {
      ...this.extensions,
      type: problemType(this.code),
      title: kind.title,
      status: kind.status,
      detail: this.message,
      code: this.code,
    };
    if (instance !== undefined) doc.instance = instance;
    return doc;
  }
}
