import { readFile } from 'node:fs/promises'

/** Client connections by state, as the monitor samples them from pg_stat_activity once a second. */
export interface ConnectionsSample {
  kind: 'connections'
  /** Milliseconds since the epoch, from the line's ISO `t`. */
  timeMs: number
  total: number
  byState: Record<string, number>
  /** Connections waiting, by wait_event_type. */
  waiting: Record<string, number>
  byApplication: Record<string, number>
  maxConnections: number
}

/** The database's cumulative counters: commits, rows and WAL only grow, so their deltas are the rates. */
export interface DatabaseSample {
  kind: 'database'
  timeMs: number
  commits: number
  rollbacks: number
  rowsInserted: number
  rowsUpdated: number
  rowsDeleted: number
  walBytes: number
  deadTuples: Record<string, number>
  notificationQueueUsage: number
}

/** A process tree (the database's, or the workers'): cumulative CPU seconds and its summed PSS. */
export interface ProcessSample {
  kind: 'process'
  timeMs: number
  name: string
  pid: number
  processes: number
  cpuSeconds: number
  pssBytes: number
}

/** A sampler that failed once; the monitor goes on sampling. */
export interface SamplerErrorSample {
  kind: 'error'
  timeMs: number
  sampler: string
  message: string
}

/** Everything a run's samples.jsonl holds, by kind, each in time order. */
export interface Samples {
  connections: ConnectionsSample[]
  database: DatabaseSample[]
  processes: ProcessSample[]
  errors: SamplerErrorSample[]
  /** Lines that are not JSON or lack the fields of their kind; they are skipped. */
  malformedLines: number
}

/** A point of a rate: the change of a cumulative counter per second between two samples, at the later one. */
export interface RatePoint {
  timeMs: number
  perSecond: number
}

const numberFields = {
  connections: ['total', 'maxConnections'],
  database: ['commits', 'rollbacks', 'rowsInserted', 'rowsUpdated', 'rowsDeleted', 'walBytes', 'notificationQueueUsage'],
  process: ['pid', 'processes', 'cpuSeconds', 'pssBytes'],
  error: [],
} as const

const recordFields = { connections: ['byState', 'waiting', 'byApplication'], database: ['deadTuples'], process: [], error: [] } as const
const stringFields = { connections: [], database: [], process: ['name'], error: ['sampler', 'message'] } as const

/**
 * Reads a run's samples.jsonl, written by @skiplock/monitor during the run. Returns `undefined` when the
 * file does not exist (a run from before the monitor, or one run without it).
 */
export async function readSamples(file: URL): Promise<Samples | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  return parseSamples(text)
}

/** Parses the lines of a samples.jsonl; lines of unknown kinds are ignored, broken ones counted. */
export function parseSamples(text: string): Samples {
  const samples: Samples = { connections: [], database: [], processes: [], errors: [], malformedLines: 0 }
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const sample = parseLine(line)
    if (sample === undefined) samples.malformedLines += 1
    else if (sample === null) continue
    else if (sample.kind === 'connections') samples.connections.push(sample)
    else if (sample.kind === 'database') samples.database.push(sample)
    else if (sample.kind === 'process') samples.processes.push(sample)
    else samples.errors.push(sample)
  }
  // The monitor's samplers run side by side: their lines need not be in time order.
  for (const list of [samples.connections, samples.database, samples.processes, samples.errors]) list.sort((a, b) => a.timeMs - b.timeMs)
  return samples
}

type Sample = ConnectionsSample | DatabaseSample | ProcessSample | SamplerErrorSample

// undefined: malformed; null: a kind this analyzer does not know (a newer monitor), skipped.
function parseLine(line: string): Sample | null | undefined {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const record = value as Record<string, unknown>
  const timeMs = typeof record.t === 'string' ? Date.parse(record.t) : Number.NaN
  if (!Number.isFinite(timeMs)) return undefined
  const kind = record.kind
  if (kind !== 'connections' && kind !== 'database' && kind !== 'process' && kind !== 'error') return null
  for (const field of numberFields[kind]) if (typeof record[field] !== 'number' || !Number.isFinite(record[field])) return undefined
  for (const field of stringFields[kind]) if (typeof record[field] !== 'string') return undefined
  for (const field of recordFields[kind]) if (!isCountRecord(record[field])) return undefined
  const { t: _t, ...fields } = record
  return { ...fields, kind, timeMs } as Sample
}

function isCountRecord(value: unknown): value is Record<string, number> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((count) => typeof count === 'number')
}

/**
 * Per-second rates of a cumulative counter between consecutive samples. A counter that went down (the
 * statistics were reset, or a process restarted) gives no point for that interval.
 */
export function counterRates<T extends { timeMs: number }>(samples: readonly T[], read: (sample: T) => number): RatePoint[] {
  const points: RatePoint[] = []
  for (let index = 1; index < samples.length; index++) {
    const before = samples[index - 1]!
    const after = samples[index]!
    const seconds = (after.timeMs - before.timeMs) / 1000
    const delta = read(after) - read(before)
    if (seconds > 0 && delta >= 0) points.push({ timeMs: after.timeMs, perSecond: delta / seconds })
  }
  return points
}

/** Process samples grouped by process name ('postgres', 'workers', ...), each in time order. */
export function processesByName(samples: readonly ProcessSample[]): Map<string, ProcessSample[]> {
  const byName = new Map<string, ProcessSample[]>()
  for (const sample of samples) {
    const list = byName.get(sample.name)
    if (list) list.push(sample)
    else byName.set(sample.name, [sample])
  }
  return byName
}

/**
 * CPU cores a process tree used between consecutive samples (Δ CPU seconds / Δ seconds). A new pid
 * means a new tree whose counter started again, so the interval across it is left out.
 */
export function coresUsed(samples: readonly ProcessSample[]): RatePoint[] {
  const points: RatePoint[] = []
  for (let index = 1; index < samples.length; index++) {
    const before = samples[index - 1]!
    const after = samples[index]!
    if (before.pid !== after.pid) continue
    points.push(...counterRates([before, after], (sample) => sample.cpuSeconds))
  }
  return points
}

/** Samples taken within [startMs, endMs]. */
export function within<T extends { timeMs: number }>(samples: readonly T[], startMs: number, endMs: number): T[] {
  return samples.filter((sample) => sample.timeMs >= startMs && sample.timeMs <= endMs)
}
