import {
  defineTask,
  InvalidArgumentError,
  InvalidPayloadError,
  InvalidQueueNameError,
  JobNotFoundError,
  PayloadTooLargeError,
  QueueingLockTakenError,
  createClient,
} from '@skiplock/core'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { describe, expect } from 'vitest'
import { z } from 'zod'

import { test } from '../src/testing.ts'

const sendEmail = defineTask({
  name: 'send-email',
  schema: z.object({ to: z.email(), subject: z.string().min(1) }),
  queue: 'emails',
  priority: 3,
  maxAttempts: 7,
  handler: async () => 'sent',
})

const untyped = defineTask({ name: 'untyped', handler: async () => null })

async function countJobs(db: { query: (sql: string) => Promise<{ rows: { count: number }[] }> }): Promise<number> {
  return (await db.query(`select count(*)::int as count from skiplock.all_jobs`)).rows[0]!.count
}

describe('defer', () => {
  test('enqueues a job with the task\'s defaults and the caller\'s overrides', async ({ skiplock }) => {
    const job = await skiplock.defer(sendEmail, { to: 'ada@example.com', subject: 'hi' }, { priority: 9, delayMs: 60_000 })
    expect(job).toMatchObject({
      taskName: 'send-email',
      queueName: 'emails',
      priority: 9,
      maxAttempts: 7,
      state: 'todo',
      attempts: 0,
      payload: { to: 'ada@example.com', subject: 'hi' },
    })
    expect(job.runAt.getTime()).toBeGreaterThan(Date.now() + 50_000)
    expect(await skiplock.getJob(job.id)).toMatchObject({ id: job.id, state: 'todo' })
  })

  test('rejects a payload that fails the task\'s schema with InvalidPayloadError naming the field, writing nothing', async ({ db, skiplock }) => {
    const error = await skiplock.defer(sendEmail, { to: 'not an address', subject: 'hi' }).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(InvalidPayloadError)
    expect(error).toMatchObject({ code: 'INVALID_PAYLOAD', taskName: 'send-email', message: expect.stringContaining('to:') })
    expect(await countJobs(db)).toBe(0)
  })

  test.each([
    ['a NUL character', { text: 'a\u0000b' }],
    ['a lone surrogate', { text: '\ud800' }],
    ['a bigint', { n: 10n }],
    ['a function', { f: () => 1 }],
    ['NaN', { n: Number.NaN }],
    ['a cycle', (() => { const a: Record<string, unknown> = {}; a.self = a; return a })()],
  ])('rejects a payload holding %s with InvalidPayloadError before touching the database', async (_, payload, ) => {
    const error = await createClient({ connectionString: 'postgres://nobody@127.0.0.1:1/none' })
      .defer(untyped, payload)
      .catch((error: unknown) => error)
    expect(error).toBeInstanceOf(InvalidPayloadError)
  })

  test('rejects a payload over the configured limit with PayloadTooLargeError', async ({ db }) => {
    const client = createClient({ connectionString: db.url, maxPayloadBytes: 100 })
    try {
      const error = await client.defer(untyped, { text: 'x'.repeat(200) }).catch((error: unknown) => error)
      expect(error).toBeInstanceOf(PayloadTooLargeError)
      expect(error).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', maxBytes: 100, sizeBytes: 211 })
      expect((await client.defer(untyped, { text: 'x'.repeat(50) })).state).toBe('todo')
    } finally {
      await client.close()
    }
  })

  test('rejects an invalid queue name with InvalidQueueNameError from the database', async ({ db, skiplock }) => {
    const error = await skiplock.defer(untyped, {}, { queue: 'no spaces allowed' }).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(InvalidQueueNameError)
    expect(error).toMatchObject({ code: 'INVALID_QUEUE_NAME', queueName: 'no spaces allowed' })
    expect(await countJobs(db)).toBe(0)
  })

  test('rejects invalid options with InvalidArgumentError', async ({ skiplock }) => {
    await expect(skiplock.defer(untyped, {}, { runAt: new Date('nonsense') })).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(skiplock.defer(untyped, {}, { delayMs: -1 })).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(skiplock.defer(untyped, {}, { maxAttempts: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'maxAttempts' })
  })

  test('deduplicates on a queueing lock: a typed error, or the waiting job when the caller asks', async ({ skiplock }) => {
    const keyed = defineTask({ name: 'sync-user', queueingLock: (payload: { userId: number }) => `user:${payload.userId}`, handler: async () => null })
    const first = await skiplock.defer(keyed, { userId: 1 })
    const error = await skiplock.defer(keyed, { userId: 1 }).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(QueueingLockTakenError)
    expect(error).toMatchObject({ code: 'QUEUEING_LOCK_TAKEN', queueingLock: 'user:1' })
    const existing = await skiplock.defer(keyed, { userId: 1 }, { onQueueingLockConflict: 'existing' })
    expect(existing.id).toBe(first.id)
    expect((await skiplock.defer(keyed, { userId: 2 })).queueingLock).toBe('user:2')
  })
})

describe('defer in the caller\'s transaction', () => {
  test('with a pg client: the job exists if and only if the transaction commits', async ({ db, skiplock }) => {
    const client = await db.connect()
    await client.query('begin')
    const rolledBack = await skiplock.defer(untyped, { n: 1 }, { tx: client })
    await client.query('rollback')
    await client.query('begin')
    const committed = await skiplock.defer(untyped, { n: 2 }, { tx: client })
    const many = await skiplock.deferMany(untyped, [{ n: 3 }, { n: 4 }], { tx: client })
    await client.query('commit')
    expect(await skiplock.getJob(rolledBack.id)).toBeUndefined()
    expect(await skiplock.getJob(committed.id)).toMatchObject({ payload: { n: 2 } })
    expect(many).toHaveLength(2)
    expect(await countJobs(db)).toBe(3)
  })

  test('with a Kysely transaction: the job exists if and only if the transaction commits', async ({ db, skiplock }) => {
    const kysely = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 2 }) }) })
    try {
      await kysely
        .transaction()
        .execute(async (trx) => {
          await skiplock.defer(untyped, { n: 1 }, { tx: trx })
          throw new Error('business rule failed')
        })
        .catch(() => {})
      expect(await countJobs(db)).toBe(0)
      const job = await kysely.transaction().execute((trx) => skiplock.defer(untyped, { n: 2 }, { tx: trx }))
      expect(await skiplock.getJob(job.id)).toMatchObject({ payload: { n: 2 } })
    } finally {
      await kysely.destroy()
    }
  })
})

describe('deferMany', () => {
  test('streams 100,000 jobs in batches, one statement per batch, never one per job', async ({ db, skiplock }) => {
    const client = await db.connect()
    let statements = 0
    const counting = {
      query: (text: string, values?: unknown[]) => {
        statements += 1
        return client.query(text, values)
      },
    } as unknown as pg.ClientBase
    async function* payloads() {
      for (let n = 0; n < 100_000; n++) yield { n }
    }
    const ids = await skiplock.deferMany(untyped, payloads(), { tx: counting, batchSize: 10_000 })
    expect(ids).toHaveLength(100_000)
    expect(statements).toBe(10)
    expect(await countJobs(db)).toBe(100_000)
  })

  test('writes none of the jobs when one payload is invalid', async ({ db, skiplock }) => {
    const payloads = Array.from({ length: 25 }, (_, n) => ({ to: `user${n}@example.com`, subject: 'hi' }))
    payloads[22] = { to: 'broken', subject: 'hi' }
    await expect(skiplock.deferMany(sendEmail, payloads, { batchSize: 10 })).rejects.toBeInstanceOf(InvalidPayloadError)
    expect(await countJobs(db)).toBe(0)
  })

  test('writes none of the jobs and returns ids in order when the server refuses a batch while the next is prepared', async ({ db, skiplock }) => {
    const deduplicated = defineTask({ name: 'deduplicated', queueingLock: (payload: { key: string }) => payload.key, handler: async () => null })
    await expect(
      skiplock.deferMany(deduplicated, [{ key: 'a' }, { key: 'b' }, { key: 'b' }, { key: 'c' }, { key: 'd' }, { key: 'e' }], { batchSize: 2 }),
    ).rejects.toBeInstanceOf(QueueingLockTakenError)
    expect(await countJobs(db)).toBe(0)

    const ids = await skiplock.deferMany(deduplicated, ['a', 'b', 'c', 'd', 'e'].map((key) => ({ key })), { batchSize: 2 })
    const { rows } = await db.query<{ id: string }>(`select id from skiplock.jobs order by queueing_lock`)
    expect(ids).toEqual(rows.map((row) => row.id))
  })
})

describe('inspecting and managing jobs', () => {
  test('stats, listJobs, cancel, and retry of a cancelled job', async ({ skiplock }) => {
    const a = await skiplock.defer(sendEmail, { to: 'a@example.com', subject: 'a' })
    await skiplock.defer(untyped, {})
    expect(await skiplock.cancel(a.id)).toBe('cancelled')
    expect(await skiplock.stats()).toEqual([
      expect.objectContaining({ queueName: 'default', waiting: 1, cancelled: 0 }),
      expect.objectContaining({ queueName: 'emails', waiting: 0, cancelled: 1 }),
    ])
    expect((await skiplock.listJobs({ state: 'cancelled' })).map((job) => job.id)).toEqual([a.id])
    const retried = await skiplock.retry(a.id)
    expect(retried).toMatchObject({ id: a.id, state: 'todo', attempts: 0 })
  })

  test('cancel and getJob of an unknown or malformed id', async ({ skiplock }) => {
    await expect(skiplock.cancel('424242')).rejects.toBeInstanceOf(JobNotFoundError)
    await expect(skiplock.cancel('not-a-number')).rejects.toBeInstanceOf(JobNotFoundError)
    expect(await skiplock.getJob('424242')).toBeUndefined()
    await expect(skiplock.result('424242', { timeoutMs: 2000 })).rejects.toBeInstanceOf(JobNotFoundError)
  })
})
