import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'
import { toJob, type AnyJobRow, type Job, type JobState } from './job.ts'

/** Reads jobs by id from `all_jobs` (waiting, running or finished); unknown ids are absent. */
export async function findJobs(db: Queryable, schema: string, jobIds: readonly string[]): Promise<Job[]> {
  const rows = await callSql<AnyJobRow>(db, schema, (s) => `select * from ${s}.all_jobs where id = any($1::bigint[])`, [jobIds])
  return rows.map((row) => toJob(row))
}

/** Lists jobs in one state, newest first. */
export async function listJobs(
  db: Queryable,
  schema: string,
  args: { state?: JobState; queueName?: string; limit?: number },
): Promise<Job[]> {
  const rows = await callSql<AnyJobRow>(
    db,
    schema,
    (s) => `
      select * from ${s}.all_jobs
      where ($1::${s}.job_state is null or state = $1)
        and ($2::text is null or queue_name = $2)
      order by id desc
      limit $3`,
    [args.state ?? null, args.queueName ?? null, args.limit ?? 100],
  )
  return rows.map((row) => toJob(row))
}

/** Job counts of one queue. `waiting` is runnable now; `scheduled` waits for its `run_at`. */
export interface QueueStats {
  queueName: string
  waiting: number
  scheduled: number
  /** Waiting for jobs they depend on. */
  blocked: number
  running: number
  succeeded: number
  failed: number
  cancelled: number
  oldestWaitingAt: Date | null
}

/** Calls `queue_stats`: job counts per queue and state. */
export async function queueStats(db: Queryable, schema: string): Promise<QueueStats[]> {
  const rows = await callSql<Record<string, string | Date | null>>(db, schema, (s) => `select * from ${s}.queue_stats()`, [])
  return rows.map((row) => ({
    queueName: row.queue_name as string,
    waiting: Number(row.waiting),
    scheduled: Number(row.scheduled),
    blocked: Number(row.blocked),
    running: Number(row.running),
    succeeded: Number(row.succeeded),
    failed: Number(row.failed),
    cancelled: Number(row.cancelled),
    oldestWaitingAt: row.oldest_waiting_at as Date | null,
  }))
}

/** Calls `has_pending_jobs`: whether the queue still has waiting or running jobs. */
export async function hasPendingJobs(db: Queryable, schema: string, queueName: string): Promise<boolean> {
  const rows = await callSql<{ pending: boolean }>(db, schema, (s) => `select ${s}.has_pending_jobs($1) as pending`, [queueName])
  return rows[0]!.pending
}
