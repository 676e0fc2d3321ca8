import type { RunJobRow } from '@skiplock/schema'

import { percentile } from './statistics.ts'

/** When the workers were busy with the run: from the first job started to the last job finished (ms since the epoch). */
export interface RunWindow {
  startMs: number
  endMs: number
}

/** The run's processing window; both ends are NaN when no job finished. */
export function runWindow(jobs: readonly RunJobRow[]): RunWindow {
  let startMs = Number.POSITIVE_INFINITY
  let endMs = Number.NEGATIVE_INFINITY
  for (const job of jobs) {
    if (job.finishedAt === null) continue
    const started = (job.startedAt ?? job.finishedAt).getTime()
    if (started < startMs) startMs = started
    if (job.finishedAt.getTime() > endMs) endMs = job.finishedAt.getTime()
  }
  return Number.isFinite(startMs) ? { startMs, endMs } : { startMs: Number.NaN, endMs: Number.NaN }
}

/** Jobs finished per second, in buckets of whole seconds, at most `maxPoints` of them. */
export interface ThroughputPoint {
  /** Start of the bucket, in seconds since the origin. */
  seconds: number
  jobsPerSecond: number
}

export function throughputSeries(jobs: readonly RunJobRow[], originMs: number, maxPoints = 600): ThroughputPoint[] {
  const finishTimes = sortedTimes(jobs, (job) => job.finishedAt)
  if (finishTimes.length === 0) return []
  // From the origin, so the time before the first finish shows as zeros.
  const firstSeconds = Math.min(0, Math.floor((finishTimes[0]! - originMs) / 1000))
  const lastSeconds = Math.floor((finishTimes.at(-1)! - originMs) / 1000)
  const bucketSeconds = Math.max(1, Math.ceil((lastSeconds - firstSeconds + 1) / maxPoints))
  const counts = new Map<number, number>()
  for (const time of finishTimes) {
    const bucket = Math.floor((time - originMs) / 1000 / bucketSeconds)
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1)
  }
  const points: ThroughputPoint[] = []
  const firstBucket = Math.floor(firstSeconds / bucketSeconds)
  const lastBucket = Math.floor(lastSeconds / bucketSeconds)
  // Empty buckets are zeros, not gaps: a stall is part of the picture.
  for (let bucket = firstBucket; bucket <= lastBucket; bucket++) {
    points.push({ seconds: bucket * bucketSeconds, jobsPerSecond: (counts.get(bucket) ?? 0) / bucketSeconds })
  }
  // The end of the last bucket, so a step plot draws its width too.
  points.push({ seconds: (lastBucket + 1) * bucketSeconds, jobsPerSecond: points.at(-1)!.jobsPerSecond })
  return points
}

/** Jobs enqueued but not finished at one time, split into those waiting for a worker and those running. */
export interface QueueDepthPoint {
  seconds: number
  waiting: number
  running: number
}

/**
 * The queue's depth over time, on an even grid of at most `maxPoints` times. A job waits from its
 * enqueuedAt to its (last attempt's) startedAt, and runs from then to its finishedAt; a retried job
 * therefore counts as waiting between its attempts.
 */
export function queueDepthSeries(jobs: readonly RunJobRow[], originMs: number, maxPoints = 400): QueueDepthPoint[] {
  if (jobs.length === 0) return []
  const enqueued = sortedTimes(jobs, (job) => job.enqueuedAt)
  // A job cancelled before it started stops waiting when it finishes.
  const waitEnds = sortedTimes(jobs, (job) => job.startedAt ?? job.finishedAt)
  const finished = sortedTimes(jobs, (job) => job.finishedAt)
  const startMs = Math.min(originMs, enqueued[0]!)
  const endMs = Math.max(finished.at(-1) ?? enqueued.at(-1)!, waitEnds.at(-1) ?? 0, enqueued.at(-1)!)
  const stepMs = Math.max(100, (endMs - startMs) / (maxPoints - 1))
  const points: QueueDepthPoint[] = []
  let enqueuedCount = 0
  let waitEndedCount = 0
  let finishedCount = 0
  for (let time = startMs; ; time = Math.min(time + stepMs, endMs)) {
    while (enqueuedCount < enqueued.length && enqueued[enqueuedCount]! <= time) enqueuedCount++
    while (waitEndedCount < waitEnds.length && waitEnds[waitEndedCount]! <= time) waitEndedCount++
    while (finishedCount < finished.length && finished[finishedCount]! <= time) finishedCount++
    points.push({ seconds: (time - originMs) / 1000, waiting: enqueuedCount - waitEndedCount, running: waitEndedCount - finishedCount })
    if (time >= endMs) break
  }
  return points
}

/** One percentile of one latency in one time bucket. */
export interface LatencyPoint {
  /** Start of the bucket (by the time jobs started), in seconds since the origin. */
  seconds: number
  measure: 'wait' | 'run'
  percentile: 'p50' | 'p90' | 'p99'
  ms: number
}

/**
 * Wait (enqueued to started) and run (started to finished) latency percentiles of succeeded jobs, in
 * at most `maxBuckets` buckets by start time.
 */
export function latencySeries(jobs: readonly RunJobRow[], originMs: number, maxBuckets = 60): LatencyPoint[] {
  const succeeded = jobs.filter((job) => job.state === 'succeeded' && job.startedAt !== null && job.finishedAt !== null)
  if (succeeded.length === 0) return []
  const starts = succeeded.map((job) => job.startedAt!.getTime())
  let first = Number.POSITIVE_INFINITY
  let last = Number.NEGATIVE_INFINITY
  for (const start of starts) {
    if (start < first) first = start
    if (start > last) last = start
  }
  const bucketSeconds = Math.max(1, Math.ceil((last - first) / 1000 / maxBuckets))
  const buckets = new Map<number, { wait: number[]; run: number[] }>()
  for (const job of succeeded) {
    const started = job.startedAt!.getTime()
    const bucket = Math.floor((started - originMs) / 1000 / bucketSeconds)
    let values = buckets.get(bucket)
    if (!values) buckets.set(bucket, (values = { wait: [], run: [] }))
    values.wait.push(started - job.enqueuedAt.getTime())
    values.run.push(job.finishedAt!.getTime() - started)
  }
  const points: LatencyPoint[] = []
  for (const [bucket, values] of [...buckets].sort(([a], [b]) => a - b)) {
    for (const measure of ['wait', 'run'] as const) {
      const sorted = values[measure].sort((a, b) => a - b)
      for (const [name, fraction] of [['p50', 0.5], ['p90', 0.9], ['p99', 0.99]] as const) {
        points.push({ seconds: bucket * bucketSeconds, measure, percentile: name, ms: percentile(sorted, fraction) })
      }
    }
  }
  return points
}

function sortedTimes(jobs: readonly RunJobRow[], read: (job: RunJobRow) => Date | null): Float64Array {
  const times: number[] = []
  for (const job of jobs) {
    const time = read(job)
    if (time !== null) times.push(time.getTime())
  }
  // A typed array sorts numerically, and fast for a million jobs.
  return Float64Array.from(times).sort()
}

/** T of the connection model: the mean time succeeded jobs ran (started to finished), in seconds; NaN when none did. */
export function meanRunSeconds(jobs: readonly RunJobRow[]): number {
  let sum = 0
  let count = 0
  for (const job of jobs) {
    if (job.state !== 'succeeded' || job.startedAt === null || job.finishedAt === null) continue
    sum += job.finishedAt.getTime() - job.startedAt.getTime()
    count++
  }
  return count === 0 ? Number.NaN : sum / count / 1000
}
