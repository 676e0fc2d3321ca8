import { checkExactlyOnce, runWorkers } from './run-workers.ts'
import { noExtras, type ScenarioName, type ScenarioResult, type ScenarioRun, seededRandom } from './scenario.ts'

/** An I/O-bound workload: jobs that sleep a uniformly random time, run by a fixed number of handlers. */
export interface SleepingJobs {
  scenario: Extract<ScenarioName, 'S3' | 'M1'>
  jobs: number
  minSleepMs: number
  maxSleepMs: number
  slots: number
}

/** S3: 20,000 jobs sleeping U[25,75] ms over 200 handlers (ideal 5.0 s). */
export const s3: SleepingJobs = { scenario: 'S3', jobs: 20_000, minSleepMs: 25, maxSleepMs: 75, slots: 200 }
/**
 * M1: 10,000 jobs sleeping U[500,1500] ms over 1,000 handlers (ideal 10 s), for the peak memory of
 * a worker process. Run with the `defaults` configuration, which is one process for every peer.
 */
export const m1: SleepingJobs = { scenario: 'M1', jobs: 10_000, minSleepMs: 500, maxSleepMs: 1500, slots: 1000 }

/**
 * The workers start idle; the measured interval starts when the producer has committed every job
 * (one bulk enqueue) and ends at an empty queue. Efficiency = ideal / that time.
 */
export async function runSleepingJobs(run: ScenarioRun, workload: SleepingJobs): Promise<ScenarioResult> {
  const { peer, config, target, options } = run
  await peer.setup(target, config)
  const random = seededRandom(42)
  const payloads = Array.from({ length: workload.jobs }, () => ({
    sleepMs: Math.round(workload.minSleepMs + random() * (workload.maxSleepMs - workload.minSleepMs)),
  }))
  const idealSeconds = payloads.reduce((sum, payload) => sum + payload.sleepMs, 0) / 1000 / workload.slots
  const plan = peer.workerPlan(config, workload.slots)
  const producer = await peer.openProducer(target, config)
  let outcome
  try {
    outcome = await runWorkers({
      ...run,
      plan,
      jobs: workload.jobs,
      maxSeconds: options.maxSeconds,
      isIdleAtStart: true,
      produce: () => producer.addBulk(payloads),
    })
  } finally {
    await producer.close()
  }
  return {
    scenario: workload.scenario,
    peer: peer.name,
    config,
    configDescription: plan.description,
    synchronousCommit: run.synchronousCommit,
    jobs: workload.jobs,
    jobsDone: outcome.isPartial ? outcome.executionsInInterval : workload.jobs,
    measurement: outcome.measurement,
    ...noExtras,
    inspection: outcome.inspection,
    efficiency: outcome.isPartial ? null : idealSeconds / outcome.drainSeconds,
    drainSeconds: outcome.drainSeconds,
    idealSeconds,
    processes: plan.processes,
    maxRssBytes: outcome.maxRssBytes,
    isPartial: outcome.isPartial,
    ...checkExactlyOnce(outcome, workload.jobs),
  }
}
