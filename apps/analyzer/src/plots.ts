import type { RunJobRow } from '@skiplock/schema'
import type { TopLevelSpec } from 'vega-lite'

import { latencySeries, queueDepthSeries, throughputSeries } from './job-series.ts'
import { coresUsed, counterRates, processesByName, type Samples } from './samples.ts'

/** One plot of the report: a Vega-Lite spec, or why it could not be drawn. */
export interface PlotSpec {
  /** File name without extension: plots/<name>.svg and .png. */
  name: string
  title: string
  /** One sentence saying what the plot shows. */
  caption: string
  spec?: TopLevelSpec
  notMeasured?: string
}

/** What the plots are drawn from. */
export interface PlotInput {
  jobs: readonly RunJobRow[]
  /** Time zero of every x axis: when the orchestrator began creating jobs (ms since the epoch). */
  originMs: number
  samples: Samples | undefined
  steadyJobsPerSecond: number
  /** The connection model's requested connections, drawn beside the measured ones. */
  requestedConnections: number
}

/** One panel of a vertically concatenated plot. */
type Panel = Extract<TopLevelSpec, { vconcat: unknown }>['vconcat'][number]

const width = 760
const height = 240
const seconds = { field: 'seconds', type: 'quantitative', title: 'seconds since job creation began' } as const

/** Shared look: DejaVu Sans (what the PNG renderer has), white background, readable sizes. */
export const plotConfig = {
  font: 'DejaVu Sans, Verdana, sans-serif',
  background: 'white',
  padding: 8,
  title: { fontSize: 15, anchor: 'start', subtitleFontSize: 12, subtitleColor: '#555' },
  axis: { labelFontSize: 12, titleFontSize: 12, titleFontWeight: 'normal' },
  legend: { labelFontSize: 12, titleFontSize: 12, orient: 'right', labelLimit: 300 },
  view: { stroke: '#ddd' },
} as const

/** The report's plots, in the order the page shows them: jobs first, then what the monitor sampled. */
export function buildPlots(input: PlotInput): PlotSpec[] {
  return [throughputPlot(input), queueDepthPlot(input), latencyPlot(input), connectionsPlot(input), cpuPlot(input), memoryPlot(input), databasePlot(input)]
}

function plot(name: string, title: string, caption: string, spec: TopLevelSpec | string): PlotSpec {
  if (typeof spec === 'string') return { name, title, caption, notMeasured: spec }
  return { name, title, caption, spec: { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title: { text: title, subtitle: caption }, config: plotConfig, ...spec } as TopLevelSpec }
}

function throughputPlot({ jobs, originMs, steadyJobsPerSecond }: PlotInput): PlotSpec {
  const title = 'Throughput'
  const caption = 'Jobs finished per second; dashed: the steady-state rate (10th to 90th percentile of finish times).'
  const points = throughputSeries(jobs, originMs)
  if (points.length === 0) return plot('throughput', title, caption, 'no job finished')
  const steady = Number.isFinite(steadyJobsPerSecond) ? [{ rate: steadyJobsPerSecond, label: `steady state ${steadyJobsPerSecond.toFixed(1)} jobs/s` }] : []
  return plot('throughput', title, caption, {
    width,
    height,
    layer: [
      {
        data: { values: points },
        mark: { type: 'area', interpolate: 'step-after', line: true, opacity: 0.35 },
        encoding: { x: seconds, y: { field: 'jobsPerSecond', type: 'quantitative', title: 'jobs finished per second' } },
      },
      ...horizontalRule(steady, 'rate', 'label', '#444', [6, 4]),
    ],
  })
}

function queueDepthPlot({ jobs, originMs }: PlotInput): PlotSpec {
  const title = 'Queue depth'
  const caption = 'Jobs enqueued but not yet finished: waiting for a worker, or running.'
  const points = queueDepthSeries(jobs, originMs).flatMap((point) => [
    { seconds: point.seconds, state: 'waiting', jobs: point.waiting },
    { seconds: point.seconds, state: 'running', jobs: point.running },
  ])
  if (points.length === 0) return plot('queue-depth', title, caption, 'the run has no jobs')
  return plot('queue-depth', title, caption, {
    width,
    height,
    data: { values: points },
    mark: { type: 'area', interpolate: 'step-after' },
    encoding: {
      x: seconds,
      y: { field: 'jobs', type: 'quantitative', stack: 'zero', title: 'jobs' },
      color: { field: 'state', type: 'nominal', title: 'jobs', scale: { domain: ['waiting', 'running'], range: ['#9ecae1', '#e6550d'] } },
      order: { field: 'state', sort: 'descending' },
    },
  })
}

function latencyPlot({ jobs, originMs }: PlotInput): PlotSpec {
  const title = 'Latency percentiles'
  const caption = 'p50, p90 and p99 of succeeded jobs, by the time they started: wait (enqueued to started) and run (started to finished).'
  const points = latencySeries(jobs, originMs)
  if (points.length === 0) return plot('latency', title, caption, 'no job succeeded')
  const panel = (measure: 'wait' | 'run', yTitle: string): Panel => ({
    width,
    height: 170,
    transform: [{ filter: `datum.measure === '${measure}'` }],
    mark: { type: 'line', point: { size: 18 } },
    encoding: {
      x: seconds,
      y: { field: 'ms', type: 'quantitative', title: yTitle },
      color: { field: 'percentile', type: 'nominal', title: 'percentile', scale: { domain: ['p50', 'p90', 'p99'], range: ['#3182bd', '#fd8d3c', '#d62728'] } },
    },
  })
  return plot('latency', title, caption, {
    data: { values: points },
    vconcat: [panel('wait', 'wait, ms'), panel('run', 'run, ms')],
    resolve: { scale: { y: 'independent' } },
  })
}

function connectionsPlot({ samples, originMs, requestedConnections }: PlotInput): PlotSpec {
  const title = 'Connections'
  const caption = 'Client connections by state (stacked); red: max_connections; dashed: the connections the model says the workers request.'
  if (!samples) return plot('connections', title, caption, 'not measured: the run has no samples.jsonl')
  if (samples.connections.length === 0) return plot('connections', title, caption, 'not measured: samples.jsonl has no connection samples')
  const seen = new Set(samples.connections.flatMap((sample) => Object.keys(sample.byState)))
  const states = [...Object.keys(stateColors).filter((state) => seen.has(state)), ...[...seen].filter((state) => !(state in stateColors)).sort()]
  const colors = states.map((state, index) => stateColors[state] ?? otherStateColors[index % otherStateColors.length]!)
  // Every state at every sample, zeros included, so the stacked areas do not jump across gaps.
  const points = samples.connections.flatMap((sample) => states.map((state) => ({ seconds: (sample.timeMs - originMs) / 1000, state, connections: sample.byState[state] ?? 0 })))
  const maxConnections = samples.connections.at(-1)!.maxConnections
  return plot('connections', title, caption, {
    width,
    height,
    layer: [
      {
        data: { values: points },
        mark: { type: 'area', interpolate: 'step-after' },
        encoding: {
          x: seconds,
          y: { field: 'connections', type: 'quantitative', stack: 'zero', title: 'connections' },
          color: { field: 'state', type: 'nominal', title: 'state', scale: { domain: states, range: colors } },
          order: { field: 'stateOrder' },
        },
        transform: [{ calculate: `indexof(${JSON.stringify(states)}, datum.state)`, as: 'stateOrder' }],
      },
      ...horizontalRule([{ value: maxConnections, label: `max_connections ${maxConnections}` }], 'value', 'label', '#d62728'),
      ...horizontalRule([{ value: requestedConnections, label: `requested (model) ${requestedConnections}` }], 'value', 'label', '#444', [5, 4]),
    ],
  })
}

// Stacked bottom to top in this order; red stays free for the max_connections line.
const stateColors: Record<string, string> = { active: '#3182bd', 'idle in transaction': '#fd8d3c', idle: '#c6dbef' }
const otherStateColors = ['#31a354', '#756bb1', '#636363', '#e7ba52']

/**
 * The whole trees ('postgres', 'workers'); samples of single worker processes ('workers/<name>') go to the
 * resources table, since fifty lines would make the plot unreadable.
 */
function processTrees(samples: Samples): Samples['processes'] {
  return samples.processes.filter((sample) => !sample.name.includes('/'))
}

function cpuPlot({ samples, originMs }: PlotInput): PlotSpec {
  const title = 'CPU'
  const caption = 'Cores used by the database\'s and the workers\' process trees (Δ CPU seconds / Δ seconds).'
  if (!samples) return plot('cpu', title, caption, 'not measured: the run has no samples.jsonl')
  const points = [...processesByName(processTrees(samples))].flatMap(([name, list]) => coresUsed(list).map((point) => ({ seconds: (point.timeMs - originMs) / 1000, process: name, cores: point.perSecond })))
  if (points.length === 0) return plot('cpu', title, caption, 'not measured: samples.jsonl has fewer than two samples of any process')
  return plot('cpu', title, caption, processLines(points, 'cores', 'cores used'))
}

function memoryPlot({ samples, originMs }: PlotInput): PlotSpec {
  const title = 'Memory'
  const caption = 'Proportional set size (PSS) of the database\'s and the workers\' process trees: shared memory counted once.'
  if (!samples) return plot('memory', title, caption, 'not measured: the run has no samples.jsonl')
  if (samples.processes.length === 0) return plot('memory', title, caption, 'not measured: samples.jsonl has no process samples')
  const points = processTrees(samples).map((sample) => ({ seconds: (sample.timeMs - originMs) / 1000, process: sample.name, mib: sample.pssBytes / 2 ** 20 }))
  return plot('memory', title, caption, processLines(points, 'mib', 'PSS, MiB'))
}

/** One line per process tree over time. */
function processLines(points: readonly object[], field: string, axisTitle: string): TopLevelSpec {
  return {
    width,
    height,
    data: { values: [...points] },
    mark: { type: 'line' },
    encoding: { x: seconds, y: { field, type: 'quantitative', title: axisTitle }, color: { field: 'process', type: 'nominal', title: 'process' } },
  }
}

function databasePlot({ samples, originMs }: PlotInput): PlotSpec {
  const title = 'Database activity'
  const caption = 'Per-second deltas of the database\'s counters: transactions, rows written, and WAL.'
  if (!samples) return plot('database', title, caption, 'not measured: the run has no samples.jsonl')
  if (samples.database.length < 2) return plot('database', title, caption, 'not measured: samples.jsonl has fewer than two database samples')
  const series = (panel: string, name: string, read: (sample: Samples['database'][number]) => number, scale = 1) =>
    counterRates(samples.database, read).map((point) => ({ seconds: (point.timeMs - originMs) / 1000, panel, series: name, perSecond: point.perSecond / scale }))
  const points = [
    ...series('transactions', 'commits', (sample) => sample.commits),
    ...series('transactions', 'rollbacks', (sample) => sample.rollbacks),
    ...series('rows', 'inserted', (sample) => sample.rowsInserted),
    ...series('rows', 'updated', (sample) => sample.rowsUpdated),
    ...series('rows', 'deleted', (sample) => sample.rowsDeleted),
    ...series('wal', 'WAL', (sample) => sample.walBytes, 2 ** 20),
  ]
  const panel = (name: string, yTitle: string): Panel => ({
    width,
    height: 130,
    transform: [{ filter: `datum.panel === '${name}'` }],
    mark: { type: 'line' },
    encoding: {
      x: seconds,
      y: { field: 'perSecond', type: 'quantitative', title: yTitle },
      color: { field: 'series', type: 'nominal', title: null, scale: { domain: ['commits', 'rollbacks', 'inserted', 'updated', 'deleted', 'WAL'], scheme: 'tableau10' } },
    },
  })
  return plot('database', title, caption, {
    data: { values: points },
    vconcat: [panel('transactions', 'transactions/s'), panel('rows', 'rows/s'), panel('wal', 'WAL MiB/s')],
    resolve: { scale: { y: 'independent' } },
  })
}

/** A labelled horizontal line at `valueField` of each datum (none when `values` is empty). */
function horizontalRule(values: readonly Record<string, unknown>[], valueField: string, labelField: string, color: string, strokeDash?: number[]) {
  if (values.length === 0) return []
  return [
    { data: { values }, mark: { type: 'rule', color, strokeWidth: 1.5, ...(strokeDash ? { strokeDash } : {}) }, encoding: { y: { field: valueField, type: 'quantitative' } } },
    {
      data: { values },
      mark: { type: 'text', color, align: 'right', baseline: 'bottom', dy: -3, x: 'width', fontSize: 12 },
      encoding: { y: { field: valueField, type: 'quantitative' }, text: { field: labelField } },
    },
  ] as const
}
