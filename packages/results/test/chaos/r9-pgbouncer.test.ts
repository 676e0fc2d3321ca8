// R1 and R2 with every worker pool and the producer behind PgBouncer in transaction mode, where each
// transaction may land on another server connection. LISTEN would be accepted through the pooler but
// never hear a notification, so each worker listens on a direct URL; the test checks that it does.
import { type Client, createClient } from '@skiplock/core'
import { waitFor } from '@skiplock/core/testing'
import { type PgBouncer, startPgBouncer, type TestDatabase } from '@skiplock/schema/testing'
import { expect } from 'vitest'

import { chaosTest, type Fleet } from './support/fleet.ts'
import { chaosScale, scaled } from './support/scale.ts'
import { runWithKills, runWithoutFaults } from './support/scenarios.ts'

const processes = chaosScale >= 10 ? 8 : 4
const poolSize = 2
/** Client connections a worker process opens to PgBouncer: its pool, and its recorder's pool of 2 (chaos-worker.ts). */
const connectionsPerProcess = poolSize + 2

/**
 * `chaosTest` with PgBouncer in front of the test database, and the ledger's producer (the `skiplock`
 * client) deferring through it. PgBouncer starts before the ledger and the fleet, so it stops after
 * them: no worker loses its pooler before it is stopped or killed.
 */
const pooledChaosTest = chaosTest.extend<{ pgbouncer: PgBouncer; skiplock: Client }>({
  pgbouncer: async ({ db, onTestFailed }, use) => {
    // A server connection for every client connection of the fleet, with room for the producer, so no
    // transaction waits in PgBouncer's queue. Disconnections are logged so the kills show in the log.
    const bouncer = await startPgBouncer(db, { poolSize: processes * connectionsPerProcess + 8, logDisconnections: true })
    onTestFailed(() => console.error(`pgbouncer's log:\n${bouncer.log()}`))
    try {
      await use(bouncer)
    } finally {
      await bouncer.stop()
    }
  },
  skiplock: async ({ db, pgbouncer }, use) => {
    const client = createClient({ connectionString: pgbouncer.url, listenConnectionString: db.url, resultPollIntervalMs: 200 })
    await use(client)
    await client.close()
  },
})

/** Every live worker's pool and the producer are PgBouncer's clients, and every worker listens on a direct session. */
async function expectRoutedThroughPgBouncer(db: TestDatabase, pgbouncer: PgBouncer, fleet: Fleet, producer: Client): Promise<void> {
  // The producer's pool closes a connection idle for 10 s, and its last job may be older than that.
  await producer.stats()
  const clients = await pgbouncer.admin<{ database: string; application_name: string }>('show clients')
  const pooledNames = new Set(clients.filter((client) => client.database === db.name).map((client) => client.application_name))
  for (const worker of fleet.alive) expect(pooledNames, `${worker.name}'s pool goes through PgBouncer`).toContain(`skiplock-worker ${worker.name}`)
  expect(pooledNames, 'the producer goes through PgBouncer').toContain('skiplock-client')
  // PgBouncer's server sessions take the application_name of the client they serve, and no listener is its client.
  await waitFor(
    async () =>
      (
        await db.query<{ count: number }>(
          `select count(*)::int as count from pg_stat_activity where datname = current_database() and application_name = 'skiplock-listener'`,
        )
      ).rows[0]!.count === fleet.alive.length,
    { description: 'one direct LISTEN session per live worker', timeoutMs: 5000 },
  )
}

/**
 * PgBouncer's lines, at LOG level, for clients whose socket closed without a Terminate message: what a
 * SIGKILLed process leaves behind. A client that ends its session cleanly logs `client close request`.
 */
function vanishedClients(pgbouncer: PgBouncer): string[] {
  return pgbouncer.logLines().filter((line) => line.includes('closing because: client unexpected eof'))
}

/** Worker lines on stderr: worker errors, such as an error PgBouncer sent to a query. */
function workerErrors(fleet: Fleet): string[] {
  return fleet.all.flatMap((worker) => worker.errors.map((line) => `${worker.name}: ${line}`))
}

pooledChaosTest('R9 (R1 through PgBouncer): without faults, every job runs exactly once and keyed jobs never overlap', { timeout: 90_000 * chaosScale }, async ({ db, pgbouncer, ledger, fleet, skiplock }) => {
  // R1's criteria with fewer jobs than R1's 4000, for about half its time: the suite runs twice in CI.
  await runWithoutFaults(ledger, fleet, {
    id: 'R9/R1',
    jobs: scaled(2500),
    processes,
    perSecond: 250,
    settings: { POOL_SIZE: poolSize, DATABASE_URL: pgbouncer.url, LISTEN_URL: db.url },
    whileRunning: () => expectRoutedThroughPgBouncer(db, pgbouncer, fleet, skiplock),
    extra: () => ({ pgbouncer_problems: pgbouncer.problems().length, vanished_clients: vanishedClients(pgbouncer).length }),
  })
  // No PgBouncer errors: nothing at WARNING, ERROR or FATAL in its log, none reached a worker, and
  // without faults every client, workers' and producer's, ended its session cleanly.
  expect(pgbouncer.problems()).toEqual([])
  expect(workerErrors(fleet)).toEqual([])
  expect(vanishedClients(pgbouncer)).toEqual([])
})

pooledChaosTest('R9 (R2 through PgBouncer): SIGKILLed workers lose no job, duplicate few, and their jobs restart within the lease', { timeout: 120_000 * chaosScale }, async ({ db, pgbouncer, ledger, fleet, skiplock }) => {
  // R2's criteria with fewer jobs and kills than R2's 5000 and 10, for about two thirds of its time.
  const kills = scaled(8)
  // A killed process drops each connection it has open without a goodbye, and nothing else does.
  const vanishedBound = kills * connectionsPerProcess
  await runWithKills(ledger, fleet, {
    id: 'R9/R2',
    jobs: scaled(3000),
    kills,
    processes,
    settings: { POOL_SIZE: poolSize, DATABASE_URL: pgbouncer.url, LISTEN_URL: db.url },
    whileRunning: () => expectRoutedThroughPgBouncer(db, pgbouncer, fleet, skiplock),
    extra: () => ({ pgbouncer_problems: pgbouncer.problems().length, vanished_clients: `${vanishedClients(pgbouncer).length}(bound ${vanishedBound})` }),
  })
  // No PgBouncer errors: nothing at WARNING, ERROR or FATAL in its log, and none reached a surviving
  // worker. The kills are allowed for, precisely: PgBouncer logs a client that vanishes at LOG level
  // (`client unexpected eof`), never as a problem, and only the killed processes' connections vanish.
  expect(pgbouncer.problems()).toEqual([])
  expect(workerErrors(fleet)).toEqual([])
  expect(vanishedClients(pgbouncer).length).toBeGreaterThan(0)
  expect(vanishedClients(pgbouncer).length).toBeLessThanOrEqual(vanishedBound)
})
