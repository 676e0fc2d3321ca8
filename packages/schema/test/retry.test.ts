import { describe, expect } from 'vitest'

import { test, type TestDatabase } from '../src/testing.ts'

async function registerWorker(db: TestDatabase): Promise<string> {
  const { rows } = await db.query(`select id from skiplock.register_worker('w')`)
  return rows[0].id
}

async function failNext(db: TestDatabase, worker: string, now: Date, error = { message: 'boom' }) {
  const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1, now => $2)`, [worker, now])
  if (claimed.length === 0) return undefined
  const { rows } = await db.query(`select id, state, run_at from skiplock.fail_jobs($1, array[$2::bigint], array[$3::int], array[$4::jsonb], now => $5)`, [
    worker,
    claimed[0].id,
    claimed[0].attempts,
    JSON.stringify(error),
    now,
  ])
  return { ...rows[0], attempts: claimed[0].attempts as number }
}

describe('fail_jobs', () => {
  test('retries with exponential backoff and jitter, then ends in failed after max attempts', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['t'], max_attempts => array[4])`)
    const worker = await registerWorker(db)
    let now = new Date('2030-01-01T00:00:00Z')
    const delaysSeconds: number[] = []
    for (let attempt = 1; attempt <= 3; attempt++) {
      const outcome = await failNext(db, worker, now, { message: `boom ${attempt}` })
      expect(outcome).toMatchObject({ state: 'todo', attempts: attempt })
      const delaySeconds = (outcome!.run_at.getTime() - now.getTime()) / 1000
      // 2^attempt seconds, jittered to 50-100% of it.
      expect(delaySeconds).toBeGreaterThanOrEqual(2 ** attempt * 0.5)
      expect(delaySeconds).toBeLessThanOrEqual(2 ** attempt)
      delaysSeconds.push(delaySeconds)
      // Not runnable before its retry time.
      expect((await db.query(`select id from skiplock.fetch_jobs($1, now => $2)`, [worker, new Date(outcome!.run_at.getTime() - 1)])).rows).toEqual([])
      // Dates carry milliseconds and run_at microseconds: step just past it.
      now = new Date(outcome!.run_at.getTime() + 1)
    }
    const last = await failNext(db, worker, now, { message: 'boom 4' })
    expect(last).toMatchObject({ state: 'failed', attempts: 4 })

    const { rows } = await db.query(`select state, attempts, errors from skiplock.finished_jobs`)
    expect(rows).toHaveLength(1)
    expect(rows[0].state).toBe('failed')
    expect(rows[0].errors.map((error: { attempt: number; message: string }) => [error.attempt, error.message])).toEqual([
      [1, 'boom 1'],
      [2, 'boom 2'],
      [3, 'boom 3'],
      [4, 'boom 4'],
    ])
    expect((await db.query(`select id from skiplock.jobs`)).rows).toEqual([])
  })

  test('fails at once when the caller says the error is not retryable', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['t'])`)
    const worker = await registerWorker(db)
    const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1)`, [worker])
    const { rows } = await db.query(`select id, state from skiplock.fail_jobs($1, array[$2::bigint], array[$3::int], array['{"message": "bad input"}'::jsonb], is_retryable => array[false])`, [
      worker,
      claimed[0].id,
      claimed[0].attempts,
    ])
    expect(rows).toEqual([{ id: claimed[0].id, state: 'failed' }])
  })

  test('retries at the time the caller gives', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['t'])`)
    const worker = await registerWorker(db)
    const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1)`, [worker])
    const retryAt = new Date('2031-05-05T05:05:05Z')
    const { rows } = await db.query(`select run_at from skiplock.fail_jobs($1, array[$2::bigint], array[$3::int], array['{}'::jsonb], retry_ats => array[$4::timestamptz])`, [
      worker,
      claimed[0].id,
      claimed[0].attempts,
      retryAt,
    ])
    expect(rows).toEqual([{ run_at: retryAt }])
  })

  test('ignores a failure reported under a lease that no longer holds', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['t'])`)
    const worker = await registerWorker(db)
    const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1)`, [worker])
    const { rows } = await db.query(`select id from skiplock.fail_jobs($1, array[$2::bigint], array[$3::int], array['{}'::jsonb])`, [
      worker,
      claimed[0].id,
      claimed[0].attempts + 1,
    ])
    expect(rows).toEqual([])
    expect((await db.query(`select state, errors from skiplock.jobs`)).rows).toEqual([{ state: 'doing', errors: [] }])
  })
})

describe('retry_job', () => {
  test('puts a failed job back in the queue with fresh attempts and its error history', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['t'], max_attempts => array[1])`)
    const worker = await registerWorker(db)
    const failed = await failNext(db, worker, new Date())
    expect(failed).toMatchObject({ state: 'failed' })
    const { rows } = await db.query(`select id, state, attempts, errors from skiplock.retry_job($1)`, [failed!.id])
    expect(rows).toEqual([{ id: failed!.id, state: 'todo', attempts: 0, errors: [expect.objectContaining({ message: 'boom' })] }])
    expect((await db.query(`select id from skiplock.finished_jobs`)).rows).toEqual([])
    expect((await db.query(`select id from skiplock.fetch_jobs($1)`, [worker])).rows).toEqual([{ id: failed!.id }])
  })

  test('refuses a succeeded job, a waiting job and an unknown job with distinct codes', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['a', 'b'])`)
    const worker = await registerWorker(db)
    const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1)`, [worker])
    await db.query(`select skiplock.complete_jobs($1, array[$2::bigint], array[$3::int])`, [worker, claimed[0].id, claimed[0].attempts])
    const { rows: waiting } = await db.query(`select id from skiplock.jobs`)

    await expect(db.query(`select skiplock.retry_job($1)`, [claimed[0].id])).rejects.toMatchObject({ code: 'SK008', message: expect.stringContaining('succeeded') })
    await expect(db.query(`select skiplock.retry_job($1)`, [waiting[0].id])).rejects.toMatchObject({ code: 'SK008', message: expect.stringContaining('still waiting or running') })
    await expect(db.query(`select skiplock.retry_job(424242)`)).rejects.toMatchObject({ code: 'SK007' })
  })
})
