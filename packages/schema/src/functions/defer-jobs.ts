import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'
import { toJob, type Job, type JobRow } from './job.ts'

/** The jobs to defer, as columns: every array given has one element per task name. */
export interface DeferJobsArgs {
  taskNames: readonly string[]
  /** JSON text per job (`null`: `{}`). Text, so the database can reject what jsonb cannot store with SK003. */
  payloads?: readonly (string | null)[]
  queueNames?: readonly (string | null)[]
  priorities?: readonly (number | null)[]
  runAts?: readonly (Date | null)[]
  maxAttempts?: readonly (number | null)[]
  locks?: readonly (string | null)[]
  queueingLocks?: readonly (string | null)[]
  /** `error` (default): a taken queueing lock raises; `existing`: the waiting job holding it is returned. */
  onQueueingLockConflict?: 'error' | 'existing'
  /** Default 1 MiB. */
  maxPayloadBytes?: number
  /** W3C traceparent of the span that deferred each job, which the span of each attempt links to; `null`: none. */
  traceContexts?: readonly (string | null)[]
  /** Per job, a flat object of string, number or boolean values that workers can filter on (`null`: none). */
  attributes?: readonly (Readonly<Record<string, AttributeValue>> | null)[]
  /** The edges of the jobs' dependencies: the child of each edge by its 1-based position in this call. */
  dependencyChildPositions?: readonly number[]
  /** Per edge, the parent's position in this call (before the child's), or `null` when it is `dependencyParentIds`. */
  dependencyParentPositions?: readonly (number | null)[]
  /** Per edge, the id of an existing parent job, or `null` when it is `dependencyParentPositions`. */
  dependencyParentIds?: readonly (string | null)[]
  /** Per job, what happens to it when a parent fails or is cancelled: it fails (default) or it is cancelled. */
  onParentFailures?: readonly ('fail' | 'cancel' | null)[]
}

/** A value of a job attribute, or of a worker's attribute filter. */
export type AttributeValue = string | number | boolean

const columns = (args: DeferJobsArgs) => [
  args.taskNames,
  args.payloads ?? null,
  args.queueNames ?? null,
  args.priorities ?? null,
  args.runAts ?? null,
  args.maxAttempts ?? null,
  args.locks ?? null,
  args.queueingLocks ?? null,
  args.onQueueingLockConflict ?? 'error',
  args.maxPayloadBytes ?? 1_048_576,
  args.traceContexts ?? null,
  args.attributes ?? null,
  args.dependencyChildPositions ?? null,
  args.dependencyParentPositions ?? null,
  args.dependencyParentIds ?? null,
  args.onParentFailures ?? null,
]

const call = (selection: string) => (schema: string) => `
  select ${selection}
  from ${schema}.defer_jobs(
    task_names => $1::text[],
    payloads => $2::text[],
    queue_names => $3::text[],
    priorities => $4::integer[],
    run_ats => $5::timestamptz[],
    max_attempts => $6::integer[],
    locks => $7::text[],
    queueing_locks => $8::text[],
    on_queueing_lock_conflict => $9,
    max_payload_bytes => $10,
    trace_contexts => $11::text[],
    attributes => $12::jsonb[],
    dependency_child_positions => $13::integer[],
    dependency_parent_positions => $14::integer[],
    dependency_parent_ids => $15::bigint[],
    on_parent_failures => $16::text[]
  )`

/**
 * Calls `defer_jobs`: enqueues many jobs in one statement and returns them.
 * @throws {InvalidQueueNameError} {PayloadTooLargeError} {InvalidPayloadError} {QueueingLockTakenError} {QueueFullError} {JobNotFoundError} {InvalidArgumentError}
 */
export async function deferJobs(db: Queryable, schema: string, args: DeferJobsArgs): Promise<Job[]> {
  const rows = await callSql<JobRow>(db, schema, call('*'), columns(args), { taskNames: args.taskNames })
  return rows.map((row) => toJob(row))
}

/** Like {@link deferJobs}, but returns only the ids: the fast path for bulk enqueue. */
export async function deferJobIds(db: Queryable, schema: string, args: DeferJobsArgs): Promise<string[]> {
  const rows = await callSql<{ id: string }>(db, schema, call('id'), columns(args), { taskNames: args.taskNames })
  return rows.map((row) => row.id)
}
