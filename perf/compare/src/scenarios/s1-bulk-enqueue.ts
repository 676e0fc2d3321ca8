import { measure } from '../measure.ts'
import { noExtras, type ScenarioResult, type ScenarioRun } from './scenario.ts'

/** S1: enqueue `jobs` no-op jobs into an empty queue, the fastest documented way, from one process. */
export async function runBulkEnqueue({ peer, config, synchronousCommit, target, adminUrl, postmasterPid, options }: ScenarioRun): Promise<ScenarioResult> {
  await peer.setup(target, config)
  const payloads = Array.from({ length: options.jobs }, () => ({}))
  const producer = await peer.openProducer(target, config)
  let measured
  try {
    measured = await measure(
      { databaseUrl: adminUrl, inspectJobs: options.jobs, postmasterPid: peer.usesPostgres ? postmasterPid : undefined },
      () => producer.addBulk(payloads),
    )
  } finally {
    await producer.close()
  }
  const queued = await peer.countRemaining({ ...target, databaseUrl: adminUrl ?? target.databaseUrl })
  return {
    scenario: 'S1',
    peer: peer.name,
    config: 'bulk',
    configDescription: 'bulk API, one client',
    synchronousCommit,
    jobs: options.jobs,
    jobsDone: options.jobs,
    measurement: measured.measurement,
    ...noExtras,
    inspection: measured.inspection,
    isExactlyOnce: queued === options.jobs,
    isPartial: false,
    note: queued === options.jobs ? '' : `queue holds ${queued}`,
  }
}
