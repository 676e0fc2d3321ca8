import type { Selectable } from 'kysely'

import type { SkiplockAllJobs, SkiplockJobs, SkiplockJobState } from '../generated/db.ts'

/** A row of `skiplock.jobs`, as the database returns it. */
export type JobRow = Selectable<SkiplockJobs>

/** A row of `skiplock.all_jobs` or `skiplock.finished_jobs`. */
export type AnyJobRow = JobRow | Selectable<SkiplockAllJobs> | (Omit<JobRow, 'cancel_requested_at'> & { result: unknown; finished_at: Date })

/** `blocked` (waiting for jobs it depends on), `todo` (waiting), `doing` (running), `succeeded`, `failed` (retries exhausted) or `cancelled`. */
export type JobState = SkiplockJobState

/** One failed attempt, as stored in the job's error history. */
export interface JobError {
  attempt: number
  failedAt: Date
  message: string
  name?: string
  stack?: string
  [key: string]: unknown
}

/** A job, in the public API's terms. Ids are strings: PostgreSQL's bigint does not fit a JavaScript number. */
export interface Job<Payload = unknown, Result = unknown> {
  id: string
  queueName: string
  taskName: string
  payload: Payload
  priority: number
  runAt: Date
  state: JobState
  /** Attempts started so far. */
  attempts: number
  maxAttempts: number
  lock: string | null
  queueingLock: string | null
  workerId: string | null
  errors: JobError[]
  /** The handler's return value, once the job succeeded. */
  result: Result | null
  createdAt: Date
  startedAt: Date | null
  finishedAt: Date | null
  cancelRequestedAt: Date | null
  /** W3C traceparent of the span that deferred the job, if one was recording. */
  traceContext: string | null
  /** Labels workers can filter claims on. */
  attributes: Record<string, string | number | boolean>
}

/** Maps a database row of any job table or view to a {@link Job}. */
export function toJob<Payload = unknown, Result = unknown>(row: AnyJobRow): Job<Payload, Result> {
  const errors = Array.isArray(row.errors) ? row.errors : []
  return {
    id: String(row.id),
    queueName: row.queue_name as string,
    taskName: row.task_name as string,
    payload: row.payload as Payload,
    priority: row.priority as number,
    runAt: row.run_at as Date,
    state: row.state as JobState,
    attempts: row.attempts as number,
    maxAttempts: row.max_attempts as number,
    lock: row.lock,
    queueingLock: row.queueing_lock,
    workerId: row.worker_id === null ? null : String(row.worker_id),
    errors: errors.map((error) => {
      const { failed_at: failedAt, ...rest } = error as Record<string, unknown>
      return { ...rest, failedAt: new Date(failedAt as string) } as JobError
    }),
    result: ('result' in row ? (row.result ?? null) : null) as Result | null,
    createdAt: row.created_at as Date,
    startedAt: row.started_at,
    finishedAt: 'finished_at' in row ? (row.finished_at as Date | null) : null,
    cancelRequestedAt: 'cancel_requested_at' in row ? (row.cancel_requested_at as Date | null) : null,
    traceContext: 'trace_context' in row ? (row.trace_context ?? null) : null,
    attributes: ('attributes' in row ? (row.attributes ?? {}) : {}) as Record<string, string | number | boolean>,
  }
}
