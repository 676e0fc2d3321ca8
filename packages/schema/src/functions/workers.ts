import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'
import { toJob, type Job, type JobRow } from './job.ts'

/** Calls `register_worker` and returns the new worker's id. */
export async function registerWorker(db: Queryable, schema: string, name: string, leaseSeconds: number): Promise<string> {
  const rows = await callSql<{ id: string }>(db, schema, (s) => `select id from ${s}.register_worker($1, $2)`, [name, leaseSeconds])
  return String(rows[0]!.id)
}

/**
 * Calls `heartbeat`: renews the worker's lease and returns the ids of its running jobs whose cancellation
 * was requested. With `heldJobIds` (every job the worker holds: buffered, running, or with an outcome not
 * yet committed), jobs claimed for it over a lease ago that it never received go back to the queue.
 * @throws {WorkerNotRegisteredError} when the worker was presumed dead and its jobs rescued.
 */
export async function heartbeat(db: Queryable, schema: string, workerId: string, heldJobIds?: readonly string[]): Promise<string[]> {
  const rows = await callSql<{ job_id: string }>(
    db,
    schema,
    (s) => `select job_id from ${s}.heartbeat($1, held_job_ids => $2::bigint[])`,
    [workerId, heldJobIds ?? null],
    { workerId },
  )
  return rows.map((row) => String(row.job_id))
}

/** Calls `unregister_worker`: removes the worker and returns the jobs it still held to the queue. */
export async function unregisterWorker(db: Queryable, schema: string, workerId: string): Promise<Job[]> {
  const rows = await callSql<JobRow>(db, schema, (s) => `select * from ${s}.unregister_worker($1)`, [workerId], { workerId })
  return rows.map((row) => toJob(row))
}

/** Calls `release_jobs`: gives back fetched jobs that were not run, without using up an attempt. */
export async function releaseJobs(
  db: Queryable,
  schema: string,
  workerId: string,
  leases: readonly { jobId: string; attempt: number }[],
): Promise<Job[]> {
  const rows = await callSql<JobRow>(
    db,
    schema,
    (s) => `select * from ${s}.release_jobs($1, $2::bigint[], $3::integer[])`,
    [workerId, leases.map((lease) => lease.jobId), leases.map((lease) => lease.attempt)],
  )
  return rows.map((row) => toJob(row))
}
