import { test as databaseTest, waitFor } from '@skiplock/schema/testing'
import { expect } from 'vitest'

import { type Client, createClient } from './client/client.ts'
import { createWorker, type Worker, type WorkerOptions } from './worker/worker.ts'

export { waitFor }

/**
 * Test fixtures for code that uses skiplock: `test` with `db` (a fresh database), `skiplock` (a client
 * on it) and `startWorker` (workers that are stopped after the test, which fails if one cannot stop or
 * leaves a connection open). Exported as `@skiplock/core/testing`.
 */
export const test = databaseTest.extend<{
  skiplock: Client
  startWorker: (options: Omit<WorkerOptions, 'connectionString'> & { connectionString?: string }) => Promise<Worker>
}>({
  skiplock: async ({ db }, use) => {
    const client = createClient({ connectionString: db.url, resultPollIntervalMs: 200 })
    await use(client)
    await client.close()
  },
  startWorker: async ({ db }, use) => {
    const workers: Worker[] = []
    await use(async (options) => {
      const worker = createWorker({ connectionString: db.url, pollIntervalMs: 100, completionWindowMs: 1, ...options })
      workers.push(worker)
      await worker.start()
      return worker
    })
    const stopErrors = (await Promise.allSettled(workers.map((worker) => worker.stop()))).filter((result) => result.status === 'rejected')
    expect(stopErrors, 'workers that failed to stop').toEqual([])
    // A stopped worker leaves no session behind: not its pool's, not its listener's.
    await waitFor(
      async () =>
        (
          await db.query<{ count: number }>(
            `select count(*)::int as count from pg_stat_activity
             where datname = current_database() and (application_name like 'skiplock-worker%' or application_name = 'skiplock-listener')`,
          )
        ).rows[0]?.count === 0,
      { description: 'the stopped workers to close every connection', timeoutMs: 5000 },
    )
  },
})
