import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'
import { toJob, type Job, type JobRow } from './job.ts'

/**
 * Calls `retry_job`: puts a failed or cancelled job back in the queue with fresh attempts.
 * @throws {JobNotFoundError} {JobStateError}
 */
export async function retryJob(db: Queryable, schema: string, jobId: string, runAt?: Date): Promise<Job> {
  const rows = await callSql<JobRow>(
    db,
    schema,
    (s) => `select * from ${s}.retry_job($1, coalesce($2::timestamptz, now()))`,
    [jobId, runAt ?? null],
    { jobId },
  )
  return toJob(rows[0]!)
}
