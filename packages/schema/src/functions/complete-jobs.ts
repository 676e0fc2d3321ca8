import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'
import { toJob, type AnyJobRow, type Job } from './job.ts'

/** A job to complete: the lease (id and attempt) and its result as JSON text. */
export interface Completion {
  jobId: string
  attempt: number
  /** JSON text, or null for no result. */
  resultJson: string | null
}

/**
 * Calls `complete_jobs`: moves the jobs to `finished_jobs` as succeeded. Returns only those whose lease
 * still held, so the caller can write their results in the same transaction.
 */
export async function completeJobs(db: Queryable, schema: string, workerId: string, completions: readonly Completion[]): Promise<Job[]> {
  const rows = await callSql<AnyJobRow>(
    db,
    schema,
    (s) => `select * from ${s}.complete_jobs($1, $2::bigint[], $3::integer[], $4::jsonb[])`,
    [workerId, completions.map((c) => c.jobId), completions.map((c) => c.attempt), completions.map((c) => c.resultJson)],
  )
  return rows.map((row) => toJob(row))
}
