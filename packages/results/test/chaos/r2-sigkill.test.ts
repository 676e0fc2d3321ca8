import { expect } from 'vitest'

import { chaosTest, waitForDrain } from './support/fleet.ts'
import { formatVerdict, printVerdict } from './support/ledger.ts'
import { chaosScale, createRandom, scaled } from './support/scale.ts'
import { chaosTasks } from './support/tasks.ts'

const leaseSeconds = 2
const maintenanceMs = 500
/** The lease, a jittered maintenance interval and a fetch, with room for a loaded machine. */
const restartBoundMs = 5000

chaosTest('R2: SIGKILLed workers lose no job, duplicate few, and their jobs restart within the lease', { timeout: 120_000 * chaosScale }, async ({ ledger, fleet }) => {
  const jobs = scaled(5000)
  const kills = scaled(10)
  const processes = chaosScale >= 10 ? 8 : 4
  const concurrency = 4
  const batchSize = 4
  const random = createRandom()
  fleet.configure({ CONCURRENCY: concurrency, BATCH_SIZE: batchSize, LEASE_SECONDS: leaseSeconds, HEARTBEAT_MS: 500, MAINTENANCE_MS: maintenanceMs })
  await fleet.spawnMany(processes)

  // Half the jobs wait as a backlog, longer to drain than a lease, so the first orphans are rescued into a
  // full queue; the rest arrive while workers die every 2 s, so kills land on jobs fetched, running and committing.
  const spec = () => ({ ms: 20 + Math.floor(random() * 60), lock: random() < 0.3 ? `key-${Math.floor(random() * 200)}` : null })
  const backlog = Math.round(jobs / 2)
  await ledger.enqueue(chaosTasks.plain, Array.from({ length: backlog }, spec))
  const killing = fleet.killRepeatedly({ kills, everyMs: 2000 })
  await ledger.produce(chaosTasks.plain, jobs - backlog, (jobs - backlog) / (kills * 2.5), spec)
  await killing
  await waitForDrain(ledger, 60_000 * chaosScale)
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  // A dead worker held at most its running jobs and its prefetched batch; each may run again.
  const dupExecBound = kills * (concurrency + batchSize)
  printVerdict(formatVerdict('R2', verdict, { faults: { kills }, dupExecBound }))
  expect(verdict).toMatchObject({
    attempted: jobs,
    acknowledged: jobs,
    lost: 0,
    unexpected: 0,
    dupResults: 0,
    completedWithoutResult: 0,
    resultsWithoutCompletion: 0,
    keyOverlaps: 0,
    keyOrderViolations: 0,
  })
  expect(verdict.dupExec).toBeLessThanOrEqual(dupExecBound)
  // The kills did take jobs from under workers, and each ran again once its lease ran out.
  expect(verdict.rescued).toBeGreaterThan(0)
  expect(verdict.restarted).toBe(verdict.rescued)
  expect(verdict.maxRescueMs).toBeLessThanOrEqual(restartBoundMs)
})
