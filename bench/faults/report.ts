/** The fault scenarios' report: machine description, a Markdown table and the JSON document. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RdKafka } from '@confluentinc/kafka-javascript';
import { fetchKafkaJars } from '../../src/local-kafka/launcher.js';
import { faultScenarioSpec } from '../lib/fault-plots.js';
import type { ScenarioSeries } from '../lib/fault-series.js';
import { SCENARIOS, type ModeParams, type ScenarioResult } from './scenarios.js';

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  node: string;
  java: string;
  kafka: string;
  librdkafka: string;
  /** 1-minute load average when the run started (other work on the machine shows here). */
  loadAverage: number;
}

export async function describeMachine(): Promise<Machine> {
  let java = 'not found';
  try {
    // `java -version` writes to stderr
    java = execFileSync('bash', ['-c', 'java -version 2>&1'], { encoding: 'utf8' }).trim().split('\n')[0] || java;
  } catch {
    // reported as not found
  }
  let kafka = 'unknown';
  try {
    const lib = await fetchKafkaJars();
    kafka = /kafka_[\d.]+-([^/]+)\/lib$/.exec(lib.trim())?.[1] ?? lib;
  } catch {
    // reported as unknown
  }
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    java,
    kafka,
    librdkafka: RdKafka.librdkafkaVersion,
    loadAverage: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
  };
}

export interface FaultReport {
  mode: 'quick' | 'full';
  startedAt: string;
  durationS: number;
  command: string;
  machine: Machine;
  cluster: { nodes: number; replicationFactor: number; minInsyncReplicas: number; startMs: number };
  params: ModeParams;
  transactionsCheck: string;
  ok: boolean;
  scenarios: FaultScenarioResult[];
}

/** A scenario's result with its answers per second (reports written before they were recorded have none: no figure). */
export type FaultScenarioResult = ScenarioResult & { series?: ScenarioSeries | undefined };

/** The figure of a scenario in a report whose files are <base>.json and <base>.md: <base>-<number>-<id>.svg. */
export const plotFile = (base: string, r: Pick<ScenarioResult, 'number' | 'id'>): string => `${base}-${r.number}-${r.id}.svg`;

/** Text safe in a Markdown table cell: one line, no pipes. */
const cell = (text: string): string => text.replace(/\s*\n\s*/g, ' ').replaceAll('|', '/');

const s = (ms: number | null | undefined): string => (ms === null || ms === undefined ? 'n/a' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

function anomalies(r: ScenarioResult): string {
  const bad = Object.entries(r.anomalies).filter(([, n]) => n > 0);
  return bad.length === 0 ? '0' : `**${bad.map(([k, n]) => `${k} ${n}`).join(', ')}**`;
}

function errors(r: ScenarioResult): string {
  const entries = Object.entries(r.errorAnswers);
  if (entries.length === 0) return 'none';
  return entries.map(([k, n]) => `${k.replace(/^(\d+) TXGATE_/, '$1 ')} ×${n}`).join(', ');
}

function recovery(r: ScenarioResult): string {
  if (r.recovery.length === 0) return 'n/a';
  return r.recovery.map((x) => `${x.event}: ${x.recoveredMs === null ? `not within the wait (first 200 after ${s(x.firstAckMs)})` : s(x.recoveredMs)}`).join('; ');
}

function gap(r: ScenarioResult): string {
  const from = r.longestGap.fromFaultMs;
  const where = from === null ? '' : ` (from ${s(Math.abs(from))} ${from < 0 ? 'before' : 'after'} the fault)`;
  return `${s(r.longestGap.ms)}${where}`;
}

export function markdownTable(results: ScenarioResult[]): string {
  const rows = [
    '| # | Scenario | Verdict | Anomalies | Requests: acknowledged / failed / undecided | Error answers clients saw (all retried) | Longest gap without a 200 | Time to recover | Latency p50 / p99 |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    rows.push(
      `| ${r.number} | ${r.title} | ${r.verdict}${r.error ? `: ${cell(r.error)}` : ''} | ${anomalies(r)} | ${r.requests.sent}: ${r.requests.acknowledged} / ${r.requests.failed} / ${r.requests.undecided} | ${errors(r)} | ${gap(r)} | ${recovery(r)} | ${s(r.latencyMs.p50)} / ${s(r.latencyMs.p99)} |`,
    );
  }
  return rows.join('\n');
}

function details(r: FaultScenarioResult, base: string): string {
  const info = SCENARIOS.find((x) => x.id === r.id);
  const lines = [`### ${r.number}. ${r.title}`, '', info?.shows ?? '', ''];
  if (r.series) lines.push(`![Scenario ${r.number} over time: 200 answers per second by load, error answers per second by kind, the timeline's moments](${plotFile(base, r)})`, '');
  lines.push('Timeline (seconds from the scenario start):', '');
  for (const t of r.timeline) lines.push(`- ${(t.atMs / 1000).toFixed(1)} s: ${t.what}`);
  lines.push('');
  const figures = { ...r.figures };
  delete figures.topics;
  delete figures.transactionalIds;
  lines.push(
    `Machine load average ${r.loadAverage.start} at the start, ${r.loadAverage.end} at the end. ` +
      `Figures: baseline ${r.baselinePerSecond} acknowledged requests/s, ${r.acknowledgedPerSecond}/s over the whole load of ${s(r.durationMs)}; ` +
      `${r.recordsRead} records read back; transactions: ${transactionsText(r)}.`,
    '',
    ...Object.entries(figures).map(([k, v]) => `- ${k}: \`${JSON.stringify(v)}\``),
  );
  const logs = Object.entries(r.gatewayLogs).filter(([, c]) => Object.keys(c).length > 0);
  if (logs.length > 0) {
    lines.push('', 'Gateway log lines at warn and above:', '');
    for (const [label, counts] of logs) {
      lines.push(`- ${label}: ${Object.entries(counts).slice(0, 8).map(([m, n]) => `${m} ×${n}`).join('; ')}`);
    }
  }
  if (r.problems.length > 0) lines.push('', `Problems: ${r.problems.join('; ')}`);
  if (r.examples.length > 0) lines.push('', 'Examples:', '', ...r.examples.slice(0, 10).map((e) => `- ${e.kind}: ${e.detail}`));
  return lines.join('\n');
}

function transactionsText(r: ScenarioResult): string {
  const t = r.transactions;
  if (!t.checked) return `not checked (${t.reason})`;
  return `${t.ongoing.length} ongoing, ${t.hanging.length} hanging, ${t.transactionalIds} transactional ids`;
}

/** The report in Markdown; `base` names its figures (plotFile), next to it. */
export function markdownReport(report: FaultReport, base: string = report.mode): string {
  const m = report.machine;
  const plotted = report.scenarios.filter((r) => r.series).length;
  const figures =
    plotted === 0
      ? "No figures: this report's JSON holds no answers per second (`series`) to plot."
      : `Figures (one per scenario${plotted < report.scenarios.length ? ` with answers per second, ${plotted} of ${report.scenarios.length}` : ''}, under Details): 200 answers per second for each load, with the pre-fault baseline and the recovery threshold; ` +
        'the other answers per second by kind, stacked; the moments of the timeline as vertical rules, faults in red, recoveries (the recovery rule met) in green, the rest in grey.';
  return [
    `# txgate fault scenarios (${report.mode})`,
    '',
    `${report.startedAt}, ${Math.round(report.durationS)} s in all: \`${report.command}\`. ${report.ok ? 'Every scenario completed with 0 anomalies.' : '**At least one scenario failed or found an anomaly.**'}`,
    '',
    `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}, load average ${m.loadAverage} at the start (the machine is shared). ` +
      `Node.js ${m.node}, ${m.java}, Kafka ${m.kafka} (KRaft), librdkafka ${m.librdkafka}.`,
    '',
    `Cluster: ${report.cluster.nodes} nodes (broker + controller each), replication factor ${report.cluster.replicationFactor}, min.insync.replicas ${report.cluster.minInsyncReplicas}, up in ${s(report.cluster.startMs)}. ` +
      `Load per scenario: ${report.params.concurrency} verifier clients, ${report.params.recordsPerRequest} records per request (one transaction over ${report.params.partitions} partitions), ` +
      `gateways with ${report.params.poolSize} producers each; recovery = the acknowledgement rate back to ${report.params.recovery.fraction * 100}% of the pre-fault baseline in every ${report.params.recovery.windowMs / 1000} s window for ${report.params.recovery.holdMs / 1000} s. ` +
      `Transactions checked with Kafka's TransactionsCommand: ${report.transactionsCheck}.`,
    '',
    markdownTable(report.scenarios),
    '',
    figures,
    '',
    '## Details',
    '',
    report.scenarios.map((r) => details(r, base)).join('\n\n'),
    '',
  ].join('\n');
}

/** Writes <dir>/<mode>.json, <dir>/<mode>.md and the figures (<dir>/<mode>-<n>-<id>.svg); returns their paths. */
export async function writeReport(dir: string, report: FaultReport): Promise<{ json: string; markdown: string; plots: string[] }> {
  mkdirSync(dir, { recursive: true });
  const json = path.join(dir, `${report.mode}.json`);
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  return { json, ...(await renderReport(json, report)) };
}

/**
 * From a report's JSON (FILE.json): FILE.md and FILE-<n>-<id>.svg for every scenario with answers
 * per second, replacing the figures an earlier render left (`npm run faults -- --render FILE.json`).
 */
export async function renderReport(jsonFile: string, report: FaultReport = JSON.parse(readFileSync(jsonFile, 'utf8')) as FaultReport): Promise<{ markdown: string; plots: string[] }> {
  const dir = path.dirname(jsonFile);
  const base = path.basename(jsonFile).replace(/\.json$/, '');
  // figures of an earlier render (a scenario since dropped, or renamed) go
  for (const f of readdirSync(dir)) if (f.startsWith(`${base}-`) && /^\d+-[a-z-]+\.svg$/.test(f.slice(base.length + 1))) rmSync(path.join(dir, f));
  // vega loads only here: the CI test imports this module for markdownTable alone
  const { renderSvg } = await import('../lib/plots.js');
  const plots: string[] = [];
  for (const r of report.scenarios) {
    if (!r.series) continue;
    const file = path.join(dir, plotFile(base, r));
    writeFileSync(file, await renderSvg(faultScenarioSpec({ mode: report.mode, result: r, series: r.series, recoveryFraction: report.params.recovery.fraction })));
    plots.push(file);
  }
  const markdown = path.join(dir, `${base}.md`);
  writeFileSync(markdown, markdownReport(report, base));
  return { markdown, plots };
}
