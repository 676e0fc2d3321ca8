import { measure } from '../measure.ts'
import type { ScenarioResult, ScenarioRun } from './scenario.ts'

/** S1: enqueue `jobs` no-op jobs into an empty queue, the fastest documented way, from one process. */
export async function runBulkEnqueue({ peer, target, postmasterPid, options }: ScenarioRun): Promise<ScenarioResult> {
  await peer.setup(target)
  const { measurement } = await measure(
    { databaseUrl: peer.usesPostgres ? target.databaseUrl : undefined, postmasterPid: peer.usesPostgres ? postmasterPid : undefined },
    () => peer.enqueue(target, options.jobs),
  )
  const queued = await peer.countRemaining(target)
  return {
    scenario: 'S1',
    peer: peer.name,
    config: 'bulk',
    configDescription: 'bulk API, one client',
    jobs: options.jobs,
    jobsDone: options.jobs,
    measurement,
    isExactlyOnce: queued === options.jobs,
    isPartial: false,
    note: queued === options.jobs ? '' : `queue holds ${queued}`,
  }
}
