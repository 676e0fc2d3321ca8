// The worker and the client behind a real PgBouncer in transaction mode, the way many deployments run
// them: every statement may land on another server connection, named prepared statements fail, and
// LISTEN is accepted but no notification ever arrives.
import os from 'node:os'

import { type Client, createClient, createWorker, defineTask, type Worker, type WorkerOptions } from '@skiplock/core'
import { type PgBouncer, startPgBouncer, type TestDatabase } from '@skiplock/schema/testing'
import { describe, expect } from 'vitest'
import { z } from 'zod'

import { waitFor, test as workerTest } from '../src/testing.ts'

type StartWorkerOptions = Omit<WorkerOptions, 'connectionString'> & { connectionString?: string }

/**
 * `pgbouncer` in front of the test's database, `pooledSkiplock` (a client through it), and
 * `startPooledWorker`, which starts workers whose pool goes through it. helpers' `startWorker` would
 * stop its workers after PgBouncer is gone (fixtures tear down in reverse order of registration), and
 * its check for leftover sessions would count PgBouncer's idle server connections, which keep the
 * application_name of the last client they served; this one stops its workers first and asks PgBouncer.
 */
const test = workerTest.extend<{ pgbouncer: PgBouncer; pooledSkiplock: Client; startPooledWorker: (options: StartWorkerOptions) => Promise<Worker> }>({
  pgbouncer: async ({ db, onTestFailed }, use) => {
    const bouncer = await startPgBouncer(db)
    onTestFailed(() => console.error(`pgbouncer's log:\n${bouncer.log()}`))
    try {
      await use(bouncer)
    } finally {
      await bouncer.stop()
    }
  },
  // Its result() LISTENs through PgBouncer, where no notification arrives: it finds outcomes by polling.
  pooledSkiplock: async ({ pgbouncer }, use) => {
    const client = createClient({ connectionString: pgbouncer.url, resultPollIntervalMs: 200 })
    await use(client)
    await client.close()
  },
  startPooledWorker: async ({ db, pgbouncer }, use) => {
    const workers: Worker[] = []
    await use(async (options) => {
      const worker = createWorker({ connectionString: pgbouncer.url, pollIntervalMs: 100, completionWindowMs: 1, ...options })
      workers.push(worker)
      await worker.start()
      return worker
    })
    const stopErrors = (await Promise.allSettled(workers.map((worker) => worker.stop()))).filter((result) => result.status === 'rejected')
    expect(stopErrors, 'workers that failed to stop').toEqual([])
    // A stopped worker leaves no connection behind: none to PgBouncer, no direct LISTEN session.
    await waitFor(
      async () => {
        const clients = await pgbouncer.admin<{ database: string; application_name: string }>('show clients')
        const listeners = await db.query<{ count: number }>(
          `select count(*)::int as count from pg_stat_activity where datname = current_database() and application_name = 'skiplock-listener'`,
        )
        return !clients.some((client) => client.database === db.name && client.application_name.startsWith('skiplock-worker')) && listeners.rows[0]!.count === 0
      },
      { description: 'the stopped workers to close every connection', timeoutMs: 5000 },
    )
  },
})

/** Each handler records its job here; no unique key, so a job that runs twice shows up twice. */
async function createRunsTable(db: TestDatabase): Promise<void> {
  await db.query(`create table public.runs (job_id bigint not null, task_name text not null)`)
}

async function countRuns(db: TestDatabase): Promise<{ runs: number; jobs: number }> {
  const { rows } = await db.query<{ runs: number; jobs: number }>(
    `select count(*)::int as runs, count(distinct job_id)::int as jobs from public.runs`,
  )
  return rows[0]!
}

async function countFinished(db: TestDatabase): Promise<{ state: string; attempts: number; count: number }[]> {
  const { rows } = await db.query<{ state: string; attempts: number; count: number }>(
    `select state::text, attempts, count(*)::int as count from skiplock.finished_jobs group by 1, 2 order by 1, 2`,
  )
  return rows
}

describe('behind PgBouncer in transaction mode', () => {
  test('a worker pooling through PgBouncer and listening on a direct connection runs 200 jobs exactly once', async ({
    db,
    pgbouncer,
    pooledSkiplock,
    startPooledWorker,
  }) => {
    await createRunsTable(db)
    const record = defineTask({
      name: 'record',
      schema: z.object({ n: z.number() }),
      handler: async ({ n }, { job }) => {
        await db.query(`insert into public.runs (job_id, task_name) values ($1, 'record')`, [job.id])
        return { n }
      },
    })
    // Polling is an hour away: the worker picks these jobs up only if its direct LISTEN connection hears
    // the notifications, which would never arrive through PgBouncer.
    const worker = await startPooledWorker({
      listenConnectionString: db.url,
      pollIntervalMs: 3_600_000,
      tasks: [record],
    })
    const jobs = await Promise.all(Array.from({ length: 200 }, (_, n) => pooledSkiplock.defer(record, { n })))

    // The client's result waiter LISTENs through PgBouncer too, where notifications never arrive: this
    // resolves through its polling fallback (every 200 ms here).
    expect(await pooledSkiplock.result(jobs[0]!, { timeoutMs: 20_000 })).toEqual({ n: 0 })
    const results = await Promise.all(jobs.map((job) => pooledSkiplock.result(job, { timeoutMs: 20_000 })))
    expect(results).toEqual(jobs.map((_, n) => ({ n })))

    expect(await countFinished(db)).toEqual([{ state: 'succeeded', attempts: 1, count: 200 }])
    expect(await countRuns(db)).toEqual({ runs: 200, jobs: 200 })
    // The worker's pool really is a PgBouncer client, not a direct connection.
    const clients = await pgbouncer.admin<{ database: string; application_name: string }>('show clients')
    expect(clients.filter((client) => client.database === db.name).map((client) => client.application_name)).toContain(
      `skiplock-worker ${os.hostname()}:${process.pid}`,
    )
    expect(worker.runningCount).toBe(0)
  })

  test('a polling worker (listen: false) runs plain and transactional jobs, and defer follows the caller\'s transaction', async ({
    db,
    pgbouncer,
    pooledSkiplock,
    startPooledWorker,
  }) => {
    await createRunsTable(db)
    await db.query(`create table public.orders (id int primary key)`)
    const record = defineTask({
      name: 'record',
      handler: async (_payload: { n: number }, { job }) => {
        await db.query(`insert into public.runs (job_id, task_name) values ($1, 'record')`, [job.id])
        return 'plain'
      },
    })
    const recordInTx = defineTask({
      name: 'record-in-tx',
      transactional: true,
      handler: async (_payload: { n: number }, { job, tx }) => {
        // Through PgBouncer: begin, these writes, the completion and commit share one server connection.
        await tx.query(`insert into public.runs (job_id, task_name) values ($1, 'record-in-tx')`, [job.id])
        const { rows } = await tx.query<{ count: number }>(`select count(*)::int as count from public.runs where job_id = $1`, [job.id])
        return rows[0]!.count
      },
    })
    await startPooledWorker({ listen: false, pollIntervalMs: 100, tasks: [record, recordInTx] })

    const plainJobs = await Promise.all(Array.from({ length: 50 }, (_, n) => pooledSkiplock.defer(record, { n })))
    const transactionalIds = await pooledSkiplock.deferMany(recordInTx, Array.from({ length: 50 }, (_, n) => ({ n })))

    // A defer inside the caller's transaction on a PgBouncer session: it exists only if that transaction commits.
    const session = await pgbouncer.connect()
    await session.query('begin')
    await session.query(`insert into public.orders (id) values (1)`)
    const rolledBack = await pooledSkiplock.defer(recordInTx, { n: -1 }, { tx: session })
    await session.query('rollback')
    expect(await pooledSkiplock.getJob(rolledBack.id)).toBeUndefined()

    await session.query('begin')
    await session.query(`insert into public.orders (id) values (2)`)
    const committed = await pooledSkiplock.defer(recordInTx, { n: -2 }, { tx: session })
    await session.query('commit')

    expect(await Promise.all(plainJobs.map((job) => pooledSkiplock.result(job, { timeoutMs: 20_000 })))).toEqual(plainJobs.map(() => 'plain'))
    const transactionalResults = await Promise.all(
      [...transactionalIds, committed.id].map((id) => pooledSkiplock.result(id, { timeoutMs: 20_000 })),
    )
    // Each transactional handler saw its own write, once, inside its transaction.
    expect(transactionalResults).toEqual(Array(51).fill(1))

    expect(await pooledSkiplock.getJob(rolledBack.id)).toBeUndefined()
    expect((await db.query(`select id from public.orders order by id`)).rows).toEqual([{ id: 2 }])
    expect(await countFinished(db)).toEqual([{ state: 'succeeded', attempts: 1, count: 101 }])
    expect(await countRuns(db)).toEqual({ runs: 101, jobs: 101 })
    const { rows: runsByTask } = await db.query(`select task_name, count(*)::int as count from public.runs group by 1 order by 1`)
    expect(runsByTask).toEqual([
      { task_name: 'record', count: 50 },
      { task_name: 'record-in-tx', count: 51 },
    ])
    expect((await db.query(`select count(*)::int as count from skiplock.jobs`)).rows).toEqual([{ count: 0 }])
  })
})
