import type { RunWindow } from './job-series.ts'
import { markdownTable } from './markdown.ts'
import { type ConnectionsSample, type Samples, within } from './samples.ts'
import { isMeasured, type NotMeasured, type StatementStats } from './statement-stats.ts'
import { formatNumber, mean, peak } from './statistics.ts'

/** The scenario fields the model needs. */
export interface ModelScenario {
  processes: number
  concurrency: number
  poolSize: number
  listen: boolean
}

/**
 * The study's connection model evaluated for one run, beside what the run measured. A figure that could
 * not be measured is `null`, and `notMeasured` says why.
 */
export interface ConnectionModel {
  inputs: {
    /** N: worker processes. */
    workers: number
    /** S: jobs each worker runs at once. */
    concurrency: number
    /** P: each worker's pool size. */
    poolSize: number
    listen: boolean
    /** T: mean run time of the succeeded jobs, in seconds. */
    meanJobSeconds: number | null
    /** Q: the worker's statements per job of the run. */
    queriesPerJob: number | null
    /** L: mean execution time of the worker's statements, in seconds. */
    meanQuerySeconds: number | null
    statementCalls: number | null
    jobs: number
  }
  predicted: {
    /** N x P. */
    requestedPool: number
    /** N x (P + 1) when LISTEN is on: each worker also holds one listening connection. */
    requestedWithListen: number | null
    /** S x Q x L / T: connections one worker keeps busy, uncapped. */
    activePerWorker: number | null
    /** N x S x Q x L / T. */
    active: number | null
    /** N x min(P, S x Q x L / T): a worker cannot have more active connections than its pool. */
    activePoolCapped: number | null
  }
  measured: {
    /** Samples of connections within the run window. */
    samples: number
    activeMean: number | null
    activePeak: number | null
    totalMean: number | null
    totalPeak: number | null
    /** Connections of the workers' pools and listeners (application names skiplock-worker… and skiplock-listener). */
    workerConnectionsMean: number | null
    workerConnectionsPeak: number | null
    maxConnections: number | null
  }
  notMeasured: string[]
}

/**
 * Evaluates requested = N x P (+ N with LISTEN) and active = N x S x Q x L / T, where Q and L come from
 * pg_stat_statements and T from the jobs, and measures active and total connections from the samples
 * taken within the run window.
 */
export function evaluateConnectionModel(args: {
  scenario: ModelScenario
  jobs: number
  meanJobSeconds: number
  statements: StatementStats | NotMeasured
  samples: Samples | undefined
  window: RunWindow
}): ConnectionModel {
  const { scenario, statements } = args
  const notMeasured: string[] = []
  const meanJobSeconds = Number.isFinite(args.meanJobSeconds) && args.meanJobSeconds > 0 ? args.meanJobSeconds : null
  if (meanJobSeconds === null) notMeasured.push('T: no job succeeded')
  let queriesPerJob: number | null = null
  let meanQuerySeconds: number | null = null
  if (isMeasured(statements)) {
    queriesPerJob = args.jobs > 0 ? statements.calls / args.jobs : null
    meanQuerySeconds = statements.totalExecMs / statements.calls / 1000
  } else {
    notMeasured.push(`Q and L: ${statements.notMeasured}`)
  }
  const activePerWorker = meanJobSeconds !== null && queriesPerJob !== null && meanQuerySeconds !== null ? (scenario.concurrency * queriesPerJob * meanQuerySeconds) / meanJobSeconds : null

  const connections = connectionsInWindow(args.samples, args.window)
  if (args.samples === undefined) notMeasured.push('measured connections: the run has no samples.jsonl')
  else if (connections.length === 0) notMeasured.push('measured connections: samples.jsonl has no connection sample within the run')
  const series = (read: (sample: ConnectionsSample) => number) => {
    const values = connections.map(read)
    return values.length === 0 ? { mean: null, peak: null } : { mean: mean(values), peak: peak(values) }
  }
  const active = series((sample) => sample.byState.active ?? 0)
  const total = series((sample) => sample.total)
  const workerConnections = series((sample) => workerConnectionCount(sample.byApplication))
  const maxConnections = args.samples?.connections.at(-1)?.maxConnections ?? null

  return {
    inputs: {
      workers: scenario.processes,
      concurrency: scenario.concurrency,
      poolSize: scenario.poolSize,
      listen: scenario.listen,
      meanJobSeconds,
      queriesPerJob,
      meanQuerySeconds,
      statementCalls: isMeasured(statements) ? statements.calls : null,
      jobs: args.jobs,
    },
    predicted: {
      requestedPool: scenario.processes * scenario.poolSize,
      requestedWithListen: scenario.listen ? scenario.processes * (scenario.poolSize + 1) : null,
      activePerWorker,
      active: activePerWorker === null ? null : scenario.processes * activePerWorker,
      activePoolCapped: activePerWorker === null ? null : scenario.processes * Math.min(scenario.poolSize, activePerWorker),
    },
    measured: {
      samples: connections.length,
      activeMean: active.mean,
      activePeak: active.peak,
      totalMean: total.mean,
      totalPeak: total.peak,
      workerConnectionsMean: workerConnections.mean,
      workerConnectionsPeak: workerConnections.peak,
      maxConnections,
    },
    notMeasured,
  }
}

/** The connections the model predicts: the workers' pools and, with LISTEN on, their listeners. */
function workerConnectionCount(byApplication: Record<string, number>): number {
  let count = 0
  for (const [application, connections] of Object.entries(byApplication)) {
    if (application.startsWith('skiplock-worker') || application === 'skiplock-listener') count += connections
  }
  return count
}

function connectionsInWindow(samples: Samples | undefined, window: RunWindow): ConnectionsSample[] {
  if (!samples) return []
  return Number.isFinite(window.startMs) ? within(samples.connections, window.startMs, window.endMs) : samples.connections
}

/**
 * The "Connection model" section: the formulas' inputs, each prediction beside its measurement, and the
 * worker's statements pg_stat_statements recorded. Unmeasured figures read "not measured".
 */
export function connectionModelMarkdown(model: ConnectionModel, statements: StatementStats | NotMeasured): string {
  const { inputs, predicted, measured } = model
  const value = (number: number | null, unit = '') => (number === null ? 'not measured' : `${formatNumber(number)}${unit}`)
  const sampled = (number: number | null) => (number === null ? 'not measured' : formatNumber(number))
  const statementSource = isMeasured(statements)
    ? `pg_stat_statements: ${formatNumber(statements.calls)} calls of the worker's statements / ${inputs.jobs} jobs`
    : statements.notMeasured
  const parts = [
    '## Connection model',
    'The study\'s model: requested = N x P (x (P + 1) with each worker\'s LISTEN connection); active ~= N x S x Q x L / T, where a worker\'s S x Q x L / T cannot exceed its pool size P.',
    markdownTable(
      ['input', 'value', 'source'],
      [
        ['N (worker processes)', inputs.workers, 'scenario.processes'],
        ['S (concurrency per worker)', inputs.concurrency, 'scenario.concurrency'],
        ['P (pool size per worker)', inputs.poolSize, `scenario.poolSize; LISTEN ${inputs.listen ? 'on' : 'off'}`],
        ['T (mean job run time, s)', value(inputs.meanJobSeconds), 'succeeded jobs, started to finished'],
        ['Q (queries per job)', value(inputs.queriesPerJob), statementSource],
        ['L (mean query latency, ms)', value(inputs.meanQuerySeconds === null ? null : inputs.meanQuerySeconds * 1000), isMeasured(statements) ? 'pg_stat_statements: total_exec_time / calls' : statements.notMeasured],
      ],
    ),
    markdownTable(
      ['connections', 'formula', 'model', 'pool-capped', 'measured mean', 'measured peak'],
      [
        [
          'requested',
          inputs.listen ? `N x (P + 1) = ${inputs.workers} x ${inputs.poolSize + 1}` : `N x P = ${inputs.workers} x ${inputs.poolSize}`,
          predicted.requestedWithListen ?? predicted.requestedPool,
          '-',
          sampled(measured.workerConnectionsMean),
          sampled(measured.workerConnectionsPeak),
        ],
        ...(inputs.listen ? [['requested by the pools', `N x P = ${inputs.workers} x ${inputs.poolSize}`, predicted.requestedPool, '-', '-', '-']] : []),
        ['active', 'N x S x Q x L / T', value(predicted.active), value(predicted.activePoolCapped), sampled(measured.activeMean), sampled(measured.activePeak)],
        ['all client connections', '-', '-', '-', sampled(measured.totalMean), sampled(measured.totalPeak)],
      ],
    ),
    `Measured: ${measured.samples} connection samples from samples.jsonl between the first job started and the last job finished; requested counts the workers' connections (application skiplock-worker… and skiplock-listener), active counts every client connection in state active.${measured.maxConnections === null ? '' : ` max_connections = ${measured.maxConnections}.`}`,
  ]
  if (isMeasured(statements)) {
    parts.push(
      markdownTable(
        ['statement', 'calls', 'calls per job', 'mean ms', 'total ms'],
        statements.byStatement.map((row) => [row.statement, row.calls, formatNumber(row.calls / inputs.jobs), formatNumber(row.totalExecMs / row.calls), formatNumber(row.totalExecMs)]),
      ),
    )
  }
  if (model.notMeasured.length > 0) parts.push(`Not measured: ${model.notMeasured.join('; ')}.`)
  return parts.join('\n\n')
}
