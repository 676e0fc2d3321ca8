import { setTimeout as delay } from 'node:timers/promises'

import {
  callbackSink,
  type ConnectionsSample,
  connectionsSampler,
  databaseSampler,
  processSampler,
  type Sample,
  type SampleData,
  type Sampler,
  startMonitor,
} from '@skiplock/monitor'

import { finishInspection, harnessApplicationName, type Inspection, startInspection } from './inspect.ts'

/** Time for disconnected backends to exit and be reaped before the last sample. */
const exitAllowanceMs = 500

/** The application names of the harness's own sessions: the monitor's, and the producers', counting's and inspection's. */
const harnessApplicationNames = ['skiplock-monitor', harnessApplicationName] as const

/**
 * The harness's own sessions in a sample, plus sessions still starting: their application name is not
 * known yet, and the harness opens a short connection every few milliseconds to count what is left.
 * A peer's own connection counts once it has started.
 */
const harnessConnections = (sample: ConnectionsSample) =>
  harnessApplicationNames.reduce((sum, name) => sum + (sample.byApplication[name] ?? 0), 0) + (sample.byState.starting ?? 0)

/** What a measured interval cost, as deltas between a sample before it and one after. */
export interface Measurement {
  wallSeconds: number
  /** CPU of the postmaster and all its backends; null when the peer does not use PostgreSQL. */
  postgresCpuSeconds: number | null
  /** WAL the server wrote (`pg_stat_wal.wal_bytes`). */
  walBytes: number | null
  /** `pg_stat_database.xact_commit` of the database. */
  commits: number | null
  /** The most client backends of the peer seen at once (the harness's own are not counted). */
  peakConnections: number | null
  /** CPU of the client processes given (the worker processes), summed. */
  clientCpuSeconds: number | null
}

export interface MeasureOptions {
  /** The harness's own URL to the peer's database: samplers and inspection connect with it. */
  databaseUrl: string | undefined
  /** Jobs the interval handles: with it, the WAL by record type and the peer's statements are read per job. */
  inspectJobs?: number
  postmasterPid: number | undefined
  /** Processes whose CPU is measured from the start of `body` to its end. */
  clientPids?: readonly number[]
  /**
   * Runs after `body`, outside the wall time, before the last database sample: it must close the
   * clients' connections. Backends flush their commit and WAL counters at most once a second while
   * busy, and always when they exit, so only a sample after they exit counts everything.
   */
  settle?: () => Promise<void>
  intervalMs?: number
}

/**
 * Measures `body`: wall time, and the server's CPU, WAL and commits from a sample just before it to
 * one after `settle`, with the peak of client connections sampled every `intervalMs` (250) between.
 * The monitor's own queries add about 8 commits a second, negligible against the jobs.
 */
export async function measure<T>(options: MeasureOptions, body: () => Promise<T>): Promise<{ result: T; measurement: Measurement; inspection: Inspection | null }> {
  const samplers: Sampler[] = []
  if (options.databaseUrl) {
    samplers.push(connectionsSampler({ connectionString: options.databaseUrl }), databaseSampler({ connectionString: options.databaseUrl }))
  }
  if (options.postmasterPid) samplers.push(processSampler({ name: 'postgres', pid: options.postmasterPid }))
  const clientSamplers = (options.clientPids ?? []).map((pid) => processSampler({ name: `client-${pid}`, pid }))
  const sampleClients = async () => (await Promise.all(clientSamplers.map((sampler) => sampler.sample()))).flat()

  const rounds: (readonly Sample[])[] = []
  const monitor = startMonitor({
    intervalMs: options.intervalMs ?? 250,
    samplers,
    sinks: [callbackSink((samples) => void rounds.push(samples))],
  })
  let result: T
  let wallSeconds: number
  let clientsBefore: SampleData[] = []
  let clientsAfter: SampleData[] = []
  const inspectUrl = options.inspectJobs ? options.databaseUrl : undefined
  const startLsn = inspectUrl ? await startInspection(inspectUrl) : undefined
  const first = await monitor.sampleNow()
  try {
    clientsBefore = await sampleClients()
    const startedAt = performance.now()
    result = await body()
    wallSeconds = (performance.now() - startedAt) / 1000
    clientsAfter = await sampleClients()
    await options.settle?.()
    // A client backend that just disconnected is still exiting: its CPU reaches the postmaster's
    // reaped-children total only once the postmaster has waited for it, and its counters on exit.
    await delay(exitAllowanceMs)
  } catch (error) {
    await monitor.stop()
    throw error
  }
  const last = await monitor.sampleNow()
  await monitor.stop()
  const inspection = inspectUrl && startLsn ? await finishInspection(inspectUrl, startLsn, options.inspectJobs!) : null
  for (const sample of [...first, ...last, ...clientsBefore, ...clientsAfter]) {
    if (sample.kind === 'error') console.error(`monitor: ${sample.sampler}: ${sample.message}`)
  }

  const find = <K extends SampleData['kind']>(samples: readonly SampleData[], kind: K, name?: string) =>
    samples.find(
      (sample): sample is Extract<SampleData, { kind: K }> =>
        sample.kind === kind && (name === undefined || ('name' in sample && sample.name === name)),
    )
  const delta = (before: number | null | undefined, after: number | null | undefined) =>
    before == null || after == null ? null : after - before
  const clientCpu = clientSamplers.map((sampler) =>
    delta(find(clientsBefore, 'process', sampler.name)?.cpuSeconds, find(clientsAfter, 'process', sampler.name)?.cpuSeconds),
  )
  const connections = rounds
    .flat()
    .flatMap((sample) => (sample.kind === 'connections' ? [sample.total - harnessConnections(sample)] : []))
  return {
    result,
    inspection,
    measurement: {
      wallSeconds,
      postgresCpuSeconds: delta(find(first, 'process', 'postgres')?.cpuSeconds, find(last, 'process', 'postgres')?.cpuSeconds),
      walBytes: delta(find(first, 'database')?.walBytes, find(last, 'database')?.walBytes),
      commits: delta(find(first, 'database')?.commits, find(last, 'database')?.commits),
      peakConnections: connections.length ? Math.max(...connections) : null,
      clientCpuSeconds:
        clientCpu.length && clientCpu.every((cpu) => cpu !== null) ? clientCpu.reduce((sum, cpu) => sum! + cpu!, 0) : null,
    },
  }
}
