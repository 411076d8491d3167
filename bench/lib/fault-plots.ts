/**
 * The fault report's figure for one scenario (Vega-Lite, rendered by bench/lib/plots.ts): over
 * the scenario's timeline, 200s per second for each load with the pre-fault baseline and the
 * recovery threshold, and the other answers per second by kind, stacked; the timeline's moments
 * (faults red, recoveries green, the rest grey) as vertical rules labelled in a strip on top.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { ScenarioResult } from '../faults/scenarios.js';
import type { ScenarioSeries } from './fault-series.js';

const WIDTH = 760;
/** Label font size, and an estimate of its average character width (px) to keep labels apart. */
const FONT = 10;
const CHAR_PX = 5.6;
const ROW_PX = 14;
const MAX_LABEL = 46;

export type EventKind = 'fault' | 'recovered' | 'other';

export interface PlotEvent {
  atS: number;
  label: string;
  kind: EventKind;
}

/** What the harness did to the system (kill, stop, restart, delete...), as opposed to what it saw. */
const FAULT = /kill -9|SIGTERM|SIGSTOP|SIGCONT|restarting|delete topic|zombie started|get every key/i;

/** A timeline entry made short enough to label a rule: no parentheses, no detail after ":" or ";", no scenario tag in names. */
export function shortLabel(what: string): string {
  let t = what
    .replace(/\s*\([^)]*\)/g, '')
    .replace(/faults-[a-z0-9]+-s\d+-/g, '')
    .split(/[:;]\s/)[0]!
    .trim();
  if (t.length > MAX_LABEL) t = `${t.slice(0, MAX_LABEL - 1).trimEnd()}…`;
  return t;
}

const seconds = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

/**
 * The moments to mark: the timeline's entries up to `untilS` (the recovery verdicts, which the
 * harness writes when it has waited long enough to know, are replaced by the recovery moments
 * themselves: the fault's time plus the time to recover).
 */
export function plotEvents(r: Pick<ScenarioResult, 'timeline' | 'recovery'>, untilS: number, mainLoadStartMs?: number): PlotEvent[] {
  const verdicts = r.recovery.map((x) => `${x.event}: `);
  const loadStart = mainLoadStartMs ?? r.timeline.find((t) => /^load ".*" started/.test(t.what))?.atMs ?? 0;
  const events: PlotEvent[] = [];
  for (const t of r.timeline) {
    if (t.atMs / 1000 > untilS) continue;
    if (verdicts.some((v) => t.what.startsWith(v))) continue;
    events.push({ atS: t.atMs / 1000, label: shortLabel(t.what), kind: FAULT.test(t.what) ? 'fault' : 'other' });
  }
  for (const x of r.recovery) {
    if (x.recoveredMs === null) continue;
    const atS = (loadStart + x.atMs + x.recoveredMs) / 1000;
    if (atS <= untilS) events.push({ atS, label: `recovered in ${seconds(x.recoveredMs)}`, kind: 'recovered' });
  }
  return events.sort((a, b) => a.atS - b.atS);
}

interface PlacedLabel extends PlotEvent {
  row: number;
  /** Text to the right of the rule, or (near the right edge) to its left. */
  anchor: 'left' | 'right';
}

/** Puts each label on the first row where it does not overlap another (greedy, in time order). */
export function placeLabels(events: PlotEvent[], xMaxS: number, width = WIDTH): PlacedLabel[] {
  const rowsStart: Array<Array<[number, number]>> = [];
  const placed: PlacedLabel[] = [];
  for (const e of events) {
    const x = (e.atS / xMaxS) * width;
    const w = e.label.length * CHAR_PX + 8;
    const anchor = x + w > width ? 'right' : 'left';
    const span: [number, number] = anchor === 'left' ? [x - 2, x + w] : [x - w, x + 2];
    let row = 0;
    while ((rowsStart[row] ?? []).some(([a, b]) => span[0] < b && a < span[1])) row++;
    (rowsStart[row] ??= []).push(span);
    placed.push({ ...e, row, anchor });
  }
  return placed;
}

/** Answer label as the report's table shows it: "503 KAFKA_UNAVAILABLE". */
export const answerLabel = (label: string): string => label.replace(/^(\d+) TXGATE_/, '$1 ');

/** The same colour for the same answer in every scenario's figure. */
const ANSWER_COLOURS: Record<string, string> = {
  timeout: '#7f7f7f',
  'connection-error': '#8c564b',
  '503 KAFKA_UNAVAILABLE': '#ff7f0e',
  '503 NOT_READY': '#bcbd22',
  '503 ACQUIRE_TIMEOUT': '#e7ba52',
  '503 IDEMPOTENCY_UNAVAILABLE': '#ffbb78',
  '503 POOL_SATURATED': '#dbdb8d',
  '409 IDEMPOTENCY_IN_FLIGHT': '#9467bd',
  '500 TRANSACTION_ABORTED': '#d62728',
  '504 TRANSACTION_OUTCOME_UNKNOWN': '#843c39',
  '404 UNKNOWN_TOPIC': '#1f77b4',
};
const SPARE_COLOURS = ['#17becf', '#e377c2', '#393b79', '#637939', '#7b4173', '#ad494a', '#3182bd', '#31a354'];

const EVENT_COLOURS = { domain: ['fault', 'recovered', 'other'], range: ['#d62728', '#2ca02c', '#9a9a9a'] };

export interface FaultPlotInput {
  mode: string;
  result: ScenarioResult;
  series: ScenarioSeries;
  /** The recovery rule's fraction of the baseline (FaultReport.params.recovery.fraction). */
  recoveryFraction: number;
}

/** One scenario: labels strip, 200s/s by load, error answers/s by kind; one time axis. */
export function faultScenarioSpec({ mode, result: r, series, recoveryFraction }: FaultPlotInput): TopLevelSpec {
  const binS = series.binMs / 1000;
  const bins = Math.max(0, ...Object.values(series.acks).map((v) => v.length), ...Object.values(series.errors).map((v) => v.length));
  const xMaxS = Math.max(1, bins * binS);
  const x = (title: string | null, axis = true) => ({
    field: 'atS',
    type: 'quantitative' as const,
    scale: { domain: [0, xMaxS], nice: false, zero: true },
    ...(axis ? { title } : { axis: null }),
  });

  const ackRows = Object.entries(series.acks).flatMap(([load, counts]) => counts.map((n, i) => ({ atS: (i + 0.5) * binS, load, perS: n / binS })));
  const errorRows = Object.entries(series.errors).flatMap(([kind, counts]) =>
    counts.flatMap((n, i) => (n === 0 ? [] : [{ atS: i * binS, atS2: (i + 1) * binS, kind: answerLabel(kind), perS: n / binS }])),
  );
  const kinds = Object.entries(series.errors)
    .map(([k, v]) => [answerLabel(k), v.reduce((s, n) => s + n, 0)] as const)
    .sort(([, a], [, b]) => b - a)
    .map(([k]) => k);
  let spare = 0;
  const kindColours = kinds.map((k) => ANSWER_COLOURS[k] ?? SPARE_COLOURS[spare++ % SPARE_COLOURS.length]!);

  const events = plotEvents(r, xMaxS, series.mainLoadStartMs);
  const labels = placeLabels(events, xMaxS);
  const rows = Math.max(1, ...labels.map((l) => l.row + 1));
  const ruleLayer = {
    data: { values: events },
    mark: { type: 'rule' as const, strokeDash: [4, 3], strokeWidth: 1.2 },
    encoding: {
      x: x(null, false),
      color: { field: 'kind', type: 'nominal' as const, scale: EVENT_COLOURS, legend: null },
    },
  };

  const baseline = r.baselinePerSecond;
  const levels = baseline > 0
    ? [
        { perS: baseline, label: `baseline ${baseline}/s`, dash: [2, 2] },
        { perS: baseline * recoveryFraction, label: `recovery threshold (${Math.round(recoveryFraction * 100)}%)`, dash: [6, 3] },
      ]
    : [];

  const anyErrors = errorRows.length > 0;
  const loads = Object.keys(series.acks);
  const recoveries = r.recovery.length === 0 ? 'no recovery measured' : r.recovery.map((x) => `${x.event}: ${x.recoveredMs === null ? 'not within the wait' : seconds(x.recoveredMs)}`).join('; ');

  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `${r.number}. ${r.title}`,
      subtitle: [`${mode} run: ${r.verdict}, ${r.requests.acknowledged} of ${r.requests.sent} requests acknowledged, baseline ${r.baselinePerSecond} 200s/s before the fault`, `time to recover: ${recoveries}`],
      anchor: 'start',
      fontSize: 14,
      subtitleFontSize: 11,
      limit: WIDTH + 300,
      subtitlePadding: 4,
    },
    background: 'white',
    spacing: 6,
    config: { view: { stroke: null }, axis: { labelFontSize: 10, titleFontSize: 11 }, legend: { labelFontSize: 10, titleFontSize: 11, labelLimit: 260 } },
    resolve: { scale: { color: 'independent', y: 'independent' } },
    vconcat: [
      {
        // the labels strip: one row per overlap level, a tick at each moment
        width: WIDTH,
        height: rows * ROW_PX,
        data: { values: labels },
        encoding: {
          x: x(null, false),
          y: { field: 'row', type: 'quantitative', scale: { domain: [-0.5, rows - 0.5], reverse: true }, axis: null },
          color: { field: 'kind', type: 'nominal', scale: EVENT_COLOURS, title: 'moments', legend: { orient: 'right' } },
        },
        layer: [
          { mark: { type: 'tick', orient: 'vertical', size: ROW_PX - 2, thickness: 1.5 } },
          { transform: [{ filter: "datum.anchor === 'left'" }], mark: { type: 'text', align: 'left', baseline: 'middle', dx: 3, fontSize: FONT }, encoding: { text: { field: 'label' } } },
          { transform: [{ filter: "datum.anchor === 'right'" }], mark: { type: 'text', align: 'right', baseline: 'middle', dx: -3, fontSize: FONT }, encoding: { text: { field: 'label' } } },
        ],
      },
      {
        width: WIDTH,
        height: 210,
        layer: [
          ruleLayer,
          ...(levels.length > 0
            ? [
                {
                  data: { values: levels },
                  layer: [
                    { mark: { type: 'rule' as const, color: '#555', strokeWidth: 1 }, encoding: { y: { field: 'perS', type: 'quantitative' as const }, strokeDash: { field: 'label', type: 'nominal' as const, scale: { domain: levels.map((l) => l.label), range: levels.map((l) => l.dash) }, title: null, legend: { orient: 'right' as const } } } },
                  ],
                },
              ]
            : []),
          {
            data: { values: ackRows },
            mark: { type: 'line', interpolate: 'step', strokeWidth: 1.5 },
            encoding: {
              x: x(null, false),
              y: { field: 'perS', type: 'quantitative', title: '200 answers / s' },
              color: { field: 'load', type: 'nominal', scale: { domain: loads, scheme: 'tableau10' }, title: 'load', legend: { orient: 'right' } },
            },
          },
        ],
        resolve: { scale: { color: 'independent', strokeDash: 'independent' } },
      },
      {
        width: WIDTH,
        height: anyErrors ? 130 : 40,
        layer: [
          { ...ruleLayer, encoding: { ...ruleLayer.encoding, x: x('seconds from the scenario start') } },
          anyErrors
            ? {
                data: { values: errorRows },
                mark: { type: 'bar' },
                encoding: {
                  x: { ...x('seconds from the scenario start'), bin: 'binned' },
                  x2: { field: 'atS2' },
                  y: { field: 'perS', type: 'quantitative', stack: 'zero', title: 'error answers / s' },
                  color: { field: 'kind', type: 'nominal', scale: { domain: kinds, range: kindColours }, title: 'answers (not 200)', legend: { orient: 'right' } },
                  order: { field: 'kind' },
                },
              }
            : {
                data: { values: [{ atS: xMaxS / 2 }] },
                mark: { type: 'text', fontSize: 11, color: '#555' },
                encoding: { x: x('seconds from the scenario start'), text: { value: 'no answer other than 200' } },
              },
        ],
        resolve: { scale: { color: 'independent' } },
      },
    ],
  } as TopLevelSpec;
}
