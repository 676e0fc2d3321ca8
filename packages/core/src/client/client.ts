import {
  cancelJob,
  configureQueue,
  type DeferJobsArgs,
  type QueueLimits,
  JobNotFoundError,
  DEFAULT_SCHEMA,
  deferJobIds,
  deferJobs,
  findJobs,
  InvalidArgumentError,
  type Job,
  type JobState,
  listJobs,
  quoteSchemaName,
  type QueueStats,
  queueStats,
  retryJob,
  toQueryable,
} from '@skiplock/schema'
import pg from 'pg'

import { DEFAULT_MAX_PAYLOAD_BYTES } from '../json.ts'
import { MAX_INTEGER, type Task } from './define-task.ts'
import { buildDeferArgs, checkQueueName, type DeferOptions, isJobId, isStorableDate, type WaitForRoom } from './defer.ts'
import { type GraphNode, joinGraphArgs, orderGraph } from './graph.ts'
import { deferWhenRoom } from './room.ts'
import { traceDefer } from '../telemetry.ts'
import { inTransaction } from '../transaction.ts'
import { ResultWaiter } from './result-waiter.ts'

/** Where and how the client connects. */
export interface ClientOptions {
  /** A PostgreSQL URL; or give `pool`. */
  connectionString?: string
  /** A pool to use instead of creating one; the client does not end it. */
  pool?: pg.Pool
  /** Default `skiplock`. */
  schema?: string
  /** Largest payload, as JSON text; default 1 MiB. */
  maxPayloadBytes?: number
  /** How often `result()` polls while it waits, besides listening; default 1000. */
  resultPollIntervalMs?: number
  /** Whether `result()` listens for outcomes (else it only polls); default true. Behind a transaction-mode pooler, give `listenConnectionString` or set false. */
  listen?: boolean
  /** A direct URL for the listening connection when `connectionString` goes through a pooler. */
  listenConnectionString?: string
}

/** Options of `deferMany`. */
export interface DeferManyOptions<Payload> extends DeferOptions<Payload> {
  /** Jobs per statement; default 5000. */
  batchSize?: number
}

/** The producer side of skiplock: defer jobs, inspect them, await their outcome. */
export interface Client {
  /**
   * Enqueues one job and returns it.
   * @throws {InvalidPayloadError} {PayloadTooLargeError} {InvalidQueueNameError} {QueueingLockTakenError} {InvalidArgumentError}
   */
  defer<Payload, Result>(task: Task<Payload, Result>, payload: Payload, options?: DeferOptions<Payload>): Promise<Job<Payload, Result>>
  /**
   * Enqueues many jobs, `batchSize` per statement, all in one transaction (the caller's `tx` if given):
   * either every job is created or none. Returns their ids in order.
   */
  deferMany<Payload>(task: Task<Payload>, payloads: Iterable<Payload> | AsyncIterable<Payload>, options?: DeferManyOptions<Payload>): Promise<string[]>
  /**
   * Enqueues a graph of jobs in one statement and one transaction: each node names the nodes (by key) or
   * existing jobs it depends on. Returns the jobs by key. A cycle is refused before anything is written.
   * @throws {DependencyCycleError} {JobNotFoundError} (a parent id that names no job) {QueueFullError} and what `defer` throws
   */
  deferGraph<Nodes extends Record<string, GraphNode>>(
    nodes: Nodes,
    options?: { tx?: DeferOptions<unknown>['tx']; waitForRoom?: WaitForRoom },
  ): Promise<{ [Key in keyof Nodes]: Job }>
  /**
   * Sets a queue's limits, enforced in the database over all producers and workers: `maxWaiting` bounds
   * its waiting jobs (a defer past it gets `QueueFullError`), `maxRunning` its jobs running at once,
   * `maxStartsPerSecond` its starts. Absent or `null` removes a limit.
   */
  configureQueue(queue: string, limits: QueueLimits): Promise<void>
  /** Waits for a job's outcome: its result, or `JobFailedError`, `JobCancelledError`, `ResultTimeoutError` (default 30 s). */
  result<Result>(job: Job<unknown, Result> | string, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<Result>
  /** Cancels a waiting job, or asks a running job's worker to abort it. Returns the job's state afterwards. */
  cancel(jobId: string): Promise<JobState>
  /** Puts a failed or cancelled job back in the queue with fresh attempts. */
  retry(jobId: string, options?: { runAt?: Date }): Promise<Job>
  /** The job with this id, waiting, running or finished; `undefined` if there is none. */
  getJob<Payload = unknown, Result = unknown>(jobId: string): Promise<Job<Payload, Result> | undefined>
  /** Jobs, newest first, optionally in one state and queue. */
  listJobs(options?: { state?: JobState; queue?: string; limit?: number }): Promise<Job[]>
  /** Job counts per queue and state. */
  stats(): Promise<QueueStats[]>
  /** Closes the client's connections (and its pool, unless the caller gave it). */
  close(): Promise<void>
}

/**
 * Creates a client for deferring and inspecting jobs.
 * @example
 * const skiplock = createClient({ connectionString: process.env.DATABASE_URL })
 * const job = await skiplock.defer(sendEmail, { to: 'ada@example.com' })
 * await skiplock.result(job)
 */
export function createClient(options: ClientOptions): Client {
  const schema = options.schema ?? DEFAULT_SCHEMA
  quoteSchemaName(schema)
  if (!options.pool && !options.connectionString) {
    throw new TypeError('createClient needs a connectionString or a pool')
  }
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES
  // defer_jobs takes the limit as an integer of at least 2 (the JSON text `{}`).
  checkWholeNumber('maxPayloadBytes', maxPayloadBytes, 2)
  checkWholeNumber('resultPollIntervalMs', options.resultPollIntervalMs, 1)
  const pool = options.pool ?? createPool(options.connectionString)
  const db = toQueryable(pool)
  const waiter = new ResultWaiter({
    pool,
    schema,
    connectionString:
      options.listen === false ? undefined : (options.listenConnectionString ?? options.connectionString ?? (pool.options as { connectionString?: string }).connectionString),
    pollIntervalMs: options.resultPollIntervalMs ?? 1000,
  })

  return {
    async defer(task, payload, deferOptions = {}) {
      const args = await buildDeferArgs(task, [payload], deferOptions, maxPayloadBytes)
      const tx = deferOptions.tx ? toQueryable(deferOptions.tx) : undefined
      const [job] = await traceDefer(task.name, args.queueNames?.[0] ?? 'default', (traceContext) =>
        deferWhenRoom(
          () => deferJobs(tx ?? db, schema, { ...args, traceContexts: traceContext === null ? undefined : [traceContext] }),
          deferOptions.waitForRoom,
          tx,
        ),
      )
      return job as Job<never, never>
    },

    async deferMany(task, payloads, deferOptions = {}) {
      const batchSize = deferOptions.batchSize ?? 5000
      checkWholeNumber('batchSize', batchSize, 1)
      const queueName = deferOptions.queue ?? task.definition.queue ?? 'default'
      const deferBatches = async (target: ReturnType<typeof toQueryable>, traceContext: string | null) => {
        const ids: string[] = []
        let batch: unknown[] = []
        // One statement stays in flight while the next batch is serialised, so the client's work
        // overlaps the server's (perf S1). Statements on one connection still run in order.
        let inFlight: Promise<void> = Promise.resolve()
        const flush = async () => {
          if (batch.length === 0) return
          const args = await buildDeferArgs(task, batch as never[], deferOptions, maxPayloadBytes)
          if (traceContext !== null) args.traceContexts = Array(batch.length).fill(traceContext)
          batch = []
          await inFlight
          inFlight = deferWhenRoom(() => deferJobIds(target, schema, args), deferOptions.waitForRoom, target).then((batchIds) => void ids.push(...batchIds))
          // Awaited by the next flush or at the end; until then a failure must not count as unhandled.
          inFlight.catch(() => {})
        }
        for await (const payload of payloads) {
          batch.push(payload)
          if (batch.length >= batchSize) await flush()
        }
        await flush()
        await inFlight
        return ids
      }
      // One span for the whole call: every job it defers links its attempts to it.
      return traceDefer(task.name, queueName, (traceContext) => {
        if (deferOptions.tx) return deferBatches(toQueryable(deferOptions.tx), traceContext)
        return inTransaction(pool, (client) => deferBatches(toQueryable(client), traceContext))
      })
    },

    async deferGraph(nodes, graphOptions = {}) {
      const keys = orderGraph(nodes)
      const argsByKey = new Map<string, DeferJobsArgs>()
      for (const key of keys) {
        const { task, payload, dependsOn: _dependsOn, ...nodeOptions } = nodes[key]!
        argsByKey.set(key, await buildDeferArgs(task, [payload], nodeOptions, maxPayloadBytes))
      }
      const args = joinGraphArgs(keys, nodes, argsByKey)
      const taskNames = [...new Set(args.taskNames)].join(',')
      const tx = graphOptions.tx ? toQueryable(graphOptions.tx) : undefined
      const jobs = await traceDefer(taskNames, [...new Set(args.queueNames ?? ['default'])].join(','), (traceContext) =>
        deferWhenRoom(
          () => deferJobs(tx ?? db, schema, { ...args, traceContexts: traceContext === null ? undefined : args.taskNames.map(() => traceContext) }),
          graphOptions.waitForRoom,
          tx,
        ),
      )
      return Object.fromEntries(keys.map((key, index) => [key, jobs[index]])) as never
    },

    async configureQueue(queue, limits) {
      checkQueueName(queue)
      checkWholeNumber('maxWaiting', limits.maxWaiting ?? undefined, 1)
      checkWholeNumber('maxRunning', limits.maxRunning ?? undefined, 1)
      const rate = limits.maxStartsPerSecond
      if (rate !== undefined && rate !== null && !(Number.isFinite(rate) && rate > 0)) {
        throw new InvalidArgumentError({ argument: 'maxStartsPerSecond', reason: `${rate} is not a positive number` })
      }
      await configureQueue(db, schema, queue, limits)
    },

    async result(job, resultOptions = {}) {
      const jobId = checkJobId(typeof job === 'string' ? job : job.id)
      return (await waiter.wait(jobId, { timeoutMs: resultOptions.timeoutMs ?? 30_000, signal: resultOptions.signal })) as never
    },

    cancel: async (jobId) => cancelJob(db, schema, checkJobId(jobId)),
    async retry(jobId, retryOptions = {}) {
      if (retryOptions.runAt !== undefined && !isStorableDate(retryOptions.runAt)) {
        throw new InvalidArgumentError({ argument: 'runAt', reason: `${String(retryOptions.runAt)} is not a valid Date that PostgreSQL can store` })
      }
      return retryJob(db, schema, checkJobId(jobId), retryOptions.runAt)
    },
    getJob: async (jobId) => (isJobId(jobId) ? ((await findJobs(db, schema, [jobId]))[0] as never) : undefined),
    listJobs: (listOptions = {}) => listJobs(db, schema, { state: listOptions.state, queueName: listOptions.queue, limit: listOptions.limit }),
    stats: () => queueStats(db, schema),

    async close() {
      await waiter.close()
      if (!options.pool) await pool.end()
    },
  }
}

/** @throws {InvalidArgumentError} unless `value` is absent or a whole number from `min` to {@link MAX_INTEGER}. */
function checkWholeNumber(argument: string, value: number | undefined, min: number): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= MAX_INTEGER)) {
    throw new InvalidArgumentError({ argument, reason: `${value} is not a whole number from ${min} to ${MAX_INTEGER}` })
  }
}

/** @throws {JobNotFoundError} unless `jobId` is a job id. */
function checkJobId(jobId: string): string {
  if (!isJobId(jobId)) throw new JobNotFoundError({ jobId })
  return jobId
}

function createPool(connectionString: string | undefined): pg.Pool {
  const pool = new pg.Pool({ connectionString, max: 4, application_name: 'skiplock-client' })
  // An idle connection that dies (a server restart, a terminated backend) is replaced on next use;
  // it must not crash the producer's process.
  pool.on('error', () => {})
  return pool
}
