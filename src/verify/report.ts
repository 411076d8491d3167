/** The verifier's report: the JSON document, its one-line verdict and the exit code. */
import type { LoadResult, LoadStats } from './load.js';
import type { TransactionsView } from './transactions.js';
import type { CheckResult, Example, RecordAnomalies } from './types.js';

export interface Anomalies extends RecordAnomalies {
  /** Our transactional ids still open after the settle wait. */
  ongoingTransactions: number;
  /** Hanging transactions on the topics written. */
  hangingTransactions: number;
  /** Transactional ids with the prefix beyond --max-transactional-ids (0 without that limit). */
  excessTransactionalIds: number;
}

/**
 * OK: nothing wrong was found. FAILED: an anomaly. INCONCLUSIVE: no anomaly, but the run could
 * not show much (nothing was acknowledged, or an asked-for check could not run).
 */
export type Verdict = 'OK' | 'FAILED' | 'INCONCLUSIVE';

export interface VerifyReport {
  verdict: Verdict;
  run: {
    id: string;
    keyPrefix: string;
    startedAt: string;
    gateways: string[];
    mode: LoadResult['mode'];
    topics: string[];
  };
  anomalies: Anomalies;
  requests: CheckResult['requests'];
  records: CheckResult['records'];
  load: LoadStats;
  transactions: TransactionsView;
  /** Why the verdict is INCONCLUSIVE. */
  problems: string[];
  examples: Example[];
}

export interface ReportInput {
  load: LoadResult;
  check: CheckResult;
  transactions: TransactionsView;
  maxTransactionalIds?: number | undefined;
  /** Checks that were asked for but could not run. */
  problems?: string[] | undefined;
}

export function buildReport(input: ReportInput): VerifyReport {
  const { load, check, transactions } = input;
  const anomalies: Anomalies = {
    ...check.anomalies,
    ongoingTransactions: transactions.checked ? transactions.ongoing.length : 0,
    hangingTransactions: transactions.checked ? transactions.hanging.length : 0,
    excessTransactionalIds:
      transactions.checked && input.maxTransactionalIds !== undefined
        ? Math.max(0, transactions.transactionalIds - input.maxTransactionalIds)
        : 0,
  };
  const problems = [...(input.problems ?? [])];
  if (check.requests.sent > 0 && check.requests.acknowledged === 0) {
    problems.push(`no request was acknowledged (${firstFailure(load) ?? 'no definitive answer'})`);
  }
  if (check.requests.sent === 0) problems.push('no request was sent');
  const failed = Object.values(anomalies).some((n) => n > 0);
  return {
    verdict: failed ? 'FAILED' : problems.length > 0 ? 'INCONCLUSIVE' : 'OK',
    run: { id: load.runId, keyPrefix: load.keyPrefix, startedAt: load.startedAt, gateways: load.gateways, mode: load.mode, topics: load.topics },
    anomalies,
    requests: check.requests,
    records: check.records,
    load: load.stats,
    transactions,
    problems,
    examples: check.examples,
  };
}

function firstFailure(load: LoadResult): string | undefined {
  for (const r of load.requests) {
    for (const o of r.outcomes) if (o.kind === 'failed') return `first definitive failure: ${o.status}${o.code ? ` ${o.code}` : ''}`;
  }
  return undefined;
}

/** Short names for the verdict line, in the order they are printed. */
const SHORT: Array<[keyof Anomalies, string]> = [
  ['lost', 'lost'],
  ['duplicated', 'duplicated'],
  ['partial', 'partial'],
  ['phantom', 'phantom'],
  ['misplaced', 'misplaced'],
  ['corrupt', 'corrupt'],
  ['unexpected', 'unexpected'],
  ['conflicting', 'conflicting'],
  ['ongoingTransactions', 'ongoing'],
  ['hangingTransactions', 'hanging'],
  ['excessTransactionalIds', 'excess-ids'],
];

export function verdictLine(report: VerifyReport): string {
  const r = report.requests;
  const summary =
    `${r.sent} requests (${r.acknowledged} acknowledged, ${r.failed} failed, ` +
    `${r.undecided} undecided: ${r.undecidedPresent} present, ${r.undecidedAbsent} absent) ` +
    `to ${report.run.gateways.length} gateway${report.run.gateways.length === 1 ? '' : 's'} (${report.run.mode}) in ${(report.load.durationMs / 1000).toFixed(1)} s; ` +
    `p50 ${report.load.latencyMs.p50} ms, p99 ${report.load.latencyMs.p99} ms; longest gap without a 200 ${report.load.longestGapWithoutAck.ms} ms; ` +
    transactionsSummary(report.transactions);
  if (report.verdict === 'FAILED') {
    const also = report.problems.length > 0 ? `; ${report.problems.join('; ')}` : '';
    return `verify: FAILED ${SHORT.map(([k, name]) => `${name}=${report.anomalies[k]}`).join(' ')}${also}; ${summary}`;
  }
  if (report.verdict === 'INCONCLUSIVE') return `verify: INCONCLUSIVE ${report.problems.join('; ')}; ${summary}`;
  return `verify: OK ${report.records.read} records read back, no anomaly; ${summary}`;
}

function transactionsSummary(t: TransactionsView): string {
  if (!t.checked) return `transactions not checked (${t.reason})`;
  return `transactions: ${t.ongoing.length} ongoing, ${t.hanging.length} hanging, ${t.transactionalIds} ids with prefix ${t.prefix}`;
}

export function exitCode(report: VerifyReport): number {
  return report.verdict === 'OK' ? 0 : report.verdict === 'FAILED' ? 1 : 2;
}
