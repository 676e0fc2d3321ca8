import { randomBytes } from 'node:crypto'

import pg from 'pg'
import { describe, expect } from 'vitest'

import {
  cancelJob,
  checkSchema,
  completeJobs,
  countResults,
  deferJobs,
  deferPeriodicJob,
  failJobs,
  fetchJobs,
  findJobResults,
  findJobs,
  hasPendingJobs,
  heartbeat,
  listJobResults,
  listJobs,
  migrate,
  pruneJobs,
  QueueingLockTakenError,
  queueStats,
  quoteSchemaName,
  raiseClaimFloor,
  readRunJobs,
  registerWorker,
  releaseJobs,
  rescueJobs,
  retryJob,
  storeResults,
  summarizeWorkerResults,
  toQueryable,
  unregisterWorker,
} from '../src/index.ts'
import { documentedGrants, test, urlForRole } from '../src/testing.ts'

describe('S2: a runtime role with only the documented grants', () => {
  test('runs the whole queue, and cannot create, alter, drop or truncate', { timeout: 60_000 }, async ({ db }) => {
    const suffix = randomBytes(4).toString('hex')
    const owner = `skiplock_owner_${suffix}`
    const runtime = `skiplock_runtime_${suffix}`
    const password = randomBytes(12).toString('hex')
    const schema = `grants_${suffix}`
    const s = quoteSchemaName(schema)
    await db.query(`create role ${pg.escapeIdentifier(owner)} login password ${pg.escapeLiteral(password)}`)
    await db.query(`create role ${pg.escapeIdentifier(runtime)} login password ${pg.escapeLiteral(password)}`)
    await db.query(`grant create on database ${pg.escapeIdentifier(db.name)} to ${pg.escapeIdentifier(owner)}`)
    const ownerClient = new pg.Client({ connectionString: urlForRole(db.url, owner, password) })
    const runtimePool = new pg.Pool({ connectionString: urlForRole(db.url, runtime, password), max: 3 })
    try {
      await ownerClient.connect()
      await migrate(ownerClient, { schema })
      await ownerClient.query(await documentedGrants(schema, runtime))
      const rt = toQueryable(runtimePool)

      // The producer: defer in bulk, with locks and a queueing lock, in the caller's transaction too.
      const count = 60
      const deferred = await deferJobs(rt, schema, {
        taskNames: Array(count).fill('work'),
        queueNames: Array(count).fill('grants'),
        locks: Array.from({ length: count }, (_, n) => (n % 3 === 0 ? `key-${n % 4}` : null)),
      })
      const [keyed] = await deferJobs(rt, schema, { taskNames: ['work'], queueNames: ['grants'], queueingLocks: ['once'] })
      const conflict = await deferJobs(rt, schema, { taskNames: ['work'], queueNames: ['grants'], queueingLocks: ['once'] }).catch((error: unknown) => error)
      expect(conflict).toBeInstanceOf(QueueingLockTakenError)
      expect(conflict).toMatchObject({ queueingLock: 'once' })
      const existing = await deferJobs(rt, schema, { taskNames: ['work'], queueNames: ['grants'], queueingLocks: ['once'], onQueueingLockConflict: 'existing' })
      expect(existing.map((job) => job.id)).toEqual([keyed!.id])
      const tx = await runtimePool.connect()
      await tx.query('begin')
      await deferJobs(toQueryable(tx), schema, { taskNames: ['work'], queueNames: ['grants'] })
      await tx.query('commit')
      tx.release()
      const waiting = (await deferJobs(rt, schema, { taskNames: ['later'], queueNames: ['other'], runAts: [new Date(Date.now() + 3_600_000)] }))[0]!
      expect(await cancelJob(rt, schema, waiting.id)).toBe('cancelled')

      // A worker: fetch, complete with results in one transaction, fail some, release some, heartbeat.
      const workerId = await registerWorker(rt, schema, 'runtime-worker', 30)
      let completed = 0
      let failedOnce = false
      for (let round = 0; round < 100 && (await hasPendingJobs(rt, schema, 'grants')); round++) {
        const jobs = await fetchJobs(rt, schema, { workerId, queueNames: ['grants'], batchSize: 10 })
        await heartbeat(rt, schema, workerId)
        if (jobs.length === 0) continue
        if (!failedOnce) {
          failedOnce = true
          const [first, second, ...rest] = jobs
          await failJobs(rt, schema, workerId, [{ jobId: first!.id, attempt: first!.attempts, error: { message: 'boom' }, retryAt: new Date(), isRetryable: true }])
          await releaseJobs(rt, schema, workerId, [{ jobId: second!.id, attempt: second!.attempts }])
          jobs.splice(0, jobs.length, ...rest)
        }
        const client = await runtimePool.connect()
        try {
          await client.query('begin')
          const done = await completeJobs(toQueryable(client), schema, workerId, jobs.map((job) => ({ jobId: job.id, attempt: job.attempts, resultJson: JSON.stringify({ id: job.id }) })))
          completed += await storeResults(toQueryable(client), schema, done.map((job) => job.id), 'runtime-worker')
          await client.query('commit')
        } finally {
          client.release()
        }
      }
      const expected = count + 2
      const counts = await countResults(rt, schema, 'grants')
      expect(counts).toMatchObject({ results: expected, distinctJobs: expected, succeededJobs: expected })
      expect(completed).toBe(expected)

      // A dead worker's job is rescued; failed and cancelled jobs are retried; old jobs pruned.
      const deadWorker = await registerWorker(rt, schema, 'dead-worker', 1)
      const [orphan] = await deferJobs(rt, schema, { taskNames: ['work'], queueNames: ['rescue'], maxAttempts: [1] })
      await fetchJobs(rt, schema, { workerId: deadWorker, queueNames: ['rescue'], batchSize: 1 })
      await runtimePool.query(`select * from ${s}.rescue_jobs(now() + interval '1 minute')`)
      expect((await findJobs(rt, schema, [orphan!.id]))[0]?.state).toBe('failed')
      expect(await rescueJobs(rt, schema)).toEqual([])
      expect(await raiseClaimFloor(rt, schema)).toBeInstanceOf(Date)
      expect((await retryJob(rt, schema, orphan!.id)).state).toBe('todo')
      expect((await retryJob(rt, schema, waiting.id)).state).toBe('todo')
      expect(await deferPeriodicJob(rt, schema, { taskName: 'tick', tickAt: new Date('2030-01-01T00:00:00Z') })).toBeDefined()
      expect(await deferPeriodicJob(rt, schema, { taskName: 'tick', tickAt: new Date('2030-01-01T00:00:00Z') })).toBeUndefined()
      expect(await pruneJobs(rt, schema, { finishedBefore: new Date(Date.now() + 60_000), states: ['succeeded'] })).toBe(expected)
      await unregisterWorker(rt, schema, workerId)

      // The reads: inspection, results and reports.
      expect((await listJobs(rt, schema, { queueName: 'grants' })).length).toBe(0)
      expect((await queueStats(rt, schema)).length).toBeGreaterThan(0)
      expect(await findJobResults(rt, schema, [deferred[0]!.id])).toHaveLength(1)
      expect(await listJobResults(rt, schema, { queueName: 'grants', limit: 1000 })).toHaveLength(expected)
      expect(await readRunJobs(rt, schema, { queueName: 'grants' })).toHaveLength(0)
      expect(await summarizeWorkerResults(rt, schema, 'grants')).toMatchObject([{ workerName: 'runtime-worker', jobsCompleted: expected }])
      const checking = await runtimePool.connect()
      await checkSchema(checking, { schema })
      checking.release()

      // What the runtime role must not do: each is refused for lack of privilege (42501).
      const forbidden = [
        `create table ${s}.intruder (id integer)`,
        `create table public.intruder (id integer)`,
        `create schema intruder`,
        `create index intruder_idx on ${s}.jobs (task_name)`,
        `alter table ${s}.jobs add column intruder integer`,
        `alter table ${s}.jobs disable trigger all`,
        `alter function ${s}.fetch_jobs(bigint, text[], integer, timestamptz, jsonb) security definer`,
        `create or replace function ${s}.channel_name(topic text) returns text language sql as $$ select 'x' $$`,
        `drop function ${s}.fetch_jobs(bigint, text[], integer, timestamptz, jsonb)`,
        `drop table ${s}.job_results`,
        `drop view ${s}.all_jobs`,
        `truncate ${s}.jobs`,
        `truncate ${s}.finished_jobs`,
        `truncate ${s}.job_results`,
        `truncate ${s}.job_dependencies`,
        `drop table ${s}.queues`,
        `delete from ${s}.migrations`,
        `select setval('${s}.raised_claim_floor', 0)`,
        `insert into ${s}.claim_floor_lowerings (run_at) values (now())`,
        `update ${s}.job_results set output = null`,
        `delete from ${s}.job_results`,
      ]
      const outcomes: { sql: string; code: string | undefined }[] = []
      for (const sql of forbidden) {
        const error = await runtimePool.query(sql).then(
          () => undefined,
          (error: unknown) => error,
        )
        outcomes.push({ sql, code: (error as { code?: string } | undefined)?.code })
      }
      const allowed = outcomes.filter((outcome) => outcome.code !== '42501')

      // Functions that run with their owner's rights must not look up names through the caller's search_path.
      const { rows: definers } = await db.query<{ name: string; config: string[] | null }>(
        `select p.proname as name, p.proconfig as config from pg_proc as p where p.pronamespace = $1::regnamespace and p.prosecdef`,
        [schema],
      )
      const unpinned = definers.filter((definer) => !definer.config?.some((setting) => setting.startsWith('search_path=')))
      console.log(
        `S2 jobs=${expected} results=${counts.results} dup_results=${counts.results - counts.distinctJobs} forbidden=${forbidden.length} refused=${forbidden.length - allowed.length} security_definer=${definers.length} unpinned_search_path=${unpinned.length}`,
      )
      expect(allowed).toEqual([])
      expect(unpinned).toEqual([])
    } finally {
      await ownerClient.end().catch(() => {})
      await runtimePool.end()
      await db.query(`drop schema if exists ${s} cascade`)
      for (const role of [runtime, owner]) {
        await db.query(`drop owned by ${pg.escapeIdentifier(role)}`)
        await db.query(`drop role ${pg.escapeIdentifier(role)}`)
      }
    }
  })
})
