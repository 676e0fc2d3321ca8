import { waitFor } from '@skiplock/core/testing'
import { expect } from 'vitest'

import { chaosTest, waitForDrain, type WorkerProcess } from '../support/fleet.ts'
import { formatVerdict, printVerdict } from '../support/ledger.ts'
import { chaosScale, createRandom, sleep } from '../support/scale.ts'
import { chaosTasks } from '../support/tasks.ts'
import { startTcpProxy } from '../support/tcp-proxy.ts'

const leaseSeconds = 2
/** A minute-long partition in a full run; short enough to iterate on otherwise. */
const blackholeMs = chaosScale >= 10 ? 60_000 : 15_000
/**
 * How long a cut-off worker's session may keep locks on the queue's tables, or stay idle in a
 * transaction: the worker cannot end it, so past this the server must have.
 */
const lingerBoundMs = 10_000
/** The lease, a jittered maintenance interval and a fetch, with room for a loaded machine. */
const restartBoundMs = 5000
const concurrency = 4
const batchSize = 4
/** Jobs the cut-off worker runs when the partition starts; their handlers end during it and complete late. */
const heldJobs = 4

/** A backend of the cut-off worker, sampled from the server during the partition. */
interface Session {
  pid: number
  application_name: string
  state: string | null
  transaction_ms: number | null
  state_ms: number | null
  skiplock_locks: string[]
}

chaosTest('R7: a worker cut off by a partition for a while loses its jobs to others, cannot complete them late, and holds no lock', { timeout: 120_000 + 3 * blackholeMs }, async ({ db, ledger, fleet }) => {
  const proxy = await startTcpProxy(db.url)
  try {
    const random = createRandom()
    const directProcesses = chaosScale >= 10 ? 6 : 3
    fleet.configure({ CONCURRENCY: concurrency, BATCH_SIZE: batchSize, LEASE_SECONDS: leaseSeconds, HEARTBEAT_MS: 500, MAINTENANCE_MS: 500 })
    // The cut-off worker alone serves the `held` queue until the partition; twice the concurrency leaves room
    // for the steady load beside the held jobs, so it is completing jobs when the cut comes.
    const [cutOff] = await Promise.all([
      fleet.spawn({ DATABASE_URL: proxy.url, LISTEN_URL: proxy.url, QUEUES: 'default,held', CONCURRENCY: 2 * concurrency }),
      fleet.spawnMany(directProcesses, { QUEUES: 'default' }),
    ])
    const sessionsThroughProxy = async (): Promise<Session[]> =>
      (
        await db.query<Session>(
          `select a.pid, a.application_name, a.state,
             (extract(epoch from clock_timestamp() - a.xact_start) * 1000)::int as transaction_ms,
             (extract(epoch from clock_timestamp() - a.state_change) * 1000)::int as state_ms,
             coalesce(array_agg(distinct format('%s %s', c.relname, l.mode)) filter (where n.nspname = $2), '{}') as skiplock_locks
           from pg_stat_activity as a
           left join pg_locks as l
             on l.pid = a.pid and l.granted
           left join pg_class as c
             on c.oid = l.relation
           left join pg_namespace as n
             on n.oid = c.relnamespace
           where a.datname = current_database()
             and a.client_port = any($1::int[])
           group by a.pid, a.application_name, a.state, a.xact_start, a.state_change
           order by a.pid`,
          // Every session through the proxy is the cut-off worker's: its pool, its listener, its ledger recorder.
          [proxy.serverSidePorts(), db.schema],
        )
      ).rows
    // The sessions watched are the worker's own: its pool's and its listener's (which connects once it runs).
    const ownNames = [`skiplock-worker ${cutOff.name}`, 'skiplock-listener']
    await waitFor(
      async () => {
        const names = new Set((await sessionsThroughProxy()).map((session) => session.application_name))
        return ownNames.every((name) => names.has(name))
      },
      { description: `the sessions of ${cutOff.name} through the proxy` },
    )

    // A steady load of short jobs from before the cut until after the heal.
    const loadSeconds = 3 + blackholeMs / 1000 + 5
    const perSecond = chaosScale >= 10 ? 100 : 50
    const jobs = loadSeconds * perSecond
    const producing = ledger.produce(chaosTasks.plain, jobs, perSecond, () => ({ ms: 10 + Math.floor(random() * 40) }))
    await sleep(2000)

    // Held jobs, plain and transactional, ignore their abort signal and end during the partition: the worker
    // really tries to complete them once it heals.
    const heldMs = 3000 + blackholeMs / 2
    const heldSpec = { ms: heldMs, fault: 'ignore-abort' as const }
    const heldIds = [
      ...(await ledger.enqueue(chaosTasks.plain, Array.from({ length: heldJobs - 1 }, () => heldSpec), { queue: 'held', priority: 1 })),
      ...(await ledger.enqueue(chaosTasks.transactional, [heldSpec], { queue: 'held', priority: 1 })),
    ]
    const runningOn = async (worker: WorkerProcess) =>
      (await db.query<{ count: number }>(`select count(*)::int as count from public.chaos_executions where pid = $1 and job_id = any($2::bigint[])`, [worker.pid, heldIds])).rows[0]!
        .count
    await waitFor(async () => (await runningOn(cutOff)) === heldJobs, { description: `${cutOff.name} to run the held jobs`, timeoutMs: 15_000 })

    // The cut lands right after the worker sent a completion: the server runs it in a transaction whose
    // end will not come, the worst moment for the locks it takes. Short jobs on the queue it alone serves
    // make it complete one soon: on the default queue, the direct workers may leave it nothing to run.
    let isCut = false
    const cut = proxy.blackhole({ afterClientSends: 'complete_jobs' }).then(() => {
      isCut = true
    })
    let trickled = 0
    while (!isCut) {
      if (trickled === 50) throw new Error(`${cutOff.name} completed none of ${trickled} jobs through the proxy`)
      await ledger.enqueue(chaosTasks.plain, [{ ms: 10 }], { queue: 'held' })
      trickled += 1
      await Promise.race([cut, sleep(200)])
    }
    const cutAtMs = Date.now()
    await ledger.recordFault('blackhole', cutOff.pid, cutOff.workerId, true)
    // Direct, and idle until the held jobs are rescued: then it runs them again, quickly. It starts while
    // the partition is watched, so the first look at the server comes right after the cut.
    const spawningRescuer = fleet.spawn({ QUEUES: 'held', MAX_JOB_MS: 1000 })
    spawningRescuer.catch(() => {}) // awaited below

    // Twice a second through the partition: no session of the cut-off worker may hold locks on the queue's tables,
    // or sit idle in a transaction, for longer than the bound.
    const lingering = new Map<number, Session>()
    let maxLockMs = 0
    let maxIdleInTransactionMs = 0
    while (Date.now() < cutAtMs + blackholeMs) {
      for (const session of await sessionsThroughProxy()) {
        const lockMs = session.skiplock_locks.length > 0 ? (session.transaction_ms ?? 0) : 0
        const idleInTransactionMs = session.state?.startsWith('idle in transaction') ? (session.state_ms ?? 0) : 0
        maxLockMs = Math.max(maxLockMs, lockMs)
        maxIdleInTransactionMs = Math.max(maxIdleInTransactionMs, idleInTransactionMs)
        if (Math.max(lockMs, idleInTransactionMs) > lingerBoundMs) lingering.set(session.pid, session)
      }
      await sleep(500)
    }
    proxy.heal()
    const rescuer = await spawningRescuer

    // Back on the network, the worker learns its held jobs went elsewhere: each late outcome is refused.
    // It must also live on: a process that dies of the heal is recorded, and the run goes on to its verdict.
    const isRefused = () => heldIds.every((id) => cutOff.eventsOf('lease-lost').some((event) => event.jobId === id))
    await Promise.race([waitFor(() => isRefused() || !cutOff.isAlive, { timeoutMs: 30_000 }).catch(() => {}), cutOff.exited])
    const isAliveAfterHeal = cutOff.isAlive
    await producing
    await waitForDrain(ledger, 60_000 * chaosScale)
    const stoppingAtMs = Date.now()
    await fleet.stopAll()
    const cutOffExit = await cutOff.exited

    const verdict = await ledger.verdict()
    // The cut-off worker held what it ran and had fetched, and as much again in flight on the cut connections.
    const dupExecBound = 2 * (2 * concurrency + batchSize)
    const lateCompletions = cutOff.eventsOf('lease-lost').length
    printVerdict(
      formatVerdict('R7', verdict, {
        faults: { blackhole: `${blackholeMs / 1000}s` },
        dupExecBound,
        extra: {
          rescued: verdict.rescued,
          restarted: verdict.restarted,
          late_completions: lateCompletions,
          rejected: lateCompletions,
          max_lock_hold: `${(maxLockMs / 1000).toFixed(1)}s(bound ${lingerBoundMs / 1000}s)`,
          max_idle_in_transaction: `${(maxIdleInTransactionMs / 1000).toFixed(1)}s(bound ${lingerBoundMs / 1000}s)`,
          cut_off_exit: isAliveAfterHeal ? `${cutOffExit.code ?? cutOffExit.signal}(${((cutOffExit.atMs - stoppingAtMs) / 1000).toFixed(1)}s)` : `died-after-heal(${cutOffExit.code ?? cutOffExit.signal})`,
        },
      }),
    )
    expect.soft([...lingering.values()], 'sessions of the cut-off worker that kept locks or an idle transaction past the bound').toEqual([])
    expect.soft({ isAliveAfterHeal, code: cutOffExit.code }, `${cutOff.name} after the heal, then SIGTERM; its stderr:\n${cutOff.errors.join('\n')}`).toEqual({ isAliveAfterHeal: true, code: 0 })
    expect.soft(isRefused(), `every held job refused to ${cutOff.name} (lease-lost), got ${JSON.stringify(cutOff.eventsOf('lease-lost'))}`).toBe(true)
    expect(verdict).toMatchObject({
      attempted: jobs + heldJobs + trickled,
      acknowledged: jobs + heldJobs + trickled,
      lost: 0,
      unexpected: 0,
      dupResults: 0,
      completedWithoutResult: 0,
      resultsWithoutCompletion: 0,
    })
    expect(verdict.dupExec).toBeLessThanOrEqual(dupExecBound)
    // Others took the cut-off worker's jobs once its lease ran out, and ran each again; jobs its cut
    // completion had locked wait for the server to end that session first.
    expect(verdict.rescued).toBeGreaterThanOrEqual(heldJobs)
    expect(verdict.restarted).toBe(verdict.rescued)
    expect(verdict.maxRescueMs).toBeLessThanOrEqual(lingerBoundMs + restartBoundMs)
    // The held jobs succeeded elsewhere, not on the worker that came back late.
    const { rows: held } = await db.query(`select worker_name from skiplock.job_results where job_id = any($1::bigint[])`, [heldIds])
    expect(held).toEqual(Array.from({ length: heldJobs }, () => ({ worker_name: rescuer.name })))
  } finally {
    await proxy.close()
  }
})
