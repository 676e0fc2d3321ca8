import { randomBytes } from 'node:crypto'

import { test, type TestDatabase, waitFor } from '@skiplock/schema/testing'
import pg from 'pg'
import { describe, expect, onTestFinished } from 'vitest'

import { type ConnectionsSample, connectionsSampler } from '../src/index.ts'

/** Opens a session with `applicationName`, closed when the test finishes. */
async function openSession(db: TestDatabase, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url, application_name: applicationName })
  client.on('error', () => {})
  await client.connect()
  onTestFinished(() => client.end().catch(() => {}))
  return client
}

function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`
}

describe('connectionsSampler', () => {
  test('counts backends idle in transaction and waiting on a lock, by state, wait event and application', async ({ db }) => {
    const application = uniqueName('monitor-test')
    await db.query('create table locked (id int)')
    const holder = await openSession(db, application)
    await holder.query('begin')
    await holder.query('lock table locked')
    const idleInTransaction = await openSession(db, application)
    await idleInTransaction.query('begin')
    await idleInTransaction.query('select 1')
    const waiter = await openSession(db, application)
    await waiter.query('begin')
    // Not awaited: it waits for the holder's lock until the sessions end with the test.
    void waiter.query('lock table locked').catch(() => {})

    const sampler = connectionsSampler({ connectionString: db.url, applicationName: uniqueName('monitor') })
    onTestFinished(() => sampler.close?.())
    const sample = await waitFor(
      async () => {
        const [sample] = (await sampler.sample()) as [ConnectionsSample]
        return sample.byApplication[application] === 3 && (sample.waiting['Lock'] ?? 0) >= 1 ? sample : undefined
      },
      { description: 'the third session to wait on the lock' },
    )

    expect(sample.kind).toBe('connections')
    // Other tests share the server: counts of all backends are at least this test's.
    expect(sample.byState['idle in transaction']).toBeGreaterThanOrEqual(2)
    expect(sample.byState['active']).toBeGreaterThanOrEqual(1)
    expect(sample.waiting['Lock']).toBeGreaterThanOrEqual(1)
    expect(sample.total).toBe(Object.values(sample.byState).reduce((sum, count) => sum + count, 0))
    expect(sample.total).toBe(Object.values(sample.byApplication).reduce((sum, count) => sum + count, 0))
    expect(sample.maxConnections).toBeGreaterThan(sample.total)

    // This test's sessions alone, counted the same way as the sampler does, from the same server view.
    const { rows } = await db.query<{ state: string; wait_event_type: string | null; count: number }>(
      `select state, wait_event_type, count(*)::int as count from pg_stat_activity
       where application_name = $1 group by 1, 2 order by 1`,
      [application],
    )
    expect(rows).toEqual([
      { state: 'active', wait_event_type: 'Lock', count: 1 },
      { state: 'idle in transaction', wait_event_type: 'Client', count: 2 },
    ])
  })

  test("leaves out its own session but counts the monitor's other sessions", async ({ db }) => {
    const ownName = uniqueName('monitor-own')
    const otherName = uniqueName('monitor-other')
    const sampler = connectionsSampler({ connectionString: db.url, applicationName: ownName })
    const other = connectionsSampler({ connectionString: db.url, applicationName: otherName })
    onTestFinished(async () => {
      await sampler.close?.()
      await other.close?.()
    })
    await other.sample()
    const [sample] = (await sampler.sample()) as [ConnectionsSample]
    expect(sample.byApplication[ownName]).toBeUndefined()
    expect(sample.byApplication[otherName]).toBe(1)
    expect(sample.byState).toMatchObject({ active: expect.any(Number), idle: expect.any(Number), 'idle in transaction': expect.any(Number) })
  })

  test('fails with DATABASE_UNREACHABLE naming host and port, never the password', async () => {
    const sampler = connectionsSampler({ connectionString: 'postgres://monitor:s3cret-pw@127.0.0.1:1/postgres' })
    const error = await sampler.sample().catch((error: unknown) => error)
    expect(error).toMatchObject({ code: 'DATABASE_UNREACHABLE', host: '127.0.0.1', port: 1 })
    expect((error as Error).message).toMatch(/^cannot connect to PostgreSQL at 127\.0\.0\.1:1: /)
    expect((error as Error).message).not.toContain('s3cret-pw')
    await sampler.close?.()
  })
})
