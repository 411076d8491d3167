/**
 * The soak's report (bench/soak.ts): <name>.json (everything), <name>.md (the table and the
 * slopes) and <name>.svg, small multiples over time of what must stay flat once the idempotency
 * window is full, rendered with Vega-Lite (bench/lib/plots.ts). renderSoakReport rewrites the
 * Markdown and the figure from an existing JSON (`npm run soak -- --render FILE.json`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import type { LoadStats } from '../../src/verify/load.js';
import { renderSvg } from './plots.js';

export interface SoakSample {
  /** Seconds from the load's start. */
  atS: number;
  rssMiB: number;
  heapUsedMiB: number;
  openFds: number;
  eventLoopP99Ms: number;
  poolBusy: number;
  poolReplacing: number;
  poolWaiting: number;
  idempotencyKeys: number;
  /** Requests acknowledged so far (the load's progress, updated every second). */
  acknowledged: number;
  /** Sampled once a minute (Kafka's transaction listing is slow). */
  coordinatorIds?: number | undefined;
}

export interface SoakReport {
  minutes: number;
  concurrency: number;
  retentionMs: number;
  machine: { cores: number; memoryGiB: number; node: string; loadAvg: number[] };
  verdict: string;
  stats: LoadStats;
  /** Least-squares slope of each series over the second half of the run, per minute. */
  slopes: Record<string, number>;
  samples: SoakSample[];
}

const fmt = (n: number | undefined, d = 1): string => (n === undefined || Number.isNaN(n) ? '–' : n.toFixed(d));

export function soakMarkdown(r: SoakReport, svgFile?: string): string {
  const rows = r.samples
    .filter((s, i) => i === r.samples.length - 1 || s.coordinatorIds !== undefined)
    .map((s) => `| ${s.atS} | ${s.acknowledged} | ${fmt(s.rssMiB)} | ${fmt(s.heapUsedMiB)} | ${s.openFds} | ${fmt(s.eventLoopP99Ms)} | ${fmt(s.poolBusy, 0)} | ${fmt(s.poolReplacing, 0)} | ${fmt(s.idempotencyKeys, 0)} | ${s.coordinatorIds ?? '–'} |`);
  const figure = svgFile
    ? [
        `![Soak over time: request rate, RSS, heap, open fds, event-loop delay, pool slots, idempotency keys, coordinator's transactional ids](${svgFile})`,
        '',
        `Every sample over time (minutes from the load's start). Dashed vertical line: the idempotency window is full (retention ${r.retentionMs / 60_000} min); ` +
          'shaded: the second half of the run, over which the slopes below are fitted. Request rate: requests acknowledged between samples; the longest stretch without a 200 is marked.',
        '',
      ]
    : [];
  return [
    `# Soak: ${r.minutes} min, ${r.concurrency} clients, idempotency retention ${r.retentionMs / 60_000} min`,
    '',
    `Machine: ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}. ${r.verdict}`,
    '',
    ...figure,
    '| s | acknowledged | RSS MiB | heap MiB | fds | loop p99 ms | busy | replacing | keys | coordinator ids |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'Slopes over the second half of the run, per minute: ' +
      Object.entries(r.slopes)
        .map(([k, v]) => `${k} ${v.toFixed(2)}`)
        .join(', '),
    '',
  ].join('\n');
}

/** Requests acknowledged per second between successive samples (samples taken in the same second are merged). */
export function requestRate(samples: readonly SoakSample[]): Array<{ minute: number; value: number }> {
  const out: Array<{ minute: number; value: number }> = [];
  let prev: SoakSample | undefined;
  for (const s of samples) {
    if (prev && s.atS > prev.atS) out.push({ minute: s.atS / 60, value: (s.acknowledged - prev.acknowledged) / (s.atS - prev.atS) });
    if (!prev || s.atS > prev.atS) prev = s;
  }
  return out;
}

interface Panel {
  title: string;
  unit: string;
  /** Slope key in SoakReport.slopes, shown under the title. */
  slope?: string;
  series: Array<{ name: string; pick: (s: SoakSample) => number | undefined }>;
  log?: boolean;
  points?: boolean;
}

const PANELS: Panel[] = [
  { title: 'Resident memory (RSS)', unit: 'MiB', slope: 'rssMiBPerMin', series: [{ name: 'RSS', pick: (s) => s.rssMiB }] },
  { title: 'Heap used', unit: 'MiB', slope: 'heapUsedMiBPerMin', series: [{ name: 'heap used', pick: (s) => s.heapUsedMiB }] },
  { title: 'Open file descriptors', unit: 'fds', slope: 'openFdsPerMin', series: [{ name: 'fds', pick: (s) => s.openFds }] },
  { title: 'Event-loop delay, p99 since the previous sample', unit: 'ms (log)', slope: 'eventLoopP99MsPerMin', series: [{ name: 'p99', pick: (s) => s.eventLoopP99Ms }], log: true },
  {
    title: 'Pool slots',
    unit: 'slots / callers',
    series: [
      { name: 'busy', pick: (s) => s.poolBusy },
      { name: 'replacing', pick: (s) => s.poolReplacing },
      { name: 'callers waiting', pick: (s) => s.poolWaiting },
    ],
  },
  { title: 'Idempotency keys held', unit: 'keys', slope: 'idempotencyKeysPerMin', series: [{ name: 'keys', pick: (s) => s.idempotencyKeys }] },
  { title: "Coordinator's transactional ids (ours)", unit: 'ids', slope: 'coordinatorIdsPerMin', series: [{ name: 'ids', pick: (s) => s.coordinatorIds }], points: true },
];

const slopeText = (v: number | undefined, unit: string): string => {
  if (v === undefined || !Number.isFinite(v)) return '';
  const abs = Math.abs(v);
  const n = abs >= 100 ? v.toFixed(0) : abs >= 1 ? v.toFixed(1) : v.toFixed(2);
  return `slope over the second half: ${v > 0 ? '+' : ''}${n} ${unit.replace(' (log)', '')}/min`;
};

/** Small multiples, two a row, on one time axis: the request rate first, then each sampled series. */
export function soakPlotSpec(r: SoakReport): TopLevelSpec {
  const minutes = Math.max(r.minutes, ...r.samples.map((s) => s.atS / 60));
  const retentionMin = r.retentionMs / 60_000;
  const gap = r.stats.longestGapWithoutAck;
  const x = { field: 'minute', type: 'quantitative' as const, scale: { domain: [0, minutes], nice: false }, title: 'minutes' };
  const backdrop = [
    // the second half (the slopes' window), and the moment the idempotency window is full
    {
      data: { values: [{ from: r.minutes / 2, to: minutes }] },
      mark: { type: 'rect' as const, color: '#f0f0f0' },
      encoding: { x: { ...x, field: 'from' }, x2: { field: 'to' } },
    },
    ...(retentionMin < minutes
      ? [
          {
            data: { values: [{ minute: retentionMin, label: 'window full' }] },
            layer: [
              { mark: { type: 'rule' as const, color: '#888', strokeDash: [5, 3] }, encoding: { x } },
              { mark: { type: 'text' as const, align: 'left' as const, baseline: 'top' as const, dx: 3, y: 2, fontSize: 9, color: '#666' }, encoding: { x, text: { field: 'label' } } },
            ],
          },
        ]
      : []),
  ];
  const panel = (p: Panel) => {
    const values = r.samples.flatMap((s) =>
      p.series.flatMap(({ name, pick }) => {
        const v = pick(s);
        return v === undefined || !Number.isFinite(v) || (p.log === true && v <= 0) ? [] : [{ minute: s.atS / 60, series: name, value: v }];
      }),
    );
    const slope = p.slope === undefined ? '' : slopeText(r.slopes[p.slope], p.unit);
    return {
      title: { text: p.title, ...(slope ? { subtitle: slope } : {}) },
      width: 400,
      height: 150,
      layer: [
        ...backdrop,
        {
          data: { values },
          mark: { type: 'line' as const, strokeWidth: 1.3, point: p.points === true ? { size: 20 } : false },
          encoding: {
            x,
            y: { field: 'value', type: 'quantitative' as const, title: p.unit, scale: p.log === true ? { type: 'log' as const } : { zero: true } },
            color:
              p.series.length > 1
                ? { field: 'series', type: 'nominal' as const, title: null, scale: { domain: p.series.map((s) => s.name), scheme: 'tableau10' }, legend: { orient: 'top' as const, direction: 'horizontal' as const, offset: 2 } }
                : { value: '#4c78a8' },
          },
        },
      ],
    };
  };
  const rate = {
    title: { text: 'Request rate', subtitle: `acknowledged requests/s between samples; mean ${r.stats.acknowledgedPerSecond}/s` },
    width: 400,
    height: 150,
    layer: [
      ...backdrop,
      ...(gap.ms > 0
        ? [
            {
              data: { values: [{ from: gap.fromMs / 60_000, to: gap.toMs / 60_000, label: `${(gap.ms / 1000).toFixed(1)} s without a 200` }] },
              layer: [
                { mark: { type: 'rect' as const, color: '#d62728', opacity: 0.25 }, encoding: { x: { ...x, field: 'from' }, x2: { field: 'to' } } },
                { mark: { type: 'text' as const, align: 'left' as const, baseline: 'top' as const, dx: 3, y: 12, fontSize: 9, color: '#d62728' }, encoding: { x: { ...x, field: 'to' }, text: { field: 'label' } } },
              ],
            },
          ]
        : []),
      {
        data: { values: requestRate(r.samples) },
        mark: { type: 'line' as const, strokeWidth: 1.3, color: '#4c78a8' },
        encoding: { x, y: { field: 'value', type: 'quantitative' as const, title: 'requests/s' } },
      },
    ],
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Soak: ${r.minutes} min, ${r.concurrency} clients, idempotency retention ${retentionMin} min`,
      subtitle: `${r.machine.cores} cores, Node ${r.machine.node}; ${r.stats.attempts} attempts, ${r.stats.answers['200'] ?? 0} acknowledged`,
      anchor: 'start',
      fontSize: 14,
    },
    background: 'white',
    columns: 2,
    spacing: { row: 16, column: 24 },
    config: { axis: { labelFontSize: 10, titleFontSize: 10 }, title: { fontSize: 12, subtitleFontSize: 10, subtitleColor: '#555', anchor: 'start' } },
    resolve: { scale: { color: 'independent', y: 'independent' } },
    concat: [rate, ...PANELS.map(panel)],
  } as TopLevelSpec;
}

/** Writes <dir>/<name>.json, .md and .svg; returns their paths. */
export async function writeSoakReport(dir: string, r: SoakReport, name = 'soak'): Promise<{ json: string; markdown: string; svg: string }> {
  const json = path.join(dir, `${name}.json`);
  writeFileSync(json, JSON.stringify(r, null, 2));
  return { json, ...(await renderSoakReport(json, r)) };
}

/** FILE.md and FILE.svg from FILE.json (the JSON is left as it is). */
export async function renderSoakReport(jsonFile: string, r: SoakReport = JSON.parse(readFileSync(jsonFile, 'utf8')) as SoakReport): Promise<{ markdown: string; svg: string }> {
  const base = jsonFile.replace(/\.json$/, '');
  const svg = `${base}.svg`;
  const markdown = `${base}.md`;
  writeFileSync(svg, await renderSvg(soakPlotSpec(r)));
  writeFileSync(markdown, soakMarkdown(r, path.basename(svg)));
  return { markdown, svg };
}
