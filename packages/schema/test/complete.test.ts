import { describe, expect } from 'vitest'

import { test, type TestDatabase } from '../src/testing.ts'

async function claimOne(db: TestDatabase): Promise<{ worker: string; id: string; attempts: number }> {
  await db.query(`select skiplock.defer_jobs(array['t'], array['{"n": 1}'])`)
  const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
  const { rows } = await db.query(`select id, attempts from skiplock.fetch_jobs($1)`, [workers[0].id])
  return { worker: workers[0].id, id: rows[0].id, attempts: rows[0].attempts }
}

describe('complete_jobs', () => {
  test('moves completed jobs to finished_jobs with their results, leaving the hot table', async ({ db }) => {
    const job = await claimOne(db)
    const { rows } = await db.query(`select id, state, result, payload, finished_at from skiplock.complete_jobs($1, array[$2::bigint], array[$3::int], array['{"sent": true}'::jsonb])`, [
      job.worker,
      job.id,
      job.attempts,
    ])
    expect(rows).toEqual([{ id: job.id, state: 'succeeded', result: { sent: true }, payload: { n: 1 }, finished_at: expect.any(Date) }])
    expect((await db.query(`select id from skiplock.jobs`)).rows).toEqual([])
  })

  test('completes a batch in one call and returns only the jobs whose lease held', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array_fill('t'::text, array[5]))`)
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
    const { rows: claimed } = await db.query(`select id, attempts from skiplock.fetch_jobs($1, batch_size => 5)`, [workers[0].id])
    const attempts = claimed.map((row) => row.attempts)
    attempts[4] = 7 // a stale attempt number: not this lease
    const { rows } = await db.query(`select id from skiplock.complete_jobs($1, $2::bigint[], $3::int[])`, [
      workers[0].id,
      claimed.map((row) => row.id),
      attempts,
    ])
    expect(rows.map((row) => row.id)).toEqual(claimed.slice(0, 4).map((row) => row.id))
    expect((await db.query(`select id, state from skiplock.jobs`)).rows).toEqual([{ id: claimed[4].id, state: 'doing' }])
  })

  test('a completing transaction left idle past the lease is ended by the server, freeing the job for rescue', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['t'])`)
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w', 1)`)
    const [job] = (await db.query(`select id, attempts from skiplock.fetch_jobs($1)`, [workers[0].id])).rows
    // A worker that began completing and was then cut off: its session sits idle in the transaction.
    const cutOff = await db.connect()
    await cutOff.query('begin')
    await cutOff.query(`select skiplock.fail_jobs($1, array[$2::bigint], array[$3::int], array['{}'::jsonb])`, [workers[0].id, job.id, job.attempts])
    const locked = () => db.query(`select id from skiplock.jobs where id = $1 for update skip locked`, [job.id])
    expect((await locked()).rows).toEqual([])

    await new Promise((resolve) => setTimeout(resolve, 1500))
    await expect(cutOff.query('commit')).rejects.toThrow()
    // Rolled back, and the row lock went with the session: rescue can take the job.
    expect((await locked()).rows).toEqual([{ id: job.id }])
    expect((await db.query(`select state, attempts from skiplock.jobs where id = $1`, [job.id])).rows).toEqual([{ state: 'doing', attempts: 1 }])
  })

  test('rejects a completion from another worker', async ({ db }) => {
    const job = await claimOne(db)
    const { rows: intruders } = await db.query(`select id from skiplock.register_worker('intruder')`)
    const { rows } = await db.query(`select id from skiplock.complete_jobs($1, array[$2::bigint], array[$3::int])`, [intruders[0].id, job.id, job.attempts])
    expect(rows).toEqual([])
    expect((await db.query(`select state from skiplock.jobs`)).rows).toEqual([{ state: 'doing' }])
  })

  test('commits the caller\'s own writes with the completion, or neither', async ({ db }) => {
    await db.query(`create table public.results (job_id bigint primary key, output jsonb not null)`)
    const job = await claimOne(db)
    const client = await db.connect()

    // The hook: the caller writes a result row for exactly the completed jobs, in the same transaction.
    const writeResults = `
      with completed as (
        select id, result from skiplock.complete_jobs($1, array[$2::bigint], array[$3::int], array['{"ok": true}'::jsonb])
      )
      insert into public.results (job_id, output) select id, result from completed`
    await client.query('begin')
    await client.query(writeResults, [job.worker, job.id, job.attempts])
    await client.query('rollback')
    expect((await db.query(`select state from skiplock.jobs`)).rows).toEqual([{ state: 'doing' }])
    expect((await db.query(`select job_id from public.results`)).rows).toEqual([])

    await client.query('begin')
    await client.query(writeResults, [job.worker, job.id, job.attempts])
    await client.query('commit')
    expect((await db.query(`select job_id, output from public.results`)).rows).toEqual([{ job_id: job.id, output: { ok: true } }])

    // Completing again writes nothing: the results table can never hold two results for one job.
    const again = await db.query(`select id from skiplock.complete_jobs($1, array[$2::bigint], array[$3::int])`, [job.worker, job.id, job.attempts])
    expect(again.rows).toEqual([])
  })
})
