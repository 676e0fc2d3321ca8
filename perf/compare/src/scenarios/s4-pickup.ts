import { setTimeout as delay } from 'node:timers/promises'

import { checkExactlyOnce, runWorkers } from './run-workers.ts'
import { noExtras, percentile, type ScenarioResult, type ScenarioRun } from './scenario.ts'

/** S4's rate: single jobs at 200 a second to idle workers. */
const jobsPerSecond = 200

/**
 * S4: the workers start idle; one producer then enqueues single jobs (the library's one-job API) at
 * 200 a second for `seconds`. Pickup latency is from just before the enqueue call to the handler's
 * start, across processes on one clock.
 */
export async function runPickup(run: ScenarioRun, seconds: number): Promise<ScenarioResult> {
  const { peer, config, target, options } = run
  const jobs = Math.round(jobsPerSecond * seconds)
  await peer.setup(target, config)
  const plan = peer.workerPlan(config)
  const producer = await peer.openProducer(target, config)
  let outcome
  try {
    outcome = await runWorkers({
      ...run,
      plan,
      jobs,
      maxSeconds: options.maxSeconds,
      isIdleAtStart: true,
      async produce() {
        const startedAt = performance.now()
        for (let index = 0; index < jobs; index++) {
          // Paced on a schedule, not by sleeping after each call, so slow enqueues do not lower the rate.
          const dueIn = startedAt + (index * 1000) / jobsPerSecond - performance.now()
          if (dueIn > 0) await delay(dueIn)
          await producer.add({ enqueuedAt: performance.timeOrigin + performance.now() })
        }
      },
    })
  } finally {
    await producer.close()
  }
  return {
    scenario: 'S4',
    peer: peer.name,
    config,
    configDescription: plan.description,
    synchronousCommit: run.synchronousCommit,
    jobs,
    jobsDone: outcome.isPartial ? outcome.executionsInInterval : jobs,
    measurement: outcome.measurement,
    ...noExtras,
    inspection: outcome.inspection,
    processes: plan.processes,
    pickupP50Ms: percentile(outcome.pickupsMs, 0.5),
    pickupP99Ms: percentile(outcome.pickupsMs, 0.99),
    maxRssBytes: outcome.maxRssBytes,
    isPartial: outcome.isPartial,
    ...checkExactlyOnce(outcome, jobs),
  }
}
