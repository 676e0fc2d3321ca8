import {
  createClient,
  defineTask,
  InvalidArgumentError,
  InvalidPayloadError,
  InvalidQueueNameError,
  type Job,
  PayloadTooLargeError,
  SkiplockError,
} from '@skiplock/core'
import fc from 'fast-check'
import type pg from 'pg'
import { describe, expect } from 'vitest'

import { test, waitFor } from '../src/testing.ts'

// What crosses the API, decided here and held by these tests:
// - Payloads and results are JSON values. Numbers are JavaScript numbers: every finite double, including
//   integers past 2^53 and 1e300, reads back as the same double (jsonb keeps the exact decimal). -0 reads
//   back as 0, and jsonb does not keep the order of object keys.
// - A property whose value is undefined is left out, as JSON does (optional fields); undefined as the value
//   itself or inside an array is refused, since JSON would turn it into null.
// - Refused before any SQL: NaN, Infinity, bigint, functions, symbols, cycles, \u0000 and unpaired
//   surrogates in keys or text, nesting deeper than 1000 levels, and JSON text over the size limit.

const echo = defineTask({ name: 'echo', handler: (payload: unknown) => payload })

/** A pg client that records each statement it is asked to run, to prove that nothing was sent. */
function recording(client: pg.ClientBase): { tx: pg.ClientBase; statements: string[] } {
  const statements: string[] = []
  const tx = {
    query: (text: string, values?: unknown[]) => {
      statements.push(text)
      return client.query(text, values)
    },
  } as unknown as pg.ClientBase
  return { tx, statements }
}

async function countJobs(db: { query: (sql: string) => Promise<{ rows: { count: number }[] }> }): Promise<number> {
  return (await db.query(`select count(*)::int as count from skiplock.all_jobs`)).rows[0]!.count
}

const storableText = (maxLength: number) => fc.string({ unit: 'binary', maxLength }).filter((text) => !text.includes('\0'))

/** Numbers that JSON carries but a careless store would change. */
const edgeNumber = fc.constantFrom(2 ** 53, 2 ** 53 + 2, 2 ** 64, -(2 ** 63), Number.MAX_VALUE, Number.MIN_VALUE, 1e300, 1e-7, 0.1 + 0.2, 123456789.123456789)

const key = fc.oneof(storableText(8), fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', ''))

/** JSON values that must round-trip exactly (up to key order): no -0, whose sign JSON drops. */
const { value: jsonValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 4 },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0)),
    edgeNumber,
    storableText(20),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(key, tie('value'), { maxKeys: 5, noNullPrototype: true }),
  ),
}))

function nest(depth: number): unknown {
  let value: unknown = 0
  for (let level = 0; level < depth; level++) value = level % 2 === 0 ? [value] : { level: value }
  return value
}

function cycle(): unknown {
  const node: Record<string, unknown> = { name: 'node' }
  node.children = [{ parent: node }]
  return node
}

/** A value JSON or jsonb cannot hold, with the error it must get. */
const badLeaf: fc.Arbitrary<{ value: unknown; kind: string }> = fc.oneof(
  storableText(5).map((text) => ({ kind: 'nul', value: `${text}\u0000${text}` })),
  fc.constantFrom('\ud800', 'a\udfffb', '\udc00\ud800').map((text) => ({ kind: 'surrogate', value: text })),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY).map((value) => ({ kind: 'non-finite', value })),
  fc.bigInt().map((value) => ({ kind: 'bigint', value })),
  fc.constant({ kind: 'function', value: () => 1 }),
  fc.constant({ kind: 'symbol', value: Symbol('s') }),
  fc.constant({ kind: 'cycle', value: cycle() }),
  fc.integer({ min: 1001, max: 1200 }).map((depth) => ({ kind: 'deep', value: nest(depth) })),
)

/** An invalid payload: a bad leaf somewhere inside valid JSON, a bad key, or an undefined array item. */
// Weighted so that each of the twelve kinds comes up about equally often.
const invalidPayload: fc.Arbitrary<{ value: unknown; kind: string }> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.tuple(badLeaf, fc.array(fc.oneof(fc.constant('array' as const), key), { maxLength: 4 })).map(([leaf, path]) => ({
      kind: leaf.kind,
      value: path.reduceRight<unknown>((inner, step) => (step === 'array' ? [1, inner] : Object.defineProperty({}, step, { value: inner, enumerable: true })), leaf.value),
    })),
  },
  fc.constantFrom('a\u0000', '\ud800').map((badKey) => ({ kind: 'bad key', value: { ok: 1, [badKey]: 2 } })),
  fc.integer({ min: 0, max: 3 }).map((index) => {
    const items: unknown[] = [1, 2, 3, 4]
    items[index] = undefined
    return { kind: 'undefined in array', value: { items } }
  }),
  fc.constant({ kind: 'undefined', value: undefined }),
)

describe('R16: payloads and results', () => {
  test('an invalid payload gets a typed error before any SQL, and a batch holding one writes nothing', async ({ db }) => {
    const maxPayloadBytes = 4096
    const client = createClient({ connectionString: db.url, maxPayloadBytes })
    const session = await db.connect()
    const { tx, statements } = recording(session)
    let cases = 0
    let rejectedBeforeSql = 0
    let halfEnqueued = 0
    const kinds = new Set<string>()
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            { weight: 11, arbitrary: invalidPayload },
            // Just over the limit, in bytes of UTF-8, with characters of every width.
            fc.tuple(fc.integer({ min: 1, max: 64 }), fc.constantFrom('x', 'é', '€', '😀')).map(([overBy, unit]) => {
              const overhead = Buffer.byteLength(JSON.stringify({ text: '' }))
              const text = unit.repeat(Math.ceil((maxPayloadBytes - overhead + overBy) / Buffer.byteLength(unit)))
              return { kind: 'oversized', value: { text } }
            }),
          ),
          fc.array(jsonValue, { maxLength: 6 }),
          fc.nat(),
          fc.integer({ min: 1, max: 3 }),
          async (bad, good, at, batchSize) => {
            cases += 1
            kinds.add(bad.kind)
            statements.length = 0
            const error = await client.defer(echo, bad.value, { tx }).catch((error: unknown) => error)
            expect(error, bad.kind).toBeInstanceOf(bad.kind === 'oversized' ? PayloadTooLargeError : InvalidPayloadError)
            expect(statements, bad.kind).toEqual([])
            rejectedBeforeSql += 1

            const batch: unknown[] = [...good]
            batch.splice(at % (batch.length + 1), 0, bad.value)
            const manyError = await client.deferMany(echo, batch, { batchSize }).catch((error: unknown) => error)
            expect(manyError).toBeInstanceOf(SkiplockError)
            if ((await countJobs(db)) !== 0) halfEnqueued += 1
            expect(halfEnqueued).toBe(0)
          },
        ),
        { numRuns: 200 },
      )
    } finally {
      await client.close()
    }
    console.log(`R16 invalid cases=${cases} kinds=${kinds.size} rejected_before_sql=${rejectedBeforeSql} half_enqueued=${halfEnqueued}`)
    expect(kinds).toEqual(new Set(['nul', 'surrogate', 'non-finite', 'bigint', 'function', 'symbol', 'cycle', 'deep', 'bad key', 'undefined in array', 'undefined', 'oversized']))
    expect(rejectedBeforeSql).toBe(cases)
  })

  test('valid payloads and results round-trip exactly through a worker', async ({ db, skiplock, startWorker }) => {
    const seen = new Map<string, unknown>()
    const mirror = defineTask({
      name: 'mirror',
      handler: (payload: unknown, { job }: { job: Job }) => {
        seen.set(job.id, payload)
        return payload
      },
    })
    const worker = await startWorker({ tasks: [mirror], concurrency: 20 })
    const errors: unknown[] = []
    worker.on('error', ({ error }) => errors.push(error))
    let cases = 0
    let roundTrips = 0
    const pollutedBefore = Object.keys(Object.prototype).length
    await fc.assert(
      fc.asyncProperty(fc.array(jsonValue, { minLength: 30, maxLength: 60 }), async (values) => {
        const ids = await skiplock.deferMany(mirror, values)
        await waitFor(async () => (await db.query(`select count(*)::int as count from skiplock.jobs`)).rows[0]!.count === 0, {
          description: 'every job to finish',
        })
        for (const [index, id] of ids.entries()) {
          cases += 1
          const job = await skiplock.getJob(id)
          expect(job?.state).toBe('succeeded')
          // The handler saw the payload as given, and the stored result reads back the same.
          expect(seen.get(id)).toEqual(values[index])
          expect(job?.payload).toEqual(values[index])
          expect(job?.result).toEqual(values[index])
          roundTrips += 1
        }
      }),
      { numRuns: 6 },
    )
    // -0 is carried as 0; a property whose value is undefined is left out.
    const signed = await skiplock.defer(mirror, { zero: -0, missing: undefined })
    expect(await skiplock.result(signed)).toStrictEqual({ zero: 0 })
    expect(Object.keys(Object.prototype).length, 'Object.prototype gained keys').toBe(pollutedBefore)
    console.log(`R16 valid cases=${cases} round_trips_exact=${roundTrips} worker_errors=${errors.length}`)
    expect(roundTrips).toBe(cases)
    expect(errors).toEqual([])
  })

  test('a handler returning an unstorable result fails its job with the reason stored, and the worker keeps running', async ({ db, skiplock, startWorker }) => {
    const results = new Map<string, unknown>([
      ['nul', { text: 'a\u0000b' }],
      ['surrogate', ['\ud800']],
      ['bad key', { ['\udfff']: 1 }],
      ['nan', { n: Number.NaN }],
      ['infinity', [Number.POSITIVE_INFINITY]],
      ['bigint', { n: 1n }],
      ['function', { f: () => 1 }],
      ['symbol', Symbol('s')],
      ['cycle', cycle()],
      ['deep', nest(1001)],
      ['far too deep', nest(20_000)],
      ['undefined in array', [undefined]],
    ])
    const unstorable = defineTask({ name: 'unstorable', handler: ({ kind }: { kind: string }) => results.get(kind) })
    const worker = await startWorker({ tasks: [unstorable, echo] })
    const errors: unknown[] = []
    worker.on('error', ({ error }) => errors.push(error))
    // The worker runs in this process: a crash would stop it (or fail the test run with an unhandled error).
    let crashes = 0
    worker.on('worker:stopped', () => (crashes += 1))
    const failed = new Map<string, { willRetry: boolean }>()
    worker.on('job:failed', ({ job, willRetry }) => failed.set(job.id, { willRetry }))

    const ids = await skiplock.deferMany(unstorable, [...results.keys()].map((kind) => ({ kind })))
    // A row written by hand that PostgreSQL stores but JSON.stringify cannot take back: echoed, it fails too.
    const { rows } = await db.query<{ id: string }>(`select id from skiplock.defer_jobs(array['echo'], array[repeat('[', 5000) || repeat(']', 5000)])`)
    ids.push(rows[0]!.id)
    await waitFor(() => failed.size === ids.length, { description: 'every unstorable job to fail' })
    let storedReasons = 0
    for (const id of ids) {
      const job = await skiplock.getJob<{ kind?: string }>(id)
      expect(job?.state, job?.payload.kind).toBe('failed')
      expect(failed.get(id)).toEqual({ willRetry: false })
      expect(job?.errors).toHaveLength(1)
      expect(job?.errors[0]?.message, job?.payload.kind).toMatch(/^the handler's result cannot be stored: .*(JSON|jsonb|nests deeper)/)
      storedReasons += 1
    }
    // Still running: the next job completes.
    const after = await skiplock.defer(echo, { still: 'running' })
    expect(await skiplock.result(after)).toEqual({ still: 'running' })
    console.log(`R16 unstorable_results=${ids.length} failed_with_reason=${storedReasons} worker_errors=${errors.length} worker_crashes=${crashes}`)
    expect(storedReasons).toBe(results.size + 1)
    expect(errors).toEqual([])
    expect(crashes).toBe(0)
  })
})

describe('S4: sizes and numbers past the limits, from the client', () => {
  test('typed errors before any SQL, and the largest accepted values stored exactly', async ({ db, skiplock }) => {
    const session = await db.connect()
    const { tx, statements } = recording(session)
    const rejected: { name: string; error: unknown }[] = []
    const reject = async (name: string, attempt: Promise<unknown>) => {
      rejected.push({ name, error: await attempt.then(() => undefined, (error: unknown) => error) })
    }

    // A payload of exactly the default limit (1 MiB) is accepted; one byte more is refused.
    const overhead = Buffer.byteLength(JSON.stringify({ text: '' }))
    const atCap = { text: `${'€'.repeat(1000)}${'x'.repeat(1_048_576 - overhead - 3000)}` }
    expect(Buffer.byteLength(JSON.stringify(atCap))).toBe(1_048_576)
    await reject('payload 1 byte over 1 MiB', skiplock.defer(echo, { text: `${atCap.text}x` }, { tx }))
    await reject('payload far over 1 MiB', skiplock.defer(echo, { text: 'x'.repeat(20_000_000) }, { tx }))
    await reject('deferMany item 1 byte over', skiplock.deferMany(echo, [{}, { text: `${atCap.text}x` }], { tx }))

    const longKey = '€'.repeat(342) // 1026 bytes
    await reject('lock over 1024 bytes', skiplock.defer(echo, {}, { tx, lock: longKey }))
    await reject('queueing lock over 1024 bytes', skiplock.defer(echo, {}, { tx, queueingLock: longKey }))
    await reject('lock of 1 MB', skiplock.defer(echo, {}, { tx, lock: 'k'.repeat(1_000_000) }))
    await reject('lock with NUL', skiplock.defer(echo, {}, { tx, lock: 'a\u0000b' }))
    await reject('lock with a lone surrogate', skiplock.defer(echo, {}, { tx, queueingLock: '\ud800' }))
    await reject('queue name with NUL', skiplock.defer(echo, {}, { tx, queue: 'q\u0000' }))
    await reject('queue name of 129 characters', skiplock.defer(echo, {}, { tx, queue: 'q'.repeat(129) }))

    for (const maxAttempts of [0, -1, 1.5, 2 ** 31, 1e300, Number.POSITIVE_INFINITY, Number.NaN]) {
      await reject(`maxAttempts ${maxAttempts}`, skiplock.defer(echo, {}, { tx, maxAttempts }))
    }
    for (const priority of [2 ** 31, -(2 ** 31), 1e300, Number.NEGATIVE_INFINITY, Number.NaN, 0.5]) {
      await reject(`priority ${priority}`, skiplock.defer(echo, {}, { tx, priority }))
    }
    for (const runAt of [new Date(Number.NaN), new Date(-8.64e15), new Date(-210_866_803_200_001)]) {
      await reject(`runAt ${runAt.getTime()}`, skiplock.defer(echo, {}, { tx, runAt }))
    }
    for (const delayMs of [1e300, 8.64e15, Number.POSITIVE_INFINITY, -1]) {
      await reject(`delayMs ${delayMs}`, skiplock.defer(echo, {}, { tx, delayMs }))
    }
    await reject('retry runAt invalid', skiplock.retry('1', { runAt: new Date(Number.NaN) }))
    await reject('deferMany batchSize 0', skiplock.deferMany(echo, [{}], { tx, batchSize: 0 }))
    await reject('deferMany batchSize NaN', skiplock.deferMany(echo, [{}], { tx, batchSize: Number.NaN }))
    const clientErrors = [
      { maxPayloadBytes: 2 ** 31 },
      { maxPayloadBytes: 1 },
      { maxPayloadBytes: Number.NaN },
      { resultPollIntervalMs: 0 },
      { resultPollIntervalMs: 1e12 },
    ].map((options) => {
      try {
        createClient({ connectionString: db.url, ...options })
        return undefined
      } catch (error) {
        return error
      }
    })
    const definitionErrors = [
      { maxAttempts: 2 ** 31 },
      { timeoutMs: 2 ** 31 },
      { timeoutMs: 1e12 },
      { backoff: { baseDelayMs: 1e300 } },
      { backoff: { maxDelayMs: Number.POSITIVE_INFINITY } },
    ].map((options) => {
      try {
        defineTask({ name: 'absurd', ...options, handler: () => null })
        return undefined
      } catch (error) {
        return error
      }
    })

    const untyped = rejected.filter(({ error }) => !(error instanceof PayloadTooLargeError || error instanceof InvalidArgumentError || error instanceof InvalidQueueNameError))
    expect(untyped.map(({ name, error }) => `${name}: ${String(error)}`)).toEqual([])
    expect(definitionErrors.every((error) => error instanceof InvalidArgumentError)).toBe(true)
    expect(clientErrors.every((error) => error instanceof InvalidArgumentError)).toBe(true)
    expect(statements, 'statements sent for refused input').toEqual([])

    // Other clients call the SQL API directly: it refuses a long key with its own typed error.
    const sqlError = await db.query(`select skiplock.defer_jobs(array['echo'], locks => array[repeat('€', 342)])`).catch((error: unknown) => error)
    expect(sqlError).toMatchObject({ code: 'SK005', message: expect.stringContaining('locks at position 1 is 1026 bytes') })

    // The largest values accepted are stored as given.
    const largest = await skiplock.defer(echo, atCap, {
      lock: '€'.repeat(341),
      queueingLock: 'q'.repeat(1024),
      queue: 'q'.repeat(128),
      maxAttempts: 2 ** 31 - 1,
      priority: -(2 ** 31 - 1),
      runAt: new Date(8.64e15),
    })
    const stored = await skiplock.getJob(largest.id)
    expect(stored).toMatchObject({ lock: '€'.repeat(341), queueingLock: 'q'.repeat(1024), maxAttempts: 2 ** 31 - 1, priority: -(2 ** 31 - 1) })
    expect(stored?.runAt.getTime()).toBe(8.64e15)
    expect(stored?.payload).toEqual(atCap)
    console.log(`S4 client rejected=${rejected.length} typed=${rejected.length - untyped.length} sql_statements=${statements.length} options_rejected=${definitionErrors.length + clientErrors.length} largest_stored=1`)
  })
})
