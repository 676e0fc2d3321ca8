import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import type { ScenarioName, ScenarioResult } from './scenarios/scenario.ts'

export interface ReportContext {
  command: string
  startedAt: Date
  settings: Record<string, string | number>
  versions: Record<string, string>
  postgresVersion: string
  jobs: number
  maxSeconds: number
  repeats: number
}

/** The runs of one peer, scenario, configuration and `synchronous_commit`, represented by their median run. */
interface Row {
  median: ScenarioResult
  runs: number
  /** The headline figure's lowest and highest value over the runs. */
  range: [number, number]
}

/** The figure each scenario is judged by, and whether higher is better. */
const headline: Record<ScenarioName, { value: (result: ScenarioResult) => number; isHigherBetter: boolean }> = {
  S1: { value: (result) => jobsPerSecond(result), isHigherBetter: true },
  S2: { value: (result) => jobsPerSecond(result), isHigherBetter: true },
  S3: { value: (result) => result.efficiency ?? 0, isHigherBetter: true },
  S4: { value: (result) => result.pickupP99Ms ?? Infinity, isHigherBetter: false },
  M1: { value: (result) => result.maxRssBytes ?? Infinity, isHigherBetter: false },
}

const jobsPerSecond = (result: ScenarioResult) => result.jobsDone / result.measurement.wallSeconds

/** Groups repeated runs and keeps the median one by the scenario's headline figure (the lower middle of an even count). */
function summarize(results: readonly ScenarioResult[]): Row[] {
  const groups = new Map<string, ScenarioResult[]>()
  for (const result of results) {
    const key = [result.scenario, result.peer, result.config, result.synchronousCommit].join('|')
    groups.set(key, [...(groups.get(key) ?? []), result])
  }
  return [...groups.values()].map((runs) => {
    const { value } = headline[runs[0]!.scenario]
    const sorted = [...runs].sort((a, b) => value(a) - value(b))
    return {
      median: sorted[Math.floor((sorted.length - 1) / 2)]!,
      runs: runs.length,
      range: [value(sorted[0]!), value(sorted.at(-1)!)],
    }
  })
}

const formatRate = (rate: number) => (rate < 10 ? rate.toFixed(1) : Math.round(rate).toLocaleString('en-US'))
const perJob = (value: number | null, jobs: number, scale: number, digits: number) =>
  value === null || jobs === 0 ? 'n/a' : ((value / jobs) * scale).toFixed(digits)
const mebibytes = (bytes: number | null) => (bytes === null || !Number.isFinite(bytes) ? 'n/a' : (bytes / 2 ** 20).toFixed(0))
const milliseconds = (value: number | null) => (value === null ? 'n/a' : value.toFixed(1))
const connectionsPerProcess = (result: ScenarioResult) =>
  result.measurement.peakConnections === null || !result.processes ? 'n/a' : (result.measurement.peakConnections / result.processes).toFixed(1)

function spread(row: Row, format: (value: number) => string): string {
  return row.runs > 1 ? ` (${format(row.range[0])}–${format(row.range[1])})` : ''
}

const costColumns = (result: ScenarioResult) => [
  perJob(result.measurement.postgresCpuSeconds, result.jobsDone, 1e6, 0),
  perJob(result.measurement.clientCpuSeconds, result.jobsDone, 1e6, 0),
  perJob(result.measurement.walBytes, result.jobsDone, 1, 0),
  perJob(result.measurement.commits, result.jobsDone, 1, 4),
  result.inspection ? result.inspection.statementsPerJob.toFixed(4) : 'n/a',
]

const table = (header: readonly string[], alignments: string, rows: readonly (readonly (string | number)[])[]) => [
  `| ${header.join(' | ')} |`,
  alignments,
  ...rows.map((cells) => `| ${cells.join(' | ')} |`),
  '',
]

/** The rows of one scenario with `synchronous_commit` on: the ones the goals count. */
const rowsOf = (rows: readonly Row[], scenario: ScenarioName) =>
  rows.filter((row) => row.median.scenario === scenario && row.median.synchronousCommit === 'on')

function find(rows: readonly Row[], scenario: ScenarioName, peer: string, config: string, synchronousCommit: 'on' | 'off' = 'on') {
  return rows.find(
    (row) =>
      row.median.scenario === scenario && row.median.peer === peer && row.median.config === config && row.median.synchronousCommit === synchronousCommit,
  )
}

/** The rate tables (S1, S2): jobs/s, the ratio to skiplock with the same configuration, the costs per job. */
function rateSection(rows: readonly Row[], scenario: 'S1' | 'S2', title: string): string[] {
  const scenarioRows = rowsOf(rows, scenario)
  if (!scenarioRows.length) return []
  return [
    `## ${title}`,
    '',
    ...table(
      ['peer', 'config', 'jobs/s', '× skiplock', 'seconds', 'PG CPU µs/job', 'client CPU µs/job', 'WAL bytes/job', 'tx/job', 'statements/job', 'peak connections', 'exactly once', 'notes'],
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
      scenarioRows.map((row) => {
        const result = row.median
        const baseline = find(rows, scenario, 'skiplock', result.config)
        return [
          result.peer,
          `${result.config}: ${result.configDescription}`,
          `${formatRate(jobsPerSecond(result))}${result.isPartial ? ' (partial)' : ''}${spread(row, formatRate)}`,
          baseline ? (jobsPerSecond(result) / jobsPerSecond(baseline.median)).toFixed(2) : 'n/a',
          result.measurement.wallSeconds.toFixed(2),
          ...costColumns(result),
          result.measurement.peakConnections ?? 'n/a',
          result.isExactlyOnce ? 'yes' : 'NO',
          result.note,
        ]
      }),
    ),
  ]
}

function sleepingJobsSection(rows: readonly Row[], scenario: 'S3' | 'M1', title: string): string[] {
  const scenarioRows = rowsOf(rows, scenario)
  if (!scenarioRows.length) return []
  return [
    `## ${title}`,
    '',
    ...table(
      ['peer', 'config', 'efficiency', 'drain s', 'ideal s', 'peak connections', 'per process', 'max RSS MiB / process', 'PG CPU µs/job', 'client CPU µs/job', 'WAL bytes/job', 'tx/job', 'statements/job', 'exactly once', 'notes'],
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
      scenarioRows.map((row) => {
        const result = row.median
        return [
          result.peer,
          `${result.config}: ${result.configDescription}`,
          `${result.efficiency === null ? 'n/a' : result.efficiency.toFixed(3)}${scenario === 'S3' ? spread(row, (value) => value.toFixed(3)) : ''}`,
          result.drainSeconds?.toFixed(2) ?? 'n/a',
          result.idealSeconds?.toFixed(2) ?? 'n/a',
          result.measurement.peakConnections ?? 'n/a',
          connectionsPerProcess(result),
          `${mebibytes(result.maxRssBytes)}${scenario === 'M1' ? spread(row, mebibytes) : ''}`,
          ...costColumns(result),
          result.isExactlyOnce ? 'yes' : 'NO',
          result.note,
        ]
      }),
    ),
  ]
}

function pickupSection(rows: readonly Row[]): string[] {
  const scenarioRows = rowsOf(rows, 'S4')
  if (!scenarioRows.length) return []
  return [
    `## S4: single jobs at 200/s to idle workers (enqueue call to handler start)`,
    '',
    ...table(
      ['peer', 'config', 'jobs', 'pickup p50 ms', 'pickup p99 ms', 'peak connections', 'PG CPU µs/job', 'WAL bytes/job', 'tx/job', 'statements/job', 'exactly once', 'notes'],
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
      scenarioRows.map((row) => {
        const result = row.median
        const costs = costColumns(result)
        return [
          result.peer,
          `${result.config}: ${result.configDescription}`,
          result.jobs,
          milliseconds(result.pickupP50Ms),
          `${milliseconds(result.pickupP99Ms)}${spread(row, (value) => value.toFixed(1))}`,
          result.measurement.peakConnections ?? 'n/a',
          costs[0]!,
          costs[2]!,
          costs[3]!,
          costs[4]!,
          result.isExactlyOnce ? 'yes' : 'NO',
          result.note,
        ]
      }),
    ),
  ]
}

/** Where S2's WAL and statement time go, per peer: pg_walinspect's record types and pg_stat_statements' top statements. */
function whereItGoesSection(rows: readonly Row[]): string[] {
  const inspected = rowsOf(rows, 'S2').filter((row) => row.median.inspection)
  if (!inspected.length) return []
  const lines = [
    '## Where S2 goes: WAL by record type and the statements that ran',
    '',
    'From the median S2 run of each row: `pg_get_wal_stats` (pg_walinspect) between the WAL positions at the start and end of the ' +
      'interval, and `pg_stat_statements` for the peer\'s own role (the harness connects as another), top-level statements only. ' +
      'Records are per job; FPI is the part of the bytes that are full-page images.',
    '',
  ]
  for (const row of inspected) {
    const { peer, config } = row.median
    const inspection = row.median.inspection!
    lines.push(
      `### ${peer}, ${config}`,
      '',
      ...table(
        ['WAL record', 'records/job', 'bytes/job', 'of which FPI'],
        '|---|---:|---:|---:|',
        inspection.walByRecord
          .filter((record) => record.bytesPerJob >= 1)
          .slice(0, 8)
          .map((record) => [`\`${record.type}\``, record.recordsPerJob.toFixed(3), record.bytesPerJob.toFixed(0), record.fullPageBytesPerJob.toFixed(0)]),
      ),
      ...table(
        ['statement', 'calls/job', 'mean ms', 'share of time'],
        '|---|---:|---:|---:|',
        inspection.topStatements.map((statement) => [
          `\`${statement.query.length > 110 ? `${statement.query.slice(0, 107)}...` : statement.query}\``.replaceAll('|', '\\|'),
          statement.callsPerJob.toFixed(4),
          statement.meanMs.toFixed(2),
          `${(statement.timeShare * 100).toFixed(0)}%`,
        ]),
      ),
    )
  }
  return lines
}

/** S2 and S3 with `synchronous_commit` on beside off, for every peer that ran both. */
function durabilitySection(rows: readonly Row[]): string[] {
  const pairs = rows
    .filter((row) => (row.median.scenario === 'S2' || row.median.scenario === 'S3') && row.median.synchronousCommit === 'on')
    .flatMap((on) => {
      const off = find(rows, on.median.scenario, on.median.peer, on.median.config, 'off')
      return off ? [{ on: on.median, off: off.median }] : []
    })
  if (!pairs.length) return []
  const figure = (result: ScenarioResult) =>
    result.scenario === 'S2' ? `${formatRate(jobsPerSecond(result))} jobs/s` : `efficiency ${result.efficiency?.toFixed(3) ?? 'n/a'}`
  return [
    '## Durability: `synchronous_commit` on (the default) beside off',
    '',
    'With `off`, a commit returns before its WAL reaches the disk. A crash of the server (not of a worker) can then lose ' +
      'the last few hundred milliseconds of commits (up to three times `wal_writer_delay`, 200 ms by default): jobs deferred ' +
      'in that window vanish although `defer` returned, and jobs completed in it run again, since their completion is undone. ' +
      'Nothing is corrupted, and a worker crash loses nothing either way. Only the `on` column counts for the goals.',
    '',
    ...table(
      ['scenario', 'peer', 'config', 'on', 'off', 'off / on', 'WAL bytes/job on', 'WAL bytes/job off'],
      '|---|---|---|---:|---:|---:|---:|---:|',
      pairs.map(({ on, off }) => [
        on.scenario,
        on.peer,
        on.config,
        figure(on),
        figure(off),
        (on.scenario === 'S2' ? jobsPerSecond(off) / jobsPerSecond(on) : (off.efficiency ?? 0) / (on.efficiency ?? 1)).toFixed(2),
        perJob(on.measurement.walBytes, on.jobsDone, 1, 0),
        perJob(off.measurement.walBytes, off.jobsDone, 1, 0),
      ]),
    ),
  ]
}

/** The issue's goals, each checked against this run's figures; goals whose scenario did not run are left out. */
function goalsSection(rows: readonly Row[]): string[] {
  const goals: (readonly string[])[] = []
  const rate = (row: Row | undefined) => (row ? jobsPerSecond(row.median) : undefined)
  const check = (goal: string, measured: string, isMet: boolean) => goals.push([goal, measured, isMet ? 'met' : '**not met**'])

  const s1 = rate(find(rows, 'S1', 'skiplock', 'bulk'))
  const s1Graphile = rate(find(rows, 'S1', 'graphile-worker', 'bulk'))
  if (s1 !== undefined) {
    check('S1: at least 150,000 jobs/s', `${formatRate(s1)} jobs/s${s1Graphile ? ` (${(s1 / s1Graphile).toFixed(2)}× graphile-worker)` : ''}`, s1 >= 150_000)
  }
  const s2Best = Math.max(rate(find(rows, 'S2', 'skiplock', 'best')) ?? 0, rate(find(rows, 'S2', 'skiplock', 'defaults')) ?? 0)
  const s2Defaults = rate(find(rows, 'S2', 'skiplock', 'defaults'))
  for (const [peer, factor] of [['graphile-worker', 2], ['pg-boss', 4]] as const) {
    const peerBest = rate(find(rows, 'S2', peer, 'best'))
    if (s2Best && peerBest) check(`S2: at least ${factor}× ${peer}'s best`, `${(s2Best / peerBest).toFixed(2)}× (${formatRate(s2Best)} against ${formatRate(peerBest)} jobs/s)`, s2Best >= factor * peerBest)
  }
  if (s2Defaults !== undefined) check('S2: skiplock defaults at least 20,000 jobs/s', `${formatRate(s2Defaults)} jobs/s`, s2Defaults >= 20_000)
  const s3 = find(rows, 'S3', 'skiplock', 'defaults')?.median
  if (s3?.efficiency != null) {
    const perProcess = s3.measurement.peakConnections === null ? Infinity : s3.measurement.peakConnections / (s3.processes ?? 1)
    check('S3: efficiency at least 0.97 with at most 2 connections per worker process (defaults)', `${s3.efficiency.toFixed(3)}, ${perProcess.toFixed(1)} connections per process`, s3.efficiency >= 0.97 && perProcess <= 2)
  }
  const s4 = find(rows, 'S4', 'skiplock', 'defaults')?.median
  if (s4?.pickupP99Ms != null) {
    check('S4: pickup p50 at most 2 ms and p99 at most 5 ms (defaults)', `p50 ${milliseconds(s4.pickupP50Ms)} ms, p99 ${milliseconds(s4.pickupP99Ms)} ms`, (s4.pickupP50Ms ?? Infinity) <= 2 && s4.pickupP99Ms <= 5)
  }
  const skiplockS2 = find(rows, 'S2', 'skiplock', 'best')?.median
  const graphileS2 = find(rows, 'S2', 'graphile-worker', 'best')?.median
  if (skiplockS2 && graphileS2) {
    for (const [label, value] of [
      ['PostgreSQL CPU per job', (result: ScenarioResult) => result.measurement.postgresCpuSeconds],
      ['WAL bytes per job', (result: ScenarioResult) => result.measurement.walBytes],
    ] as const) {
      const ours = value(skiplockS2)
      const theirs = value(graphileS2)
      if (ours === null || theirs === null) continue
      const scale = label.startsWith('WAL') ? 1 : 1e6
      const unit = label.startsWith('WAL') ? 'bytes' : 'µs'
      check(
        `S2 best: ${label} no higher than graphile-worker's`,
        `${perJob(ours, skiplockS2.jobsDone, scale, 0)} against ${perJob(theirs, graphileS2.jobsDone, scale, 0)} ${unit}`,
        ours / skiplockS2.jobsDone <= theirs / graphileS2.jobsDone,
      )
    }
  }
  const m1 = find(rows, 'M1', 'skiplock', 'defaults')?.median
  if (m1?.maxRssBytes != null) check('M1: one process with 1,000 handlers under 200 MB resident', `${mebibytes(m1.maxRssBytes)} MiB peak RSS`, m1.maxRssBytes < 200 * 10 ** 6)
  if (!goals.length) return []
  return [
    '## Goals (issue 8), from this run',
    '',
    ...table(['goal', 'measured', ''], '|---|---|---|', goals),
    'Why the goals that are not met are not, and what would close them: [README.md](README.md) in this folder.',
    '',
  ]
}

/** Renders the results as markdown: the goals, then a table per scenario, then the durability comparison. */
export function renderReport(context: ReportContext, results: readonly ScenarioResult[]): string {
  const rows = summarize(results)
  const jobs = context.jobs.toLocaleString('en-US')
  return [
    '# skiplock against its peers',
    '',
    'Produced by the comparison harness in `perf/compare` with:',
    '',
    '```sh',
    context.command,
    '```',
    '',
    `Run ${context.startedAt.toISOString()} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, ` +
      `${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}. ` +
      `Each run gets a fresh embedded ${context.postgresVersion} with initdb defaults plus ` +
      `${Object.entries(context.settings).map(([name, value]) => `\`${name}=${value}\``).join(', ')} and \`synchronous_commit=on\` unless a table says otherwise. ` +
      `Versions: ${Object.entries(context.versions).map(([name, version]) => `${name} ${version}`).join(', ')}.`,
    '',
    (context.repeats > 1
      ? `Each row is the median of ${context.repeats} runs by its headline figure (jobs/s, efficiency, pickup p99 or RSS), with the range of that figure in brackets; the other columns are the median run's. Repeats were interleaved: every peer ran once before any ran twice. `
      : 'Each row is one run. ') +
      'Columns: jobs/s over the measured interval; × skiplock is the ratio to skiplock with the same config in this run; ' +
      'PG CPU is the PostgreSQL server (postmaster and every backend) in µs per job; client CPU is the worker processes in µs per job; ' +
      'WAL is bytes per job (`pg_stat_wal`, the whole server); tx/job is commits per job in the database (`pg_stat_database.xact_commit`, ' +
      "including the monitor's own few per second); peak connections is the most client backends of the peer seen at once (sampled every 250 ms; the harness's own are not counted). " +
      'Exactly once: S1, the queue holds exactly the jobs enqueued; the others, every job id ran once and none twice, and the queue is empty. ' +
      `A run still going after ${context.maxSeconds} s is stopped and marked partial (its rate counts the jobs it ran). ` +
      'BullMQ keeps its jobs in Redis: its PostgreSQL columns are n/a.',
    '',
    ...goalsSection(rows),
    ...rateSection(rows, 'S1', `S1: bulk enqueue of ${jobs} no-op jobs (one client, fastest documented API)`),
    ...rateSection(rows, 'S2', `S2: drain ${jobs} queued no-op jobs (from worker start to an empty queue)`),
    ...sleepingJobsSection(rows, 'S3', 'S3: 20,000 jobs sleeping U[25,75] ms on 200 handlers (from the bulk enqueue\'s commit to an empty queue)'),
    ...pickupSection(rows),
    ...sleepingJobsSection(rows, 'M1', 'M1: memory of one worker process running 1,000 handlers (10,000 jobs sleeping U[500,1500] ms)'),
    ...durabilitySection(rows),
    ...whereItGoesSection(rows),
  ].join('\n')
}

export async function writeReport(file: string, context: ReportContext, results: readonly ScenarioResult[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true })
  await writeFile(file, renderReport(context, results))
}
