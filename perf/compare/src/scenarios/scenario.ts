import type { Measurement } from '../measure.ts'
import type { ConfigName, Peer, PeerTarget } from '../peers/peer.ts'

export const scenarioNames = ['S1', 'S2'] as const
export type ScenarioName = (typeof scenarioNames)[number]

export interface ScenarioOptions {
  jobs: number
  /** A run still draining after this long is stopped and reported as partial. */
  maxSeconds: number
}

/** One row of the report. */
export interface ScenarioResult {
  scenario: ScenarioName
  peer: string
  /** `best`/`defaults`; S1 has one row per peer (`bulk`), since enqueueing has no worker tuning. */
  config: ConfigName | 'bulk'
  configDescription: string
  jobs: number
  /** Jobs enqueued (S1) or executed (S2) within the measured interval. */
  jobsDone: number
  measurement: Measurement
  /** S1: the queue holds exactly `jobs`. S2: executions = distinct ids = jobs, and nothing left. */
  isExactlyOnce: boolean
  isPartial: boolean
  note: string
}

export interface ScenarioRun {
  peer: Peer
  config: ConfigName
  target: PeerTarget
  postmasterPid: number | undefined
  options: ScenarioOptions
}
