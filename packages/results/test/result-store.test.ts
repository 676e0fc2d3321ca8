import { setTimeout as sleep } from 'node:timers/promises'

import { type CompletionHook, defineTask, InvalidArgumentError } from '@skiplock/core'
import { InvalidSchemaNameError } from '@skiplock/schema'
import { describe, expect } from 'vitest'

import { createResultStore, getResult, listResults, summarizeResults } from '../src/index.ts'
import { count, test, waitFor } from './helpers.ts'

const work = defineTask({
  name: 'work',
  handler: async ({ n }: { n: number }) => {
    await sleep(Math.random() * 5)
    return { n }
  },
})

describe('createResultStore', () => {
  test('stores exactly one result per job when 4 workers complete 500 jobs at once', async ({ db, skiplock, startWorker }) => {
    const workerNames = ['w_1', 'w_2', 'w_3', 'w_4']
    await Promise.all(
      workerNames.map((workerName) =>
        startWorker({ name: workerName, tasks: [work], concurrency: 8, onJobsCompleting: createResultStore({ workerName }).hook }),
      ),
    )
    const ids = await skiplock.deferMany(work, Array.from({ length: 500 }, (_, n) => ({ n })))
    await waitFor(async () => (await summarizeResults(db.pool, { queueName: 'default' })).succeededJobs === 500, {
      description: '500 jobs to succeed',
      timeoutMs: 30_000,
    })

    const summary = await summarizeResults(db.pool, { queueName: 'default' })
    expect(summary).toMatchObject({ queueName: 'default', results: 500, distinctJobs: 500, succeededJobs: 500 })
    expect(summary.workers.reduce((sum, worker) => sum + worker.jobsCompleted, 0)).toBe(500)
    for (const worker of summary.workers) {
      expect(workerNames).toContain(worker.workerName)
      expect(worker.lastFinishedAt.getTime()).toBeGreaterThanOrEqual(worker.firstFinishedAt.getTime())
      expect(worker.jobsPerMinute).toBeGreaterThan(0)
    }

    // Each result was written by the transaction that completed its job, with that job's output and attempt...
    const matching = await count(
      db,
      `select count(*)::int as count
       from skiplock.job_results as r
       join skiplock.finished_jobs as f
         on f.id = r.job_id and f.xmin::text = r.xmin::text and f.result = r.output and f.attempts = r.attempt`,
    )
    expect(matching).toBe(500)
    // ...and completions shared transactions: results are written in batches, not one by one.
    expect(await count(db, `select count(distinct xmin::text)::int as count from skiplock.job_results`)).toBeLessThan(500)

    const first = await getResult<{ n: number }>(db.pool, ids[0]!)
    expect(first).toMatchObject({ jobId: ids[0], queueName: 'default', taskName: 'work', attempt: 1, output: { n: 0 } })
    expect(workerNames).toContain(first?.workerName)
    const byWorker = summary.workers[0]!
    const listed = await listResults(db.pool, { workerName: byWorker.workerName, limit: 1000 })
    expect(listed).toHaveLength(byWorker.jobsCompleted)
    expect(new Set(listed.map((result) => result.workerName))).toEqual(new Set([byWorker.workerName]))
    expect(listed.map((result) => result.finishedAt.getTime())).toEqual(listed.map((result) => result.finishedAt.getTime()).sort((a, b) => b - a))
  })

  test('a failing hook rolls the completion back, and the worker retries until the results are stored', async ({ db, skiplock, startWorker }) => {
    const store = createResultStore({ workerName: 'w_1' })
    let isStoreDown = true
    let hookFailures = 0
    const hook: CompletionHook = async (tx, jobs) => {
      if (isStoreDown) {
        hookFailures += 1
        throw new Error('result store unavailable')
      }
      await store.hook(tx, jobs)
    }
    let executions = 0
    const counted = defineTask({
      name: 'counted',
      handler: async ({ n }: { n: number }) => {
        executions += 1
        return { n }
      },
    })
    const errors: string[] = []
    const worker = await startWorker({ tasks: [counted], concurrency: 4, onJobsCompleting: hook })
    worker.on('error', ({ during }) => errors.push(during))
    await skiplock.deferMany(counted, Array.from({ length: 20 }, (_, n) => ({ n })))

    await waitFor(() => hookFailures >= 3, { description: 'the hook to fail three times' })
    // Nothing completed without its result: the failed hook took the completion down with it.
    expect(await count(db, `select count(*)::int as count from skiplock.finished_jobs`)).toBe(0)
    expect(await count(db, `select count(*)::int as count from skiplock.job_results`)).toBe(0)
    expect(errors).toContain('complete')

    isStoreDown = false
    await waitFor(async () => (await summarizeResults(db.pool, { queueName: 'default' })).results === 20, { description: 'all 20 results' })
    expect(await summarizeResults(db.pool, { queueName: 'default' })).toMatchObject({ results: 20, distinctJobs: 20, succeededJobs: 20 })
    // The outcomes waited in the worker: no handler ran twice, no attempt was spent.
    expect(executions).toBe(20)
    expect(await count(db, `select count(*)::int as count from skiplock.job_results where attempt = 1`)).toBe(20)
  })

  test("stores a transactional task's result in the task's own transaction, with its writes", async ({ db, skiplock, startWorker }) => {
    await db.query(`create table public.transfers (job_id bigint primary key)`)
    const transfer = defineTask({
      name: 'transfer',
      transactional: true,
      backoff: { baseDelayMs: 1, maxDelayMs: 1 },
      handler: async ({ n }: { n: number }, { tx, job }) => {
        await tx.query(`insert into public.transfers (job_id) values ($1)`, [job.id])
        return { n }
      },
    })
    const store = createResultStore({ workerName: 'w_1' })
    let hookCalls = 0
    // The first completion's hook fails: the handler's write must roll back with it, and the job run again.
    const hook: CompletionHook = async (tx, jobs) => {
      hookCalls += 1
      if (hookCalls === 1) throw new Error('result store unavailable')
      await store.hook(tx, jobs)
    }
    const worker = await startWorker({ tasks: [transfer], concurrency: 3, onJobsCompleting: hook })
    worker.on('error', () => {})
    const ids = await skiplock.deferMany(transfer, [{ n: 1 }, { n: 2 }, { n: 3 }])
    await waitFor(async () => (await count(db, `select count(*)::int as count from skiplock.job_results`)) === 3, { description: 'three results' })

    // One transaction per job wrote the handler's row, the completion and the result: the same xmin on all three.
    const { rows } = await db.query(
      `select r.job_id, r.attempt, r.output, t.xmin::text = r.xmin::text and f.xmin::text = r.xmin::text as is_one_transaction, r.xmin::text as xid
       from skiplock.job_results as r
       join skiplock.finished_jobs as f on f.id = r.job_id
       join public.transfers as t on t.job_id = r.job_id
       order by r.job_id`,
    )
    expect(rows.map((row) => ({ job_id: row.job_id, output: row.output, is_one_transaction: row.is_one_transaction }))).toEqual(
      ids.map((id, index) => ({ job_id: id, output: { n: index + 1 }, is_one_transaction: true })),
    )
    // Alone: no two transactional jobs shared a transaction.
    expect(new Set(rows.map((row) => row.xid)).size).toBe(3)
    // The job whose hook failed ran again; its first attempt left no write behind.
    expect(rows.map((row) => row.attempt).sort()).toEqual([1, 1, 2])
    expect(await count(db, `select count(*)::int as count from public.transfers`)).toBe(3)
  })

  test('has no result for a job that has not succeeded', async ({ db, skiplock }) => {
    const job = await skiplock.defer(work, { n: 1 })
    expect(await getResult(db.pool, job.id)).toBeUndefined()
    expect(await listResults(db.pool, { queueName: 'default' })).toEqual([])
    expect(await summarizeResults(db.pool, { queueName: 'default' })).toEqual({
      queueName: 'default',
      results: 0,
      distinctJobs: 0,
      succeededJobs: 0,
      workers: [],
    })
  })

  test('rejects an empty worker name and an invalid schema before any work', () => {
    expect(() => createResultStore({ workerName: '' })).toThrow(InvalidArgumentError)
    expect(() => createResultStore({ workerName: 'w_1', schema: 'Not Valid' })).toThrow(InvalidSchemaNameError)
  })
})
