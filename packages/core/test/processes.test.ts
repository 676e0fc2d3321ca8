import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { defineTask } from '@skiplock/core'
import { describe, expect } from 'vitest'

import { test, waitFor } from '../src/testing.ts'

const fixture = fileURLToPath(new URL('./fixtures/worker-process.ts', import.meta.url))
const sleep = defineTask({ name: 'sleep', handler: async (_payload: { ms: number }) => null })
const record = defineTask({ name: 'record', handler: async (_payload: { ms: number }) => null })

interface WorkerProcess {
  child: ChildProcess
  workerId: string
  exited: Promise<number | null>
  /** Lines the process printed after its first. */
  lines: string[]
}

/** Spawns a worker process and resolves once it runs. Killed at the end of the test if still alive. */
async function spawnWorker(databaseUrl: string, env: Record<string, string | number>, children: ChildProcess[]): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--conditions=development', fixture], {
    env: { ...process.env, ...Object.fromEntries(Object.entries(env).map(([key, value]) => [key, String(value)])), DATABASE_URL: databaseUrl },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.push(child)
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const lines = createInterface({ input: child.stdout! })
  const first = await Promise.race([once(lines, 'line').then(([line]) => line as string), exited.then((code) => { throw new Error(`worker process exited with ${code} before it ran`) })])
  const later: string[] = []
  lines.on('line', (line) => later.push(line))
  return { child, workerId: JSON.parse(first).workerId, exited, lines: later }
}

const processTest = test.extend<{ children: ChildProcess[] }>({
  children: async ({}, use) => {
    const children: ChildProcess[] = []
    await use(children)
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  },
})

async function createExecutions(db: { query: (sql: string) => Promise<unknown> }): Promise<void> {
  await db.query(`create table public.executions (id bigserial primary key, job_id bigint not null, pid int not null, started_at timestamptz not null default clock_timestamp(), finished_at timestamptz)`)
}

describe('worker processes', () => {
  processTest('two processes fetching at once run every job exactly once', async ({ db, skiplock, children }) => {
    await createExecutions(db)
    const ids = await skiplock.deferMany(record, Array.from({ length: 400 }, () => ({ ms: 10 })))
    const workers = await Promise.all([spawnWorker(db.url, { CONCURRENCY: 4 }, children), spawnWorker(db.url, { CONCURRENCY: 4 }, children)])
    await waitFor(async () => (await db.query(`select count(*)::int as count from skiplock.finished_jobs`)).rows[0].count === 400, {
      description: 'all 400 jobs to finish',
      timeoutMs: 30_000,
    })
    const { rows } = await db.query(`select count(*)::int as executions, count(distinct job_id)::int as jobs, count(distinct pid)::int as pids from public.executions`)
    expect(rows[0]).toEqual({ executions: 400, jobs: 400, pids: 2 })
    const states = await db.query(`select state, count(*)::int as count from skiplock.finished_jobs where id = any($1::bigint[]) group by state`, [ids])
    expect(states.rows).toEqual([{ state: 'succeeded', count: 400 }])
    for (const worker of workers) worker.child.kill('SIGTERM')
    expect(await Promise.all(workers.map((worker) => worker.exited))).toEqual([0, 0])
  })

  processTest("a SIGKILLed worker's job is completed by another after its lease", async ({ db, skiplock, children }) => {
    await createExecutions(db)
    const doomed = await spawnWorker(db.url, { LEASE_SECONDS: 2, HEARTBEAT_MS: 300 }, children)
    const job = await skiplock.defer(record, { ms: 1500 })
    await waitFor(async () => (await db.query(`select count(*)::int as count from public.executions`)).rows[0].count === 1, { description: 'the job to start' })
    doomed.child.kill('SIGKILL')
    const killedAt = Date.now()
    await doomed.exited
    await spawnWorker(db.url, { LEASE_SECONDS: 2, HEARTBEAT_MS: 300, MAINTENANCE_MS: 250 }, children)
    const result = (await skiplock.result(job, { timeoutMs: 15_000 })) as { pid: number }
    const recoveredMs = Date.now() - killedAt
    expect(result.pid).not.toBe(doomed.child.pid)
    expect(recoveredMs).toBeLessThan(10_000)
    const stored = await skiplock.getJob(job.id)
    expect(stored).toMatchObject({ state: 'succeeded', attempts: 2 })
    expect(stored?.errors[0]?.message).toMatch(/stopped heartbeating/)
    const { rows } = await db.query(`select pid, finished_at is not null as finished from public.executions order by id`)
    expect(rows).toEqual([
      { pid: doomed.child.pid, finished: false },
      { pid: result.pid, finished: true },
    ])
  })

  processTest('SIGTERM lets jobs in flight finish, returns the rest, and the process exits 0', async ({ db, skiplock, children }) => {
    await createExecutions(db)
    await skiplock.deferMany(record, Array.from({ length: 20 }, () => ({ ms: 400 })))
    const worker = await spawnWorker(db.url, { CONCURRENCY: 3 }, children)
    await waitFor(async () => (await db.query(`select count(*)::int as count from public.executions`)).rows[0].count >= 3, { description: 'three jobs to start' })
    worker.child.kill('SIGTERM')
    expect(await worker.exited).toBe(0)
    const executions = await db.query(`select count(*)::int as started, count(finished_at)::int as finished from public.executions`)
    expect(executions.rows[0].started).toBe(executions.rows[0].finished)
    const { rows } = await db.query(`select state, count(*)::int as count from skiplock.all_jobs group by state order by state`)
    expect(rows).toEqual([
      { state: 'todo', count: 20 - executions.rows[0].finished },
      { state: 'succeeded', count: executions.rows[0].finished },
    ])
    expect((await db.query(`select count(*)::int as count from skiplock.workers`)).rows[0].count).toBe(0)
  })

  processTest('a second SIGTERM aborts running jobs at once and returns them to the queue', async ({ db, skiplock, children }) => {
    await skiplock.deferMany(sleep, Array.from({ length: 2 }, () => ({ ms: 60_000 })))
    const worker = await spawnWorker(db.url, { CONCURRENCY: 2 }, children)
    await waitFor(async () => (await db.query(`select count(*)::int as count from skiplock.jobs where state = 'doing'`)).rows[0].count === 2, { description: 'both jobs to run' })
    worker.child.kill('SIGTERM')
    await waitFor(() => worker.lines.length === 1, { description: 'the first signal to arrive' })
    worker.child.kill('SIGTERM')
    expect(await worker.exited).toBe(0)
    const { rows } = await db.query(`select state, attempts from skiplock.jobs order by id`)
    expect(rows).toEqual([
      { state: 'todo', attempts: 0 },
      { state: 'todo', attempts: 0 },
    ])
  })

  processTest('500 concurrent handlers with a pool of 2 use at most 3 connections', async ({ db, skiplock, children }) => {
    await skiplock.deferMany(sleep, Array.from({ length: 1000 }, () => ({ ms: 300 })))
    let peak = 0
    let isSampling = true
    const sampler = (async () => {
      while (isSampling) {
        const { rows } = await db.query(`
          select count(*)::int as count from pg_stat_activity
          where datname = current_database() and (application_name like 'skiplock-worker%' or application_name = 'skiplock-listener')`)
        peak = Math.max(peak, rows[0].count)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })()
    const worker = await spawnWorker(db.url, { CONCURRENCY: 500, POOL_SIZE: 2 }, children)
    await waitFor(async () => (await db.query(`select count(*)::int as count from skiplock.finished_jobs where state = 'succeeded'`)).rows[0].count === 1000, {
      description: '1000 jobs to succeed',
      timeoutMs: 30_000,
    })
    isSampling = false
    await sampler
    worker.child.kill('SIGTERM')
    expect(await worker.exited).toBe(0)
    expect(peak).toBeGreaterThanOrEqual(2)
    expect(peak).toBeLessThanOrEqual(3)
  })
})
