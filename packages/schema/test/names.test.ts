import fc from 'fast-check'
import pg from 'pg'
import { describe, expect } from 'vitest'

import {
  deferJobs,
  fetchJobs,
  InvalidArgumentError,
  InvalidQueueNameError,
  InvalidSchemaNameError,
  listJobs,
  migrate,
  queueStats,
  QueueingLockTakenError,
  quoteSchemaName,
  registerWorker,
  toQueryable,
} from '../src/index.ts'
import { test, type TestDatabase, waitFor } from '../src/testing.ts'

// Pieces that break SQL built by string concatenation, format('%s'), dollar quoting or identifier rules.
const fragments = ["'", '"', "''", ';', '--', '/*', '*/', '$$', '$x$', '%I', '%L', '%s', '\\', '\n', '\r', '\t', ' ', '(', ')', ',', 'é', '😀', 'drop table public.canary', 'A', 'z', '_', '.', ':', '/', '-', '0']
const adversarialName = fc.oneof(
  { weight: 6, arbitrary: fc.array(fc.constantFrom(...fragments), { minLength: 1, maxLength: 8 }).map((parts) => parts.join('')) },
  // Around PostgreSQL's identifier limit (63 bytes) and skiplock's name limits (54, 128 characters).
  fc.constantFrom(54, 55, 63, 64, 65, 128, 129).chain((length) => fc.constantFrom('a', 'é', 'Z').map((unit) => unit.repeat(length))),
  // \u0000 cannot travel as PostgreSQL text at all.
  fc.constantFrom('\u0000', 'a\u0000b', "x'\u0000;--"),
)

const QUEUE_NAME = /^[A-Za-z0-9_.:/-]{1,128}$/

interface Outcome {
  operation: string
  name: string
  /** The SQLSTATE, if it failed. */
  code: string | undefined
  error?: unknown
}

/** Runs `operation`, recording its error code (or none). */
async function attempt(outcomes: Outcome[], operation: string, name: string, work: () => Promise<unknown>): Promise<unknown> {
  try {
    const value = await work()
    outcomes.push({ operation, name, code: undefined })
    return value
  } catch (error) {
    // A typed error keeps the database's error, with its SQLSTATE, as its cause.
    const code = (error as { cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code
    outcomes.push({ operation, name, code, error })
    return undefined
  }
}

async function createCanary(db: TestDatabase): Promise<void> {
  await db.query(`create table public.canary (id integer primary key, note text not null)`)
  await db.query(`insert into public.canary (id, note) values (1, 'alive')`)
}

async function canaryRows(db: TestDatabase): Promise<unknown[]> {
  return (await db.query(`select id, note from public.canary`)).rows
}

describe('S1: adversarial names', () => {
  test('queue, task, lock and worker names are refused with a typed error or stored exactly; no SQL is ever malformed', async ({ db }) => {
    await createCanary(db)
    const queryable = toQueryable(db.pool)
    const outcomes: Outcome[] = []
    const workerId = await registerWorker(queryable, db.schema, 'names-test', 30)
    let storedExactly = 0

    await fc.assert(
      fc.asyncProperty(adversarialName, async (name) => {
        const hasNul = name.includes('\0')
        const isValidName = QUEUE_NAME.test(name)

        const asQueue = (await attempt(outcomes, 'defer queue', name, () => deferJobs(queryable, db.schema, { taskNames: ['t'], queueNames: [name] }))) as
          | { queueName: string }[]
          | undefined
        const asTask = (await attempt(outcomes, 'defer task', name, () => deferJobs(queryable, db.schema, { taskNames: [name] }))) as { taskName: string }[] | undefined
        if (!hasNul) {
          expect(asQueue?.[0]?.queueName, `queue ${JSON.stringify(name)}`).toBe(isValidName ? name : undefined)
          expect(asTask?.[0]?.taskName, `task ${JSON.stringify(name)}`).toBe(isValidName ? name : undefined)
          if (!isValidName) {
            expect(outcomes.at(-2)?.error).toBeInstanceOf(InvalidQueueNameError)
            expect(outcomes.at(-2)?.error).toMatchObject({ queueName: name })
            expect(outcomes.at(-1)?.error).toBeInstanceOf(InvalidArgumentError)
          }
        }

        // Any text is a valid lock: it is a parameter, never part of SQL text.
        const keyed = (await attempt(outcomes, 'defer lock', name, () =>
          deferJobs(queryable, db.schema, { taskNames: ['t', 't'], queueNames: ['locks', 'locks'], locks: [name, name], queueingLocks: [name, null] }),
        )) as { lock: string; queueingLock: string | null }[] | undefined
        if (!hasNul) {
          expect(keyed?.map((job) => [job.lock, job.queueingLock])).toEqual([
            [name, name],
            [name, null],
          ])
          storedExactly += 1
          // The second waiting job with the same queueing lock: the error names the key exactly.
          await attempt(outcomes, 'defer queueing lock taken', name, () => deferJobs(queryable, db.schema, { taskNames: ['t'], queueNames: ['locks'], queueingLocks: [name] }))
          expect(outcomes.at(-1)?.error).toBeInstanceOf(QueueingLockTakenError)
          expect(outcomes.at(-1)?.error).toMatchObject({ queueingLock: name })
          const existing = await deferJobs(queryable, db.schema, { taskNames: ['t'], queueNames: ['locks'], queueingLocks: [name], onQueueingLockConflict: 'existing' })
          expect(existing.map((job) => job.queueingLock)).toEqual([name])
          // Jobs of one lock run one at a time: one is fetched, then none until it finishes.
          const fetched = await fetchJobs(queryable, db.schema, { workerId, queueNames: ['locks'], batchSize: 10 })
          expect(fetched.map((job) => job.lock)).toEqual([name])
          await db.query(`delete from skiplock.jobs where queue_name = 'locks'`)
        }

        await attempt(outcomes, 'fetch queue', name, () => fetchJobs(queryable, db.schema, { workerId, queueNames: [name, 'nothing'], batchSize: 1 }))
        await attempt(outcomes, 'list queue', name, () => listJobs(queryable, db.schema, { queueName: name }))
        await attempt(outcomes, 'register worker', name, () => registerWorker(queryable, db.schema, name, 30))
        // Plain SQL callers of other languages: the names are bound parameters there too.
        await attempt(outcomes, 'sql defer', name, () => db.query(`select skiplock.defer_jobs(array[$1], queue_names => array[$1])`, [name]))
      }),
      { numRuns: 100 },
    )
    await attempt(outcomes, 'queue stats', '', () => queueStats(queryable, db.schema))

    const codes = new Map<string, number>()
    for (const outcome of outcomes) codes.set(outcome.code ?? 'ok', (codes.get(outcome.code ?? 'ok') ?? 0) + 1)
    const syntaxErrors = outcomes.filter((outcome) => outcome.code === '42601')
    // The only errors: skiplock's own, and PostgreSQL refusing \u0000 in text before any statement ran.
    const unexpected = outcomes.filter(
      (outcome) => outcome.code !== undefined && !['SK001', 'SK004', 'SK005'].includes(outcome.code) && !(outcome.code === '22021' && outcome.name.includes('\0')),
    )
    console.log(
      `S1 names operations=${outcomes.length} ${[...codes].map(([code, count]) => `${code}=${count}`).join(' ')} stored_exactly=${storedExactly} syntax_errors=${syntaxErrors.length} unexpected=${unexpected.length} canary=${(await canaryRows(db)).length === 1 ? 'intact' : 'broken'}`,
    )
    expect(syntaxErrors).toEqual([])
    expect(unexpected.map(({ operation, name, error }) => `${operation} ${JSON.stringify(name)}: ${String(error)}`)).toEqual([])
    expect(await canaryRows(db)).toEqual([{ id: 1, note: 'alive' }])
  })

  test('schema names are refused before any SQL unless they are plain identifiers short enough for their channels', async ({ db }) => {
    await createCanary(db)
    const schemasBefore = (await db.query<{ count: number }>(`select count(*)::int as count from pg_namespace`)).rows[0]!.count
    let rejected = 0
    let accepted = 0
    await fc.assert(
      fc.asyncProperty(fc.oneof(adversarialName, fc.stringMatching(/^[a-z_][a-z0-9_]{0,70}$/)), async (schema) => {
        const isPlain = /^[a-z_][a-z0-9_]*$/.test(schema) && schema.length <= 54
        if (isPlain) {
          expect(quoteSchemaName(schema)).toBe(`"${schema}"`)
          accepted += 1
          return
        }
        expect(() => quoteSchemaName(schema)).toThrow(InvalidSchemaNameError)
        // migrate() checks the name before it connects: the client it is given sees no statement.
        const statements: string[] = []
        const client = { query: (text: string) => statements.push(text) } as unknown as pg.Client
        await expect(migrate(client, { schema })).rejects.toBeInstanceOf(InvalidSchemaNameError)
        expect(statements).toEqual([])
        rejected += 1
      }),
      { numRuns: 300 },
    )
    const schemasAfter = (await db.query<{ count: number }>(`select count(*)::int as count from pg_namespace`)).rows[0]!.count
    console.log(`S1 schema names rejected=${rejected} accepted=${accepted} schemas_created=${schemasAfter - schemasBefore} canary=${(await canaryRows(db)).length === 1 ? 'intact' : 'broken'}`)
    expect(schemasAfter).toBe(schemasBefore)
    expect(rejected).toBeGreaterThan(100)
    expect(await canaryRows(db)).toEqual([{ id: 1, note: 'alive' }])
  })

  test('the longest schema name accepted works end to end, notifications included; one character more is refused', async ({ db }) => {
    const schema = `s${'x'.repeat(53)}`
    expect(() => quoteSchemaName(`${schema}x`)).toThrow(InvalidSchemaNameError)
    // Why 54: one character more, and PostgreSQL refuses the channel every finished job notifies.
    await expect(db.query(`select pg_notify($1, '')`, [`${schema}x_finished`])).rejects.toMatchObject({ code: '22023', message: 'channel name too long' })
    await migrate(db.url, { schema })
    const listener = await db.connect()
    const channels: string[] = []
    listener.on('notification', (message) => channels.push(message.channel))
    await listener.query(`listen ${pg.escapeIdentifier(`${schema}_jobs`)}; listen ${pg.escapeIdentifier(`${schema}_finished`)}`)
    const queryable = toQueryable(db.pool)
    const [job] = await deferJobs(queryable, schema, { taskNames: ['t'] })
    const workerId = await registerWorker(queryable, schema, 'long-schema', 30)
    expect((await fetchJobs(queryable, schema, { workerId, batchSize: 1 })).map((fetched) => fetched.id)).toEqual([job!.id])
    await db.query(`select * from ${quoteSchemaName(schema)}.complete_jobs($1, array[$2::bigint], array[1])`, [workerId, job!.id])
    await waitFor(() => channels.length === 2, { description: 'the jobs and finished notifications' })
    console.log(`S1 longest schema length=${schema.length} notifications=${channels.length}`)
    expect(channels).toEqual([`${schema}_jobs`, `${schema}_finished`])
  })
})
