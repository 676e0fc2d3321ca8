import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'
import { toJob, type Job, type JobRow, type JobState } from './job.ts'

/** A job taken back from a worker presumed dead. */
export interface RescuedJob {
  id: string
  /** `todo` when it will run again, `failed` when it had no attempts left. */
  state: JobState
  workerId: string
}

/** Calls `rescue_jobs`: returns the jobs of workers whose heartbeat is older than their lease to the queue. */
export async function rescueJobs(db: Queryable, schema: string): Promise<RescuedJob[]> {
  const rows = await callSql<{ id: string; state: JobState; worker_id: string }>(db, schema, (s) => `select * from ${s}.rescue_jobs()`, [])
  return rows.map((row) => ({ id: String(row.id), state: row.state, workerId: String(row.worker_id) }))
}

/**
 * Calls `raise_claim_floor`: moves the claim floor up to the earliest waiting job, so claims skip the index
 * entries of jobs claimed before it. Returns the new floor, or undefined when a producer in flight made it
 * wait for the next call.
 */
export async function raiseClaimFloor(db: Queryable, schema: string): Promise<Date | undefined> {
  const rows = await callSql<{ floor: Date | null }>(db, schema, (s) => `select ${s}.raise_claim_floor() as floor`, [])
  return rows[0]?.floor ?? undefined
}

/** Calls `prune_jobs` once: deletes up to `batchSize` finished jobs older than `finishedBefore`; returns how many. */
export async function pruneJobs(
  db: Queryable,
  schema: string,
  args: { finishedBefore: Date; states?: readonly JobState[]; batchSize?: number },
): Promise<number> {
  const rows = await callSql<{ deleted: string }>(
    db,
    schema,
    (s) => `select ${s}.prune_jobs($1, coalesce($2::${s}.job_state[], '{succeeded,failed,cancelled}'), $3) as deleted`,
    [args.finishedBefore, args.states ?? null, args.batchSize ?? 10_000],
  )
  return Number(rows[0]!.deleted)
}

/** Calls `defer_periodic_job`: defers one tick of a periodic task unless some worker already did. */
export async function deferPeriodicJob(
  db: Queryable,
  schema: string,
  args: {
    taskName: string
    tickAt: Date
    payloadJson?: string | null
    queueName?: string | null
    priority?: number | null
    maxAttempts?: number | null
    /** W3C traceparent of the span deferring the tick, if one is recording. */
    traceContext?: string | null
  },
): Promise<Job | undefined> {
  const rows = await callSql<JobRow>(
    db,
    schema,
    (s) => `select * from ${s}.defer_periodic_job($1, $2, $3, $4, $5, $6, $7)`,
    [args.taskName, args.tickAt, args.payloadJson ?? null, args.queueName ?? null, args.priority ?? null, args.maxAttempts ?? null, args.traceContext ?? null],
    { taskNames: [args.taskName] },
  )
  return rows[0] && toJob(rows[0])
}
