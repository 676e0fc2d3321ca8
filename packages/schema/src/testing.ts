import { randomBytes } from 'node:crypto'

import pg from 'pg'
import { inject, test as baseTest } from 'vitest'

import { databaseUrl } from './testing/database-url.ts'

export { documentedGrants, urlForRole } from './testing/documented-grants.ts'
export { type PgBouncer, type PgBouncerOptions, startPgBouncer } from './testing/pgbouncer.ts'

/** A fresh database for one test, cloned from the migrated template. */
export interface TestDatabase {
  readonly name: string
  readonly url: string
  /** The skiplock schema inside it. */
  readonly schema: string
  /** A small pool, closed after the test. */
  readonly pool: pg.Pool
  /** Runs one statement on the pool. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, values?: unknown[]): Promise<pg.QueryResult<R>>
  /** Opens a dedicated session (for transactions, locks, LISTEN), closed after the test. */
  connect(): Promise<pg.Client>
}

/**
 * `test` with a `db` fixture: each test that asks for it gets its own clone of the migrated template.
 * The clone is dropped when the test passes and kept, with its name printed, when it fails.
 * @example
 * test('defers a job', async ({ db }) => {
 *   await db.query(`select skiplock.defer_jobs(array['send-email'])`)
 * })
 */
export const test = baseTest.extend<{ db: TestDatabase }>({
  db: async ({ onTestFailed }, use) => {
    const { adminUrl, templateDatabase, schema } = inject('skiplockTestServer')
    const name = `skiplock_test_${randomBytes(6).toString('hex')}`
    await withAdmin(adminUrl, (admin) =>
      admin.query(`create database ${pg.escapeIdentifier(name)} template ${pg.escapeIdentifier(templateDatabase)}`),
    )
    let hasFailed = false
    onTestFailed(() => {
      hasFailed = true
    })

    const url = databaseUrl(adminUrl, name)
    const pool = new pg.Pool({ connectionString: url, max: 10, application_name: 'skiplock-test' })
    pool.on('error', () => {})
    const clients: pg.Client[] = []
    const database: TestDatabase = {
      name,
      url,
      schema,
      pool,
      query: (sql, values) => pool.query(sql, values),
      connect: async () => {
        const client = new pg.Client({ connectionString: url, application_name: 'skiplock-test' })
        // A session killed on purpose by a test must not crash the test process.
        client.on('error', () => {})
        await client.connect()
        clients.push(client)
        return client
      },
    }
    try {
      await use(database)
    } finally {
      await Promise.all(clients.map((client) => client.end().catch(() => {})))
      await pool.end()
      if (hasFailed) {
        console.error(`kept the failed test's database: ${name}`)
      } else {
        await withAdmin(adminUrl, (admin) => admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`))
      }
    }
  },
})

/**
 * Polls `condition` until it returns a truthy value and returns that value.
 * @throws {Error} naming `description` when `timeoutMs` (default 10 000) passes first.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 25, description = 'condition' } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await condition()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

async function withAdmin<T>(adminUrl: string, work: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'skiplock-test-setup' })
  await admin.connect()
  try {
    return await work(admin)
  } finally {
    await admin.end()
  }
}
