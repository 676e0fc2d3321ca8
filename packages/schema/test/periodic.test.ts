import { expect } from 'vitest'

import { test } from '../src/testing.ts'

test('defers each tick of a periodic task exactly once when many sessions race for it', async ({ db }) => {
  const sessions = await Promise.all([db.connect(), db.connect(), db.connect(), db.connect()])
  const ticks = ['2030-01-01T00:00:00Z', '2030-01-01T00:01:00Z', '2030-01-01T00:02:00Z']
  for (const tick of ticks) {
    const results = await Promise.all(
      sessions.map((session) => session.query(`select id from skiplock.defer_periodic_job('report', $1::timestamptz, '{"n": 1}')`, [tick])),
    )
    expect(results.map((result) => result.rows.length).sort()).toEqual([0, 0, 0, 1])
  }
  // A late caller still on an old tick defers nothing.
  expect((await db.query(`select id from skiplock.defer_periodic_job('report', $1::timestamptz)`, [ticks[0]])).rows).toEqual([])
  const { rows } = await db.query(`select task_name, run_at, payload from skiplock.jobs order by run_at`)
  expect(rows.map((row) => row.run_at.toISOString())).toEqual(ticks.map((tick) => new Date(tick).toISOString()))
  expect(rows[0]).toMatchObject({ task_name: 'report', payload: { n: 1 } })
})

test('queue_stats counts jobs per queue and state', async ({ db }) => {
  await db.query(`
    select count(*) from skiplock.defer_jobs(
      array['a', 'b', 'c', 'd'],
      queue_names => array['mail', 'mail', 'mail', 'reports'],
      run_ats => array[now(), now(), now() + interval '1 day', now()]
    )`)
  const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
  const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1, array['mail'])`, [workers[0].id])
  await db.query(`select skiplock.complete_jobs($1, array[$2::bigint], array[$3::int])`, [workers[0].id, claimed[0].id, claimed[0].attempts])
  const { rows } = await db.query(`select queue_name, waiting::int, scheduled::int, running::int, succeeded::int, failed::int, cancelled::int from skiplock.queue_stats()`)
  expect(rows).toEqual([
    { queue_name: 'mail', waiting: 1, scheduled: 1, running: 0, succeeded: 1, failed: 0, cancelled: 0 },
    { queue_name: 'reports', waiting: 1, scheduled: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 },
  ])
})

test('notifies skiplock_finished once per statement with the finished ids', async ({ db }) => {
  const listener = await db.connect()
  const payloads: (string | undefined)[] = []
  listener.on('notification', (message) => payloads.push(message.payload))
  await listener.query('listen skiplock_finished')
  const { rows: jobs } = await db.query(`select id from skiplock.defer_jobs(array['a', 'b', 'c'])`)
  const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
  const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1, batch_size => 3)`, [workers[0].id])
  await db.query(`select skiplock.complete_jobs($1, $2::bigint[], $3::int[])`, [workers[0].id, claimed.map((j) => j.id), claimed.map((j) => j.attempts)])
  // The notification was queued at commit; a round trip on the listening session delivers it.
  await listener.query('select 1')
  expect(payloads).toHaveLength(1)
  expect(payloads[0]!.split(',').sort()).toEqual(jobs.map((job) => job.id).sort())
})

test('defer_jobs enforces the caller\'s payload limit', async ({ db }) => {
  await expect(db.query(`select skiplock.defer_jobs(array['t'], array['"0123456789"'], max_payload_bytes => 8)`)).rejects.toMatchObject({
    code: 'SK002',
    detail: '{"position" : 1, "size_bytes" : 12, "max_payload_bytes" : 8}',
  })
  const { rows } = await db.query(`select id from skiplock.defer_jobs(array['t'], array['"0123456789"'], max_payload_bytes => 12)`)
  expect(rows).toHaveLength(1)
})

test('has_pending_jobs is true while a queue has waiting or running jobs', async ({ db }) => {
  expect((await db.query(`select skiplock.has_pending_jobs('q') as pending`)).rows[0].pending).toBe(false)
  await db.query(`select skiplock.defer_jobs(array['t'], queue_names => array['q'], run_ats => array[now() + interval '1 hour'])`)
  expect((await db.query(`select skiplock.has_pending_jobs('q') as pending`)).rows[0].pending).toBe(true)
  expect((await db.query(`select skiplock.has_pending_jobs('other') as pending`)).rows[0].pending).toBe(false)
})
