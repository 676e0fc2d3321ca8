import type pg from 'pg'
import { describe, expect } from 'vitest'

import { type TestDatabase, test } from '../src/testing.ts'

type Db = Pick<TestDatabase, 'query'>

async function registerWorker(db: Db): Promise<string> {
  const { rows } = await db.query<{ id: string }>(`select id from skiplock.register_worker('w')`)
  return rows[0]!.id
}

async function raiseFloor(db: Db): Promise<Date | null> {
  const { rows } = await db.query<{ floor: Date | null }>('select skiplock.raise_claim_floor() as floor')
  return rows[0]!.floor
}

async function floor(db: Db): Promise<Date> {
  const { rows } = await db.query<{ floor: Date }>('select skiplock.claim_floor() as floor')
  return rows[0]!.floor
}

/** Claim index entries one claim reads (each read entry's row is then looked at), in a claim rolled back. */
async function entriesReadByClaim(session: pg.Client, workerId: string): Promise<number> {
  // Counted in this transaction only, so other sessions' reads cannot land in between.
  const entriesRead = async () => {
    const { rows } = await session.query<{ read: string }>(`select pg_stat_get_xact_tuples_returned('skiplock.jobs_claim_idx'::regclass) as read`)
    return Number(rows[0]!.read)
  }
  await session.query('begin')
  const before = await entriesRead()
  await session.query('select * from skiplock.fetch_jobs($1, batch_size => 1)', [workerId])
  const after = await entriesRead()
  await session.query('rollback')
  return after - before
}

/** Defers, claims and completes `count` jobs, 100 at a time: their index entries stay while a snapshot is pinned. */
async function churn(db: Db, workerId: string, count: number): Promise<void> {
  for (let done = 0; done < count; done += 100) {
    await db.query(`select count(*) from skiplock.defer_jobs(array_fill('churn'::text, array[100]))`)
    await db.query(
      `select count(*)
       from (select array_agg(id) as ids, array_agg(attempts) as attempts from skiplock.fetch_jobs($1, batch_size => 100)) as c,
         skiplock.complete_jobs($1, c.ids, c.attempts)`,
      [workerId],
    )
  }
}

describe('the claim floor', () => {
  test('lets a claim skip the index entries that a pinned snapshot keeps from vacuum', async ({ db }) => {
    const workerId = await registerWorker(db)
    const session = await db.connect()
    const pin = await db.connect()
    await pin.query('begin isolation level repeatable read')
    await pin.query('select count(*) from skiplock.jobs')
    await churn(db, workerId, 10_000)
    const { rows } = await db.query<{ run_at: Date }>(`select run_at from skiplock.defer_jobs(array['next'])`)

    // Before the raise the claim reads the entry of every job claimed since the pin; after it, the next job's.
    expect(await entriesReadByClaim(session, workerId)).toBeGreaterThan(10_000)
    expect(await raiseFloor(db)).toEqual(rows[0]!.run_at)
    expect(await entriesReadByClaim(session, workerId)).toBe(1)
    await pin.query('rollback')
  })

  test('is raised to the earliest waiting job of any priority, or to now when none waits', async ({ db }) => {
    expect(await floor(db)).toEqual(-Infinity)
    await db.query(`
      select count(*) from skiplock.defer_jobs(
        array['urgent', 'old', 'later'],
        priorities => array[9, 0, 0],
        run_ats => array[now() - interval '1 minute', now() - interval '1 hour', now() + interval '1 hour']
      )`)
    const { rows } = await db.query<{ run_at: Date }>(`select run_at from skiplock.jobs where task_name = 'old'`)
    expect(await raiseFloor(db)).toEqual(rows[0]!.run_at)

    const workerId = await registerWorker(db)
    await db.query(`select count(*) from skiplock.fetch_jobs($1, batch_size => 2)`, [workerId])
    const { rows: urgent } = await db.query<{ run_at: Date }>(`select run_at from skiplock.jobs where task_name = 'urgent'`)
    await db.query(`delete from skiplock.jobs where task_name <> 'later'`)
    const { rows: now } = await db.query<{ now: Date }>('select now()')
    const raised = await raiseFloor(db)
    expect(raised!.getTime()).toBeGreaterThanOrEqual(now[0]!.now.getTime())
    expect(raised!.getTime()).toBeGreaterThan(urgent[0]!.run_at.getTime())
    expect(await floor(db)).toEqual(raised)
  })

  test('is lowered by every way a job comes to wait before it, so the next claim takes that job', async ({ db }) => {
    const workerId = await registerWorker(db)
    const lowersFloorAndIsClaimed = async (taskName: string) => {
      const { rows } = await db.query<{ run_at: Date }>(`select run_at from skiplock.jobs where task_name = $1`, [taskName])
      expect(await floor(db)).toEqual(rows[0]!.run_at)
      const claimed = await db.query<{ task_name: string }>(`select task_name from skiplock.fetch_jobs($1)`, [workerId])
      expect(claimed.rows).toEqual([{ task_name: taskName }])
    }

    // Deferred with a run_at in the past.
    await raiseFloor(db)
    await db.query(`select count(*) from skiplock.defer_jobs(array['past'], run_ats => array[now() - interval '1 day'])`)
    await lowersFloorAndIsClaimed('past')

    // Released by a worker that did not run it: it keeps its run_at from before the raise.
    await db.query(`select count(*) from skiplock.defer_jobs(array['released'])`)
    const { rows: claimed } = await db.query<{ id: string; attempts: number }>(`select id, attempts from skiplock.fetch_jobs($1)`, [workerId])
    await raiseFloor(db)
    await db.query('select skiplock.release_jobs($1, array[$2::bigint], array[$3::integer])', [workerId, claimed[0]!.id, claimed[0]!.attempts])
    await lowersFloorAndIsClaimed('released')

    // A child deferred before the raise, released when its parent succeeds.
    const { rows: parent } = await db.query<{ id: string }>(`select id from skiplock.defer_jobs(array['parent'])`)
    await db.query(
      `select count(*) from skiplock.defer_jobs(
         array['child'],
         dependency_child_positions => array[1],
         dependency_parent_positions => array[null::integer],
         dependency_parent_ids => array[$1::bigint]
       )`,
      [parent[0]!.id],
    )
    const { rows: running } = await db.query<{ id: string; attempts: number }>(`select id, attempts from skiplock.fetch_jobs($1)`, [workerId])
    await raiseFloor(db)
    await db.query('select count(*) from skiplock.complete_jobs($1, array[$2::bigint], array[$3::integer])', [workerId, running[0]!.id, running[0]!.attempts])
    await lowersFloorAndIsClaimed('child')

    // Moved back by hand.
    await db.query(`select count(*) from skiplock.defer_jobs(array['by-hand'], run_ats => array[now() + interval '1 hour'])`)
    await raiseFloor(db)
    await db.query(`update skiplock.jobs set run_at = now() - interval '1 day' where task_name = 'by-hand'`)
    await lowersFloorAndIsClaimed('by-hand')

    // A raise folds the lowerings in.
    await raiseFloor(db)
    expect((await db.query('select count(*)::int as count from skiplock.claim_floor_lowerings')).rows).toEqual([{ count: 0 }])
  })

  test('is not raised past the jobs of a producer that has not committed', async ({ db }) => {
    const producer = await db.connect()
    await producer.query('begin')
    await producer.query(`select count(*) from skiplock.defer_jobs(array['in-flight'], run_ats => array[now() - interval '1 hour'])`)
    expect(await raiseFloor(db)).toBeNull()
    expect(await floor(db)).toEqual(-Infinity)
    await producer.query('commit')
    const { rows } = await db.query<{ run_at: Date }>(`select run_at from skiplock.jobs where task_name = 'in-flight'`)
    expect(await raiseFloor(db)).toEqual(rows[0]!.run_at)
  })

  test('is lowered by a REPEATABLE READ producer whose snapshot predates the raise', async ({ db }) => {
    const workerId = await registerWorker(db)
    const producer = await db.connect()
    await producer.query('begin isolation level repeatable read')
    await producer.query('select count(*) from skiplock.jobs')
    // Raised after the producer's snapshot: a floor it read from a table row would still be -infinity.
    expect(await raiseFloor(db)).not.toBeNull()
    await producer.query(`select count(*) from skiplock.defer_jobs(array['repeatable'], run_ats => array[now() - interval '1 hour'])`)
    await producer.query('commit')
    const { rows } = await db.query<{ task_name: string }>(`select task_name from skiplock.fetch_jobs($1)`, [workerId])
    expect(rows).toEqual([{ task_name: 'repeatable' }])
  })

  test('is left as it was by a raise above READ COMMITTED, whose snapshot could miss a producer', async ({ db }) => {
    const client = await db.connect()
    await client.query('begin isolation level repeatable read')
    expect((await client.query('select skiplock.raise_claim_floor() as floor')).rows).toEqual([{ floor: null }])
    await client.query('commit')
    expect(await floor(db)).toEqual(-Infinity)
  })
})
