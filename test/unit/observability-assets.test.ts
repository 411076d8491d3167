/**
 * The Grafana dashboard and the Prometheus alerting rules in deploy/ against what GET /metrics
 * really exports: every series a PromQL expression selects must exist, with the labels (and label
 * values) it matches on; counters and histograms must be read through rate() or increase(),
 * gauges must not be, and histogram_quantile() must get _bucket series that keep `le`. A renamed
 * metric or label then fails here instead of leaving an empty panel or an alert that never fires.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { GatewayState } from '../../src/gateway/http/app.js';
import { createPoolMetrics } from '../../src/pool/metrics.js';
import { TransactionalProducerPool } from '../../src/pool/pool.js';
import type { PoolEvents, ReplaceCause, SlotState } from '../../src/pool/types.js';
import { FakeCluster, fakePoolOptions, rec } from '../support/fake-producer.js';
import { stubGateway } from '../support/gateway-stubs.js';

const DASHBOARD = new URL('../../deploy/grafana/txgate-dashboard.json', import.meta.url);
const RULES = new URL('../../deploy/prometheus/txgate-alerts.yml', import.meta.url);

// ------------------------------------------------------------------ the exposition

type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
type Labels = Record<string, string>;

interface SampleInfo {
  family: string;
  type: MetricType;
  /** Which series of the family: a histogram's `_bucket`, `_sum`, `_count`, or the value itself. */
  part: 'value' | 'bucket' | 'sum' | 'count';
}

/** Labels Prometheus attaches at scrape time; the gateway never exports them. */
const TARGET_LABELS = new Set(['instance', 'job']);

class Exposition {
  readonly families = new Map<string, MetricType>();
  readonly series = new Map<string, Labels[]>();

  constructor(text: string) {
    for (const line of text.split('\n')) {
      const type = /^# TYPE ([a-zA-Z_:][\w:]*) (\w+)$/.exec(line);
      if (type) this.families.set(type[1]!, type[2] as MetricType);
      if (line === '' || line.startsWith('#')) continue;
      const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+\S+/.exec(line);
      assert.ok(sample, `unparsable exposition line: ${line}`);
      const labels: Labels = {};
      for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
      const list = this.series.get(sample[1]!) ?? [];
      list.push(labels);
      this.series.set(sample[1]!, list);
    }
    // Prometheus's own per-target series, for rules about the scrape itself.
    this.families.set('up', 'gauge');
    this.series.set('up', [{}]);
  }

  /** What a sample name selects; undefined when no family exports it. */
  lookup(name: string): SampleInfo | undefined {
    const type = this.families.get(name);
    if (type && type !== 'histogram') return { family: name, type, part: 'value' };
    const suffix = /^(.+)_(bucket|sum|count)$/.exec(name);
    if (!suffix) return undefined;
    const familyType = this.families.get(suffix[1]!);
    if (familyType === 'histogram' || (familyType === 'summary' && suffix[2] !== 'bucket')) {
      return { family: suffix[1]!, type: familyType, part: suffix[2] as SampleInfo['part'] };
    }
    return undefined;
  }
}

// ------------------------------------------------------------------ PromQL, as far as these files need

/** Functions and aggregations: an identifier followed by "(" must be one of these. */
const FUNCTIONS = new Set([
  'abs', 'absent', 'absent_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'avg_over_time', 'ceil', 'changes',
  'clamp', 'clamp_max', 'clamp_min', 'cos', 'cosh', 'count_over_time', 'day_of_month', 'day_of_week', 'day_of_year',
  'days_in_month', 'deg', 'delta', 'deriv', 'double_exponential_smoothing', 'end', 'exp', 'floor', 'histogram_avg',
  'histogram_count', 'histogram_fraction', 'histogram_quantile', 'histogram_stddev', 'histogram_stdvar', 'histogram_sum',
  'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join', 'label_replace', 'last_over_time', 'ln', 'log10',
  'log2', 'mad_over_time', 'max_over_time', 'min_over_time', 'minute', 'month', 'pi', 'predict_linear', 'present_over_time',
  'quantile_over_time', 'rad', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sin', 'sinh', 'sort', 'sort_by_label',
  'sort_by_label_desc', 'sort_desc', 'sqrt', 'start', 'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'tan', 'tanh',
  'time', 'timestamp', 'vector', 'year',
]);
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);
/** Keywords that take a label list in parentheses. */
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
/** Other keywords and literals that are not metric names. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan']);
/** The functions a counter (or a histogram's _bucket/_sum/_count) is read through. */
const RATE_FUNCTIONS = new Set(['rate', 'irate', 'increase', 'resets']);

interface Matcher {
  label: string;
  op: string;
  value: string;
}
interface Call {
  fn: string;
  grouping?: { kind: 'by' | 'without'; labels: string[] };
}
interface Selector {
  name: string;
  matchers: Matcher[];
  /** The function calls around it, outermost first. */
  calls: Call[];
}
interface Scan {
  selectors: Selector[];
  /** Labels named in by/without/on/ignoring/group_left/group_right lists. */
  groupingLabels: string[];
  problems: string[];
}

type Token = { kind: 'ident' | 'string' | 'number' | 'range' | 'op' | 'punct'; text: string };

function tokenize(expr: string, problems: string[]): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    const rest = expr.slice(i);
    let m: RegExpExecArray | null;
    if (/\s/.test(c)) i++;
    else if (c === '#') i = expr.indexOf('\n', i) < 0 ? expr.length : expr.indexOf('\n', i);
    else if ((m = /^(["'`])((?:\\.|(?!\1)[^\\])*)\1/.exec(rest))) {
      tokens.push({ kind: 'string', text: m[2]!.replace(/\\(.)/g, '$1') });
      i += m[0].length;
    } else if ((m = /^\[[^\]]*\]/.exec(rest))) {
      // A range or subquery (Grafana's $__rate_interval included): never a metric name.
      tokens.push({ kind: 'range', text: m[0] });
      i += m[0].length;
    } else if ((m = /^[a-zA-Z_:][\w:]*/.exec(rest))) {
      tokens.push({ kind: 'ident', text: m[0] });
      i += m[0].length;
    } else if ((m = /^\.?\d[\w.]*/.exec(rest))) {
      tokens.push({ kind: 'number', text: m[0] });
      i += m[0].length;
    } else if ((m = /^(=~|!~|!=|==|<=|>=|[-+*/%^<>=@])/.exec(rest))) {
      tokens.push({ kind: 'op', text: m[0] });
      i += m[0].length;
    } else if ('(){},'.includes(c)) {
      tokens.push({ kind: 'punct', text: c });
      i++;
    } else {
      problems.push(`unexpected ${JSON.stringify(c)} at ${i}`);
      i++;
    }
  }
  return tokens;
}

/** Finds every metric selector of a PromQL expression, with its matchers and the calls around it. */
function scanPromQL(expr: string): Scan {
  const problems: string[] = [];
  const tokens = tokenize(expr, problems);
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  const stack: Array<Call | null> = [];
  const is = (at: number, text: string) => tokens[at]?.kind !== 'string' && tokens[at]?.text === text;

  /** Reads "(label, ...)" starting at `at`; returns the labels and the index of ")". */
  const labelList = (at: number): { labels: string[]; end: number } => {
    const labels: string[] = [];
    let j = at + 1;
    while (j < tokens.length && !is(j, ')')) {
      if (tokens[j]!.kind === 'ident') labels.push(tokens[j]!.text);
      else if (!is(j, ',')) problems.push(`unexpected ${tokens[j]!.text} in a label list`);
      j++;
    }
    groupingLabels.push(...labels);
    return { labels, end: j };
  };

  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind === 'punct') {
      if (t.text === '(') stack.push(null);
      else if (t.text === ')') {
        if (stack.length === 0) problems.push('unbalanced ")"');
        stack.pop();
      } else if (t.text === '{') problems.push('a selector without a metric name');
      continue;
    }
    if (t.kind !== 'ident') continue;
    const name = t.text;
    if (AGGREGATIONS.has(name) && (is(i + 1, 'by') || is(i + 1, 'without'))) {
      if (!is(i + 2, '(')) problems.push(`${name} ${tokens[i + 1]!.text} needs a label list`);
      const { labels, end } = labelList(i + 2);
      if (!is(end + 1, '(')) problems.push(`${name} ${tokens[i + 1]!.text} (...) must be followed by its argument`);
      stack.push({ fn: name, grouping: { kind: tokens[i + 1]!.text as 'by' | 'without', labels } });
      i = end + 1;
      continue;
    }
    if (GROUPING.has(name)) {
      if (is(i + 1, '(')) {
        if (name === 'by' || name === 'without') problems.push(`write "sum ${name} (...) (expr)": the grouping after the argument is not checked`);
        i = labelList(i + 1).end;
      }
      continue;
    }
    if (is(i + 1, '(')) {
      if (!FUNCTIONS.has(name) && !AGGREGATIONS.has(name)) problems.push(`unknown function ${name}()`);
      stack.push({ fn: name });
      i++;
      continue;
    }
    if (KEYWORDS.has(name.toLowerCase())) continue;
    const matchers: Matcher[] = [];
    if (is(i + 1, '{')) {
      let j = i + 2;
      while (j < tokens.length && !is(j, '}')) {
        const [label, op, value] = [tokens[j], tokens[j + 1], tokens[j + 2]];
        if (label?.kind !== 'ident' || op?.kind !== 'op' || !['=', '!=', '=~', '!~'].includes(op.text) || value?.kind !== 'string') {
          problems.push(`${name}: cannot read its label matchers`);
          break;
        }
        matchers.push({ label: label.text, op: op.text, value: value.text });
        j += 3;
        if (is(j, ',')) j++;
      }
      i = j;
    }
    selectors.push({ name, matchers, calls: stack.filter((c): c is Call => c !== null) });
  }
  if (stack.length > 0) problems.push('unbalanced "("');
  return { selectors, groupingLabels, problems };
}

/** A regex matcher that is only literal alternatives ("a|b") names each value it accepts. */
function literalAlternatives(regex: string): string[] | undefined {
  return /^[\w/:-]+(\|[\w/:-]+)*$/.test(regex) ? regex.split('|') : undefined;
}

/**
 * Problems of one expression against the exposition. `types: false` for a Grafana label_values()
 * query, which lists label values and reads no sample.
 */
function checkExpr(expr: string, expo: Exposition, opts: { types?: boolean } = {}): string[] {
  const scan = scanPromQL(expr);
  const problems = [...scan.problems];
  if (scan.selectors.length === 0) problems.push('selects no metric');
  const labelsOnSelected = new Set<string>();
  for (const sel of scan.selectors) {
    const info = expo.lookup(sel.name);
    if (!info) {
      problems.push(`${sel.name} is not exported`);
      continue;
    }
    const series = expo.series.get(sel.name) ?? [];
    for (const labels of series) for (const l of Object.keys(labels)) labelsOnSelected.add(l);
    for (const m of sel.matchers) {
      if (TARGET_LABELS.has(m.label)) continue;
      const values = new Set(series.flatMap((labels) => (m.label in labels ? [labels[m.label]!] : [])));
      if (values.size === 0) {
        problems.push(`${sel.name} has no label ${m.label} in the exposition`);
        continue;
      }
      if (m.value.includes('$') || m.op === '!=' || m.op === '!~') continue;
      const wanted = m.op === '=' ? [m.value] : literalAlternatives(m.value);
      if (wanted) {
        for (const v of wanted) if (!values.has(v)) problems.push(`${sel.name}{${m.label}="${v}"} never occurs (seen: ${[...values].join(', ')})`);
      } else if (![...values].some((v) => new RegExp(`^(?:${m.value})$`).test(v))) {
        problems.push(`${sel.name}{${m.label}=~"${m.value}"} matches no value (seen: ${[...values].join(', ')})`);
      }
    }
    if (opts.types === false) continue;
    const innermost = sel.calls.at(-1)?.fn;
    const cumulative = info.type === 'counter' || info.part === 'bucket' || info.part === 'sum' || info.part === 'count';
    const rated = innermost !== undefined && RATE_FUNCTIONS.has(innermost);
    if (cumulative && !rated) problems.push(`${sel.name} is cumulative (${info.type}): read it through rate() or increase()`);
    if (!cumulative && rated) problems.push(`${sel.name} is a ${info.type}: ${innermost}() of it means nothing`);
    const quantileAt = sel.calls.findIndex((c) => c.fn === 'histogram_quantile');
    if (quantileAt >= 0) {
      if (info.type !== 'histogram' || info.part !== 'bucket') problems.push(`histogram_quantile() needs a histogram's _bucket series, not ${sel.name}`);
      for (const call of sel.calls.slice(quantileAt + 1)) {
        if (!AGGREGATIONS.has(call.fn)) continue;
        const keeps = call.grouping?.kind === 'by' ? call.grouping.labels.includes('le') : call.grouping?.kind === 'without' && !call.grouping.labels.includes('le');
        if (!keeps) problems.push(`${call.fn}() inside histogram_quantile() drops the le label of ${sel.name}`);
      }
    }
  }
  for (const label of scan.groupingLabels) {
    if (!TARGET_LABELS.has(label) && !labelsOnSelected.has(label)) problems.push(`groups by ${label}, which no selected series has`);
  }
  return problems;
}

// ------------------------------------------------------------------ the assets

interface Target {
  where: string;
  expr: string;
}

/** Every query of the dashboard: panel targets, and the templating variables' label_values(). */
function dashboardQueries(dashboard: Record<string, unknown>): { targets: Target[]; variables: Target[] } {
  const targets: Target[] = [];
  const walk = (panels: unknown) => {
    for (const p of (panels ?? []) as Array<Record<string, unknown>>) {
      walk(p['panels']);
      for (const t of (p['targets'] ?? []) as Array<Record<string, unknown>>) {
        targets.push({ where: `panel "${String(p['title'])}" ${String(t['refId'])}`, expr: t['expr'] as string });
      }
    }
  };
  walk(dashboard['panels']);
  const variables: Target[] = [];
  const list = ((dashboard['templating'] as { list?: unknown[] } | undefined)?.list ?? []) as Array<Record<string, unknown>>;
  for (const v of list.filter((v) => v['type'] === 'query')) {
    const q = v['query'];
    variables.push({ where: `variable ${String(v['name'])}`, expr: typeof q === 'string' ? q : ((q as { query?: string }).query ?? '') });
  }
  return { targets, variables };
}

interface Rule {
  alert?: unknown;
  record?: unknown;
  expr?: unknown;
  for?: unknown;
  labels?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
}

function alertRules(): Rule[] {
  const doc = parseYaml(readFileSync(RULES, 'utf8')) as { groups?: Array<{ name?: unknown; rules?: Rule[] }> };
  assert.ok(Array.isArray(doc?.groups) && doc.groups.length > 0, 'the rules file has no groups');
  return doc.groups.flatMap((g) => {
    assert.equal(typeof g.name, 'string', 'every rule group needs a name');
    assert.ok(Array.isArray(g.rules) && g.rules.length > 0, `group ${String(g.name)} has no rules`);
    return g.rules;
  });
}

// Every label value the pool can emit, so that alerts matching one of them find its series. As
// Records over the pool's own types, a new value fails the type check until it is listed here.
type RejectReason = Parameters<NonNullable<PoolEvents['rejected']>>[0]['reason'];
type RetryStep = Parameters<NonNullable<PoolEvents['retried']>>[0]['step'];
const REPLACE_CAUSES: Record<ReplaceCause, true> = { fenced: true, fatal: true, 'unknown-state': true, refresh: true, 'init-failed': true, 'record-refused': true };
const REJECT_REASONS: Record<RejectReason, true> = { saturated: true, timeout: true, aborted: true, closed: true };
const RETRY_STEPS: Record<RetryStep, true> = { begin: true, commit: true, 'send-offsets': true };

/** The registry as startGateway builds it, with a series for each label value the assets may select. */
async function gatewayExposition(): Promise<{ text: string; close(): Promise<void> }> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const poolMetrics = createPoolMetrics(registry);
  const pool = new TransactionalProducerPool(fakePoolOptions(new FakeCluster(), { events: poolMetrics.events }));
  await pool.start();
  // One slot in every state, so that rules selecting a state find its series.
  const SLOT_STATES: Record<SlotState, true> = { starting: true, idle: true, busy: true, replacing: true, closed: true };
  poolMetrics.observe({
    stats: () => {
      const s = pool.stats();
      return { ...s, slots: (Object.keys(SLOT_STATES) as SlotState[]).map((state, i) => ({ ...s.slots[0]!, slot: i, state })) };
    },
  });
  await pool.run((tx) => tx.send(rec('committed')));
  const events = poolMetrics.events;
  const failure = new Error('fed by the test');
  for (const cause of Object.keys(REPLACE_CAUSES) as ReplaceCause[]) events.replacing?.({ slot: 0, transactionalId: 'tx-i1-0', cause, error: failure });
  for (const reason of Object.keys(REJECT_REASONS) as RejectReason[]) events.rejected?.({ reason });
  for (const step of Object.keys(RETRY_STEPS) as RetryStep[]) events.retried?.({ slot: 0, step, error: failure });
  events.aborted?.({ slot: 0, durationMs: 3, reason: failure });
  events.outcomeUnknown?.({ slot: 0, durationMs: 3, reason: failure });

  const state = new GatewayState();
  const { app } = stubGateway({ registry, state, pool: { stats: () => pool.stats() } });
  const post = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/transactions', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
  assert.equal((await post({ records: [{ topic: 'orders', value: 'v' }] })).statusCode, 200);
  assert.equal((await post({ records: 'not a list' })).statusCode, 400);
  assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  state.draining = true;
  assert.equal((await post({ records: [{ topic: 'orders', value: 'v' }] })).statusCode, 503);
  assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503);
  state.draining = false;
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(res.statusCode, 200);
  return {
    text: res.body,
    close: async () => {
      await app.close();
      await pool.close();
    },
  };
}

describe('observability assets', () => {
  let expo: Exposition;
  let close: () => Promise<void>;
  before(async () => {
    const exported = await gatewayExposition();
    expo = new Exposition(exported.text);
    close = exported.close;
  });
  after(() => close());

  it('reads the exposition the gateway serves', () => {
    assert.equal(expo.families.get('txgate_http_request_duration_seconds'), 'histogram');
    assert.equal(expo.families.get('txgate_pool_transactions_total'), 'counter');
    assert.equal(expo.families.get('txgate_pool_waiting'), 'gauge');
    assert.deepEqual(expo.lookup('txgate_http_request_duration_seconds_bucket'), { family: 'txgate_http_request_duration_seconds', type: 'histogram', part: 'bucket' });
    assert.equal(expo.lookup('txgate_http_request_duration_seconds'), undefined, 'a histogram has no series under its bare name');
    assert.ok(expo.series.get('txgate_pool_replacements_total')?.some((l) => l['cause'] === 'fenced'));
  });

  it('the checker finds what it must find', () => {
    const scan = scanPromQL('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y", z=~"$v"}[$__rate_interval]))) / on (instance) group_left b offset 5m');
    assert.deepEqual(scan.problems, []);
    assert.deepEqual(scan.selectors.map((s) => s.name), ['a_bucket', 'b']);
    assert.deepEqual(scan.selectors[0]!.matchers, [{ label: 'x', op: '=', value: 'y' }, { label: 'z', op: '=~', value: '$v' }]);
    assert.deepEqual(scan.selectors[0]!.calls.map((c) => c.fn), ['histogram_quantile', 'sum', 'rate']);

    const found = (expr: string, pattern: RegExp) => {
      const problems = checkExpr(expr, expo);
      assert.ok(problems.some((p) => pattern.test(p)), `${expr}: expected a problem like ${pattern}, got ${JSON.stringify(problems)}`);
    };
    found('rate(txgate_bogus_total[5m])', /txgate_bogus_total is not exported/);
    found('sum(txgate_pool_transactions_total)', /cumulative/);
    found('rate(txgate_pool_waiting[5m])', /is a gauge/);
    found('histogram_quantile(0.9, sum(rate(txgate_http_request_duration_seconds_bucket[5m])))', /drops the le label/);
    found('histogram_quantile(0.9, rate(txgate_pool_transactions_total[5m]))', /needs a histogram's _bucket/);
    found('increase(txgate_pool_replacements_total{cause="fencing"}[5m])', /never occurs/);
    found('increase(txgate_pool_rejected_total{reason=~"saturated|full"}[5m])', /reason="full"/);
    found('rate(txgate_http_requests_total{code="503"}[5m])', /no label code/);
    found('sum by (outcomes) (rate(txgate_pool_transactions_total[5m]))', /groups by outcomes/);
    found('rat(txgate_pool_transactions_total[5m])', /unknown function rat/);
    found('sum(1)', /selects no metric/);
    assert.deepEqual(checkExpr('sum by (outcome) (rate(txgate_pool_transactions_total{outcome!="x"}[5m]))', expo), []);
  });

  it('every dashboard query selects exported series, read the way their type needs', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Record<string, unknown>;
    const { targets, variables } = dashboardQueries(dashboard);
    assert.ok(targets.length >= 12, `expected a query per panel, found ${targets.length}`);
    assert.ok(variables.length > 0, 'the instance variable is missing');
    const problems: string[] = [];
    for (const t of targets) {
      if (typeof t.expr !== 'string' || t.expr.trim() === '') {
        problems.push(`${t.where}: no expr`);
        continue;
      }
      problems.push(...checkExpr(t.expr, expo).map((p) => `${t.where}: ${p}`));
      for (const sel of scanPromQL(t.expr).selectors) {
        if (!sel.matchers.some((m) => m.label === 'instance' && m.op === '=~' && m.value === '$instance')) {
          problems.push(`${t.where}: ${sel.name} ignores the instance variable (add instance=~"$instance")`);
        }
      }
    }
    for (const v of variables) {
      const m = /^label_values\((.+),\s*([a-zA-Z_]\w*)\s*\)$/.exec(v.expr.trim());
      if (!m) {
        problems.push(`${v.where}: expected label_values(<selector>, <label>), got ${v.expr}`);
        continue;
      }
      problems.push(...checkExpr(m[1]!, expo, { types: false }).map((p) => `${v.where}: ${p}`));
    }
    assert.deepEqual(problems, []);
  });

  it('the dashboard is importable: schema, data source variable, unique panel ids', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      schemaVersion: number;
      uid: string;
      panels: Array<{ id: number; type: string; datasource?: { uid?: string }; targets?: Array<{ refId: string; datasource?: { uid?: string } }> }>;
      templating: { list: Array<{ name: string; type: string; query: unknown }> };
    };
    assert.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
    assert.equal(typeof dashboard.uid, 'string');
    const ds = dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
    assert.deepEqual([ds?.type, ds?.query], ['datasource', 'prometheus']);
    assert.equal(dashboard.templating.list.find((v) => v.name === 'instance')?.type, 'query');
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids repeat');
    for (const p of dashboard.panels.filter((p) => p.type !== 'row')) {
      assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `panel ${p.id}`);
      const refIds = (p.targets ?? []).map((t) => t.refId);
      assert.equal(new Set(refIds).size, refIds.length, `panel ${p.id}: refIds repeat`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, '${DS_PROMETHEUS}', `panel ${p.id} ${t.refId}`);
    }
  });

  it('every alerting rule selects exported series and says what to do', () => {
    const rules = alertRules();
    const problems: string[] = [];
    const names = new Set<string>();
    for (const rule of rules) {
      const where = `rule ${String(rule.alert ?? rule.record)}`;
      if (typeof rule.alert !== 'string') problems.push(`${where}: not an alerting rule`);
      else if (names.has(rule.alert)) problems.push(`${where}: name repeats`);
      else names.add(rule.alert);
      if (typeof rule.expr !== 'string' || rule.expr.trim() === '') problems.push(`${where}: no expr`);
      else problems.push(...checkExpr(rule.expr, expo).map((p) => `${where}: ${p}`));
      if (typeof rule.for !== 'string' || !/^\d+[smhdwy]$/.test(rule.for)) problems.push(`${where}: "for" is ${JSON.stringify(rule.for)}`);
      if (!['critical', 'warning'].includes(String(rule.labels?.['severity']))) problems.push(`${where}: severity is ${String(rule.labels?.['severity'])}`);
      for (const key of ['summary', 'description']) {
        const text = rule.annotations?.[key];
        if (typeof text !== 'string' || text.trim() === '') problems.push(`${where}: no ${key}`);
      }
    }
    assert.ok(names.size >= 6, `expected the issue's six alerts at least, found ${names.size}`);
    assert.deepEqual(problems, []);
  });
});
