import { describe, expect } from 'vitest'

import { test, waitFor } from '../src/testing.ts'

describe('cancel_job', () => {
  test('cancels a waiting job at once', async ({ db }) => {
    const { rows: deferred } = await db.query(`select id from skiplock.defer_jobs(array['t'])`)
    const { rows } = await db.query(`select id, state from skiplock.cancel_job($1)`, [deferred[0].id])
    expect(rows).toEqual([{ id: deferred[0].id, state: 'cancelled' }])
    expect((await db.query(`select id from skiplock.jobs`)).rows).toEqual([])
    expect((await db.query(`select state from skiplock.finished_jobs`)).rows).toEqual([{ state: 'cancelled' }])
  })

  test("asks a running job's worker to abort it, by NOTIFY and through the heartbeat", async ({ db }) => {
    const { rows: deferred } = await db.query(`select id from skiplock.defer_jobs(array['t'])`)
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
    await db.query(`select skiplock.fetch_jobs($1)`, [workers[0].id])

    const listener = await db.connect()
    const payloads: (string | undefined)[] = []
    listener.on('notification', (message) => payloads.push(message.payload))
    await listener.query('listen skiplock_cancel')

    const { rows } = await db.query(`select id, state from skiplock.cancel_job($1)`, [deferred[0].id])
    expect(rows).toEqual([{ id: deferred[0].id, state: 'doing' }])
    await waitFor(() => payloads.length > 0, { description: 'the cancel notification' })
    expect(payloads).toEqual([deferred[0].id])
    expect((await db.query(`select job_id from skiplock.heartbeat($1)`, [workers[0].id])).rows).toEqual([{ job_id: deferred[0].id }])
  })

  test('reports how a finished job ended instead of changing it', async ({ db }) => {
    const { rows: deferred } = await db.query(`select id from skiplock.defer_jobs(array['t'])`)
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
    const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1)`, [workers[0].id])
    await db.query(`select skiplock.complete_jobs($1, array[$2::bigint], array[$3::int])`, [workers[0].id, claimed[0].id, claimed[0].attempts])
    const { rows } = await db.query(`select state from skiplock.cancel_job($1)`, [deferred[0].id])
    expect(rows).toEqual([{ state: 'succeeded' }])
  })

  test('raises SK007 for a job that does not exist', async ({ db }) => {
    await expect(db.query(`select skiplock.cancel_job(424242)`)).rejects.toMatchObject({
      code: 'SK007',
      message: expect.stringContaining('job 424242 does not exist'),
    })
  })
})

describe('prune_jobs', () => {
  test('deletes finished jobs older than the cut-off, in bounded batches, and keeps the rest', async ({ db }) => {
    const { rows: deferred } = await db.query(`select id from skiplock.defer_jobs(array_fill('t'::text, array[5]))`)
    for (const { id } of deferred) {
      await db.query(`select skiplock.cancel_job($1, $2)`, [id, new Date('2030-01-01T00:00:00Z')])
    }
    await db.query(`update skiplock.finished_jobs set finished_at = '2031-01-01' where id = $1`, [deferred[4].id])

    const cutOff = new Date('2030-06-01T00:00:00Z')
    expect((await db.query(`select skiplock.prune_jobs($1, batch_size => 3) as deleted`, [cutOff])).rows[0].deleted).toBe('3')
    expect((await db.query(`select skiplock.prune_jobs($1, batch_size => 3) as deleted`, [cutOff])).rows[0].deleted).toBe('1')
    expect((await db.query(`select skiplock.prune_jobs($1, batch_size => 3) as deleted`, [cutOff])).rows[0].deleted).toBe('0')
    expect((await db.query(`select id from skiplock.finished_jobs`)).rows).toEqual([{ id: deferred[4].id }])
  })

  test('prunes only the states asked for', async ({ db }) => {
    const { rows: deferred } = await db.query(`select id from skiplock.defer_jobs(array['t'])`)
    await db.query(`select skiplock.cancel_job($1)`, [deferred[0].id])
    const later = new Date(Date.now() + 60_000)
    expect((await db.query(`select skiplock.prune_jobs($1, array['failed']::skiplock.job_state[]) as deleted`, [later])).rows[0].deleted).toBe('0')
    expect((await db.query(`select skiplock.prune_jobs($1, array['cancelled']::skiplock.job_state[]) as deleted`, [later])).rows[0].deleted).toBe('1')
  })
})

test('a running job whose cancellation was requested ends as cancelled when its attempt fails, not retried', async ({ db }) => {
  const { rows: deferred } = await db.query(`select id from skiplock.defer_jobs(array['t'])`)
  const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
  const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1)`, [workers[0].id])
  await db.query(`select skiplock.cancel_job($1)`, [deferred[0].id])
  const { rows } = await db.query(`select id, state from skiplock.fail_jobs($1, array[$2::bigint], array[$3::int], array['{"message": "aborted"}'::jsonb])`, [
    workers[0].id,
    claimed[0].id,
    claimed[0].attempts,
  ])
  expect(rows).toEqual([{ id: deferred[0].id, state: 'cancelled' }])
})
