import { describe, expect } from 'vitest'

import { test, type TestDatabase } from '../src/testing.ts'

const start = new Date('2030-01-01T00:00:00Z')
const secondsLater = (seconds: number) => new Date(start.getTime() + seconds * 1000)

async function registerWorker(db: TestDatabase, name: string, leaseSeconds = 30): Promise<string> {
  const { rows } = await db.query(`select id from skiplock.register_worker($1, $2, $3)`, [name, leaseSeconds, start])
  return rows[0].id
}

async function claim(db: TestDatabase, worker: string, count = 1) {
  const { rows } = await db.query(`select id, attempts from skiplock.fetch_jobs($1, batch_size => $2, now => $3)`, [worker, count, start])
  return rows as { id: string; attempts: number }[]
}

describe('rescue_jobs', () => {
  test("returns a dead worker's jobs to the queue after its lease, and leaves a live worker's alone", async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array_fill('t'::text, array[4]), run_ats => array_fill($1::timestamptz, array[4]))`, [start])
    const dead = await registerWorker(db, 'dead')
    const live = await registerWorker(db, 'live')
    const deadJobs = await claim(db, dead, 2)
    const liveJobs = await claim(db, live, 2)

    await db.query(`select skiplock.heartbeat($1, $2)`, [live, secondsLater(25)])
    // Within the lease nothing is rescued.
    expect((await db.query(`select id from skiplock.rescue_jobs($1)`, [secondsLater(29)])).rows).toEqual([])

    await db.query(`select skiplock.heartbeat($1, $2)`, [live, secondsLater(50)])
    const { rows } = await db.query(`select id, state, worker_id from skiplock.rescue_jobs($1) order by id`, [secondsLater(31)])
    expect(rows).toEqual(deadJobs.map((job) => ({ id: job.id, state: 'todo', worker_id: dead })))

    const { rows: states } = await db.query(`select id, state, worker_id, run_at from skiplock.jobs order by id`)
    expect(states.filter((job) => liveJobs.some((live) => live.id === job.id)).map((job) => job.state)).toEqual(['doing', 'doing'])
    // Back in their place in the queue, not behind the jobs that arrived while they ran.
    for (const job of states.filter((job) => deadJobs.some((dead) => dead.id === job.id))) {
      expect(job).toMatchObject({ state: 'todo', worker_id: null, run_at: start })
    }
    await db.query(`select skiplock.defer_jobs(array['t'], run_ats => array[$1::timestamptz])`, [secondsLater(30)])
    // The rescued jobs run again at once, first, and the attempt that died counts.
    const again = await db.query(`select id, attempts from skiplock.fetch_jobs($1, batch_size => 2, now => $2)`, [live, secondsLater(31)])
    expect(again.rows.map((row) => [row.id, row.attempts])).toEqual(deadJobs.map((job) => [job.id, 2]))
  })

  test('fails a rescued job that has no attempts left', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['t'], max_attempts => array[1], run_ats => array[$1::timestamptz])`, [start])
    const dead = await registerWorker(db, 'dead', 10)
    const [job] = await claim(db, dead)
    const { rows } = await db.query(`select id, state from skiplock.rescue_jobs($1)`, [secondsLater(11)])
    expect(rows).toEqual([{ id: job!.id, state: 'failed' }])
    const { rows: finished } = await db.query(`select state, errors from skiplock.finished_jobs`)
    expect(finished[0].state).toBe('failed')
    expect(finished[0].errors[0].message).toMatch(/stopped heartbeating/)
  })

  test('makes the presumed-dead worker\'s heartbeat fail with SK006', async ({ db }) => {
    const dead = await registerWorker(db, 'dead', 10)
    await db.query(`select skiplock.rescue_jobs($1)`, [secondsLater(11)])
    await expect(db.query(`select skiplock.heartbeat($1, $2)`, [dead, secondsLater(12)])).rejects.toMatchObject({ code: 'SK006' })
  })

  test('fences the late completion of a worker that was presumed dead, step by step on two connections', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['t'], run_ats => array[$1::timestamptz])`, [start])
    const stalled = await registerWorker(db, 'stalled', 10)
    const [job] = await claim(db, stalled)

    // Another connection rescues the job and a new worker runs and completes it.
    const rescuer = await db.connect()
    await rescuer.query(`select skiplock.rescue_jobs($1)`, [secondsLater(11)])
    const { rows: fresh } = await rescuer.query(`select id from skiplock.register_worker('fresh', 30, $1)`, [secondsLater(11)])
    const { rows: rerun } = await rescuer.query(`select id, attempts from skiplock.fetch_jobs($1, now => $2)`, [fresh[0].id, secondsLater(11)])
    expect(rerun).toEqual([{ id: job!.id, attempts: 2 }])

    // The stalled worker wakes up and tries to complete its attempt: rejected, nothing changes.
    const stalledClient = await db.connect()
    const late = await stalledClient.query(`select id from skiplock.complete_jobs($1, array[$2::bigint], array[$3::int], array['"late"'::jsonb])`, [stalled, job!.id, job!.attempts])
    expect(late.rows).toEqual([])

    const done = await rescuer.query(`select id, result from skiplock.complete_jobs($1, array[$2::bigint], array[2], array['"on time"'::jsonb])`, [fresh[0].id, job!.id])
    expect(done.rows).toEqual([{ id: job!.id, result: 'on time' }])
    const lateAgain = await stalledClient.query(`select id from skiplock.complete_jobs($1, array[$2::bigint], array[$3::int])`, [stalled, job!.id, job!.attempts])
    expect(lateAgain.rows).toEqual([])
    expect((await db.query(`select state, result from skiplock.finished_jobs`)).rows).toEqual([{ state: 'succeeded', result: 'on time' }])
  })

  test('skips a job whose worker is completing it at that moment, and rescues nothing twice', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['t'], run_ats => array[$1::timestamptz])`, [start])
    const slow = await registerWorker(db, 'slow', 10)
    const [job] = await claim(db, slow)

    const completer = await db.connect()
    await completer.query('begin')
    await completer.query(`select skiplock.complete_jobs($1, array[$2::bigint], array[$3::int])`, [slow, job!.id, job!.attempts])
    // The completing transaction holds the row: rescue skips it instead of waiting or double-running it.
    const { rows } = await db.query(`select id from skiplock.rescue_jobs($1)`, [secondsLater(11)])
    expect(rows).toEqual([])
    await completer.query('commit')
    expect((await db.query(`select state from skiplock.finished_jobs`)).rows).toEqual([{ state: 'succeeded' }])
    expect((await db.query(`select id from skiplock.rescue_jobs($1)`, [secondsLater(12)])).rows).toEqual([])
  })
})

describe('rescue_jobs after a server restart', () => {
  test('does not count time before the server started against a lease', async ({ db }) => {
    await db.query(`select skiplock.defer_jobs(array['t'])`)
    // A worker that last heartbeat an hour before the server (re)started: it could not heartbeat while the server was down.
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w', 30, pg_postmaster_start_time() - interval '1 hour')`)
    const [job] = await claim(db, workers[0].id)
    const rescueAt = (seconds: number) => db.query(`select id from skiplock.rescue_jobs(pg_postmaster_start_time() + make_interval(secs => $1))`, [seconds])

    expect((await rescueAt(29)).rows).toEqual([])
    expect((await rescueAt(31)).rows).toEqual([{ id: job!.id }])
  })
})

describe('workers', () => {
  test('a graceful unregister releases held jobs without using up an attempt', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array['a', 'b'], run_ats => array[$1::timestamptz, $1::timestamptz])`, [start])
    const worker = await registerWorker(db, 'leaving')
    await claim(db, worker, 2)
    const { rows } = await db.query(`select id, state, attempts, worker_id from skiplock.unregister_worker($1)`, [worker])
    expect(rows.map((row) => [row.state, row.attempts, row.worker_id])).toEqual([
      ['todo', 0, null],
      ['todo', 0, null],
    ])
    expect((await db.query(`select id from skiplock.workers`)).rows).toEqual([])
  })

  test('release_jobs gives back jobs that were fetched but not started', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array['a', 'b'], run_ats => array[$1::timestamptz, $1::timestamptz])`, [start])
    const worker = await registerWorker(db, 'w')
    const claimed = await claim(db, worker, 2)
    const { rows } = await db.query(`select id, attempts from skiplock.release_jobs($1, array[$2::bigint], array[$3::int])`, [worker, claimed[1]!.id, claimed[1]!.attempts])
    expect(rows).toEqual([{ id: claimed[1]!.id, attempts: 0 }])
    expect((await db.query(`select id, state from skiplock.jobs order by id`)).rows).toEqual([
      { id: claimed[0]!.id, state: 'doing' },
      { id: claimed[1]!.id, state: 'todo' },
    ])
  })

  test('heartbeat returns jobs claimed for the worker over a lease ago that it does not hold, with their attempt', async ({ db }) => {
    await db.query(`select count(*) from skiplock.defer_jobs(array_fill('t'::text, array[3]), run_ats => array_fill($1::timestamptz, array[3]))`, [start])
    const worker = await registerWorker(db, 'w', 30)
    const [held, lostA, lostB] = await claim(db, worker, 3)
    const beat = (seconds: number, heldIds: string[] | null) => db.query(`select skiplock.heartbeat($1, $2, $3::bigint[])`, [worker, secondsLater(seconds), heldIds])
    const states = async () => (await db.query(`select id, state, attempts from skiplock.jobs order by id`)).rows

    // Within the lease a claim may still be on its way to the worker; without a list nothing is checked.
    await beat(29, [held!.id])
    await beat(31, null)
    expect((await states()).map((job) => job.state)).toEqual(['doing', 'doing', 'doing'])

    await beat(31, [held!.id])
    expect(await states()).toEqual([
      { id: held!.id, state: 'doing', attempts: 1 },
      { id: lostA!.id, state: 'todo', attempts: 0 },
      { id: lostB!.id, state: 'todo', attempts: 0 },
    ])
  })

  test('register_worker rejects a lease below one second (SK005)', async ({ db }) => {
    await expect(db.query(`select skiplock.register_worker('w', 0)`)).rejects.toMatchObject({ code: 'SK005' })
  })
})
