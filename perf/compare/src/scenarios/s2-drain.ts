import pg from 'pg'

import { checkExactlyOnce, runWorkers } from './run-workers.ts'
import { noExtras, type ScenarioResult, type ScenarioRun } from './scenario.ts'

/**
 * S2: `jobs` no-op jobs are queued before any worker starts; the measured interval runs from
 * starting the worker processes to an empty queue (every job executed and its completion committed).
 */
export async function runDrain(run: ScenarioRun): Promise<ScenarioResult> {
  const { peer, config, target, options } = run
  await peer.setup(target, config)
  const producer = await peer.openProducer(target, config)
  try {
    await producer.addBulk(Array.from({ length: options.jobs }, () => ({})))
  } finally {
    await producer.close()
  }
  if (peer.usesPostgres) {
    // Every peer starts from the same point: the enqueue's dirty pages written out.
    const client = new pg.Client({ connectionString: target.databaseUrl })
    await client.connect()
    await client.query('checkpoint')
    await client.end()
  }
  const plan = peer.workerPlan(config)
  const outcome = await runWorkers({ ...run, plan, jobs: options.jobs, maxSeconds: options.maxSeconds, isIdleAtStart: false })
  return {
    scenario: 'S2',
    peer: peer.name,
    config,
    configDescription: plan.description,
    synchronousCommit: run.synchronousCommit,
    jobs: options.jobs,
    // A partial run's rate counts what the handlers ran within the interval.
    jobsDone: outcome.isPartial ? Math.min(new Set(outcome.ids).size, outcome.executionsInInterval) : options.jobs,
    measurement: outcome.measurement,
    ...noExtras,
    inspection: outcome.inspection,
    processes: plan.processes,
    maxRssBytes: outcome.maxRssBytes,
    isPartial: outcome.isPartial,
    ...checkExactlyOnce(outcome, options.jobs),
  }
}
