import { describe, expect } from 'vitest'

import { test } from '../src/testing.ts'

describe('lock', () => {
  test('claims from a freshly filled, never analyzed table without reading every job of a busy lock', async ({ db }) => {
    // 4,000 waiting jobs, half of them on one lock: the planner takes the new table for a few rows.
    await db.query(`
      select count(*) from skiplock.defer_jobs(
        array_fill('t'::text, array[4000]),
        locks => (select array_agg(case when n % 2 = 0 then 'busy' else 'k' || (n % 1000) end) from generate_series(1, 4000) as n)
      )`)
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
    const session = await db.connect()
    await session.query('begin')
    const claimed = await session.query(`select id from skiplock.fetch_jobs($1, batch_size => 50)`, [workers[0].id])
    // This transaction's own reads of the jobs table: a plan that checks each waiting job's lock by
    // reading every job of that lock reads about 2,000,000 index entries here.
    const { rows } = await session.query(
      `select sum(pg_stat_get_xact_tuples_returned(i.indexrelid)) as entries
       from pg_index as i
       where i.indrelid = 'skiplock.jobs'::regclass`,
    )
    await session.query('commit')
    expect(claimed.rows).toHaveLength(50)
    expect(Number(rows[0].entries)).toBeLessThan(20_000)
  })

  test('runs jobs sharing a lock one at a time, in creation order', async ({ db }) => {
    await db.query(`
      select count(*) from skiplock.defer_jobs(
        task_names => array['k1', 'free1', 'k2', 'k3', 'free2'],
        locks => array['k', null, 'k', 'k', null],
        -- Later jobs of the lock rank higher, which must not let them jump the queue.
        priorities => array[0, 0, 1, 2, 0]
      )`)
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
    const worker = workers[0].id

    const first = await db.query(`select id, task_name, attempts from skiplock.fetch_jobs($1, batch_size => 10)`, [worker])
    expect(first.rows.map((row) => row.task_name).sort()).toEqual(['free1', 'free2', 'k1'])
    expect((await db.query(`select id from skiplock.fetch_jobs($1, batch_size => 10)`, [worker])).rows).toEqual([])

    const order = ['k1']
    let running = first.rows.find((row) => row.task_name === 'k1')
    while (running) {
      await db.query(`select skiplock.complete_jobs($1, array[$2::bigint], array[$3::int])`, [worker, running.id, running.attempts])
      const next = await db.query(`select id, task_name, attempts from skiplock.fetch_jobs($1, batch_size => 10)`, [worker])
      expect(next.rows.length).toBeLessThanOrEqual(1)
      running = next.rows[0]
      if (running) order.push(running.task_name)
    }
    expect(order).toEqual(['k1', 'k2', 'k3'])
  })

  test('never runs two jobs of one lock at once when many sessions fetch concurrently', async ({ db }) => {
    await db.query(`
      select count(*) from skiplock.defer_jobs(
        array_fill('t'::text, array[300]),
        locks => (select array_agg('key-' || (i % 10)) from generate_series(1, 300) as i)
      )`)
    const runningLocks = new Set<string>()
    const startedOrder = new Map<string, number[]>()
    let overlaps = 0

    async function work(name: string): Promise<void> {
      const client = await db.connect()
      const { rows } = await client.query(`select id from skiplock.register_worker($1)`, [name])
      const worker = rows[0].id
      for (;;) {
        const fetched = await client.query(`select id, lock, attempts from skiplock.fetch_jobs($1, batch_size => 3)`, [worker])
        if (fetched.rows.length === 0) {
          const left = await client.query(`select count(*)::int as count from skiplock.jobs`)
          if (left.rows[0].count === 0) return
          await new Promise((resolve) => setTimeout(resolve, 5))
          continue
        }
        for (const job of fetched.rows) {
          if (runningLocks.has(job.lock)) overlaps += 1
          runningLocks.add(job.lock)
          startedOrder.set(job.lock, [...(startedOrder.get(job.lock) ?? []), Number(job.id)])
        }
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 3))
        for (const job of fetched.rows) runningLocks.delete(job.lock)
        await client.query(`select skiplock.complete_jobs($1, $2::bigint[], $3::int[])`, [
          worker,
          fetched.rows.map((job) => job.id),
          fetched.rows.map((job) => job.attempts),
        ])
      }
    }

    await Promise.all([work('a'), work('b'), work('c'), work('d')])
    expect(overlaps).toBe(0)
    for (const ids of startedOrder.values()) {
      expect(ids).toEqual([...ids].sort((x, y) => x - y))
    }
    const { rows } = await db.query(`select count(*)::int as count from skiplock.finished_jobs where state = 'succeeded'`)
    expect(rows[0].count).toBe(300)
  })

  test('keeps creation order when the first job of a lock fails and waits for its retry', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array['k1', 'k2'], locks => array['k', 'k'])`)
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
    const worker = workers[0].id
    const { rows } = await db.query(`select id, attempts from skiplock.fetch_jobs($1, batch_size => 10)`, [worker])
    await db.query(`select skiplock.fail_jobs($1, array[$2::bigint], array[$3::int], array['{"message": "boom"}'::jsonb])`, [
      worker,
      rows[0].id,
      rows[0].attempts,
    ])
    // k1 waits for its backoff; k2 must not overtake it.
    expect((await db.query(`select id from skiplock.fetch_jobs($1, batch_size => 10)`, [worker])).rows).toEqual([])
    const later = await db.query(`select task_name from skiplock.fetch_jobs($1, batch_size => 10, now => now() + interval '2 hours')`, [worker])
    expect(later.rows).toEqual([{ task_name: 'k1' }])
  })
})

describe('queueing lock', () => {
  test('allows one waiting job per key and raises SK004 for a second', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['sync'], queueing_locks => array['user-1'])`)
    await expect(db.query(`select skiplock.defer_jobs(array['sync'], queueing_locks => array['user-1'])`)).rejects.toMatchObject({
      code: 'SK004',
      message: expect.stringContaining("a waiting job already holds the queueing lock 'user-1'"),
      detail: '{"queueing_lock" : "user-1"}',
    })
    await db.query(`select skiplock.defer_jobs(array['sync'], queueing_locks => array['user-2'])`)
    const { rows } = await db.query(`select queueing_lock from skiplock.jobs order by id`)
    expect(rows).toEqual([{ queueing_lock: 'user-1' }, { queueing_lock: 'user-2' }])
  })

  test('rejects a batch that holds one key twice, writing none of it', async ({ db }) => {
    await expect(
      db.query(`select skiplock.defer_jobs(array['a', 'b'], queueing_locks => array['same', 'same'])`),
    ).rejects.toMatchObject({ code: 'SK004' })
    expect((await db.query(`select id from skiplock.jobs`)).rows).toEqual([])
  })

  test('returns the waiting job that holds the key when the caller asks for the existing one', async ({ db }) => {
    const created = await db.query(`select id from skiplock.defer_jobs(array['sync'], queueing_locks => array['user-1'])`)
    const { rows } = await db.query(`
      select id, task_name, queueing_lock
      from skiplock.defer_jobs(array['sync', 'other'], queueing_locks => array['user-1', 'user-2'], on_queueing_lock_conflict => 'existing')
      order by id`)
    expect(rows).toHaveLength(2)
    expect(rows[0]).toMatchObject({ id: created.rows[0].id, queueing_lock: 'user-1' })
    expect(rows[1]).toMatchObject({ task_name: 'other', queueing_lock: 'user-2' })
    expect((await db.query(`select count(*)::int as count from skiplock.jobs`)).rows[0].count).toBe(2)
  })

  test('frees the key once its job starts running', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['sync'], queueing_locks => array['user-1'])`)
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
    await db.query(`select skiplock.fetch_jobs($1)`, [workers[0].id])
    const { rows } = await db.query(`select state from skiplock.defer_jobs(array['sync'], queueing_locks => array['user-1'])`)
    expect(rows).toEqual([{ state: 'todo' }])
  })

  test('keeps a failed job whose key was taken while it ran, giving up the key', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['sync'], queueing_locks => array['user-1'])`)
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
    const worker = workers[0].id
    const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1)`, [worker])
    await db.query(`select skiplock.defer_jobs(array['sync'], queueing_locks => array['user-1'])`)
    await db.query(`select skiplock.fail_jobs($1, array[$2::bigint], array[$3::int], array['{}'::jsonb])`, [worker, claimed[0].id, claimed[0].attempts])
    const { rows } = await db.query(`select id, state, queueing_lock from skiplock.jobs order by id`)
    expect(rows).toEqual([
      { id: claimed[0].id, state: 'todo', queueing_lock: null },
      { id: expect.any(String), state: 'todo', queueing_lock: 'user-1' },
    ])
  })
})
