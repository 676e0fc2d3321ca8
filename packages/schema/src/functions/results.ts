import type { Selectable } from 'kysely'

import type { SkiplockJobResults } from '../generated/db.ts'
import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'
import type { JobState } from './job.ts'

/** A row of `skiplock.job_results`, as the database returns it. */
export type JobResultRow = Selectable<SkiplockJobResults>

/** The stored result of one succeeded job. Ids are strings: PostgreSQL's bigint does not fit a JavaScript number. */
export interface JobResult<Output = unknown> {
  jobId: string
  queueName: string
  taskName: string
  /** The name of the worker that completed the job. */
  workerName: string
  /** The attempt that succeeded (1 unless earlier attempts failed or their worker died). */
  attempt: number
  /** The handler's return value. */
  output: Output | null
  enqueuedAt: Date
  startedAt: Date
  finishedAt: Date
}

/** Maps a `job_results` row to a {@link JobResult}. */
export function toJobResult<Output = unknown>(row: JobResultRow): JobResult<Output> {
  return {
    jobId: String(row.job_id),
    queueName: row.queue_name,
    taskName: row.task_name,
    workerName: row.worker_name,
    attempt: row.attempt,
    output: (row.output ?? null) as Output | null,
    enqueuedAt: row.enqueued_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  }
}

/**
 * Calls `store_results`: writes the result row of each succeeded job in `jobIds`, in one statement. Call it
 * in the transaction that completed the jobs, so results commit with their completion or not at all.
 * Returns how many rows it wrote.
 * @throws {InvalidArgumentError} when `workerName` is empty.
 * @throws the database's unique violation (SQLSTATE 23505) when a job already has a result.
 */
export async function storeResults(db: Queryable, schema: string, jobIds: readonly string[], workerName: string): Promise<number> {
  const rows = await callSql<{ stored: string }>(db, schema, (s) => `select ${s}.store_results($1::bigint[], $2) as stored`, [jobIds, workerName])
  return Number(rows[0]!.stored)
}

/** One job of a run, for the benchmark analyzer. */
export interface RunJobRow {
  jobId: string
  taskName: string
  state: JobState
  attempts: number
  enqueuedAt: Date
  startedAt: Date | null
  finishedAt: Date | null
  /** Who stored the job's result; `null` while it has none. */
  workerName: string | null
  hasResult: boolean
}

/**
 * Calls `run_jobs`: every job of the queue (waiting, running or finished) with its result's worker, in id
 * order, at most `maxRows` (default 10 000) after `afterId` (default `'0'`). Pass the last `jobId` of a
 * page as the next `afterId`; a page shorter than `maxRows` is the last.
 * @throws {InvalidArgumentError} when `maxRows` is below 1.
 */
export async function readRunJobs(
  db: Queryable,
  schema: string,
  args: { queueName: string; afterId?: string; maxRows?: number },
): Promise<RunJobRow[]> {
  const rows = await callSql<{
    job_id: string
    task_name: string
    state: JobState
    attempts: number
    enqueued_at: Date
    started_at: Date | null
    finished_at: Date | null
    worker_name: string | null
    has_result: boolean
  }>(db, schema, (s) => `select * from ${s}.run_jobs($1, $2::bigint, $3)`, [args.queueName, args.afterId ?? '0', args.maxRows ?? 10_000])
  return rows.map((row) => ({
    jobId: String(row.job_id),
    taskName: row.task_name,
    state: row.state,
    attempts: row.attempts,
    enqueuedAt: row.enqueued_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    workerName: row.worker_name,
    hasResult: row.has_result,
  }))
}

/** Result counts of one queue: all three are equal when every completion stored exactly one result. */
export interface ResultCounts {
  results: number
  distinctJobs: number
  succeededJobs: number
}

/** Calls `result_counts`: results stored for the queue, the distinct jobs they belong to, and its succeeded jobs. */
export async function countResults(db: Queryable, schema: string, queueName: string): Promise<ResultCounts> {
  const rows = await callSql<{ results: string; distinct_jobs: string; succeeded_jobs: string }>(
    db,
    schema,
    (s) => `select * from ${s}.result_counts($1)`,
    [queueName],
  )
  const row = rows[0]!
  return { results: Number(row.results), distinctJobs: Number(row.distinct_jobs), succeededJobs: Number(row.succeeded_jobs) }
}

/** What one worker completed in a queue. */
export interface WorkerResultSummary {
  workerName: string
  jobsCompleted: number
  /** When the worker's first completed job started. */
  firstStartedAt: Date
  firstFinishedAt: Date
  lastFinishedAt: Date
  /** `jobsCompleted` per minute from `firstStartedAt` to `lastFinishedAt`; `null` when that span is zero. */
  jobsPerMinute: number | null
}

/** Calls `summarize_results`: one summary per worker that stored results for the queue, by worker name. */
export async function summarizeWorkerResults(db: Queryable, schema: string, queueName: string): Promise<WorkerResultSummary[]> {
  const rows = await callSql<{
    worker_name: string
    jobs_completed: string
    first_started_at: Date
    first_finished_at: Date
    last_finished_at: Date
    jobs_per_minute: number | null
  }>(db, schema, (s) => `select * from ${s}.summarize_results($1)`, [queueName])
  return rows.map((row) => ({
    workerName: row.worker_name,
    jobsCompleted: Number(row.jobs_completed),
    firstStartedAt: row.first_started_at,
    firstFinishedAt: row.first_finished_at,
    lastFinishedAt: row.last_finished_at,
    jobsPerMinute: row.jobs_per_minute,
  }))
}

/** Reads the results of the given jobs; jobs without a result are absent. */
export async function findJobResults(db: Queryable, schema: string, jobIds: readonly string[]): Promise<JobResult[]> {
  const rows = await callSql<JobResultRow>(
    db,
    schema,
    (s) => `select * from ${s}.job_results where job_id = any($1::bigint[]) order by job_id`,
    [jobIds],
  )
  return rows.map((row) => toJobResult(row))
}

/** Lists results, most recently finished first, optionally of one worker and/or one queue; `limit` defaults to 100. */
export async function listJobResults(
  db: Queryable,
  schema: string,
  args: { workerName?: string; queueName?: string; limit?: number },
): Promise<JobResult[]> {
  const rows = await callSql<JobResultRow>(
    db,
    schema,
    (s) => `
      select * from ${s}.job_results
      where ($1::text is null or worker_name = $1)
        and ($2::text is null or queue_name = $2)
      order by finished_at desc, job_id desc
      limit $3`,
    [args.workerName ?? null, args.queueName ?? null, args.limit ?? 100],
  )
  return rows.map((row) => toJobResult(row))
}
