import { hostname } from 'node:os'

import {
  completeJobs,
  DEFAULT_SCHEMA,
  explainFetchJobs,
  fetchJobs,
  type FetchJobsArgs,
  heartbeat,
  InvalidArgumentError,
  InvalidPayloadError,
  type Job,
  PayloadTooLargeError,
  pruneJobs,
  type Queryable,
  queueStats,
  quoteSchemaName,
  raiseClaimFloor,
  registerWorker,
  rescueJobs,
  type RescuedJob,
  toQueryable,
  unregisterWorker,
  WorkerNotRegisteredError,
} from '@skiplock/schema'
import pg from 'pg'

import { type AttributeFilter, checkAttributeFilter } from '../client/attributes.ts'
import { checkQueueName } from '../client/defer.ts'
import { backoffDelayMs, MAX_INTEGER, type Task, validatePayload } from '../client/define-task.ts'
import { JobCancelledError, JobTimeoutError, NonRetryableError, UnknownTaskError, WorkerStoppedError } from '../errors.ts'
import { TypedEmitter } from '../events.ts'
import { DEFAULT_MAX_PAYLOAD_BYTES, toStorableJson } from '../json.ts'
import { describeError, type Logger, silentLogger } from '../logger.ts'
import { inRunContext, observeQueueDepth, recordJobOutcome, recordJobsRescued, recordJobStarted } from '../telemetry.ts'
import { inTransaction, Rollback } from '../transaction.ts'
import { Completer, type CompletionHook, type Outcome } from './completer.ts'
import { Listener } from './listener.ts'
import { isConnectionError, Outage } from './outage.ts'
import { type PeriodicTask, PeriodicScheduler } from './periodic-scheduler.ts'
import { Semaphore } from './semaphore.ts'

/** Options of {@link createWorker}. Every number has a default that suits most queues. */
export interface WorkerOptions {
  /** A PostgreSQL URL (the pool connects here; so does LISTEN unless `listenConnectionString` is set). */
  connectionString: string
  /** A direct URL for the LISTEN connection when `connectionString` goes through a transaction-mode pooler. */
  listenConnectionString?: string
  /** Default `skiplock`. */
  schema?: string
  /** The tasks this worker runs. */
  tasks: readonly Task[]
  /** Queues to take jobs from; default: all. */
  queues?: readonly string[]
  /**
   * Only jobs whose attributes match: per attribute, one value or an array of values to match any of,
   * as in `{ region: 'eu', tier: ['gold', 'silver'] }`. The claim looks at the head of the queue, then through an index.
   */
  attributeFilter?: AttributeFilter
  /** Handlers running at once; default 10. */
  concurrency?: number
  /**
   * Connections in the pool; the worker uses at most this plus one for LISTEN, on which it also claims
   * jobs. Default 1, so a worker holds 2 connections whatever its concurrency; 2 with `listen: false`
   * (claims then use the pool too) or when a task is transactional. Transactional handlers run at most
   * `poolSize - 1` at a time (at least one), so a connection stays free for the worker itself.
   */
  poolSize?: number
  /**
   * Jobs kept ready beyond `concurrency`, fetched in round trips of up to this many. Default: adaptive,
   * about 20 ms of work at the handlers' recent pace, between `concurrency` and 1000: short jobs get
   * big batches, long jobs leave the rest of the queue to other workers.
   */
  batchSize?: number
  /** How often to look for jobs when no notification came; default 1000. */
  pollIntervalMs?: number
  /** Use LISTEN/NOTIFY to pick up new jobs at once; `false` polls only (e.g. behind a pooler). Default true. */
  listen?: boolean
  /** A worker silent for this long is presumed dead and its jobs are rescued; default 30. */
  leaseSeconds?: number
  /** Default a fifth of the lease. */
  heartbeatIntervalMs?: number
  /** How often to rescue dead workers' jobs (and prune); default 5000, jittered. */
  maintenanceIntervalMs?: number
  /** How long a finished job waits for others to share its commit; default 2. */
  completionWindowMs?: number
  /** How long `stop()` lets running handlers finish before aborting them; default 30 000. */
  shutdownGracePeriodMs?: number
  /** Tasks to defer on a cron schedule, once per tick across all workers. */
  periodic?: readonly PeriodicTask[]
  /** Delete finished jobs older than this; default 7 days. `false` keeps them. */
  pruneAfterMs?: number | false
  /** Shown in `skiplock.workers` and `pg_stat_activity`; default `<host>:<pid>`. */
  name?: string
  /** pino or any logger with the same methods; default silent (events still fire). */
  logger?: Logger
  /** Stop gracefully on SIGTERM and SIGINT, and at once on a second signal; default false. */
  handleSignals?: boolean
  /** Runs inside the transaction that completes a batch of jobs, e.g. to store their results. */
  onJobsCompleting?: CompletionHook
  /** Largest periodic payload, as JSON text; default 1 MiB. */
  maxPayloadBytes?: number
  /** Largest result a handler may return, as JSON text; default 1 MiB. A larger one fails its job without a retry. */
  maxResultBytes?: number
  /**
   * Samples claims for diagnosis: after a claim, with probability `sampleRate` (0 to 1), the same claim is run
   * again under `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` in a transaction that is rolled back, so it claims
   * nothing, and `onPlan` gets the plan. Each sample costs about one more claim, on a pooled connection.
   */
  explainClaims?: ExplainClaimsOptions
}

/** Options of {@link WorkerOptions.explainClaims}. */
export interface ExplainClaimsOptions {
  /** The share of claims to sample, from 0 (none) to 1 (every claim). */
  sampleRate: number
  /** Gets each sampled claim's plan; it must not throw. */
  onPlan: (sample: ClaimPlan) => void
}

/** A sampled claim. */
export interface ClaimPlan {
  /**
   * The output of `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of the `fetch_jobs` call that replayed the claim.
   * `fetch_jobs` is PL/pgSQL, so the plan shows the function's total time and buffers, not its inner query.
   */
  plan: unknown
  /** The round trip of the real claim that was sampled, in milliseconds. */
  durationMs: number
  /** The claim's arguments, as replayed. */
  batchSize: number
  queueNames: readonly string[] | null
}

/** Every event a worker emits. */
export interface WorkerEvents extends Record<string, unknown> {
  'worker:started': { workerId: string }
  /** `error` is set when the worker could not record every outcome or unregister; its jobs are then rescued after the lease. */
  'worker:stopped': { workerId: string | undefined; error?: unknown }
  'job:fetched': { job: Job }
  'job:started': { job: Job }
  'job:completed': { job: Job; result: unknown }
  /** `willRetry`: a retry is scheduled at `runAt`; otherwise the job ended as `state` (failed or cancelled). */
  'job:failed': { job: Job; error: unknown; willRetry: boolean; state: string; runAt: Date }
  'job:released': { job: Job }
  /** The job was rescued from this worker while it ran, so its outcome was not recorded. */
  'job:lease-lost': { job: Job }
  'job:deferred': { job: Job }
  'jobs:rescued': { jobs: readonly RescuedJob[] }
  /**
   * The server's NOTIFY queue is filling (`usage` is `pg_notification_queue_usage()`, 0 to 1): some session
   * listens but does not read, such as a stopped process. When it is full, every transaction that notifies
   * fails, and deferring does.
   */
  'notifications:backlog': { usage: number }
  /** A background step failed; the worker backs off and goes on. */
  error: { error: unknown; during: string }
}

interface RunningJob {
  job: Job
  controller: AbortController
  /** Set when the outcome was recorded by the timeout, so the handler's later outcome is ignored. */
  isOutcomeRecorded: boolean
  settled: Promise<void>
}

type State = 'idle' | 'running' | 'stopping' | 'stopped'

/**
 * A worker: fetches jobs in batches, runs their handlers with bounded concurrency, records outcomes in
 * group commits, heartbeats, and rescues dead workers' jobs. Create with {@link createWorker}.
 */
export class Worker extends TypedEmitter<WorkerEvents> {
  readonly #options: Required<Omit<WorkerOptions, 'listenConnectionString' | 'queues' | 'attributeFilter' | 'onJobsCompleting' | 'logger' | 'periodic' | 'explainClaims'>> &
    Pick<WorkerOptions, 'listenConnectionString' | 'queues' | 'attributeFilter' | 'onJobsCompleting' | 'periodic' | 'explainClaims'>
  readonly #logger: Logger
  readonly #tasks: Map<string, Task>
  readonly #pool: pg.Pool
  /** The pool as the typed SQL callers take it; made once, since fetches and heartbeats use it all the time. */
  readonly #db: Queryable
  readonly #completer: Completer
  readonly #listener: Listener | undefined
  readonly #periodic: PeriodicScheduler | undefined
  /** Set while the database is unreachable: the loops wait for it instead of retrying each on its own. */
  readonly #outage: Outage
  readonly #running = new Map<string, RunningJob>()
  /**
   * A transactional handler holds a pooled connection for its whole run; leaving one connection free
   * keeps fetches, completions and heartbeats going (a starved heartbeat would get the worker presumed dead).
   */
  readonly #transactionSlots: Semaphore
  #buffer: Job[] = []
  #state: State = 'idle'
  #workerId: string | undefined
  #isFetching = false
  /** The fetch loop running now, if any: a stop lets it end before closing the connection it claims on. */
  #fetching: Promise<void> = Promise.resolve()
  /**
   * A claim sent and not yet answered. Its rows may be committed but not here yet, so a heartbeat must not
   * report the jobs this worker holds meanwhile, or the database would take those rows back.
   */
  #isClaiming = false
  #shouldFetchAgain = false
  /** The last fetch found fewer jobs than it asked for: wait for a notification or the poll. */
  #isQueueDrained = false
  #fetchFailures = 0
  #stopStartedAt = 0
  /** Recent handler duration (exponential moving average), which sizes the adaptive batch. */
  #handlerMsAverage: number | undefined
  #timers = new Set<NodeJS.Timeout>()
  /** Periodic steps running now (maintenance, heartbeat): a stop waits for them before ending the pool. */
  readonly #stepsInFlight = new Set<Promise<void>>()
  /**
   * The heartbeat's timer, apart from the others: a stopping worker heartbeats until it unregisters,
   * or the jobs it is still finishing would be rescued from under it once its lease ran out.
   */
  #heartbeatTimers = new Set<NodeJS.Timeout>()
  #isHeartbeating = false
  /** The heartbeat in flight, awaited before unregistering: a heartbeat after that would fail. */
  #heartbeatInFlight: Promise<void> = Promise.resolve()
  #stopping: Promise<void> | undefined
  #forceStop: (() => void) | undefined
  #removeSignalHandlers: (() => void) | undefined
  #stopObservingQueueDepth: (() => void) | undefined

  constructor(options: WorkerOptions) {
    super()
    const concurrency = options.concurrency ?? 10
    const leaseSeconds = options.leaseSeconds ?? 30
    this.#options = {
      schema: DEFAULT_SCHEMA,
      concurrency,
      poolSize: options.listen === false || options.tasks.some((task) => task.definition.transactional) ? 2 : 1,
      batchSize: 0,
      pollIntervalMs: 1000,
      listen: true,
      leaseSeconds,
      heartbeatIntervalMs: (leaseSeconds * 1000) / 5,
      maintenanceIntervalMs: 5000,
      completionWindowMs: 2,
      shutdownGracePeriodMs: 30_000,
      pruneAfterMs: 7 * 24 * 3600 * 1000,
      name: `${hostname()}:${process.pid}`,
      handleSignals: false,
      maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
      maxResultBytes: DEFAULT_MAX_PAYLOAD_BYTES,
      ...withoutUndefined(options),
      connectionString: options.connectionString,
      tasks: options.tasks,
    }
    const o = this.#options
    quoteSchemaName(o.schema)
    // Times end up in setTimeout, which fires at once past MAX_INTEGER ms; the lease also in an integer column.
    for (const [name, value] of Object.entries({
      concurrency: o.concurrency,
      poolSize: o.poolSize,
      ...(options.batchSize === undefined ? {} : { batchSize: o.batchSize }),
      pollIntervalMs: o.pollIntervalMs,
      leaseSeconds: o.leaseSeconds * 1000,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      maintenanceIntervalMs: o.maintenanceIntervalMs,
      shutdownGracePeriodMs: o.shutdownGracePeriodMs,
      maxPayloadBytes: o.maxPayloadBytes,
      maxResultBytes: o.maxResultBytes,
    })) {
      if (!(Number.isFinite(value) && value >= 1 && value <= MAX_INTEGER)) {
        const shown = name === 'leaseSeconds' ? o.leaseSeconds : value
        const limit = name === 'leaseSeconds' ? Math.floor(MAX_INTEGER / 1000) : MAX_INTEGER
        throw new InvalidArgumentError({ argument: name, reason: `${shown} is not a number from 1 to ${limit}` })
      }
    }
    // The name goes into application_name, which a \u0000 would end early (and let the rest inject parameters).
    if (typeof o.name !== 'string' || o.name.includes('\0') || !o.name.isWellFormed()) {
      throw new InvalidArgumentError({ argument: 'name', reason: 'a worker name must be text without \\u0000 or unpaired UTF-16 surrogates' })
    }
    for (const queue of o.queues ?? []) checkQueueName(queue)
    if (o.attributeFilter !== undefined) checkAttributeFilter(o.attributeFilter)
    if (o.explainClaims !== undefined) checkExplainClaims(o.explainClaims)
    if (o.heartbeatIntervalMs >= o.leaseSeconds * 1000) {
      throw new InvalidArgumentError({ argument: 'heartbeatIntervalMs', reason: `${o.heartbeatIntervalMs} ms is not shorter than the lease of ${o.leaseSeconds} s` })
    }
    this.#tasks = new Map(options.tasks.map((task) => [task.name, task]))
    if (this.#tasks.size !== options.tasks.length) {
      throw new InvalidArgumentError({ argument: 'tasks', reason: 'two tasks share a name' })
    }
    this.#logger = options.logger ?? silentLogger
    this.#transactionSlots = new Semaphore(Math.max(1, o.poolSize - 1))
    this.#pool = new pg.Pool({
      connectionString: o.connectionString,
      max: o.poolSize,
      application_name: `skiplock-worker ${o.name}`,
      // A connect that hangs (a cut network) must fail, so the outage's probe can try again.
      connectionTimeoutMillis: connectTimeoutMs,
      // Lets the kernel notice a peer that vanished without closing the socket.
      keepAlive: true,
    })
    // An idle pooled connection that dies (server restart) must not crash the process.
    this.#pool.on('error', (error) => this.#reportError(error, 'pool'))
    this.#db = toQueryable(this.#pool)
    this.#completer = new Completer({
      pool: this.#pool,
      schema: o.schema,
      windowMs: o.completionWindowMs,
      maxBatchSize: 1000,
      hook: o.onJobsCompleting,
      onError: (error) => this.#reportError(error, 'complete'),
    })
    this.#listener = o.listen
      ? new Listener({
          connectionString: o.listenConnectionString ?? o.connectionString,
          schema: o.schema,
          onJobs: (queueName) => {
            if (o.queues !== undefined && !o.queues.includes(queueName)) return
            // New jobs: a fetch that finds no room now must still be followed by one when a slot frees.
            this.#isQueueDrained = false
            this.#wake()
          },
          onCancel: (jobId) => this.#running.get(jobId)?.controller.abort(new JobCancelledError({ jobId })),
          onConnected: () => {
            this.#isQueueDrained = false
            this.#wake()
          },
          connectTimeoutMs,
          onError: (error) => this.#reportError(error, 'listen'),
        })
      : undefined
    this.#outage = new Outage({
      probe: async () => {
        try {
          await this.#beat()
        } catch (error) {
          // Any answer but a connection error means the database is back.
          if (isConnectionError(error)) throw error
          this.#reportError(error, 'heartbeat')
        }
      },
      onDown: (error) =>
        this.#logger.error({ error: describeError(error).message, workerId: this.#workerId }, 'database unreachable; retrying about once a second'),
      onStillDown: ({ downMs, attempts }) => this.#logger.warn({ downMs, attempts, workerId: this.#workerId }, 'database still unreachable'),
      onRestored: ({ downMs, attempts }) => {
        // After a real outage the listener need not wait out its backoff. After one dropped connection it
        // must: its own reconnects may be what the server refuses (a full server answers the pool and not it).
        if (attempts > 1) {
          this.#logger.info({ downMs, attempts, workerId: this.#workerId }, 'database reachable again')
          this.#listener?.reconnectNow()
        }
        this.#isQueueDrained = false
        this.#wake()
      },
    })
    this.#periodic =
      o.periodic && o.periodic.length > 0
        ? new PeriodicScheduler({
            pool: this.#pool,
            schema: o.schema,
            periodic: o.periodic,
            maxPayloadBytes: o.maxPayloadBytes,
            onDeferred: (job) => this.emit('job:deferred', { job }),
            onError: (error, taskName) => this.#reportError(error, `periodic ${taskName}`),
          })
        : undefined
  }

  /** The id this worker registered under; `undefined` before `start()`. */
  get workerId(): string | undefined {
    return this.#workerId
  }

  /** Handlers running now. */
  get runningCount(): number {
    return this.#running.size
  }

  /**
   * Registers the worker and starts fetching. Resolves once it is running.
   * @throws the database error if the worker cannot register.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new InvalidArgumentError({ argument: 'worker', reason: `it is ${this.#state}, so it cannot start` })
    this.#state = 'running'
    try {
      this.#workerId = await this.#register()
    } catch (error) {
      this.#state = 'stopped'
      await this.#pool.end()
      throw error
    }
    this.#logger.info({ workerId: this.#workerId, name: this.#options.name }, 'worker started')
    this.#listener?.start()
    this.#periodic?.start()
    this.#stopObservingQueueDepth = observeQueueDepth(() => queueStats(this.#db, this.#options.schema))
    this.#every(this.#options.pollIntervalMs, () => {
      this.#isQueueDrained = false
      this.#wake()
    })
    this.#isHeartbeating = true
    this.#every(this.#options.heartbeatIntervalMs, () => (this.#heartbeatInFlight = this.#heartbeat()), {
      timers: this.#heartbeatTimers,
      isDue: () => this.#isHeartbeating,
    })
    this.#every(this.#options.maintenanceIntervalMs, () => this.#maintain(), { isJittered: true })
    this.#every(claimFloorIntervalMs, () => this.#raiseClaimFloor(), { isJittered: true })
    if (this.#options.handleSignals) this.#installSignalHandlers()
    this.emit('worker:started', { workerId: this.#workerId })
    this.#wake()
  }

  /**
   * Stops gracefully: no new fetches, buffered jobs go back to the queue, running handlers get
   * `shutdownGracePeriodMs` to finish and are then aborted, outcomes are flushed, and anything still
   * held is released. Calling it again (or a second signal) aborts running handlers at once.
   * @throws the error that kept the worker from recording outcomes or unregistering; its jobs are then rescued after the lease.
   */
  stop(): Promise<void> {
    if (this.#stopping) {
      this.#forceStop?.()
      return this.#stopping
    }
    this.#stopping = this.#shutdown()
    return this.#stopping
  }

  /**
   * Registers, waiting out a server that is full or still starting (a fleet starting at once may find every
   * connection taken for a moment); any other error, a refused connection included, is thrown at once.
   */
  async #register(): Promise<string> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await registerWorker(this.#db, this.#options.schema, this.#options.name, this.#options.leaseSeconds)
      } catch (error) {
        const code = (error as { code?: unknown }).code
        if (!(code === '53300' || code === '57P03') || this.#stopping) throw error
        if (attempt === 1) this.#reportError(error, 'register')
        // A timer that keeps the process alive: while start() waits, it may be all the process has to do.
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 100 * 2 ** attempt) * (1 + Math.random() / 2)))
      }
    }
  }

  async #shutdown(): Promise<void> {
    const wasRunning = this.#state === 'running'
    this.#stopStartedAt = Date.now()
    this.#state = 'stopping'
    this.#logger.info({ workerId: this.#workerId, running: this.#running.size }, 'worker stopping')
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    this.#periodic?.stop()
    // Claims may be in flight on the listening connection: closing it under them would strand their jobs.
    const listenerStopped = this.#fetching.then(() => this.#listener?.stop())
    let fatalError: unknown
    try {
      if (wasRunning) {
        const buffered = this.#buffer
        this.#buffer = []
        const released = buffered.map((job) => this.#completer.release(job).then((outcome) => this.#emitOutcome(job, outcome, undefined, undefined)))

        const forced = new Promise<void>((resolve) => {
          this.#forceStop = resolve
        })
        const allSettled = () => Promise.all([...this.#running.values()].map((entry) => entry.settled))
        await Promise.race([allSettled(), forced, delay(this.#options.shutdownGracePeriodMs)])
        if (this.#running.size > 0) {
          for (const entry of this.#running.values()) entry.controller.abort(new WorkerStoppedError())
          // Handlers that honour the signal settle now; those that do not are released by unregister below.
          await Promise.race([allSettled(), delay(1000)])
        }
        await Promise.all(released)
        // Outcomes get what is left of the grace period, and a second at least: with the database down they
        // cannot be recorded, and the jobs are rescued after the lease instead.
        await this.#completer.drain(Math.max(this.#stopStartedAt + this.#options.shutdownGracePeriodMs, Date.now() + 1000))
        await this.#stopHeartbeat()
        if (this.#workerId !== undefined) await unregisterWorker(this.#db, this.#options.schema, this.#workerId)
      }
    } catch (error) {
      fatalError = error
      this.#reportError(error, 'stop')
    } finally {
      await this.#stopHeartbeat()
      this.#stopObservingQueueDepth?.()
      this.#outage.stop()
      this.#completer.close()
      await Promise.all(this.#stepsInFlight)
      await listenerStopped
      this.#removeSignalHandlers?.()
      await this.#pool.end().catch(() => {})
      this.#state = 'stopped'
      this.#logger.info({ workerId: this.#workerId }, 'worker stopped')
      this.emit('worker:stopped', { workerId: this.#workerId, ...(fatalError === undefined ? {} : { error: fatalError }) })
    }
    if (fatalError !== undefined) throw fatalError
  }

  #installSignalHandlers(): void {
    const onSignal = (signal: NodeJS.Signals) => {
      this.#logger.info({ signal }, this.#stopping ? 'second signal: aborting running jobs' : 'signal: stopping gracefully')
      this.stop().catch(() => {})
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    this.#removeSignalHandlers = () => {
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
    }
  }

  /** Runs `step` every `intervalMs` (jittered when asked) while `isDue()`, by default until the worker stops; steps never overlap. */
  #every(
    intervalMs: number,
    step: () => Promise<void> | void,
    { isJittered = false, timers = this.#timers, isDue = () => this.#state === 'running' } = {},
  ): void {
    const schedule = () => {
      if (!isDue()) return
      const waitMs = isJittered ? intervalMs * (0.8 + Math.random() * 0.4) : intervalMs
      const timer = setTimeout(async () => {
        timers.delete(timer)
        const running = Promise.resolve(step())
        this.#stepsInFlight.add(running)
        await running
        this.#stepsInFlight.delete(running)
        schedule()
      }, waitMs)
      timers.add(timer)
    }
    schedule()
  }

  async #stopHeartbeat(): Promise<void> {
    this.#isHeartbeating = false
    for (const timer of this.#heartbeatTimers) clearTimeout(timer)
    this.#heartbeatTimers.clear()
    await this.#heartbeatInFlight
  }

  /**
   * Reports a failed step. A connection error starts an outage, whose probe takes over until the database
   * answers; once a probe has failed too, the outage was reported and its further errors would only repeat it.
   */
  #reportError(error: unknown, during: string): void {
    if (isConnectionError(error)) {
      if (this.#outage.isReportedDown) return
      this.#outage.report()
    }
    this.#logger.error({ error: describeError(error), during, workerId: this.#workerId }, `skiplock worker error during ${during}`)
    if (this.listenerCount('error') > 0) this.emit('error', { error, during })
    else if (this.#logger === silentLogger) console.error(`skiplock worker error during ${during}:`, describeError(error).message)
  }

  /** Asks for a fetch: runs one now, or another right after the one in flight. */
  #wake(): void {
    if (this.#state !== 'running') return
    if (this.#isFetching) {
      this.#shouldFetchAgain = true
      return
    }
    this.#fetching = this.#fetch()
  }

  async #fetch(): Promise<void> {
    this.#isFetching = true
    try {
      do {
        this.#shouldFetchAgain = false
        const { concurrency } = this.#options
        const batchSize = this.#batchSize()
        const room = concurrency + batchSize - this.#running.size - this.#buffer.length
        // Too little room: wait until enough jobs finish to make a fetch worth its round trip. Outcomes not
        // yet committed also wait: while the database is slow to take them, fetching more only adds leases.
        if (room < Math.max(1, Math.floor(batchSize / 2)) || this.#workerId === undefined) break
        if (this.#outage.isDown) {
          await this.#outage.whenRestored()
          if (this.#state !== 'running') break
        }
        if (this.#completer.pendingCount >= maxPendingOutcomes) break
        // Claims go through the LISTEN connection while it is up, leaving the pool to outcomes and heartbeats.
        const listening = this.#listener?.connection
        this.#isClaiming = true
        const claim: FetchJobsArgs = {
          workerId: this.#workerId,
          queueNames: this.#options.queues ?? null,
          batchSize: room,
          attributeFilter: this.#options.attributeFilter ?? null,
        }
        const claimStartedAt = performance.now()
        const jobs = await fetchJobs(listening ? toQueryable(listening) : this.#db, this.#options.schema, claim).finally(() => {
          this.#isClaiming = false
        })
        const { explainClaims } = this.#options
        if (explainClaims && Math.random() < explainClaims.sampleRate) this.#explainClaim(claim, performance.now() - claimStartedAt, explainClaims)
        this.#fetchFailures = 0
        this.#isQueueDrained = jobs.length < room
        if (this.#state !== 'running') {
          // Stopped while fetching: these were never started, give them back.
          for (const job of jobs) void this.#completer.release(job)
          break
        }
        for (const job of jobs) this.emit('job:fetched', { job })
        this.#buffer.push(...jobs)
        this.#startJobs()
        if (!this.#isQueueDrained) this.#shouldFetchAgain = true
      } while (this.#shouldFetchAgain && this.#state === 'running')
    } catch (error) {
      this.#reportError(error, 'fetch')
      // A lost database is waited for at the top of the loop; another failure backs off.
      if (!isConnectionError(error)) {
        this.#fetchFailures += 1
        await delay(Math.min(10_000, 100 * 2 ** this.#fetchFailures))
      }
      this.#shouldFetchAgain = true
    } finally {
      this.#isFetching = false
    }
    if (this.#shouldFetchAgain && this.#state === 'running') this.#wake()
  }

  /** The configured batch size, or one that keeps about 20 ms of work ready at the recent pace. */
  #batchSize(): number {
    if (this.#options.batchSize > 0) return this.#options.batchSize
    const { concurrency } = this.#options
    if (this.#handlerMsAverage === undefined) return Math.min(concurrency, 1000)
    const target = Math.round((concurrency * adaptiveBufferMs) / Math.max(this.#handlerMsAverage, 0.01))
    return Math.max(Math.min(concurrency, 1000), Math.min(target, 1000))
  }

  #startJobs(): void {
    while (this.#running.size < this.#options.concurrency && this.#buffer.length > 0) {
      this.#run(this.#buffer.shift()!)
    }
  }

  #run(job: Job): void {
    const controller = new AbortController()
    const entry: RunningJob = { job, controller, isOutcomeRecorded: false, settled: Promise.resolve() }
    this.#running.set(job.id, entry)
    entry.settled = this.#execute(entry).finally(() => {
      this.#running.delete(job.id)
      if (this.#state !== 'running') return
      this.#startJobs()
      if (!this.#isQueueDrained) this.#wake()
    })
  }

  async #execute(entry: RunningJob): Promise<void> {
    const { job, controller } = entry
    const task = this.#tasks.get(job.taskName)
    this.emit('job:started', { job })
    recordJobStarted(job)
    let timeout: NodeJS.Timeout | undefined
    let outcome: Outcome | undefined
    let result: unknown
    let error: unknown
    const startedAt = performance.now()
    try {
      if (!task) {
        throw new NonRetryableError(`task ${JSON.stringify(job.taskName)} is not registered in this worker`, {
          cause: new UnknownTaskError({ taskName: job.taskName, knownTaskNames: [...this.#tasks.keys()] }),
        })
      }
      const payload = await validatePayload(task, job.payload).catch((validationError: unknown) => {
        throw new NonRetryableError((validationError as Error).message, { cause: validationError })
      })
      const timeoutMs = task.definition.timeoutMs
      if (timeoutMs !== undefined) {
        timeout = setTimeout(() => {
          const timeoutError = new JobTimeoutError({ jobId: job.id, timeoutMs })
          controller.abort(timeoutError)
          // Record the failure now, so a handler that ignores its signal does not hold up the retry.
          entry.isOutcomeRecorded = true
          void this.#recordFailure(task, job, timeoutError)
        }, timeoutMs)
      }
      const context = { job, signal: controller.signal, logger: this.#logger }
      if (task.definition.transactional) {
        ;({ outcome, result } = await this.#runInTransaction(task, job, payload, context))
      } else {
        result = await inRunContext(job, () => task.definition.handler(payload, context))
      }
    } catch (handlerError) {
      error = handlerError
    } finally {
      clearTimeout(timeout)
      const durationMs = performance.now() - startedAt
      this.#handlerMsAverage = this.#handlerMsAverage === undefined ? durationMs : this.#handlerMsAverage * 0.9 + durationMs * 0.1
    }
    if (entry.isOutcomeRecorded) return
    if (outcome) return this.#emitOutcome(job, outcome, undefined, result)
    if (error === undefined) {
      let resultJson: string
      try {
        resultJson = this.#toResultJson(job, result)
      } catch (resultError) {
        return void this.#recordFailure(task, job, resultError)
      }
      // The slot frees as soon as the handler is done; the outcome commits with the next group commit.
      return void this.#completer.complete(job, resultJson).then((recorded) => this.#emitOutcome(job, recorded, undefined, result))
    }
    if (controller.signal.reason instanceof WorkerStoppedError) {
      // The worker stopped the handler: this attempt did not really run, so it does not count.
      return void this.#completer.release(job).then((recorded) => this.#emitOutcome(job, recorded, undefined, undefined))
    }
    return void this.#recordFailure(task, job, error)
  }

  /**
   * The result as JSON text to store. A result that cannot be stored, or is larger than `maxResultBytes`,
   * fails the job for good: running it again would give the same result.
   */
  #toResultJson(job: Job, result: unknown): string {
    try {
      return toStorableJson(result ?? null, { taskName: job.taskName, maxBytes: this.#options.maxResultBytes })
    } catch (error) {
      const reason =
        error instanceof PayloadTooLargeError ? `it is ${error.sizeBytes} bytes of JSON, over maxResultBytes (${error.maxBytes})` : (error as Error).message
      throw new NonRetryableError(`the handler's result cannot be stored: ${reason}`, { cause: error })
    }
  }

  /** Runs a transactional handler and completes its job in the same transaction, alone. */
  async #runInTransaction(task: Task, job: Job, payload: unknown, context: object): Promise<{ outcome: Outcome; result: unknown }> {
    const releaseSlot = await this.#transactionSlots.acquire()
    // A worker cut off from the server mid-handler would otherwise keep this transaction, and whatever the
    // handler locked, until the server found the socket dead, which can take hours. Past a lease of silence
    // the job is rescued anyway, and this transaction could only roll back.
    const idleLimit = { idleTimeoutMs: this.#options.leaseSeconds * 1000 }
    try {
      return await inTransaction(this.#pool, async (client) => {
        const result = await inRunContext(job, () => task.definition.handler(payload, { ...context, tx: client }))
        const resultJson = this.#toResultJson(job, result)
        const [completed] = await completeJobs(toQueryable(client), this.#options.schema, job.workerId!, [{ jobId: job.id, attempt: job.attempts, resultJson }])
        // The lease was lost: the handler's writes must not commit without the completion.
        if (!completed) throw new Rollback({ outcome: { kind: 'lease-lost' } as Outcome, result })
        if (this.#options.onJobsCompleting) await this.#options.onJobsCompleting(client, [completed])
        return { outcome: { kind: 'completed', job: completed } as Outcome, result }
      }, idleLimit)
    } finally {
      releaseSlot()
    }
  }

  async #recordFailure(task: Task | undefined, job: Job, error: unknown): Promise<void> {
    const isRetryable = !(error instanceof NonRetryableError || error instanceof InvalidPayloadError)
    const backoff = task?.definition.backoff
    const retryAt = isRetryable && backoff ? new Date(Date.now() + backoffDelayMs(backoff, job.attempts)) : null
    const details = describeError(error)
    const cause = error instanceof Error && error.cause !== undefined ? describeError(error.cause) : undefined
    const outcome = await this.#completer.fail(job, {
      error: { ...details, ...(cause ? { cause } : {}) },
      retryAt,
      isRetryable,
    })
    this.#emitOutcome(job, outcome, error, undefined)
  }

  #emitOutcome(job: Job, outcome: Outcome, error: unknown, result: unknown): void {
    recordJobOutcome(job, outcome, error)
    switch (outcome.kind) {
      case 'completed':
        this.emit('job:completed', { job: outcome.job, result })
        break
      case 'failed': {
        const willRetry = outcome.outcome.state === 'todo'
        this.#logger.warn({ jobId: job.id, task: job.taskName, attempt: job.attempts, willRetry, error: describeError(error).message }, 'job failed')
        this.emit('job:failed', { job, error, willRetry, state: outcome.outcome.state, runAt: outcome.outcome.runAt })
        break
      }
      case 'released':
        this.emit('job:released', { job })
        break
      case 'lease-lost':
        this.#logger.warn({ jobId: job.id, task: job.taskName }, 'job was rescued from this worker; its outcome was not recorded')
        this.emit('job:lease-lost', { job })
        break
    }
    // A finished job with a lock frees the next job of that lock: look for it now rather than at the next poll.
    if (job.lock !== null && this.#state === 'running') this.#isQueueDrained = false
    // A committed outcome may have been what held the fetch back (see maxPendingOutcomes).
    if (!this.#isQueueDrained) this.#wake()
  }

  async #heartbeat(): Promise<void> {
    // During an outage the probe heartbeats.
    if (this.#outage.isDown) return
    await this.#beat().catch((error: unknown) => this.#reportError(error, 'heartbeat'))
  }

  /** One heartbeat, aborting the jobs whose cancellation was asked; registers again if presumed dead. */
  async #beat(): Promise<void> {
    const workerId = this.#workerId
    if (workerId === undefined) return
    try {
      // Every job this worker holds, so the database can return a claim whose rows never arrived; not while a
      // claim is in flight, whose rows may be on their way.
      const held = this.#isClaiming ? undefined : [...this.#running.keys(), ...this.#buffer.map((job) => job.id), ...this.#completer.jobIds]
      const cancelled = await heartbeat(this.#db, this.#options.schema, workerId, held)
      for (const jobId of cancelled) this.#running.get(jobId)?.controller.abort(new JobCancelledError({ jobId }))
    } catch (error) {
      if (!(error instanceof WorkerNotRegisteredError && this.#isHeartbeating)) throw error
      this.#reportError(error, 'heartbeat')
      if (this.#state === 'running') await this.#reregister()
    }
  }

  /** Presumed dead by another worker: its jobs were rescued, so drop them and start over under a new id. */
  async #reregister(): Promise<void> {
    for (const entry of this.#running.values()) entry.controller.abort(new WorkerStoppedError())
    this.#buffer = []
    try {
      this.#workerId = await registerWorker(this.#db, this.#options.schema, this.#options.name, this.#options.leaseSeconds)
      this.#logger.warn({ workerId: this.#workerId }, 'worker registered again after it was presumed dead')
      this.#wake()
    } catch (error) {
      this.#reportError(error, 'register')
    }
  }

  /**
   * Replays a claim under EXPLAIN ANALYZE in a rolled-back transaction: ANALYZE really runs fetch_jobs, so
   * only the rollback keeps it from claiming. Its row locks last for that transaction: other workers skip
   * those jobs for a moment, as they would a claim in flight.
   */
  #explainClaim(claim: FetchJobsArgs, durationMs: number, { onPlan }: ExplainClaimsOptions): void {
    const sampling = inTransaction(this.#pool, async (client) => {
      throw new Rollback(await explainFetchJobs(toQueryable(client), this.#options.schema, claim))
    })
      .then((plan) => onPlan({ plan, durationMs, batchSize: claim.batchSize, queueNames: claim.queueNames ?? null }))
      .catch((error: unknown) => this.#reportError(error, 'explain claim'))
    // A stop waits for it before ending the pool.
    this.#stepsInFlight.add(sampling)
    void sampling.finally(() => this.#stepsInFlight.delete(sampling))
  }

  /** Lets claims skip the index entries of jobs claimed since a raise, which an old snapshot keeps from vacuum. */
  async #raiseClaimFloor(): Promise<void> {
    if (this.#outage.isDown) return
    try {
      await raiseClaimFloor(this.#db, this.#options.schema)
    } catch (error) {
      this.#reportError(error, 'claim floor')
    }
  }

  async #maintain(): Promise<void> {
    if (this.#outage.isDown) return
    try {
      const rescued = await rescueJobs(this.#db, this.#options.schema)
      if (rescued.length > 0) {
        this.#logger.warn({ count: rescued.length }, 'rescued jobs of workers presumed dead')
        recordJobsRescued(rescued)
        this.emit('jobs:rescued', { jobs: rescued })
        this.#isQueueDrained = false
        this.#wake()
      }
      const { rows } = await this.#pool.query<{ usage: number }>('select pg_notification_queue_usage() as usage')
      const usage = rows[0]?.usage ?? 0
      if (usage >= notificationBacklogWarningUsage) {
        this.#logger.warn({ usage, workerId: this.#workerId }, 'the NOTIFY queue is filling: a session listens without reading; deferring fails once it is full')
        this.emit('notifications:backlog', { usage })
      }
      if (this.#options.pruneAfterMs !== false) {
        await pruneJobs(this.#db, this.#options.schema, { finishedBefore: new Date(Date.now() - this.#options.pruneAfterMs) })
      }
    } catch (error) {
      this.#reportError(error, 'maintenance')
    }
  }
}

/**
 * Creates a worker; call `start()` to run it and `stop()` to shut it down gracefully.
 * @throws {InvalidArgumentError} for an invalid option, before connecting.
 * @example
 * const worker = createWorker({ connectionString, tasks: [sendEmail], concurrency: 20, handleSignals: true })
 * await worker.start()
 */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options)
}

/**
 * How often each worker raises the claim floor. Under an old snapshot a claim walks every entry claimed
 * since the last raise: a second's worth.
 */
const claimFloorIntervalMs = 1000

/** How much work the adaptive batch keeps ready, in milliseconds of handler time at full concurrency. */
const adaptiveBufferMs = 20

/** Outcomes waiting for their group commit beyond which the worker stops fetching. */
const maxPendingOutcomes = 2000

/**
 * NOTIFY queue usage at which maintenance warns. A healthy queue is read within milliseconds and stays near
 * 0; a listener that stopped reading holds back everything sent since, so any lasting usage means trouble.
 */
const notificationBacklogWarningUsage = 0.01

/** How long the worker's connections may take to open before the attempt counts as failed. */
const connectTimeoutMs = 10_000

/** A wait that does not keep the process alive on its own. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

/** @throws {InvalidArgumentError} unless `sampleRate` is a number from 0 to 1 and `onPlan` a function. */
function checkExplainClaims(options: ExplainClaimsOptions): void {
  const { sampleRate, onPlan } = options
  if (typeof sampleRate !== 'number' || !(sampleRate >= 0 && sampleRate <= 1)) {
    throw new InvalidArgumentError({ argument: 'explainClaims.sampleRate', reason: `${String(sampleRate)} is not a number from 0 to 1` })
  }
  if (typeof onPlan !== 'function') {
    throw new InvalidArgumentError({ argument: 'explainClaims.onPlan', reason: 'it must be a function that gets each sampled plan' })
  }
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>
}
