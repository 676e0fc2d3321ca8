import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { defineTask } from '@skiplock/core'
import { describe, expect } from 'vitest'

import { summarizeResults } from '../src/index.ts'
import { count, test, waitFor } from './helpers.ts'

const fixture = fileURLToPath(new URL('./fixtures/results-worker.ts', import.meta.url))
const short = defineTask({ name: 'short', handler: async (_payload: { ms: number }) => ({ pid: 0 }) })

interface WorkerProcess {
  child: ChildProcess
  exited: Promise<number | null>
}

/** Spawns a worker process with a result store and resolves once it runs. Killed at the end of the test if still alive. */
async function spawnWorker(databaseUrl: string, env: Record<string, string | number>, children: ChildProcess[]): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--conditions=development', fixture], {
    env: { ...process.env, ...Object.fromEntries(Object.entries(env).map(([key, value]) => [key, String(value)])), DATABASE_URL: databaseUrl },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.push(child)
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const lines = createInterface({ input: child.stdout! })
  await Promise.race([
    once(lines, 'line'),
    exited.then((code) => {
      throw new Error(`worker process exited with ${code} before it ran`)
    }),
  ])
  return { child, exited }
}

const processTest = test.extend<{ children: ChildProcess[] }>({
  children: async ({}, use) => {
    const children: ChildProcess[] = []
    await use(children)
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  },
})

describe('result store in worker processes', () => {
  processTest(
    'worker processes SIGKILLed mid-run and respawned leave exactly one result per job',
    { timeout: 120_000 },
    async ({ db, skiplock, children }) => {
      const total = 2000
      const kills = 4
      await skiplock.deferMany(short, Array.from({ length: total }, () => ({ ms: 10 })))
      const settings = { CONCURRENCY: 8, LEASE_SECONDS: 2, HEARTBEAT_MS: 300, MAINTENANCE_MS: 250, POLL_MS: 100 }
      const succeeded = () => count(db, `select count(*)::int as count from skiplock.finished_jobs where state = 'succeeded'`)

      let worker = await spawnWorker(db.url, { ...settings, WORKER_NAME: 'w_0' }, children)
      for (let kill = 1; kill <= kills; kill += 1) {
        const target = Math.round((total * kill) / (kills + 1))
        await waitFor(async () => (await succeeded()) >= target, { description: `${target} jobs to succeed`, timeoutMs: 30_000 })
        // Killed with jobs in hand: fetched, running, or waiting for their group commit.
        worker.child.kill('SIGKILL')
        await worker.exited
        worker = await spawnWorker(db.url, { ...settings, WORKER_NAME: `w_${kill}` }, children)
      }
      await waitFor(async () => (await succeeded()) === total, { description: `all ${total} jobs to succeed`, timeoutMs: 60_000 })
      worker.child.kill('SIGTERM')
      expect(await worker.exited).toBe(0)

      expect(await summarizeResults(db.pool, { queueName: 'default' })).toMatchObject({ results: total, distinctJobs: total, succeededJobs: total })
      // Every succeeded job has its result, from the attempt that succeeded, written with its completion.
      const matching = await count(
        db,
        `select count(*)::int as count
         from skiplock.finished_jobs as f
         join skiplock.job_results as r
           on r.job_id = f.id and r.attempt = f.attempts and r.xmin::text = f.xmin::text
         where f.state = 'succeeded'`,
      )
      expect(matching).toBe(total)
      // The kills really interrupted jobs: some ran again after a rescue, and still have one result each.
      expect(await count(db, `select count(*)::int as count from skiplock.job_results where attempt > 1`)).toBeGreaterThan(0)
      const { rows } = await db.query(`select distinct worker_name from skiplock.job_results order by worker_name`)
      expect(rows.length).toBeGreaterThan(1)
    },
  )
})
