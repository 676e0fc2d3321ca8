import type { Inspection } from '../inspect.ts'
import type { Measurement } from '../measure.ts'
import type { ConfigName, Peer, PeerTarget } from '../peers/peer.ts'

export const scenarioNames = ['S1', 'S2', 'S3', 'S4', 'M1'] as const
export type ScenarioName = (typeof scenarioNames)[number]

export interface ScenarioOptions {
  /** Jobs of S1 and S2. */
  jobs: number
  /** A run still draining after this long is stopped and reported as partial. */
  maxSeconds: number
}

/** One run of one peer in one scenario and configuration. */
export interface ScenarioResult {
  scenario: ScenarioName
  peer: string
  /** `best`/`defaults`; S1 has one row per peer (`bulk`), since enqueueing has no worker tuning. */
  config: ConfigName | 'bulk'
  configDescription: string
  synchronousCommit: 'on' | 'off'
  jobs: number
  /** Jobs enqueued (S1) or executed (the others) within the measured interval. */
  jobsDone: number
  measurement: Measurement
  /** S3 and M1: ideal seconds (jobs x mean duration / handlers) over the measured drain seconds. */
  efficiency: number | null
  drainSeconds: number | null
  idealSeconds: number | null
  /** Worker processes of the run (peak connections per process is peak / processes). */
  processes: number | null
  /** S4: enqueue call to handler start, in ms. */
  pickupP50Ms: number | null
  pickupP99Ms: number | null
  /** The largest peak resident set size of one worker process. */
  maxRssBytes: number | null
  /** WAL by record type and the peer's statements over the interval; null without PostgreSQL. */
  inspection: Inspection | null
  /** S1: the queue holds exactly `jobs`. Others: executions = distinct ids = jobs, and nothing left. */
  isExactlyOnce: boolean
  isPartial: boolean
  note: string
}

export interface ScenarioRun {
  peer: Peer
  config: ConfigName
  synchronousCommit: 'on' | 'off'
  /** Where the peer connects (as its own role, see inspect.ts). */
  target: PeerTarget
  /** The harness's own URL for monitoring and counting; undefined when the peer does not use PostgreSQL. */
  adminUrl: string | undefined
  postmasterPid: number | undefined
  options: ScenarioOptions
}

/** The fields of a result that only some scenarios fill. */
export const noExtras = {
  efficiency: null,
  drainSeconds: null,
  idealSeconds: null,
  processes: null,
  pickupP50Ms: null,
  pickupP99Ms: null,
  maxRssBytes: null,
  inspection: null,
} as const

/** The value below which `fraction` of the sorted values lie (nearest rank). */
export function percentile(values: readonly number[], fraction: number): number | null {
  if (!values.length) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!
}

/** A deterministic pseudo-random sequence (mulberry32), so every peer gets the same job durations. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
