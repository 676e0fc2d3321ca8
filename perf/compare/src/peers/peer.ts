/** Which tuning a peer runs with: its best documented configuration, or its library defaults. */
export type ConfigName = 'best' | 'defaults'

/** Where a peer keeps its queue. `databaseUrl` is a fresh embedded PostgreSQL per peer and scenario. */
export interface PeerTarget {
  readonly databaseUrl: string
  /** Only BullMQ uses it; flushed before each run. */
  readonly redisUrl: string | undefined
}

/** A running worker inside one worker process. */
export interface RunningWorker {
  stop(): Promise<void>
}

/** The worker-side tuning of one configuration: how many processes, and what the report says about it. */
export interface WorkerPlan {
  readonly processes: number
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
  /** Creates the peer's schema (or flushes Redis) and its queue, on a fresh database. */
  setup(target: PeerTarget): Promise<void>
  /** Enqueues `jobs` no-op jobs the fastest documented way. */
  enqueue(target: PeerTarget, jobs: number): Promise<void>
  /** Jobs waiting or running (not yet completed) in the queue. */
  countRemaining(target: PeerTarget): Promise<number>
  workerPlan(config: ConfigName): WorkerPlan
  /** Starts one process's worker; `onJob` is called with the job's id each time a handler runs. */
  startWorker(target: PeerTarget, config: ConfigName, onJob: (id: string) => void): Promise<RunningWorker>
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

/** Runs `query` once on a short-lived connection and returns the first column of the first row as a number. */
export async function queryNumber(databaseUrl: string, query: string): Promise<number> {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: databaseUrl })
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
