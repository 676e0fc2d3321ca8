import {
  createWorker,
  defineTask,
  InvalidArgumentError,
  InvalidQueueNameError,
  JobCancelledError,
  JobFailedError,
  JobTimeoutError,
  NonRetryableError,
  ResultTimeoutError,
} from '@skiplock/core'
import { describe, expect } from 'vitest'
import { z } from 'zod'

import { test, waitFor } from '../src/testing.ts'

const echo = defineTask({ name: 'echo', schema: z.object({ value: z.string() }), handler: async ({ value }) => ({ value }) })

describe('running jobs', () => {
  test('retries a failing job with backoff, then dead-letters it with every attempt\'s error stored', async ({ skiplock, startWorker }) => {
    let calls = 0
    const flaky = defineTask({
      name: 'flaky',
      maxAttempts: 3,
      backoff: { baseDelayMs: 10, maxDelayMs: 50 },
      handler: async () => {
        calls += 1
        throw new Error(`boom ${calls}`)
      },
    })
    const worker = await startWorker({ tasks: [flaky] })
    const dead = worker.once('job:failed', (event) => !event.willRetry)
    const job = await skiplock.defer(flaky, {})
    const event = await dead
    expect(event).toMatchObject({ state: 'failed', job: { id: job.id, attempts: 3 } })
    await expect(skiplock.result(job)).rejects.toBeInstanceOf(JobFailedError)
    const stored = await skiplock.getJob(job.id)
    expect(stored?.state).toBe('failed')
    expect(stored?.errors.map((error) => [error.attempt, error.message])).toEqual([
      [1, 'boom 1'],
      [2, 'boom 2'],
      [3, 'boom 3'],
    ])
    expect(stored?.errors[0]?.stack).toContain('worker.test.ts')
  })

  test('fails a job at once when its handler throws NonRetryableError', async ({ skiplock, startWorker }) => {
    const strict = defineTask({
      name: 'strict',
      handler: async () => {
        throw new NonRetryableError('the account is closed')
      },
    })
    const worker = await startWorker({ tasks: [strict] })
    const failed = worker.once('job:failed')
    const job = await skiplock.defer(strict, {})
    expect(await failed).toMatchObject({ willRetry: false, job: { attempts: 1 } })
    expect((await skiplock.getJob(job.id))?.errors[0]).toMatchObject({ message: 'the account is closed', name: 'NonRetryableError' })
  })

  test('fails rows written by hand with an unknown task or a bad payload, with the reason, and keeps running', async ({ db, skiplock, startWorker }) => {
    const worker = await startWorker({ tasks: [echo] })
    const failures: { id: string; message: unknown }[] = []
    worker.on('job:failed', ({ job, error }) => failures.push({ id: job.id, message: (error as Error).message }))
    const { rows } = await db.query(`select id from skiplock.defer_jobs(array['no-such-task', 'echo'], array['{}', '{"value": 42}'])`)
    await waitFor(() => failures.length === 2, { description: 'both bad jobs to fail' })
    expect(failures.find((failure) => failure.id === rows[0].id)?.message).toMatch(/task "no-such-task" is not registered/)
    expect(failures.find((failure) => failure.id === rows[1].id)?.message).toMatch(/value: /)
    for (const { id } of rows) expect((await skiplock.getJob(id))?.state).toBe('failed')

    const good = await skiplock.defer(echo, { value: 'still running' })
    expect(await skiplock.result(good)).toEqual({ value: 'still running' })
  })

  test('fails a job whose result is over maxResultBytes, without a retry, and goes on completing others', async ({ skiplock, startWorker }) => {
    const sized = defineTask({ name: 'sized', schema: z.object({ bytes: z.number() }), handler: async ({ bytes }) => 'x'.repeat(bytes) })
    const worker = await startWorker({ tasks: [sized], maxResultBytes: 1000 })
    const failed = worker.once('job:failed')
    const tooBig = await skiplock.defer(sized, { bytes: 1000 })
    const event = await failed
    expect(event).toMatchObject({ willRetry: false, state: 'failed' })
    expect((event.error as Error).message).toBe("the handler's result cannot be stored: it is 1002 bytes of JSON, over maxResultBytes (1000)")
    await expect(skiplock.result(tooBig)).rejects.toBeInstanceOf(JobFailedError)
    expect((await skiplock.getJob(tooBig.id))?.attempts).toBe(1)
    // Just under the limit (998 characters and two quotes) is stored.
    expect(await skiplock.result(await skiplock.defer(sized, { bytes: 998 }), { timeoutMs: 5000 })).toHaveLength(998)
  })

  test('does not run a delayed job before its time', async ({ skiplock, startWorker }) => {
    const worker = await startWorker({ tasks: [echo] })
    const started: string[] = []
    worker.on('job:started', ({ job }) => started.push(job.id))
    const later = await skiplock.defer(echo, { value: 'later' }, { delayMs: 1500 })
    const now = await skiplock.defer(echo, { value: 'now' })
    await skiplock.result(now)
    expect(started).toEqual([now.id])
    expect(await skiplock.result(later, { timeoutMs: 5000 })).toEqual({ value: 'later' })
    expect((await skiplock.getJob(later.id))!.startedAt!.getTime()).toBeGreaterThanOrEqual(later.runAt.getTime())
  })

  test('runs jobs sharing a lock one at a time, in creation order, even with spare concurrency', async ({ skiplock, startWorker }) => {
    const log: { key: string; n: number; event: 'start' | 'end' }[] = []
    const keyed = defineTask({
      name: 'keyed',
      lock: (payload: { key: string; n: number }) => payload.key,
      handler: async ({ key, n }: { key: string; n: number }) => {
        log.push({ key, n, event: 'start' })
        await new Promise((resolve) => setTimeout(resolve, 5))
        log.push({ key, n, event: 'end' })
      },
    })
    await startWorker({ tasks: [keyed], concurrency: 10 })
    const payloads = Array.from({ length: 30 }, (_, n) => ({ key: `k${n % 3}`, n }))
    const ids = await skiplock.deferMany(keyed, payloads)
    await Promise.all(ids.map((id) => skiplock.result(id, { timeoutMs: 20_000 })))
    for (const key of ['k0', 'k1', 'k2']) {
      const events = log.filter((entry) => entry.key === key)
      // Strictly alternating start/end means no two jobs of the key overlapped.
      expect(events.map((entry) => entry.event)).toEqual(events.map((_, index) => (index % 2 === 0 ? 'start' : 'end')))
      const order = events.filter((entry) => entry.event === 'start').map((entry) => entry.n)
      expect(order).toEqual([...order].sort((a, b) => a - b))
    }
  })
})

describe('notifications', () => {
  test('a job announced while the worker has no room is fetched as soon as a slot frees, not at the next poll', async ({ skiplock, startWorker }) => {
    const started: number[] = []
    const step = defineTask({
      name: 'step',
      schema: z.object({ n: z.number(), ms: z.number() }),
      handler: async ({ n, ms }) => {
        started.push(n)
        await new Promise((resolve) => setTimeout(resolve, ms))
        return n
      },
    })
    // No poll within the test: only notifications and finished jobs can start a fetch.
    await startWorker({ tasks: [step], concurrency: 1, batchSize: 4, pollIntervalMs: 3_600_000 })
    const jobs = []
    jobs.push(await skiplock.defer(step, { n: 0, ms: 1000 }))
    for (let n = 1; n <= 4; n += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      jobs.push(await skiplock.defer(step, { n, ms: 10 }))
    }
    for (const job of jobs) await skiplock.result(job, { timeoutMs: 5000 })
    expect(started).toEqual([0, 1, 2, 3, 4])
  })
})

describe('connections', () => {
  test('holds two connections by default, whatever its concurrency: claims go through the listening one', async ({ db, skiplock, startWorker }) => {
    const workerConnections = async () =>
      (
        await db.query(
          `select application_name as name, query from pg_stat_activity
           where datname = current_database() and (application_name like 'skiplock-worker%' or application_name = 'skiplock-listener')`,
        )
      ).rows as { name: string; query: string }[]
    const worker = await startWorker({ tasks: [echo], concurrency: 200 })
    const ids = await skiplock.deferMany(echo, Array.from({ length: 2000 }, (_, n) => ({ value: `v${n}` })))
    let peak = 0
    const sampling = (async () => {
      while (worker.runningCount > 0 || peak === 0) {
        peak = Math.max(peak, (await workerConnections()).length)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })()
    await Promise.all(ids.map((id) => skiplock.result(id, { timeoutMs: 20_000 })))
    await sampling
    expect(peak).toBe(2)
    const listener = (await workerConnections()).find((connection) => connection.name === 'skiplock-listener')
    expect(listener?.query).toMatch(/fetch_jobs/)
  })

  test('a job claimed for the worker whose rows never arrived goes back to the queue after a lease and runs', async ({ db, startWorker }) => {
    const live = await startWorker({ tasks: [echo], leaseSeconds: 1, heartbeatIntervalMs: 200, pollIntervalMs: 200 })
    // Deferred and claimed for the live worker in one transaction, so the worker cannot take it first; the
    // claim's rows go nowhere, as when the connection dies after the commit.
    await db.query(`select skiplock.defer_jobs(array['echo'], array['{"value": "stranded"}']); select skiplock.fetch_jobs(${Number(live.workerId)})`)
    const finished = await waitFor(async () => (await db.query(`select state, attempts, result from skiplock.finished_jobs`)).rows[0], {
      timeoutMs: 5000,
      description: 'the stranded job to run',
    })
    expect(finished).toEqual({ state: 'succeeded', attempts: 1, result: { value: 'stranded' } })
  })

  test('refuses options it cannot honour before connecting', async ({ db, startWorker }) => {
    for (const options of [
      { name: 'x\u0000options\u0000-c search_path=evil' },
      { leaseSeconds: 1e10 },
      { pollIntervalMs: 1e10 },
      { shutdownGracePeriodMs: 2 ** 31 },
      { maxPayloadBytes: 2 ** 31 },
    ]) {
      expect(() => createWorker({ connectionString: db.url, tasks: [], ...options }), JSON.stringify(options)).toThrow(InvalidArgumentError)
    }
    expect(() => createWorker({ connectionString: db.url, tasks: [], queues: ['q\u0000'] })).toThrow(InvalidQueueNameError)
    // The largest values allowed still start.
    await startWorker({ tasks: [], leaseSeconds: 2_147_483, pollIntervalMs: 2 ** 31 - 1 })
  })
})

describe('cancellation and timeouts', () => {
  test('cancelling a waiting job makes result() reject with JobCancelledError', async ({ skiplock }) => {
    const job = await skiplock.defer(echo, { value: 'x' })
    // Attached before the cancel: the outcome may arrive before cancel() itself returns.
    const outcome = expect(skiplock.result(job)).rejects.toBeInstanceOf(JobCancelledError)
    expect(await skiplock.cancel(job.id)).toBe('cancelled')
    await outcome
  })

  test('cancelling a running job fires its abort signal and the job ends as cancelled', async ({ skiplock, startWorker }) => {
    let signalReason: unknown
    const patient = defineTask({
      name: 'patient',
      handler: async (_payload, { signal }) => {
        await new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)))
      },
    })
    const worker = await startWorker({ tasks: [patient] })
    const started = worker.once('job:started')
    const job = await skiplock.defer(patient, {})
    await started
    const failed = worker.once('job:failed')
    worker.once('job:failed').then(() => {})
    worker.on('job:failed', ({ error }) => {
      signalReason = error
    })
    expect(await skiplock.cancel(job.id)).toBe('doing')
    expect(await failed).toMatchObject({ state: 'cancelled', willRetry: false })
    expect(signalReason).toBeInstanceOf(JobCancelledError)
    await expect(skiplock.result(job)).rejects.toBeInstanceOf(JobCancelledError)
  })

  test('a handler past its timeout is aborted with JobTimeoutError and the attempt is retried', async ({ skiplock, startWorker }) => {
    let attempts = 0
    const slow = defineTask({
      name: 'slow',
      timeoutMs: 100,
      backoff: { baseDelayMs: 1 },
      handler: async (_payload, { signal }) => {
        attempts += 1
        if (attempts === 1) await new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)))
        return 'second time lucky'
      },
    })
    const worker = await startWorker({ tasks: [slow] })
    const failed = worker.once('job:failed')
    const job = await skiplock.defer(slow, {})
    const failure = await failed
    expect(failure.error).toBeInstanceOf(JobTimeoutError)
    expect(failure.willRetry).toBe(true)
    expect(await skiplock.result(job, { timeoutMs: 10_000 })).toBe('second time lucky')
  })
})

describe('transactional handlers', () => {
  test('commit their own writes together with the completion, or neither', async ({ db, skiplock, startWorker }) => {
    await db.query(`create table public.ledger (job_id bigint, amount int)`)
    let calls = 0
    const charge = defineTask({
      name: 'charge',
      transactional: true,
      backoff: { baseDelayMs: 1 },
      handler: async (payload: { amount: number }, { tx, job }) => {
        calls += 1
        await tx.query(`insert into public.ledger (job_id, amount) values ($1, $2)`, [job.id, payload.amount])
        if (calls === 1) throw new Error('card declined, try again')
        return { charged: payload.amount }
      },
    })
    await startWorker({ tasks: [charge] })
    const job = await skiplock.defer(charge, { amount: 42 })
    expect(await skiplock.result(job, { timeoutMs: 10_000 })).toEqual({ charged: 42 })
    // The first attempt's insert rolled back with it; the second committed with the completion.
    expect((await db.query(`select job_id, amount from public.ledger`)).rows).toEqual([{ job_id: job.id, amount: 42 }])
  })

  test('may not leave their transaction idle past the lease: the server ends it and the writes roll back', async ({ db, skiplock, startWorker }) => {
    await db.query(`create table public.effects (value text not null)`)
    const idler = defineTask({
      name: 'idler',
      transactional: true,
      maxAttempts: 1,
      handler: async (_payload: Record<string, never>, { tx }) => {
        await tx.query(`insert into public.effects values ('written')`)
        await new Promise((resolve) => setTimeout(resolve, 1500))
        return 'done'
      },
    })
    const worker = await startWorker({ tasks: [idler], leaseSeconds: 1, heartbeatIntervalMs: 200 })
    const failed = worker.once('job:failed')
    await skiplock.defer(idler, {})
    expect(await failed).toMatchObject({ willRetry: false, error: { code: '25P03' } })
    expect((await db.query(`select count(*)::int as count from public.effects`)).rows[0].count).toBe(0)
  })

  test('never take the last pooled connection, so other jobs and heartbeats keep going', async ({ skiplock, startWorker }) => {
    let releaseAll: () => void = () => {}
    const gate = new Promise<void>((resolve) => (releaseAll = resolve))
    let holding = 0
    const hold = defineTask({
      name: 'hold',
      transactional: true,
      handler: async (_payload, { tx }) => {
        await tx.query('select 1')
        holding += 1
        await gate
      },
    })
    const worker = await startWorker({ tasks: [hold, echo], poolSize: 2, concurrency: 5 })
    const held = await skiplock.deferMany(hold, [{}, {}, {}])
    await waitFor(() => holding === 1, { description: 'one transactional handler to hold a connection' })
    // With both connections held by transactions this job could be neither fetched nor completed.
    const plain = await skiplock.defer(echo, { value: 'through the free connection' })
    expect(await skiplock.result(plain, { timeoutMs: 5000 })).toEqual({ value: 'through the free connection' })
    expect(holding).toBe(1)
    expect(worker.runningCount).toBeGreaterThanOrEqual(2)
    releaseAll()
    await Promise.all(held.map((id) => skiplock.result(id, { timeoutMs: 10_000 })))
  })
})

describe('the completion hook', () => {
  test('writes in the transaction that completes a batch, and a failing hook loses no outcome', async ({ db, skiplock, startWorker }) => {
    await db.query(`create table public.outputs (job_id bigint primary key, output jsonb)`)
    let hookFailures = 1
    const worker = await startWorker({
      tasks: [echo],
      onJobsCompleting: async (tx, jobs) => {
        if (hookFailures-- > 0) throw new Error('results store unavailable')
        await tx.query(`insert into public.outputs (job_id, output) select * from unnest($1::bigint[], $2::jsonb[])`, [
          jobs.map((job) => job.id),
          jobs.map((job) => JSON.stringify(job.result)),
        ])
      },
    })
    const errors: string[] = []
    worker.on('error', ({ during }) => errors.push(during))
    const ids = await skiplock.deferMany(echo, Array.from({ length: 50 }, (_, n) => ({ value: `v${n}` })))
    await Promise.all(ids.map((id) => skiplock.result(id, { timeoutMs: 10_000 })))
    expect(errors).toEqual(['complete'])
    const { rows } = await db.query(`select count(*)::int as count, count(distinct job_id)::int as distinct_jobs from public.outputs`)
    expect(rows[0]).toEqual({ count: 50, distinct_jobs: 50 })
  })
})

describe('awaiting results', () => {
  test('many waiters share one listening connection', async ({ db, skiplock, startWorker }) => {
    const ids = await skiplock.deferMany(echo, Array.from({ length: 50 }, (_, n) => ({ value: `v${n}` })))
    const results = Promise.all(ids.map((id) => skiplock.result(id, { timeoutMs: 10_000 })))
    await waitFor(async () => (await db.query(`select count(*)::int as count from pg_stat_activity where application_name = 'skiplock-results' and datname = current_database()`)).rows[0].count === 1, {
      description: 'the results listener',
    })
    await startWorker({ tasks: [echo] })
    expect((await results).map((result) => (result as { value: string }).value)).toEqual(ids.map((_, n) => `v${n}`))
    const { rows } = await db.query(`select count(*)::int as count from pg_stat_activity where application_name = 'skiplock-results' and datname = current_database()`)
    expect(rows[0].count).toBe(1)
  })

  test('result() rejects with ResultTimeoutError when the job does not finish in time', async ({ skiplock }) => {
    const job = await skiplock.defer(echo, { value: 'nobody runs me' })
    const error = await skiplock.result(job, { timeoutMs: 300 }).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(ResultTimeoutError)
    expect(error).toMatchObject({ code: 'RESULT_TIMEOUT', jobId: job.id, timeoutMs: 300 })
  })

  test('a killed listening connection only adds latency: the worker reports it and keeps working', async ({ db, skiplock, startWorker }) => {
    const worker = await startWorker({ tasks: [echo], pollIntervalMs: 200 })
    const errors: string[] = []
    worker.on('error', ({ during }) => errors.push(during))
    const listeners = async () =>
      (await db.query(`select count(*)::int as count from pg_stat_activity where application_name = 'skiplock-listener' and datname = current_database()`)).rows[0].count
    // The listener connects after start() returns: kill it once it is there.
    await waitFor(async () => (await listeners()) === 1, { description: 'the listener to connect' })
    await db.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'skiplock-listener' and datname = current_database()`)
    await waitFor(() => errors.includes('listen'), { description: 'the listener error event' })
    const job = await skiplock.defer(echo, { value: 'after the kill' })
    expect(await skiplock.result(job, { timeoutMs: 5000 })).toEqual({ value: 'after the kill' })
    await waitFor(async () => (await listeners()) === 1, { description: 'the listener to reconnect' })
  })
})

describe('periodic tasks', () => {
  test('three workers defer each tick exactly once', async ({ db, startWorker }) => {
    const tick = defineTask({ name: 'tick', handler: async () => null })
    for (let i = 0; i < 3; i++) await startWorker({ tasks: [tick], periodic: [{ task: tick, cron: '* * * * * *' }] })
    await waitFor(async () => (await db.query(`select count(*)::int as count from skiplock.all_jobs`)).rows[0].count >= 3, {
      description: 'three ticks',
      timeoutMs: 10_000,
    })
    const { rows } = await db.query(`select run_at, count(*)::int as count from skiplock.all_jobs group by run_at order by run_at`)
    expect(rows.every((row) => row.count === 1)).toBe(true)
    expect(rows.every((row) => row.run_at.getMilliseconds() === 0)).toBe(true)
  })

  test('an invalid cron expression is rejected when the worker is created', async ({ startWorker }) => {
    const tick = defineTask({ name: 'tick', handler: async () => null })
    await expect(startWorker({ tasks: [tick], periodic: [{ task: tick, cron: 'every tuesday' }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('every tuesday'),
    })
  })
})

describe('graceful stop', () => {
  test('lets running handlers finish, gives buffered jobs back, and leaves nothing held', async ({ db, skiplock, startWorker }) => {
    const finished: number[] = []
    const sleepy = defineTask({
      name: 'sleepy',
      handler: async ({ n }: { n: number }) => {
        await new Promise((resolve) => setTimeout(resolve, 300))
        finished.push(n)
      },
    })
    const worker = await startWorker({ tasks: [sleepy], concurrency: 2, batchSize: 4 })
    const started = worker.once('job:started')
    await skiplock.deferMany(sleepy, Array.from({ length: 10 }, (_, n) => ({ n })))
    await started
    await worker.stop()
    expect(finished.length).toBeGreaterThanOrEqual(1)
    const { rows } = await db.query(`select state, count(*)::int as count, sum(attempts)::int as attempts from skiplock.jobs group by state`)
    // Nothing is left running, and jobs that never ran did not use up an attempt.
    expect(rows).toEqual([{ state: 'todo', count: 10 - finished.length, attempts: 0 }])
    expect((await db.query(`select count(*)::int as count from skiplock.workers`)).rows[0].count).toBe(0)
  })

  test('aborts handlers still running after the grace period and returns their jobs', async ({ db, skiplock, startWorker }) => {
    let reason: unknown
    const stubborn = defineTask({
      name: 'stubborn',
      handler: async (_payload, { signal }) => {
        await new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject((reason = signal.reason))))
      },
    })
    const worker = await startWorker({ tasks: [stubborn], shutdownGracePeriodMs: 200 })
    const started = worker.once('job:started')
    const job = await skiplock.defer(stubborn, {})
    await started
    await worker.stop()
    expect((reason as Error).name).toBe('WorkerStoppedError')
    expect((await db.query(`select state, attempts from skiplock.jobs where id = $1`, [job.id])).rows).toEqual([{ state: 'todo', attempts: 0 }])
  })

  test('keeps heartbeating while it stops, so a job that outlives the lease is not rescued from under it', async ({ db, skiplock, startWorker }) => {
    const slow = defineTask({
      name: 'slow',
      handler: async () => {
        await new Promise((resolve) => setTimeout(resolve, 1800))
        return 'done'
      },
    })
    const worker = await startWorker({ tasks: [slow], leaseSeconds: 1, heartbeatIntervalMs: 200, shutdownGracePeriodMs: 5000 })
    const started = worker.once('job:started')
    const job = await skiplock.defer(slow, {})
    await started
    const stopped = worker.stop()
    // Another worker's maintenance, running all through the stop.
    const rescued: string[] = []
    let isStopping = true
    const maintenance = (async () => {
      while (isStopping) {
        rescued.push(...(await db.query<{ id: string }>(`select id from skiplock.rescue_jobs()`)).rows.map((row) => row.id))
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    await stopped
    isStopping = false
    await maintenance
    expect(rescued).toEqual([])
    expect(await skiplock.getJob(job.id)).toMatchObject({ state: 'succeeded', attempts: 1, result: 'done' })
  })
})

describe('observability', () => {
  test('logs through the given logger, and no line carries the connection password', async ({ db, skiplock, startWorker }) => {
    const url = new URL(db.url)
    // Trust auth ignores a password, so one is always present to be leaked.
    if (!url.password) url.password = 'trust-ignores-this-password'
    const lines: string[] = []
    const capture = (level: string) => (fields: object, message?: string) => lines.push(JSON.stringify({ level, ...fields, message }))
    const logger = { debug: capture('debug'), info: capture('info'), warn: capture('warn'), error: capture('error') }
    const failing = defineTask({ name: 'failing', maxAttempts: 1, handler: async () => { throw new Error('nope') } })
    const worker = await startWorker({ tasks: [failing, echo], logger, connectionString: url.toString() })
    const failed = worker.once('job:failed')
    await skiplock.defer(failing, {})
    await failed
    await db.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'skiplock-listener' and datname = current_database()`)
    await waitFor(() => lines.some((line) => line.includes('"during":"listen"')), { description: 'the listener error to be logged' })
    await worker.stop()
    expect(lines.some((line) => line.includes('worker started'))).toBe(true)
    expect(lines.some((line) => line.includes('job failed'))).toBe(true)
    expect(lines.filter((line) => line.includes(url.password))).toEqual([])
  })
})
