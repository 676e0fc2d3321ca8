import { describe, expect } from 'vitest'

import { test } from '../src/testing.ts'

async function registerWorker(db: { query: (sql: string) => Promise<{ rows: any[] }> }, name = 'w'): Promise<string> {
  const { rows } = await db.query(`select id from skiplock.register_worker('${name}')`)
  return rows[0].id
}

describe('fetch_jobs', () => {
  test('gives two sessions fetching at once disjoint jobs', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array_fill('t'::text, array[100]))`)
    const first = await db.connect()
    const second = await db.connect()
    const firstWorker = await registerWorker(db, 'first')
    const secondWorker = await registerWorker(db, 'second')

    // Both transactions stay open, so the second fetch runs while the first one's row locks are held.
    await first.query('begin')
    await second.query('begin')
    const a = await first.query(`select id from skiplock.fetch_jobs($1, batch_size => 30)`, [firstWorker])
    const b = await second.query(`select id from skiplock.fetch_jobs($1, batch_size => 30)`, [secondWorker])
    await first.query('commit')
    await second.query('commit')

    const aIds = a.rows.map((row) => row.id)
    const bIds = b.rows.map((row) => row.id)
    expect(aIds).toHaveLength(30)
    expect(bIds).toHaveLength(30)
    expect(aIds.filter((id) => bIds.includes(id))).toEqual([])
  })

  test('claims by priority (highest first), then run_at, then id', async ({ db }) => {
    await db.query(`
      select count(*) from skiplock.defer_jobs(
        task_names => array['low-late', 'high', 'low-early', 'low-early-2', 'mid'],
        priorities => array[0, 10, 0, 0, 5],
        run_ats => array[now() - interval '1 minute', now(), now() - interval '1 hour', now() - interval '1 hour', now()]
      )`)
    const worker = await registerWorker(db)
    const { rows } = await db.query(`select task_name from skiplock.fetch_jobs(${worker}, batch_size => 10)`)
    expect(rows.map((row) => row.task_name)).toEqual(['high', 'mid', 'low-early', 'low-early-2', 'low-late'])
  })

  test('claims one job at a time in the same order', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array['a', 'b', 'c'], priorities => array[1, 3, 2])`)
    const worker = await registerWorker(db)
    const order: string[] = []
    for (let i = 0; i < 3; i++) {
      const { rows } = await db.query(`select task_name from skiplock.fetch_jobs(${worker})`)
      order.push(rows[0].task_name)
    }
    expect(order).toEqual(['b', 'c', 'a'])
  })

  test('does not claim a job before its run_at', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array['later'], run_ats => array['2030-01-01T00:00:00Z'::timestamptz])`)
    const worker = await registerWorker(db)
    const early = await db.query(`select id from skiplock.fetch_jobs(${worker}, now => '2029-12-31T23:59:59Z')`)
    expect(early.rows).toEqual([])
    const onTime = await db.query(`select id from skiplock.fetch_jobs(${worker}, now => '2030-01-01T00:00:00Z')`)
    expect(onTime.rows).toHaveLength(1)
  })

  test('claims only from the queues asked for', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array['a', 'b', 'c'], queue_names => array['emails', 'reports', 'emails'])`)
    const worker = await registerWorker(db)
    const { rows } = await db.query(`select task_name, queue_name from skiplock.fetch_jobs(${worker}, array['emails'], 10)`)
    expect(rows).toEqual([
      { task_name: 'a', queue_name: 'emails' },
      { task_name: 'c', queue_name: 'emails' },
    ])
  })

  test('marks claimed jobs running for the worker and counts the attempt', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array['a'])`)
    const worker = await registerWorker(db)
    const { rows } = await db.query(`select state, worker_id, attempts, started_at from skiplock.fetch_jobs(${worker})`)
    expect(rows[0]).toMatchObject({ state: 'doing', worker_id: worker, attempts: 1 })
    expect(rows[0].started_at).toBeInstanceOf(Date)
    const again = await db.query(`select id from skiplock.fetch_jobs(${worker})`)
    expect(again.rows).toEqual([])
  })

  test('commits its claim without waiting for the WAL flush, in its own transaction only', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array['a'])`)
    const worker = await registerWorker(db)
    const session = await db.connect()
    await session.query('begin')
    await session.query(`select id from skiplock.fetch_jobs($1)`, [worker])
    const inside = await session.query(`select current_setting('synchronous_commit') as setting`)
    await session.query('commit')
    const after = await session.query(`select current_setting('synchronous_commit') as setting`)
    expect(inside.rows[0].setting).toBe('off')
    expect(after.rows[0].setting).toBe('on')
  })

  test('rejects a batch size below 1 (SK005)', async ({ db }) => {
    await expect(db.query(`select skiplock.fetch_jobs(1, batch_size => 0)`)).rejects.toMatchObject({ code: 'SK005' })
  })
})
