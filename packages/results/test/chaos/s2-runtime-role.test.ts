import { randomBytes } from 'node:crypto'

import { type Client, createClient } from '@skiplock/core'
import { test } from '@skiplock/core/testing'
import { quoteSchemaName } from '@skiplock/schema'
import { documentedGrants, urlForRole } from '@skiplock/schema/testing'
import pg from 'pg'
import { expect } from 'vitest'

import { Fleet } from './support/fleet.ts'
import { Ledger } from './support/ledger.ts'
import { chaosScale, scaled } from './support/scale.ts'
import { runWithKills, runWithoutFaults } from './support/scenarios.ts'

/** A login role holding only the documented grants, and a producer client connected as it. */
interface RuntimeRole {
  name: string
  url: string
  client: Client
}

/**
 * R1 and R2 with the worker processes and the producer connected as a runtime role. The test database
 * was migrated by the role its URL logs in as, which stays the owner: the ledger's bookkeeping and the
 * verdict run as the owner, everything the queue does runs as the runtime role.
 */
const runtimeTest = test.extend<{ runtime: RuntimeRole; ledger: Ledger; fleet: Fleet }>({
  runtime: async ({ db }, use) => {
    // Roles are cluster-wide and test files run in parallel on one server: each test gets its own.
    const name = `skiplock_runtime_${randomBytes(4).toString('hex')}`
    const password = randomBytes(12).toString('hex')
    const role = pg.escapeIdentifier(name)
    await db.query(`create role ${role} login password ${pg.escapeLiteral(password)}`)
    const url = urlForRole(db.url, name, password)
    const client = createClient({ connectionString: url, resultPollIntervalMs: 200 })
    try {
      await db.query(await documentedGrants(db.schema, name))
      await use({ name, url, client })
    } finally {
      await client.close()
      // Revokes the role's grants in this database, which a kept (failed) database would otherwise pin.
      await db.query(`drop owned by ${role}`)
      await db.query(`drop role ${role}`)
    }
  },
  ledger: async ({ db, runtime }, use) => {
    const ledger = await Ledger.create(db, runtime.client)
    // The ledger's tables are test infrastructure, not the queue: the worker processes record their
    // executions, self-inflicted faults and transactional side effects there, so the role needs these too.
    const role = pg.escapeIdentifier(runtime.name)
    await db.query(`
      grant select, insert, update on public.chaos_executions to ${role};
      grant insert on public.chaos_faults, public.chaos_effects to ${role};
      grant usage on sequence public.chaos_executions_id_seq, public.chaos_faults_id_seq to ${role};
    `)
    await use(ledger)
  },
  fleet: async ({ db, ledger, runtime }, use) => {
    const fleet = new Fleet(db, ledger)
    // The recorder follows DATABASE_URL, so it too connects as the runtime role.
    fleet.configure({ DATABASE_URL: runtime.url })
    try {
      await use(fleet)
    } finally {
      fleet.killAll()
      await Promise.all(fleet.all.map((worker) => worker.exited))
    }
  },
})

runtimeTest('S2/R1: as the runtime role, every job runs exactly once and keyed jobs never overlap', { timeout: 60_000 * chaosScale }, async ({ db, runtime, ledger, fleet }) => {
  await runWithoutFaults(ledger, fleet, {
    id: 'S2/R1',
    jobs: scaled(1500),
    processes: chaosScale >= 10 ? 8 : 4,
    perSecond: 400,
    whileRunning: async () => {
      // Every session but the test's own (the owner's) logs in as the runtime role: workers, listeners, recorders, producer.
      const { rows: sessions } = await db.query<{ application: string; role: string }>(
        `select distinct regexp_replace(application_name, ' .*', '') as application, usename as role
         from pg_stat_activity
         where datname = current_database() and backend_type = 'client backend' and application_name <> 'skiplock-test'
         order by 1, 2`,
      )
      expect(sessions.map((session) => session.application)).toEqual(expect.arrayContaining(['skiplock-chaos-recorder', 'skiplock-client', 'skiplock-listener', 'skiplock-worker']))
      expect(sessions.filter((session) => session.role !== runtime.name)).toEqual([])
    },
    extra: () => ({ role: 'runtime', worker_errors: workerErrors(fleet).length }),
  })
  // A permission error would surface here first (worker errors on stderr), naming the statement refused.
  expect(workerErrors(fleet)).toEqual([])
})

runtimeTest('S2/R2: as the runtime role, SIGKILLed workers lose no job and their jobs restart within the lease', { timeout: 90_000 * chaosScale }, async ({ ledger, fleet }) => {
  // Rescue, a runtime role's update of another worker's jobs, runs under load here.
  await runWithKills(ledger, fleet, {
    id: 'S2/R2',
    jobs: scaled(2000),
    kills: scaled(5),
    processes: chaosScale >= 10 ? 8 : 4,
    extra: () => ({ role: 'runtime', worker_errors: workerErrors(fleet).length }),
  })
  expect(workerErrors(fleet)).toEqual([])
})

/** Lines on the worker processes' stderr: worker errors, such as a statement the role may not run. */
function workerErrors(fleet: Fleet): string[] {
  return fleet.all.flatMap((worker) => worker.errors)
}

runtimeTest('S2: the runtime role cannot create, alter, drop or truncate, and every security definer function pins search_path', async ({ db, runtime }) => {
  const s = quoteSchemaName(db.schema)
  const forbidden = [
    `create table ${s}.intruder (id integer)`,
    `create table public.intruder (id integer)`,
    `alter table ${s}.jobs add column intruder integer`,
    `drop table ${s}.jobs`,
    `truncate ${s}.jobs`,
  ]
  const session = new pg.Client({ connectionString: runtime.url })
  await session.connect()
  const outcomes: { sql: string; code: string | undefined }[] = []
  try {
    for (const sql of forbidden) {
      const error = await session.query(sql).then(
        () => undefined,
        (error: unknown) => error,
      )
      outcomes.push({ sql, code: (error as { code?: string } | undefined)?.code })
    }
  } finally {
    await session.end()
  }

  // A function that runs with its owner's rights must not resolve names through the caller's search_path.
  const { rows: definers } = await db.query<{ name: string; config: string[] | null }>(
    `select p.proname as name, p.proconfig as config from pg_proc as p where p.pronamespace = $1::regnamespace and p.prosecdef`,
    [db.schema],
  )
  const unpinned = definers.filter((definer) => !definer.config?.some((setting) => setting.startsWith('search_path=')))
  const refused = outcomes.filter((outcome) => outcome.code === '42501').length
  console.log(`S2 forbidden=${forbidden.length} refused=${refused} security_definer=${definers.length} unpinned_search_path=${unpinned.length}`)
  // Each statement is refused for lack of privilege (42501), not for any other reason.
  expect(outcomes).toEqual(forbidden.map((sql) => ({ sql, code: '42501' })))
  expect(unpinned).toEqual([])
})
