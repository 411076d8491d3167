/**
 * SVG plots from Vega-Lite specs, compiled and rendered headless in Node (the SVG renderer needs
 * no canvas), so the committed figures come from a charting library, not hand-drawn paths.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface PlotRow {
  mode: string;
  connections: number;
  value: number;
}

/** One line per mode against connections (log scale), e.g. requests/s or p99 latency. */
export function lineSpec(title: string, yTitle: string, rows: PlotRow[], logY = false, xTitle = 'concurrent connections / callers'): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 560,
    height: 320,
    background: 'white',
    data: { values: rows.filter((r) => Number.isFinite(r.value) && r.value > 0) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'connections', type: 'quantitative', scale: { type: 'log' }, title: xTitle },
      y: { field: 'value', type: 'quantitative', scale: { type: logY ? 'log' : 'linear' }, title: yTitle },
      color: { field: 'mode', type: 'nominal', title: 'mode', legend: { labelLimit: 400 } },
      tooltip: [{ field: 'mode' }, { field: 'connections' }, { field: 'value', format: '.1f' }],
    },
  };
}

/** One bar per mode, e.g. peak RSS or transactional ids left at one load point. */
export function barSpec(title: string, xTitle: string, rows: Array<{ mode: string; value: number }>, logX = false): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 480,
    background: 'white',
    data: { values: rows.filter((r) => Number.isFinite(r.value)) },
    mark: 'bar',
    encoding: {
      y: { field: 'mode', type: 'nominal', sort: '-x', title: null, axis: { labelLimit: 400 } },
      x: { field: 'value', type: 'quantitative', scale: { type: logX ? 'symlog' : 'linear' }, title: xTitle },
    },
  };
}

export interface SeriesRow {
  /** The line, e.g. the service measured. */
  series: string;
  /** The panel, e.g. "transactional ids on the coordinator". */
  metric: string;
  minutes: number;
  value: number;
}

/** Small multiples over time: one panel per metric (each with its own y scale, in `metrics` order), one line per series. */
export function timeSeriesSpec(title: string, rows: SeriesRow[], metrics: string[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    background: 'white',
    data: { values: rows.filter((r) => Number.isFinite(r.value)) },
    facet: {
      row: { field: 'metric', type: 'nominal', sort: metrics, title: null, header: { labelAngle: 0, labelOrient: 'top', labelAnchor: 'start', labelFontSize: 12, labelLimit: 500 } },
    },
    spec: {
      width: 560,
      height: 120,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'minutes', type: 'quantitative', title: 'minutes under load' },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'series', type: 'nominal', title: 'service', legend: { labelLimit: 400, orient: 'top' } },
        tooltip: [{ field: 'series' }, { field: 'metric' }, { field: 'minutes', format: '.2f' }, { field: 'value', format: '.1f' }],
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}
