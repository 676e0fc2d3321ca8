import { describe, expect } from 'vitest'

import { test, type TestDatabase } from '../src/testing.ts'

const start = new Date('2030-01-01T00:00:00Z')
const secondsLater = (seconds: number) => new Date(start.getTime() + seconds * 1000)

/** Defers `count` jobs on `queue`, claims them all at `start`, and returns the worker and the leases. */
async function claimJobs(db: TestDatabase, count: number, queue = 'default') {
  await db.query(
    `select count(*) from skiplock.defer_jobs(
       array_fill('t'::text, array[$1::int]),
       queue_names => array_fill($2::text, array[$1::int]),
       run_ats => array_fill($3::timestamptz, array[$1::int]))`,
    [count, queue, start],
  )
  const { rows: workers } = await db.query(`select id from skiplock.register_worker('w', 30, $1)`, [start])
  const { rows } = await db.query(`select id, attempts from skiplock.fetch_jobs($1, array[$2], $3, $4) order by id`, [workers[0]!.id, queue, count, start])
  return { worker: workers[0]!.id as string, jobs: rows as { id: string; attempts: number }[] }
}

/** Completes the leases at `finishedAt` with `{"n": <index>}` results and stores their results as `workerName`, in one transaction. */
async function completeAndStore(db: TestDatabase, worker: string, jobs: readonly { id: string; attempts: number }[], workerName: string, finishedAt = secondsLater(5)) {
  const { rows } = await db.query(
    `with completed as (
       select id from skiplock.complete_jobs($1, $2::bigint[], $3::int[], $4::jsonb[], $5)
     )
     select skiplock.store_results(array(select id from completed), $6) as stored`,
    [worker, jobs.map((job) => job.id), jobs.map((job) => job.attempts), jobs.map((_, index) => JSON.stringify({ n: index })), finishedAt, workerName],
  )
  return Number(rows[0]!.stored)
}

describe('store_results', () => {
  test('writes one row per completed job with its output, attempt, timings and worker name', async ({ db }) => {
    const { worker, jobs } = await claimJobs(db, 3, 'mail')
    expect(await completeAndStore(db, worker, jobs, 'w_1')).toBe(3)
    const { rows } = await db.query(`select * from skiplock.job_results order by job_id`)
    expect(rows).toEqual(
      jobs.map((job, index) => ({
        job_id: job.id,
        queue_name: 'mail',
        task_name: 't',
        worker_name: 'w_1',
        attempt: 1,
        output: { n: index },
        enqueued_at: expect.any(Date),
        started_at: start,
        finished_at: secondsLater(5),
      })),
    )
    // enqueued_at is the job's created_at, from before the claim.
    const { rows: created } = await db.query(`select id as job_id, created_at from skiplock.finished_jobs order by id`)
    expect(rows.map((row) => ({ job_id: row.job_id, created_at: row.enqueued_at }))).toEqual(created)
  })

  test('commits with the completion in one transaction, or not at all', async ({ db }) => {
    const { worker, jobs } = await claimJobs(db, 2)
    const client = await db.connect()
    await client.query('begin')
    await client.query(`select skiplock.store_results(array(select id from skiplock.complete_jobs($1, $2::bigint[], $3::int[])), 'w_1')`, [
      worker,
      jobs.map((job) => job.id),
      jobs.map((job) => job.attempts),
    ])
    await client.query('rollback')
    expect((await db.query(`select count(*)::int as count from skiplock.job_results`)).rows[0]!.count).toBe(0)

    await completeAndStore(db, worker, jobs, 'w_1')
    // One transaction id wrote both the finished job and its result.
    const { rows } = await db.query(`select f.xmin::text = r.xmin::text as same from skiplock.finished_jobs as f join skiplock.job_results as r on r.job_id = f.id`)
    expect(rows).toEqual([{ same: true }, { same: true }])
  })

  test('skips jobs that did not succeed', async ({ db }) => {
    const { worker, jobs } = await claimJobs(db, 2)
    await db.query(`select skiplock.fail_jobs($1, array[$2::bigint], array[$3::int], array['{"message": "no"}'::jsonb], is_retryable => array[false])`, [
      worker,
      jobs[1]!.id,
      jobs[1]!.attempts,
    ])
    expect(await completeAndStore(db, worker, [jobs[0]!], 'w_1')).toBe(1)
    const { rows } = await db.query(`select skiplock.store_results(array[$1::bigint, 999999], 'w_1') as stored`, [jobs[1]!.id])
    expect(rows).toEqual([{ stored: '0' }])
    expect((await db.query(`select job_id from skiplock.job_results`)).rows).toEqual([{ job_id: jobs[0]!.id }])
  })

  test('refuses a second result for the same job with a unique violation', async ({ db }) => {
    const { worker, jobs } = await claimJobs(db, 1)
    await completeAndStore(db, worker, jobs, 'w_1')
    await expect(db.query(`select skiplock.store_results(array[$1::bigint], 'w_2')`, [jobs[0]!.id])).rejects.toMatchObject({
      code: '23505',
      constraint: 'job_results_pkey',
    })
    // Inside the completing transaction too: the violation aborts it, completion included.
    const more = await claimJobs(db, 1, 'other')
    const client = await db.connect()
    await client.query('begin')
    await client.query(`select skiplock.store_results(array(select id from skiplock.complete_jobs($1, array[$2::bigint], array[$3::int])), 'w_1')`, [
      more.worker,
      more.jobs[0]!.id,
      more.jobs[0]!.attempts,
    ])
    await expect(client.query(`select skiplock.store_results(array[$1::bigint], 'w_1')`, [more.jobs[0]!.id])).rejects.toMatchObject({ code: '23505' })
    await client.query('rollback')
    expect((await db.query(`select id, state from skiplock.jobs`)).rows).toEqual([{ id: more.jobs[0]!.id, state: 'doing' }])
    expect((await db.query(`select job_id, worker_name from skiplock.job_results`)).rows).toEqual([{ job_id: jobs[0]!.id, worker_name: 'w_1' }])
  })

  test('rejects an empty worker name with SK005', async ({ db }) => {
    await expect(db.query(`select skiplock.store_results(array[1::bigint], '')`)).rejects.toMatchObject({ code: 'SK005' })
    await expect(db.query(`select skiplock.store_results(array[1::bigint], null)`)).rejects.toMatchObject({ code: 'SK005' })
  })
})

describe('run_jobs', () => {
  test('lists every job of the queue with its result, paginated by id', async ({ db }) => {
    const { worker, jobs } = await claimJobs(db, 5, 'bench')
    await claimJobs(db, 2, 'elsewhere')
    await completeAndStore(db, worker, jobs.slice(0, 2), 'w_1')
    await db.query(`select skiplock.release_jobs($1, array[$2::bigint], array[$3::int])`, [worker, jobs[4]!.id, jobs[4]!.attempts])

    const first = await db.query(`select * from skiplock.run_jobs('bench', max_rows => 3)`)
    expect(first.rows).toEqual([
      { job_id: jobs[0]!.id, task_name: 't', state: 'succeeded', attempts: 1, enqueued_at: expect.any(Date), started_at: start, finished_at: secondsLater(5), worker_name: 'w_1', has_result: true },
      { job_id: jobs[1]!.id, task_name: 't', state: 'succeeded', attempts: 1, enqueued_at: expect.any(Date), started_at: start, finished_at: secondsLater(5), worker_name: 'w_1', has_result: true },
      { job_id: jobs[2]!.id, task_name: 't', state: 'doing', attempts: 1, enqueued_at: expect.any(Date), started_at: start, finished_at: null, worker_name: null, has_result: false },
    ])
    const second = await db.query(`select job_id, state, has_result from skiplock.run_jobs('bench', after_id => $1, max_rows => 3)`, [first.rows[2]!.job_id])
    expect(second.rows).toEqual([
      { job_id: jobs[3]!.id, state: 'doing', has_result: false },
      { job_id: jobs[4]!.id, state: 'todo', has_result: false },
    ])
    const all = await db.query(`select job_id from skiplock.run_jobs('bench')`)
    expect(all.rows.map((row) => row.job_id)).toEqual(jobs.map((job) => job.id))
    expect((await db.query(`select * from skiplock.run_jobs('bench', after_id => $1)`, [jobs[4]!.id])).rows).toEqual([])
  })

  test('rejects max_rows below 1 with SK005', async ({ db }) => {
    await expect(db.query(`select * from skiplock.run_jobs('bench', max_rows => 0)`)).rejects.toMatchObject({ code: 'SK005' })
  })
})

describe('result_counts', () => {
  test("counts a queue's results, the distinct jobs they belong to, and its succeeded jobs", async ({ db }) => {
    expect((await db.query(`select * from skiplock.result_counts('bench')`)).rows).toEqual([{ results: '0', distinct_jobs: '0', succeeded_jobs: '0' }])
    const { worker, jobs } = await claimJobs(db, 4, 'bench')
    await completeAndStore(db, worker, jobs.slice(0, 3), 'w_1')
    // A job completed without storing a result: the counts show the gap.
    await db.query(`select skiplock.complete_jobs($1, array[$2::bigint], array[$3::int])`, [worker, jobs[3]!.id, jobs[3]!.attempts])
    const other = await claimJobs(db, 2, 'other')
    await completeAndStore(db, other.worker, other.jobs, 'w_2')
    expect((await db.query(`select * from skiplock.result_counts('bench')`)).rows).toEqual([{ results: '3', distinct_jobs: '3', succeeded_jobs: '4' }])
  })
})

describe('summarize_results', () => {
  test('summarizes completed jobs per worker with jobs per minute from first start to last finish', async ({ db }) => {
    const { worker, jobs } = await claimJobs(db, 5, 'bench')
    await completeAndStore(db, worker, jobs.slice(0, 3), 'w_1', secondsLater(60))
    await completeAndStore(db, worker, jobs.slice(3, 4), 'w_1', secondsLater(120))
    await completeAndStore(db, worker, jobs.slice(4), 'w_2', secondsLater(30))
    const { rows } = await db.query(`select * from skiplock.summarize_results('bench')`)
    expect(rows).toEqual([
      { worker_name: 'w_1', jobs_completed: '4', first_started_at: start, first_finished_at: secondsLater(60), last_finished_at: secondsLater(120), jobs_per_minute: 2 },
      { worker_name: 'w_2', jobs_completed: '1', first_started_at: start, first_finished_at: secondsLater(30), last_finished_at: secondsLater(30), jobs_per_minute: 2 },
    ])
    expect((await db.query(`select * from skiplock.summarize_results('other')`)).rows).toEqual([])
  })
})
