import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'
import type { AttributeValue } from './defer-jobs.ts'
import { toJob, type Job, type JobRow } from './job.ts'

export interface FetchJobsArgs {
  workerId: string
  /** `null` or absent: every queue. */
  queueNames?: readonly string[] | null
  batchSize: number
  now?: Date
  /** Only jobs whose attributes match: per attribute, one value or any of an array of values. */
  attributeFilter?: Readonly<Record<string, AttributeValue | readonly AttributeValue[]>> | null
}

/** Calls `fetch_jobs`: claims up to `batchSize` runnable jobs for the worker, in fetch order. */
export async function fetchJobs(db: Queryable, schema: string, args: FetchJobsArgs): Promise<Job[]> {
  const rows = await callSql<JobRow>(
    db,
    schema,
    (s) => `select * from ${s}.fetch_jobs($1, $2::text[], $3, coalesce($4::timestamptz, now()), $5::jsonb)`,
    [args.workerId, args.queueNames ?? null, args.batchSize, args.now ?? null, args.attributeFilter ?? null],
    { workerId: args.workerId },
  )
  return rows.map((row) => toJob(row))
}

/**
 * Runs `fetch_jobs` under `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` and returns the plan. ANALYZE executes
 * the claim, so call it only in a transaction that is rolled back: the jobs are then left as they were.
 */
export async function explainFetchJobs(db: Queryable, schema: string, args: FetchJobsArgs): Promise<unknown> {
  const rows = await callSql<{ 'QUERY PLAN': unknown }>(
    db,
    schema,
    (s) => `explain (analyze, buffers, format json) select * from ${s}.fetch_jobs($1, $2::text[], $3, coalesce($4::timestamptz, now()), $5::jsonb)`,
    [args.workerId, args.queueNames ?? null, args.batchSize, args.now ?? null, args.attributeFilter ?? null],
    { workerId: args.workerId },
  )
  return rows[0]?.['QUERY PLAN']
}
