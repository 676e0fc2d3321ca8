import { waitFor } from '@skiplock/core/testing'
import type pg from 'pg'
import { expect } from 'vitest'

import { chaosTest } from './support/fleet.ts'
import { formatVerdict, printVerdict } from './support/ledger.ts'
import { chaosScale } from './support/scale.ts'
import { chaosTasks } from './support/tasks.ts'

chaosTest('R4: a worker frozen past its lease cannot complete its jobs late, once another has', { timeout: 60_000 * chaosScale }, async ({ db, ledger, fleet }) => {
  const jobs = 4
  fleet.configure({ CONCURRENCY: jobs, BATCH_SIZE: 1, LEASE_SECONDS: 2, HEARTBEAT_MS: 500, MAINTENANCE_MS: 500 })
  const frozen = await fleet.spawn()
  // The handlers ignore their abort signal, so the frozen worker really tries to complete the jobs late.
  const jobIds = await ledger.enqueue(
    chaosTasks.plain,
    Array.from({ length: jobs }, () => ({ ms: 1000, fault: 'ignore-abort' as const })),
  )
  const executionsOf = async (worker: { pid: number }) =>
    (await db.query<{ count: number }>(`select count(*)::int as count from public.chaos_executions where pid = $1`, [worker.pid])).rows[0]!.count
  await waitFor(async () => (await executionsOf(frozen)) === jobs, { description: 'the first worker to start every job' })
  await fleet.signal(frozen, 'SIGSTOP')

  const rescuer = await fleet.spawn()
  const resultsBy = async (workerName: string) =>
    (await db.query<{ count: number }>(`select count(*)::int as count from skiplock.job_results where worker_name = $1`, [workerName])).rows[0]!.count
  await waitFor(async () => (await resultsBy(rescuer.name)) === jobs, { description: 'the second worker to complete the rescued jobs', timeoutMs: 15_000 })
  await fleet.signal(frozen, 'SIGCONT')
  await waitFor(() => frozen.eventsOf('lease-lost').length === jobs, { description: 'the frozen worker to learn its completions were refused' })

  // The worker presumed dead registers again and goes on working.
  rescuer.child.kill('SIGTERM')
  expect((await rescuer.exited).code).toBe(0)
  const [laterJobId] = await ledger.enqueue(chaosTasks.plain, [{ ms: 10 }])
  await waitFor(async () => (await resultsBy(frozen.name)) === 1, { description: 'the thawed worker to complete a new job' })
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  const lateCompletions = frozen.eventsOf('lease-lost').length
  printVerdict(formatVerdict('R4', verdict, { faults: { stops: 1 }, dupExecBound: jobs, extra: { late_completions: lateCompletions, rejected: lateCompletions } }))
  expect(verdict).toMatchObject({ acknowledged: jobs + 1, lost: 0, unexpected: 0, dupResults: 0, completedWithoutResult: 0, resultsWithoutCompletion: 0, dupExec: jobs, rescued: jobs })
  expect(new Set(frozen.eventsOf('lease-lost').map((event) => event.jobId))).toEqual(new Set(jobIds))
  // The frozen worker's handlers did finish, after the jobs had succeeded elsewhere; their outcome was refused.
  const { rows } = await db.query(
    `select e.outcome, e.finished_at > r.finished_at as finished_after_success, r.worker_name, r.attempt, f.state
     from public.chaos_executions as e
     join skiplock.job_results as r
       on r.job_id = e.job_id
     join skiplock.finished_jobs as f
       on f.id = e.job_id
     where e.pid = $1
       and e.job_id <> $2
     order by e.job_id`,
    [frozen.pid, laterJobId],
  )
  expect(rows).toEqual(Array.from({ length: jobs }, () => ({ outcome: 'returned', finished_after_success: true, worker_name: rescuer.name, attempt: 2, state: 'succeeded' })))
})

chaosTest('R4: the rescue-versus-completion race, step by step on two connections', async ({ db }) => {
  // Two sessions: one plays the worker completing its jobs, the other another worker's maintenance.
  const worker = await db.connect()
  const maintenance = await db.connect()
  const register = async (name: string, leaseSeconds: number, now: Date) =>
    (await db.query<{ id: string }>(`select id from skiplock.register_worker($1, $2, $3)`, [name, leaseSeconds, now])).rows[0]!.id
  const fetch = async (workerId: string, now: Date) =>
    (await db.query<{ id: string; attempts: number }>(`select id, attempts from skiplock.fetch_jobs($1, null, 10, $2)`, [workerId, now])).rows
  const complete = (session: pg.ClientBase, workerId: string, jobId: string, attempt: number) =>
    session.query<{ id: string }>(`select id from skiplock.complete_jobs($1, array[$2::bigint], array[$3::int], array['{"done": true}']::jsonb[])`, [workerId, jobId, attempt])
  const rescue = async (session: pg.ClientBase, now: Date) => (await session.query<{ id: string }>(`select id from skiplock.rescue_jobs($1)`, [now])).rows.map((row) => row.id)
  const jobOf = async (jobId: string) =>
    (await db.query(`select state, attempts, jsonb_array_length(errors) as errors from skiplock.all_jobs where id = $1`, [jobId])).rows[0]
  const resultsOf = async (jobId: string) => (await db.query(`select worker_name, attempt from skiplock.job_results where job_id = $1`, [jobId])).rows
  let lateOutcomes = 0
  let rejected = 0
  const late = async (outcome: Promise<pg.QueryResult>) => {
    lateOutcomes += 1
    if ((await outcome).rowCount === 0) rejected += 1
  }

  const { rows: deferred } = await db.query<{ id: string }>(`select id from skiplock.defer_jobs(array['race', 'race'])`)
  const [first, second] = deferred.map((row) => row.id) as [string, string]
  // The steps pass their own clock, starting after the jobs became runnable.
  const { rows: clock } = await db.query<{ now: Date }>(`select now()`)
  const at = (seconds: number) => new Date(clock[0]!.now.getTime() + seconds * 1000)
  const one = await register('race-1', 1, at(0))
  expect(await fetch(one, at(0))).toEqual([
    { id: first, attempts: 1 },
    { id: second, attempts: 1 },
  ])

  // 1. The completion takes the row first: a rescue running meanwhile skips it, and the completion commits.
  await worker.query('begin')
  expect((await complete(worker, one, first, 1)).rows).toEqual([{ id: first }])
  await worker.query(`select skiplock.store_results(array[$1::bigint], 'race-1')`, [first])
  expect(await rescue(maintenance, at(10))).toEqual([second])
  await worker.query('commit')
  expect(await jobOf(first)).toEqual({ state: 'succeeded', attempts: 1, errors: 0 })
  expect(await rescue(maintenance, at(10))).toEqual([])

  // 2. The rescue takes the row first: the completion waits for it, then finds the lease gone.
  const two = await register('race-2', 1, at(10))
  expect(await fetch(two, at(10))).toEqual([{ id: second, attempts: 2 }])
  await maintenance.query('begin')
  expect(await rescue(maintenance, at(20))).toEqual([second])
  const { rows: session } = await worker.query<{ pid: number }>(`select pg_backend_pid() as pid`)
  await worker.query('begin')
  const waiting = complete(worker, two, second, 2)
  await waitFor(
    async () => (await db.query(`select from pg_stat_activity where pid = $1 and wait_event_type = 'Lock'`, [session[0]!.pid])).rowCount === 1,
    { description: 'the completion to wait for the rescue' },
  )
  await maintenance.query('commit')
  await late(waiting)
  await worker.query('commit')
  expect(await jobOf(second)).toEqual({ state: 'todo', attempts: 2, errors: 2 })

  // 3. Another worker runs the rescued job; the one presumed dead comes back with every late outcome.
  const three = await register('race-3', 30, at(20))
  expect(await fetch(three, at(20))).toEqual([{ id: second, attempts: 3 }])
  await expect(worker.query(`select skiplock.heartbeat($1)`, [two])).rejects.toMatchObject({ code: 'SK006' })
  await late(complete(worker, two, second, 2))
  await late(complete(worker, two, second, 3))
  await late(complete(worker, three, second, 2))
  await late(worker.query(`select id from skiplock.fail_jobs($1, array[$2::bigint], array[2], array['{"message": "late"}']::jsonb[])`, [two, second]))
  await late(worker.query(`select id from skiplock.release_jobs($1, array[$2::bigint], array[2])`, [two, second]))
  expect(await jobOf(second)).toEqual({ state: 'doing', attempts: 3, errors: 2 })
  await maintenance.query('begin')
  expect((await complete(maintenance, three, second, 3)).rows).toEqual([{ id: second }])
  await maintenance.query(`select skiplock.store_results(array[$1::bigint], 'race-3')`, [second])
  await maintenance.query('commit')
  await late(complete(worker, two, second, 2))

  // Both jobs stay completed, each with the one result of the attempt that held the lease.
  expect(await jobOf(first)).toEqual({ state: 'succeeded', attempts: 1, errors: 0 })
  expect(await jobOf(second)).toEqual({ state: 'succeeded', attempts: 3, errors: 2 })
  expect(await resultsOf(first)).toEqual([{ worker_name: 'race-1', attempt: 1 }])
  expect(await resultsOf(second)).toEqual([{ worker_name: 'race-3', attempt: 3 }])
  const { rows: results } = await db.query<{ count: number }>(`select count(*)::int as count from skiplock.job_results`)
  printVerdict(`R4 race interleavings=3 late_outcomes=${lateOutcomes} rejected=${rejected} dup_results=${results[0]!.count - 2}`)
  expect({ lateOutcomes, rejected }).toEqual({ lateOutcomes: 7, rejected: 7 })
})
