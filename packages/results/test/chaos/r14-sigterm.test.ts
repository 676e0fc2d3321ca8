import { waitFor } from '@skiplock/core/testing'
import { expect } from 'vitest'

import { chaosTest, waitForDrain, type WorkerProcess } from './support/fleet.ts'
import { formatVerdict, printVerdict } from './support/ledger.ts'
import { chaosScale, scaled } from './support/scale.ts'
import { chaosTasks } from './support/tasks.ts'

// The grace outlasts the lease, as with the defaults (30 s each): a stopping worker must keep its lease.
const graceMs = 3000
const leaseSeconds = 2
const shortMs = 1000
const longMs = 60_000
const concurrency = 4

chaosTest('R14: SIGTERM under load claims nothing more, finishes short jobs, releases long ones at the grace, and exits 0', { timeout: 90_000 * chaosScale }, async ({ db, ledger, fleet }) => {
  const graceful = scaled(2)
  const queues = Array.from({ length: graceful + 1 }, (_, index) => `q${index}`)
  const longPerQueue = 2
  const shortPerQueue = 10
  fleet.configure({ CONCURRENCY: concurrency, BATCH_SIZE: 2, LEASE_SECONDS: leaseSeconds, HEARTBEAT_MS: 500, MAINTENANCE_MS: 500, GRACE_MS: graceMs })
  // A bystander with nothing to run: its maintenance would rescue the jobs of a stopping worker that lost its lease.
  await fleet.spawn({ QUEUES: 'bystander' })
  // One queue per stopping process, loaded with long jobs (fetched first) and short ones.
  const longJobs = new Map<string, string[]>()
  const startLoaded = async (queue: string) => {
    const worker = await fleet.spawn({ QUEUES: queue })
    longJobs.set(queue, await ledger.enqueue(chaosTasks.plain, Array.from({ length: longPerQueue }, () => ({ ms: longMs })), { queue, priority: 1 }))
    await ledger.enqueue(chaosTasks.plain, Array.from({ length: shortPerQueue }, () => ({ ms: shortMs })), { queue })
    return worker
  }
  const runningOn = async (worker: WorkerProcess) =>
    (await db.query<{ count: number }>(`select count(*)::int as count from public.chaos_executions where pid = $1 and finished_at is null`, [worker.pid])).rows[0]!.count
  const jobsOf = async (jobIds: readonly string[]) =>
    (await db.query(`select state, attempts, worker_id, jsonb_array_length(errors) as errors from skiplock.all_jobs where id = any($1::bigint[])`, [jobIds])).rows

  let exitMsMax = 0
  let abortMsMax = 0
  for (const queue of queues.slice(0, graceful)) {
    const worker = await startLoaded(queue)
    await waitFor(async () => (await runningOn(worker)) === concurrency, { description: `${worker.name} to run ${concurrency} jobs` })
    const signalledAtMs = Date.now()
    await fleet.signal(worker, 'SIGTERM')
    const exit = await worker.exited
    exitMsMax = Math.max(exitMsMax, exit.atMs - signalledAtMs)
    expect(exit.code, worker.errors.join('\n')).toBe(0)
    expect(exit.atMs - signalledAtMs).toBeLessThanOrEqual(graceMs + 2000)
    expect(worker.eventsOf('stopped')).toEqual([{ event: 'stopped', fetchedAfterSignal: 0, startedAfterSignal: 0 }])
    expect(worker.eventsOf('lease-lost')).toEqual([])

    // The executions running when the signal came (none started after it).
    const { rows: executions } = await db.query<{ outcome: string; long: boolean; has_result: boolean; ended_after_signal_ms: number }>(
      `select e.outcome, e.job_id = any($2::bigint[]) as long, r.job_id is not null as has_result,
         (extract(epoch from e.finished_at - f.at) * 1000)::int as ended_after_signal_ms
       from public.chaos_executions as e
       join public.chaos_faults as f
         on f.pid = e.pid and f.kind = 'SIGTERM'
       left join skiplock.job_results as r
         on r.job_id = e.job_id and r.attempt = e.attempt
       where e.pid = $1
         and (e.finished_at is null or e.finished_at > f.at)`,
      [worker.pid, longJobs.get(queue)],
    )
    const short = executions.filter((execution) => !execution.long)
    const long = executions.filter((execution) => execution.long)
    // Short jobs running at the signal finished and their completion committed before the exit.
    expect(short.length).toBeGreaterThan(0)
    for (const execution of short) expect(execution).toMatchObject({ outcome: 'returned', has_result: true })
    // Long jobs got their abort signal at the grace, not before, and were released before the exit.
    expect(long).toHaveLength(longPerQueue)
    for (const execution of long) {
      expect(execution).toMatchObject({ outcome: 'aborted', has_result: false })
      // The signal is recorded just after it is sent, so the abort may seem a little early.
      expect(execution.ended_after_signal_ms).toBeGreaterThanOrEqual(graceMs - 250)
      expect(execution.ended_after_signal_ms).toBeLessThanOrEqual(graceMs + 1000)
      abortMsMax = Math.max(abortMsMax, execution.ended_after_signal_ms)
    }
    // Released by the stopping worker itself: waiting again, the attempt given back, no rescue recorded.
    expect(await jobsOf(longJobs.get(queue)!)).toEqual(Array.from({ length: longPerQueue }, () => ({ state: 'todo', attempts: 0, worker_id: null, errors: 0 })))
    expect((await db.query(`select from skiplock.workers where id = $1`, [worker.workerId])).rowCount).toBe(0)
  }

  // A second SIGTERM stops at once: running jobs are aborted and released, and the process exits 0.
  const forced = await startLoaded(queues[graceful]!)
  await waitFor(async () => (await runningOn(forced)) === concurrency, { description: `${forced.name} to run ${concurrency} jobs` })
  await fleet.signal(forced, 'SIGTERM')
  await waitFor(() => forced.eventsOf('signal').length === 1, { description: 'the first signal to arrive' })
  const secondSignalAtMs = Date.now()
  await fleet.signal(forced, 'SIGTERM')
  const forcedExit = await forced.exited
  expect(forcedExit.code, forced.errors.join('\n')).toBe(0)
  expect(forcedExit.atMs - secondSignalAtMs).toBeLessThanOrEqual(1000)
  const { rows: held } = await db.query(`select state, worker_id from skiplock.jobs where queue_name = $1 and state = 'doing'`, [queues[graceful]])
  expect(held).toEqual([])
  expect(await jobsOf(longJobs.get(queues[graceful]!)!)).toEqual(Array.from({ length: longPerQueue }, () => ({ state: 'todo', attempts: 0, worker_id: null, errors: 0 })))

  // What was released runs to the end elsewhere, once.
  await fleet.spawn({ QUEUES: queues.join(','), MAX_JOB_MS: 20 })
  await waitForDrain(ledger, 30_000)
  await fleet.stopAll()
  const verdict = await ledger.verdict()
  const dupExecBound = graceful * longPerQueue + concurrency
  printVerdict(
    formatVerdict('R14', verdict, {
      faults: { sigterms: graceful + 2 },
      dupExecBound,
      extra: { max_exit: `${(exitMsMax / 1000).toFixed(1)}s(grace ${graceMs / 1000}s)`, max_abort: `${(abortMsMax / 1000).toFixed(1)}s`, forced_exit: `${forcedExit.atMs - secondSignalAtMs}ms` },
    }),
  )
  expect(verdict).toMatchObject({ lost: 0, unexpected: 0, dupResults: 0, completedWithoutResult: 0, resultsWithoutCompletion: 0, rescued: 0 })
  expect(verdict.dupExec).toBeLessThanOrEqual(dupExecBound)
})
