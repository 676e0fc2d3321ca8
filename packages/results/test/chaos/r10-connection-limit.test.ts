// R10: a fleet that needs more connections than the server has. The pre-flight check refuses it; forced,
// the processes the server turns away (at registration or for LISTEN) back off and retry, none exits,
// and the jobs drain through the workers that got in. The workers connect as an ordinary role, as in
// production, so the superuser slots stay free for the test; the recorders share two connections
// through PgBouncer, since twelve recorder pools would not fit beside the fleet.
import { randomBytes } from 'node:crypto'

import { assertConnectionBudget, type ConnectionBudgetExceededError, connectionsPerWorker, createClient } from '@skiplock/core'
import { waitFor } from '@skiplock/core/testing'
import { startPgBouncer } from '@skiplock/schema/testing'
import { expect, test } from 'vitest'

import { Fleet, waitForDrain, type WorkerProcess } from './support/fleet.ts'
import { formatVerdict, Ledger, printVerdict } from './support/ledger.ts'
import { OwnServer } from './support/own-server.ts'
import { chaosScale, createRandom, scaled } from './support/scale.ts'
import { chaosTasks } from './support/tasks.ts'

const processes = 12
const poolSize = 1
/** The worker's default: one pooled connection and one for LISTEN. */
const connectionsPerProcess = connectionsPerWorker({ poolSize })
/** What the server says when only reserved slots are left, or none at all (SQLSTATE 53300). */
const refusedConnection = /remaining connection slots are reserved|too many clients already/

test('R10: 12 worker processes on max_connections 20: the check refuses, forced they back off, none exits, all jobs drain', { timeout: 90_000 * chaosScale }, async () => {
  const server = await OwnServer.start({ max_connections: 20 })
  const client = createClient({ connectionString: server.db.url, resultPollIntervalMs: 200 })
  const ledger = await Ledger.create(server.db, client)
  const workerUrl = await createWorkerRole(server)
  const recorders = await startPgBouncer(server.db, { poolSize: 2 })
  const fleet = new Fleet(server.db, ledger)
  const spawning: Promise<WorkerProcess>[] = []
  try {
    // Both of PgBouncer's server connections open now, before the fleet takes every slot.
    const warm = await Promise.all([recorders.connect(), recorders.connect()])
    await Promise.all(warm.map((session) => session.query('select 1')))

    const plan = { processes, connectionsPerProcess }
    const refusal = (await assertConnectionBudget(workerUrl, plan).then(
      () => undefined,
      (error: unknown) => error,
    )) as ConnectionBudgetExceededError | undefined
    expect(refusal?.code).toBe('CONNECTION_BUDGET_EXCEEDED')
    const { needed, available } = refusal!
    expect(needed).toBe(processes * connectionsPerProcess)
    expect(needed).toBeGreaterThan(available)
    expect(refusal!.message).toContain(`need ${needed} connections, but only ${available} are available`)

    // Forced: all at once, as a deploy would start them. A process the server turns away at registration
    // prints `started` only once it gets in, so the test waits for the first ones and lets the rest retry.
    fleet.configure({ DATABASE_URL: workerUrl, RECORDER_URL: recorders.url, RECORDER_POOL_SIZE: 1, POOL_SIZE: poolSize, CONCURRENCY: 4, BATCH_SIZE: 4 })
    for (let index = 0; index < processes; index += 1) {
      const spawned = fleet.spawn()
      spawned.catch(() => {}) // a process that exits before it runs fails the checks below
      spawning.push(spawned)
    }
    const startedAt = Date.now()
    await waitFor(() => fleet.all.some((worker) => worker.workerId !== ''), { timeoutMs: 30_000, description: 'a first worker process to register' })

    const random = createRandom()
    const jobs = scaled(400)
    await ledger.produce(chaosTasks.plain, jobs, 200, () => ({ ms: 5 + Math.floor(random() * 20) }))
    await waitForDrain(ledger, 30_000 * chaosScale)
    const drainedMs = Date.now() - startedAt
    // LISTEN retries per process: a backoff that reaches a second makes a few, then about one a second.
    const listenRetryBound = 5 + Math.ceil(drainedMs / 1000)
    const mostListenRetries = Math.max(...fleet.all.map((worker) => worker.errors.filter((line) => line.includes('during listen')).length))
    const registeredAtDrain = fleet.all.filter((worker) => worker.workerId !== '')
    const waitingAtDrain = fleet.all.filter((worker) => worker.workerId === '')

    // No crash loop: the twelve processes spawned are the twelve still running.
    expect(fleet.all).toHaveLength(processes)
    expect(fleet.all.filter((worker) => !worker.isAlive).map((worker) => worker.name)).toEqual([])
    // The server did turn connections away, and the workers lived through it.
    const refusals = fleet.all.flatMap((worker) => worker.errors).filter((line) => refusedConnection.test(line))
    expect(refusals.length).toBeGreaterThan(0)

    // The processes that got in stop cleanly; those still waiting then get their connections and register.
    await stopEach(registeredAtDrain)
    await waitFor(() => fleet.all.every((worker) => worker.workerId !== ''), { timeoutMs: 20_000, description: 'the waiting processes to register once connections freed' })
    await Promise.all(spawning)
    await fleet.stopAll()

    const verdict = await ledger.verdict()
    printVerdict(
      formatVerdict('R10', verdict, {
        faults: { processes, max_connections: 20, needed, available },
        extra: {
          registered_at_drain: registeredAtDrain.length,
          registered_late: waitingAtDrain.length,
          refusals: refusals.length,
          max_listen_retries: `${mostListenRetries}(bound ${listenRetryBound})`,
          drained: `${(drainedMs / 1000).toFixed(1)}s`,
        },
      }),
    )
    expect(verdict).toMatchObject({ lost: 0, unexpected: 0, dupResults: 0, completedWithoutResult: 0, resultsWithoutCompletion: 0 })
    expect(verdict.acknowledged).toBe(jobs)
    // Backing off, not flooding the log or the full server with connection attempts.
    expect(mostListenRetries).toBeLessThanOrEqual(listenRetryBound)
  } catch (error) {
    for (const worker of fleet.all) {
      const exit = worker.isAlive ? 'running' : `exited ${worker.child.exitCode ?? worker.child.signalCode}`
      console.error(`${worker.name} (${exit}, worker ${worker.workerId || 'not registered'}) stderr:\n${worker.errors.slice(-20).join('\n')}`)
    }
    throw error
  } finally {
    fleet.killAll()
    await Promise.all(fleet.all.map((worker) => worker.exited))
    await Promise.allSettled(spawning)
    await client.close().catch(() => {})
    await recorders.stop()
    await server.close()
  }
})

/**
 * An ordinary login role for the workers, with what they need of the queue's tables and the ledger's:
 * it cannot use the slots reserved for superusers, which the test's own sessions can.
 */
async function createWorkerRole(server: OwnServer): Promise<string> {
  const password = randomBytes(12).toString('hex')
  await server.db.query(`
    create role skiplock_app login password '${password}';
    grant usage on schema skiplock to skiplock_app;
    grant all on all tables in schema skiplock, public to skiplock_app;
    grant all on all sequences in schema skiplock, public to skiplock_app;
  `)
  const url = new URL(server.db.url)
  url.username = 'skiplock_app'
  url.password = password
  return url.href
}

/** SIGTERMs these processes and waits for each to exit 0. */
async function stopEach(workers: readonly WorkerProcess[]): Promise<void> {
  for (const worker of workers) worker.child.kill('SIGTERM')
  const exits = await Promise.all(workers.map((worker) => worker.exited))
  expect(exits.map((exit, index) => `${workers[index]!.name}: ${exit.code ?? exit.signal}`)).toEqual(workers.map((worker) => `${worker.name}: 0`))
}
