import { test, waitFor } from '@skiplock/schema/testing'
import { describe, expect, it, onTestFinished } from 'vitest'

import { type DatabaseSample, databaseSampler, type Sampler, type SampleData } from '../src/index.ts'

async function databaseSample(sampler: Sampler): Promise<DatabaseSample> {
  const samples = await sampler.sample()
  const sample = samples.find((sample): sample is DatabaseSample => sample.kind === 'database')
  if (sample === undefined) throw new Error(`expected a database sample, got ${JSON.stringify(samples)}`)
  return sample
}

describe('databaseSampler', () => {
  test('counters grow after inserts, updates, deletes, commits and rollbacks', async ({ db }) => {
    // Autovacuum off: it would otherwise be free to clear the dead tuples this test counts.
    await db.query('create table events (id int primary key, n int not null) with (autovacuum_enabled = false)')
    const sampler = databaseSampler({ connectionString: db.url, tables: ['public.events', 'skiplock.jobs'] })
    onTestFinished(() => sampler.close?.())
    const before = await databaseSample(sampler)
    expect(before).toMatchObject({ kind: 'database', database: db.name, deadTuples: { 'public.events': 0, 'skiplock.jobs': 0 } })

    const session = await db.connect()
    await session.query('insert into events select g, 0 from generate_series(1, 100) as g')
    await session.query('update events set n = 1 where id <= 20')
    await session.query('delete from events where id > 90')
    await session.query('begin')
    await session.query('insert into events values (1000, 0)')
    await session.query('rollback')
    // Backends publish their statistics at most once a second unless told to; the flush happens as the
    // session goes idle after this statement.
    await session.query('select pg_stat_force_next_flush()')

    const after = await waitFor(
      async () => {
        const sample = await databaseSample(sampler)
        return sample.rowsDeleted >= before.rowsDeleted + 10 ? sample : undefined
      },
      { description: 'the writes to show in pg_stat_database' },
    )
    expect(after.commits - before.commits).toBeGreaterThanOrEqual(3)
    expect(after.rollbacks - before.rollbacks).toBeGreaterThanOrEqual(1)
    expect(after.rowsInserted - before.rowsInserted).toBeGreaterThanOrEqual(101)
    expect(after.rowsUpdated - before.rowsUpdated).toBeGreaterThanOrEqual(20)
    expect(after.rowsDeleted - before.rowsDeleted).toBeGreaterThanOrEqual(10)
    expect(after.walBytes).toBeGreaterThan(before.walBytes!)
    // 20 old row versions left by the update, 10 deleted rows, 1 row inserted by the rolled-back transaction.
    expect(after.deadTuples).toEqual({ 'public.events': 31, 'skiplock.jobs': 0 })
    expect(after.notificationQueueUsage).toBeGreaterThanOrEqual(0)
  })

  test('reports a missing table as an error sample next to the database sample, until it exists', async ({ db }) => {
    const sampler = databaseSampler({ connectionString: db.url, tables: ['public.later', 'skiplock.jobs'], name: 'app db' })
    onTestFinished(() => sampler.close?.())
    const samples: SampleData[] = await sampler.sample()
    expect(samples).toEqual([
      expect.objectContaining({ kind: 'database', deadTuples: { 'skiplock.jobs': 0 } }),
      { kind: 'error', sampler: 'app db', code: 'TABLE_NOT_FOUND', message: `no table public.later in database ${db.name}` },
    ])

    await db.query('create table public.later (id int)')
    expect(await sampler.sample()).toEqual([
      expect.objectContaining({ kind: 'database', deadTuples: { 'public.later': 0, 'skiplock.jobs': 0 } }),
    ])
  })

  it('refuses a table name that is not a plain lowercase schema.table', () => {
    for (const tableName of ['jobs; drop table jobs', 'a.b.c', 'Jobs', '"jobs"', '', 'skiplock.']) {
      expect(() => databaseSampler({ connectionString: 'postgres://unused', tables: [tableName] })).toThrow(
        expect.objectContaining({ code: 'INVALID_TABLE_NAME', tableName }),
      )
    }
  })
})
