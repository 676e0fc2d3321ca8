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
}

const scenarioTitles: Record<ScenarioName, string> = {
  S1: 'S1: bulk enqueue of {jobs} no-op jobs (one client, fastest documented API)',
  S2: 'S2: drain {jobs} queued no-op jobs (from worker start to an empty queue)',
}

const perJob = (value: number | null, jobs: number, scale: number, digits: number) =>
  value === null || jobs === 0 ? 'n/a' : ((value / jobs) * scale).toFixed(digits)

function row(result: ScenarioResult, baseline: ScenarioResult | undefined): string {
  const m = result.measurement
  const jobsPerSecond = result.jobsDone / m.wallSeconds
  const baselineRate = baseline ? baseline.jobsDone / baseline.measurement.wallSeconds : undefined
  const ratio = baselineRate ? (jobsPerSecond / baselineRate).toFixed(2) : 'n/a'
  return `| ${[
    result.peer,
    `${result.config}: ${result.configDescription}`,
    `${jobsPerSecond < 10 ? jobsPerSecond.toFixed(1) : Math.round(jobsPerSecond).toLocaleString('en-US')}${result.isPartial ? ' (partial)' : ''}`,
    ratio,
    m.wallSeconds.toFixed(2),
    perJob(m.postgresCpuSeconds, result.jobsDone, 1e6, 0),
    perJob(m.clientCpuSeconds, result.jobsDone, 1e6, 0),
    perJob(m.walBytes, result.jobsDone, 1, 0),
    perJob(m.commits, result.jobsDone, 1, 4),
    m.peakConnections ?? 'n/a',
    result.isExactlyOnce ? 'yes' : 'NO',
    result.note,
  ].join(' | ')} |`
}

/** Renders the results as markdown: a table per scenario, ratios against skiplock with the same config. */
export function renderReport(context: ReportContext, results: readonly ScenarioResult[]): string {
  const lines = [
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
      `Each peer and scenario gets a fresh embedded ${context.postgresVersion} with initdb defaults plus ` +
      `${Object.entries(context.settings).map(([name, value]) => `\`${name}=${value}\``).join(', ')}. ` +
      `Versions: ${Object.entries(context.versions).map(([name, version]) => `${name} ${version}`).join(', ')}.`,
    '',
    'Columns: jobs/s over the measured interval; × skiplock is the ratio to skiplock with the same config in this run; ' +
      'PG CPU is the PostgreSQL server (postmaster and every backend) in µs per job; client CPU is the worker processes (S2) in µs per job; ' +
      'WAL is bytes per job (`pg_stat_wal`); tx/job is commits per job in the database (`pg_stat_database.xact_commit`, ' +
      'including the monitor\'s own few per second); peak connections is the most client backends seen (sampled every 250 ms). ' +
      `Exactly once: S1, the queue holds exactly the jobs enqueued; S2, every job id ran once and none twice, and the queue is empty. ` +
      `A run that is still draining after ${context.maxSeconds} s is stopped and marked partial (its rate counts the jobs it ran). ` +
      'BullMQ keeps its jobs in Redis: its PostgreSQL columns are n/a.',
    '',
  ]
  for (const scenario of ['S1', 'S2'] as const) {
    const scenarioResults = results.filter((result) => result.scenario === scenario)
    if (!scenarioResults.length) continue
    lines.push(
      `## ${scenarioTitles[scenario].replace('{jobs}', context.jobs.toLocaleString('en-US'))}`,
      '',
      '| peer | config | jobs/s | × skiplock | seconds | PG CPU µs/job | client CPU µs/job | WAL bytes/job | tx/job | peak connections | exactly once | notes |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
    )
    for (const result of scenarioResults) {
      const baseline = scenarioResults.find((other) => other.peer === 'skiplock' && other.config === result.config)
      lines.push(row(result, baseline))
    }
    lines.push('')
  }
  return lines.join('\n')
}

export async function writeReport(file: string, context: ReportContext, results: readonly ScenarioResult[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true })
  await writeFile(file, renderReport(context, results))
}
