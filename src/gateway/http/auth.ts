/**
 * Optional API keys: bearer tokens, each with a name (the principal) and an allowlist of topics
 * (exact names, `prefix*` globs, or `*`). Tokens are kept only as sha256 digests and looked up by
 * digest, so comparing never depends on how many leading characters of a secret match.
 */
import { createHash } from 'node:crypto';
import { ConfigurationError } from '../../errors.js';
import { HttpProblem } from './problems.js';

export interface ApiKeySpec {
  name: string;
  token: string;
  topics: string[];
}

export interface Principal {
  name: string;
  mayWrite(topic: string): boolean;
}

const NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const TOPIC_PATTERN = /^[a-zA-Z0-9._-]*\*?$/;
export const MIN_TOKEN_LENGTH = 16;

/**
 * Parses TXGATE_API_KEYS: either JSON (`[{"name":"svc","token":"...","topics":["orders","audit.*"]}]`)
 * or the compact `name:token:topic1,topic2;name2:token2:prefix*` (entries also separated by newlines).
 */
export function parseApiKeys(text: string): ApiKeySpec[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  let specs: ApiKeySpec[];
  if (trimmed.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (err) {
      throw new ConfigurationError(`API keys: not valid JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(parsed)) throw new ConfigurationError('API keys: the JSON form must be an array of {name, token, topics}');
    specs = parsed.map((entry, i) => {
      const e = entry as Partial<Record<keyof ApiKeySpec, unknown>>;
      if (typeof e !== 'object' || e === null || typeof e.name !== 'string' || typeof e.token !== 'string' || !Array.isArray(e.topics) || !e.topics.every((t) => typeof t === 'string')) {
        throw new ConfigurationError(`API keys: entry ${i} must be {"name": string, "token": string, "topics": string[]}`);
      }
      return { name: e.name, token: e.token, topics: e.topics as string[] };
    });
  } else {
    specs = trimmed
      .split(/[;\n]/)
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map((entry, i) => {
        const first = entry.indexOf(':');
        const last = entry.lastIndexOf(':');
        if (first < 0 || last === first) {
          throw new ConfigurationError(`API keys: entry ${i + 1} must look like name:token:topic1,topic2 (got ${first < 0 ? 'no' : 'one'} ":")`);
        }
        return {
          name: entry.slice(0, first),
          token: entry.slice(first + 1, last),
          topics: entry.slice(last + 1).split(',').map((t) => t.trim()).filter((t) => t !== ''),
        };
      });
  }
  validateApiKeys(specs);
  return specs;
}

export function validateApiKeys(specs: ApiKeySpec[]): void {
  const names = new Set<string>();
  const tokens = new Set<string>();
  for (const spec of specs) {
    if (!NAME_PATTERN.test(spec.name)) {
      throw new ConfigurationError(`API keys: name "${spec.name}" must be 1 to 64 characters from A-Z, a-z, 0-9, ".", "_", "-"`);
    }
    if (names.has(spec.name)) throw new ConfigurationError(`API keys: the name "${spec.name}" is used twice`);
    names.add(spec.name);
    if (spec.token.length < MIN_TOKEN_LENGTH || /\s/.test(spec.token)) {
      throw new ConfigurationError(`API keys: the token of "${spec.name}" must be at least ${MIN_TOKEN_LENGTH} characters without whitespace (e.g. openssl rand -hex 24)`);
    }
    if (tokens.has(spec.token)) throw new ConfigurationError(`API keys: two keys share the token of "${spec.name}"`);
    tokens.add(spec.token);
    if (spec.topics.length === 0) throw new ConfigurationError(`API keys: "${spec.name}" has no topics; list topic names, prefix* globs, or *`);
    for (const topic of spec.topics) {
      if (topic === '' || !TOPIC_PATTERN.test(topic)) {
        throw new ConfigurationError(`API keys: "${topic}" (key "${spec.name}") is not a topic name, a prefix* glob, or *`);
      }
    }
  }
}

export function topicMatcher(patterns: string[]): (topic: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (topic) => exact.has(topic) || prefixes.some((prefix) => topic.startsWith(prefix));
}

function digest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class ApiKeyAuthenticator {
  readonly #byDigest = new Map<string, Principal>();

  constructor(specs: ApiKeySpec[]) {
    validateApiKeys(specs);
    for (const spec of specs) {
      this.#byDigest.set(digest(spec.token), { name: spec.name, mayWrite: topicMatcher(spec.topics) });
    }
  }

  get enabled(): boolean {
    return this.#byDigest.size > 0;
  }

  /** The principal of a request's Authorization header; throws a 401 problem if there is none. */
  authenticate(authorization: string | undefined): Principal {
    const challenge = 'Bearer realm="txgate"';
    if (authorization === undefined || authorization.trim() === '') {
      throw new HttpProblem('TXGATE_UNAUTHORIZED', 'send an API key as "Authorization: Bearer <token>"', {
        headers: { 'www-authenticate': challenge },
      });
    }
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
    if (!match) {
      throw new HttpProblem('TXGATE_UNAUTHORIZED', 'the Authorization header must use the Bearer scheme: "Authorization: Bearer <token>"', {
        headers: { 'www-authenticate': `${challenge}, error="invalid_request"` },
      });
    }
    const principal = this.#byDigest.get(digest(match[1]!));
    if (!principal) {
      throw new HttpProblem('TXGATE_UNAUTHORIZED', 'the API key is not valid; check the token, or ask the operator for one', {
        headers: { 'www-authenticate': `${challenge}, error="invalid_token"` },
      });
    }
    return principal;
  }
}
