import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'
import type { JobState } from './job.ts'

/**
 * Calls `cancel_job`: a waiting job is cancelled at once; a running job's worker is asked to abort it.
 * Returns the job's state afterwards (`cancelled`, `doing`, or how it had already finished).
 * @throws {JobNotFoundError} when no job has this id.
 */
export async function cancelJob(db: Queryable, schema: string, jobId: string): Promise<JobState> {
  const rows = await callSql<{ state: JobState }>(db, schema, (s) => `select state from ${s}.cancel_job($1)`, [jobId], { jobId })
  return rows[0]!.state
}
