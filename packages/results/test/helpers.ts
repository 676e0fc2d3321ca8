import { createClient, createWorker, type Client, type Worker, type WorkerOptions } from '@skiplock/core'
import { test as databaseTest, type TestDatabase, waitFor } from '@skiplock/schema/testing'
import { expect } from 'vitest'

export { waitFor }

/**
 * `test` with `db` (a fresh database), `skiplock` (a client on it) and `startWorker` (workers that are
 * stopped after the test; a test that leaves one running fails).
 */
export const test = databaseTest.extend<{
  skiplock: Client
  startWorker: (options: Omit<WorkerOptions, 'connectionString'>) => Promise<Worker>
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
    // A stopped pool closes its sockets after stop() resolves; wait for them, or dropping the database
    // terminates them and the worker reports an error that is not this test's.
    await waitFor(
      async () =>
        (await count(
          db,
          `select count(*)::int as count from pg_stat_activity
           where datname = current_database() and (application_name like 'skiplock-worker%' or application_name = 'skiplock-listener')`,
        )) === 0,
      { description: 'the stopped workers to close every connection', timeoutMs: 5000 },
    )
  },
})

/** Counts rows with one `count(*)::int as count` query. */
export async function count(db: TestDatabase, sql: string, values?: unknown[]): Promise<number> {
  return (await db.query<{ count: number }>(sql, values)).rows[0]!.count
}
