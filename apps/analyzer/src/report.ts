import type { ResultCounts, RunJobRow } from '@skiplock/schema'

import { markdownTable } from './markdown.ts'
import { percentile, summarize } from './statistics.ts'

/** What the orchestrator recorded about creating the run's jobs. */
export interface EnqueueRecord {
  deferred: number
  startedAt: string
  finishedAt: string
  jobsPerSecond: number
}

/** The figures of one run, as the report and run.json carry them. */
export interface RunFigures {
  jobs: number
  succeeded: number
  failed: number
  cancelled: number
  pending: number
  lost: number
  dupResults: number
  /** From the orchestrator starting to create jobs to the last job finished, in seconds. */
  durationSeconds: number
  enqueueJobsPerSecond: number
  drainJobsPerSecond: number
  steadyJobsPerSecond: number
  waitMs: ReturnType<typeof summarize>
  runMs: ReturnType<typeof summarize>
}

/** The run's report: Markdown sections, and the figures behind them. */
export interface Report {
  markdown: string
  figures: RunFigures
  verdict: string
}

const iso = (time: number) => (Number.isFinite(time) ? new Date(time).toISOString() : '-')
const seconds = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '-')
const rate = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : '-')
const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(0) : '-')

/**
 * Computes the study's two tables and the lab's additions from every job of a run. `lost` counts jobs
 * the orchestrator created that are neither finished nor still queued; `dupResults` counts results
 * beyond one per job. `moreSections` (Markdown, each starting with its `##` heading) go before the verdict.
 */
export function buildReport(
  title: string,
  jobs: readonly RunJobRow[],
  enqueue: EnqueueRecord,
  counts: ResultCounts,
  moreSections: readonly string[] = [],
): Report {
  const finished = jobs.filter((job) => job.finishedAt !== null)
  const byState = groupBy(jobs, (job) => job.state)
  const count = (state: string) => byState.get(state)?.length ?? 0
  const firstStarted = minOf(finished.map((job) => job.startedAt?.getTime() ?? Number.POSITIVE_INFINITY))
  const finishTimes = finished.map((job) => job.finishedAt!.getTime()).sort((a, b) => a - b)
  const lastFinished = finishTimes.at(-1) ?? Number.NaN
  const succeededJobs = byState.get('succeeded') ?? []

  const figures: RunFigures = {
    jobs: enqueue.deferred,
    succeeded: count('succeeded'),
    failed: count('failed'),
    cancelled: count('cancelled'),
    pending: count('todo') + count('doing'),
    lost: Math.max(0, enqueue.deferred - jobs.length),
    dupResults: counts.results - counts.distinctJobs,
    durationSeconds: (lastFinished - Date.parse(enqueue.startedAt)) / 1000,
    enqueueJobsPerSecond: enqueue.jobsPerSecond,
    drainJobsPerSecond: finished.length / ((lastFinished - firstStarted) / 1000),
    steadyJobsPerSecond: steadyRate(finishTimes),
    waitMs: summarize(succeededJobs.map((job) => job.startedAt!.getTime() - job.enqueuedAt.getTime())),
    runMs: summarize(succeededJobs.map((job) => job.finishedAt!.getTime() - job.startedAt!.getTime())),
  }
  const verdict = `jobs=${figures.jobs} succeeded=${figures.succeeded} failed=${figures.failed} lost=${figures.lost} dup_results=${figures.dupResults}`

  const sections = [
    `# ${title}`,
    '## Job Summary Aggregation',
    markdownTable(
      ['total_jobs', 'status', 'first_job_at', 'last_job_at', 'duration_s'],
      [...byState].map(([state, stateJobs]) => {
        const first = minOf(stateJobs.map((job) => job.enqueuedAt.getTime()))
        const last = maxOf(stateJobs.map((job) => job.finishedAt?.getTime() ?? Number.NaN).filter(Number.isFinite))
        return [stateJobs.length, state, iso(first), iso(last), seconds(last - first)]
      }),
    ),
    '## Completed Jobs per Worker',
    markdownTable(
      ['worker_name', 'jobs_completed', 'jobs_per_minute'],
      [...groupBy(finished.filter((job) => job.workerName !== null), (job) => job.workerName!)]
        .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
        .map(([worker, workerJobs]) => [worker, workerJobs.length, rate(workerJobs.length / ((lastFinished - firstStarted) / 60_000))]),
    ),
    '## Final state by attempts',
    markdownTable(
      ['state', 'attempts', 'jobs'],
      [...groupBy(jobs, (job) => `${job.state}\u0000${job.attempts}`)].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })).map(([key, group]) => [...key.split('\u0000'), group.length]),
    ),
    '## Latency of succeeded jobs (ms)',
    markdownTable(
      ['measure', 'jobs', 'p50', 'p90', 'p99', 'max'],
      [
        ['wait (enqueued to started)', figures.waitMs.count, ms(figures.waitMs.p50), ms(figures.waitMs.p90), ms(figures.waitMs.p99), ms(figures.waitMs.max)],
        ['run (started to finished)', figures.runMs.count, ms(figures.runMs.p50), ms(figures.runMs.p90), ms(figures.runMs.p99), ms(figures.runMs.max)],
      ],
    ),
    '## Rates (jobs/s)',
    markdownTable(
      ['rate', 'jobs/s', 'what it measures'],
      [
        ['enqueue', rate(figures.enqueueJobsPerSecond), 'jobs created per second by the orchestrator'],
        ['backlog drain', rate(figures.drainJobsPerSecond), 'jobs finished per second from the first start to the last finish'],
        ['steady state', rate(figures.steadyJobsPerSecond), 'jobs finished per second between the 10th and 90th percentile of finish times'],
      ],
    ),
    '## Throughput over time',
    throughputTable(finishTimes, firstStarted),
    ...moreSections,
    '## Verdict',
    `\`\`\`\n${verdict}\n\`\`\``,
  ]
  return { markdown: `${sections.join('\n\n')}\n`, figures, verdict }
}

/** Finishes per second in the middle 80% of the run, where ramp-up and the tail do not count. */
function steadyRate(sortedFinishTimes: readonly number[]): number {
  if (sortedFinishTimes.length < 10) return Number.NaN
  const start = percentile(sortedFinishTimes, 0.1)
  const end = percentile(sortedFinishTimes, 0.9)
  return (sortedFinishTimes.length * 0.8) / Math.max(0.001, (end - start) / 1000)
}

function throughputTable(sortedFinishTimes: readonly number[], firstStarted: number): string {
  if (sortedFinishTimes.length === 0) return 'no finished jobs'
  const spanMs = Math.max(1, sortedFinishTimes.at(-1)! - firstStarted)
  // Whole seconds per bucket, at most 20 rows.
  const bucketMs = Math.max(1000, Math.ceil(spanMs / 20 / 1000) * 1000)
  const buckets = new Map<number, number>()
  for (const time of sortedFinishTimes) {
    const bucket = Math.floor((time - firstStarted) / bucketMs)
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + 1)
  }
  const last = maxOf([...buckets.keys()])
  const rows: (string | number)[][] = []
  for (let bucket = 0; bucket <= last; bucket++) {
    const jobs = buckets.get(bucket) ?? 0
    rows.push([`${seconds(bucket * bucketMs)}-${seconds((bucket + 1) * bucketMs)}`, jobs, rate(jobs / (bucketMs / 1000))])
  }
  return markdownTable(['seconds since first start', 'jobs finished', 'jobs/s'], rows)
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) {
    const name = key(item)
    const group = groups.get(name)
    if (group) group.push(item)
    else groups.set(name, [item])
  }
  return groups
}

// Loops, not Math.min(...values): spreading a million values overflows the call stack.
function minOf(values: readonly number[]): number {
  let min = Number.POSITIVE_INFINITY
  for (const value of values) if (value < min) min = value
  return min
}

function maxOf(values: readonly number[]): number {
  let max = Number.NEGATIVE_INFINITY
  for (const value of values) if (value > max) max = value
  return max
}
