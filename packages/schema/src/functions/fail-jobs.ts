import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'
import type { JobState } from './job.ts'

/** A failed attempt to record. */
export interface Failure {
  jobId: string
  attempt: number
  /** Stored in the job's error history with the attempt number and time. */
  error: { message: string; name?: string; stack?: string; [key: string]: unknown }
  /** When to retry; absent: exponential backoff with jitter. */
  retryAt?: Date | null
  /** `false` fails the job for good whatever attempts remain. */
  isRetryable?: boolean
}

export interface FailOutcome {
  id: string
  /** `todo` when a retry is scheduled, `failed` when the job is dead. */
  state: JobState
  runAt: Date
}

/** Calls `fail_jobs`: schedules retries or moves jobs to the dead-letter state; fenced by lease like completion. */
export async function failJobs(db: Queryable, schema: string, workerId: string, failures: readonly Failure[]): Promise<FailOutcome[]> {
  const rows = await callSql<{ id: string; state: JobState; run_at: Date }>(
    db,
    schema,
    (s) => `select * from ${s}.fail_jobs($1, $2::bigint[], $3::integer[], $4::jsonb[], $5::timestamptz[], $6::boolean[])`,
    [
      workerId,
      failures.map((f) => f.jobId),
      failures.map((f) => f.attempt),
      failures.map((f) => JSON.stringify(f.error)),
      failures.map((f) => f.retryAt ?? null),
      failures.map((f) => f.isRetryable ?? true),
    ],
  )
  return rows.map((row) => ({ id: String(row.id), state: row.state, runAt: row.run_at }))
}
