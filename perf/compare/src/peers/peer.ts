import { harnessApplicationName } from '../inspect.ts'

/** Which tuning a peer runs with: its best documented configuration, or its library defaults. */
export type ConfigName = 'best' | 'defaults'

/** Where a peer keeps its queue. `databaseUrl` is a fresh embedded PostgreSQL per peer and scenario. */
export interface PeerTarget {
  readonly databaseUrl: string
  /** Only BullMQ uses it; each run has its own key prefix. */
  readonly redisUrl: string | undefined
}

/** What every benchmark job carries; a no-op job carries nothing. */
export interface JobPayload {
  /** The handler sleeps this long (an I/O-bound job). */
  readonly sleepMs?: number
  /** When the producer called the enqueue API, in ms since the epoch (high resolution), for pickup latency. */
  readonly enqueuedAt?: number
}

/** Runs one job in a worker process: records the execution, then sleeps as the payload says. */
export type JobHandler = (id: string, payload: JobPayload) => Promise<void>

/** A producer connection kept open across enqueue calls. */
export interface Producer {
  /** Enqueues many jobs the fastest documented way. */
  addBulk(payloads: readonly JobPayload[]): Promise<void>
  /** Enqueues one job with the library's single-job API. */
  add(payload: JobPayload): Promise<void>
  close(): Promise<void>
}

/** A running worker inside one worker process. */
export interface RunningWorker {
  stop(): Promise<void>
}

/**
 * The worker-side tuning of one configuration: how many processes, each running `concurrency`
 * handlers (`undefined`: the library's default), and what the report says about it.
 */
export interface WorkerPlan {
  readonly config: ConfigName
  readonly processes: number
  readonly concurrency: number | undefined
  /** The scenario fixed the number of handlers (`slots`), rather than the configuration. */
  readonly hasFixedSlots: boolean
  readonly description: string
}

/**
 * One queue library, driven the same way in every scenario. Every method but `startWorker` runs in
 * the harness process; `startWorker` runs in a worker process (src/worker-process.ts).
 */
export interface Peer {
  readonly name: PeerName
  /** BullMQ keeps its jobs in Redis: its PostgreSQL columns are not measured. */
  readonly usesPostgres: boolean
  /** The library's version as installed, for the report. */
  version(): Promise<string>
  /** Creates the peer's schema (or its Redis key prefix) and its queue, on a fresh database. */
  setup(target: PeerTarget, config: ConfigName): Promise<void>
  openProducer(target: PeerTarget, config: ConfigName): Promise<Producer>
  /** Jobs waiting or running (not yet completed) in the queue. */
  countRemaining(target: PeerTarget): Promise<number>
  /**
   * The processes and handlers of a configuration. With `slots`, the scenario fixes the total number
   * of handlers over all processes (S3, M1); without, the configuration chooses (S2, S4).
   */
  workerPlan(config: ConfigName, slots?: number): WorkerPlan
  startWorker(target: PeerTarget, plan: WorkerPlan, handle: JobHandler): Promise<RunningWorker>
}

export const peerNames = ['skiplock', 'graphile-worker', 'pg-boss', 'bullmq'] as const
export type PeerName = (typeof peerNames)[number]

/** The queue (or task identifier) every peer uses. */
export const queueName = 'perf_noop'

export async function loadPeer(name: PeerName): Promise<Peer> {
  switch (name) {
    case 'skiplock':
      return (await import('./skiplock.ts')).skiplockPeer
    case 'graphile-worker':
      return (await import('./graphile-worker.ts')).graphileWorkerPeer
    case 'pg-boss':
      return (await import('./pg-boss.ts')).pgBossPeer
    case 'bullmq':
      return (await import('./bullmq.ts')).bullmqPeer
  }
}

/**
 * The database URL for the harness's own sessions (producers, counting): they carry the application name the
 * measurement leaves out of peak connections (pg lets a URL parameter override a library's own name).
 */
export function harnessUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl)
  url.searchParams.set('application_name', harnessApplicationName)
  return url.toString()
}

/** Runs `query` once on a short-lived connection and returns the first column of the first row as a number. */
export async function queryNumber(databaseUrl: string, query: string): Promise<number> {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: harnessUrl(databaseUrl) })
  await client.connect()
  try {
    const result = await client.query<Record<string, unknown>>(query)
    const row = result.rows[0]
    return Number(row ? Object.values(row)[0] : 0)
  } finally {
    await client.end()
  }
}

/** The installed version of a dependency, read from its package.json. */
export async function installedVersion(packageName: string): Promise<string> {
  const { createRequire } = await import('node:module')
  const { readFile } = await import('node:fs/promises')
  const require = createRequire(import.meta.url)
  // Some packages do not export ./package.json: find it from the resolved entry point.
  let directory = require.resolve(packageName)
  const path = await import('node:path')
  while (directory !== path.dirname(directory)) {
    directory = path.dirname(directory)
    try {
      const manifest = JSON.parse(await readFile(path.join(directory, 'package.json'), 'utf8')) as { name?: string; version?: string }
      if (manifest.name === packageName) return manifest.version ?? 'unknown'
    } catch {}
  }
  return 'unknown'
}

/**
 * The plan of a configuration for a scenario: `processes` as the configuration says, and with
 * `slots` given, that many handlers split evenly over them.
 */
export function planFor(
  config: ConfigName,
  shape: { processes: number; concurrency: number | undefined; description: string },
  slots: number | undefined,
): WorkerPlan {
  if (slots === undefined) return { config, hasFixedSlots: false, ...shape }
  const concurrency = Math.ceil(slots / shape.processes)
  return {
    config,
    processes: shape.processes,
    concurrency,
    hasFixedSlots: true,
    description: `${shape.processes} process${shape.processes > 1 ? 'es' : ''} x ${concurrency} handlers, ${config === 'best' ? 'tuned' : 'otherwise defaults'}`,
  }
}
