// R1's and R2's runs, shared by the tests that repeat them under other conditions (through PgBouncer,
// as a runtime role): each runs the load, prints its verdict line and asserts the criteria of its kind.
import { expect } from 'vitest'

import { type Fleet, waitForDrain, type WorkerSettings } from './fleet.ts'
import { formatVerdict, type Ledger, printVerdict, type Verdict, type VerdictFields } from './ledger.ts'
import { chaosScale, createRandom } from './scale.ts'
import { chaosTasks } from './tasks.ts'

export interface RunOptions {
  /** The verdict line's id: `R1`, `R9/R2`... */
  id: string
  jobs: number
  processes: number
  /** Settings of every worker process, besides the run's own. */
  settings?: WorkerSettings
  /** Checks while the fleet still runs, after the load was produced. */
  whileRunning?: () => Promise<void>
  /** Figures for the verdict line, read once the fleet stopped. */
  extra?: () => VerdictFields
}

const concurrency = 4
const batchSize = 4
/** R2's lease: short, so orphans restart within seconds. */
const leaseSeconds = 2
/** The lease, a jittered maintenance interval and a fetch, with room for a loaded machine. */
const restartBoundMs = 5000

/** What every run must hold: each acknowledged job ended once, with one result, and keys never overlapped. */
const exactlyOnce = {
  lost: 0,
  unexpected: 0,
  dupResults: 0,
  completedWithoutResult: 0,
  resultsWithoutCompletion: 0,
  keyOverlaps: 0,
  keyOrderViolations: 0,
}

/** R1: no faults; short jobs, 30% of them over 200 lock keys. Every job runs exactly once. */
export async function runWithoutFaults(ledger: Ledger, fleet: Fleet, options: RunOptions & { perSecond: number }): Promise<Verdict> {
  const random = createRandom()
  fleet.configure({ CONCURRENCY: concurrency, BATCH_SIZE: concurrency, ...options.settings })
  await fleet.spawnMany(options.processes)
  // 30% of the jobs share 200 lock keys, so several jobs of a key are often waiting at once.
  await ledger.produce(chaosTasks.plain, options.jobs, options.perSecond, () => ({
    ms: 1 + Math.floor(random() * 20),
    lock: random() < 0.3 ? `key-${Math.floor(random() * 200)}` : null,
  }))
  await options.whileRunning?.()
  await waitForDrain(ledger, 60_000 * chaosScale)
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  printVerdict(formatVerdict(options.id, verdict, { faults: { processes: `${options.processes}x${concurrency}` }, extra: options.extra?.() }))
  expect(verdict).toMatchObject({ attempted: options.jobs, acknowledged: options.jobs, executions: options.jobs, dupExec: 0, ...exactlyOnce })
  return verdict
}

/**
 * R2: a random worker SIGKILLed every 2 s and replaced. Half the jobs wait as a backlog, longer to drain
 * than a lease, so the first orphans are rescued into a full queue; the rest arrive while workers die, so
 * kills land on jobs fetched, running and committing. Nothing is lost, few jobs run twice, and each
 * orphan restarts within the lease.
 */
export async function runWithKills(ledger: Ledger, fleet: Fleet, options: RunOptions & { kills: number }): Promise<Verdict> {
  const { jobs, kills } = options
  const random = createRandom()
  fleet.configure({ CONCURRENCY: concurrency, BATCH_SIZE: batchSize, LEASE_SECONDS: leaseSeconds, HEARTBEAT_MS: 500, MAINTENANCE_MS: 500, ...options.settings })
  await fleet.spawnMany(options.processes)

  const spec = () => ({ ms: 20 + Math.floor(random() * 60), lock: random() < 0.3 ? `key-${Math.floor(random() * 200)}` : null })
  const backlog = Math.round(jobs / 2)
  await ledger.enqueue(chaosTasks.plain, Array.from({ length: backlog }, spec))
  const killing = fleet.killRepeatedly({ kills, everyMs: 2000 })
  await ledger.produce(chaosTasks.plain, jobs - backlog, (jobs - backlog) / (kills * 2.5), spec)
  await killing
  await options.whileRunning?.()
  await waitForDrain(ledger, 60_000 * chaosScale)
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  // A dead worker held at most its running jobs and its prefetched batch; each may run again.
  const dupExecBound = kills * (concurrency + batchSize)
  printVerdict(formatVerdict(options.id, verdict, { faults: { kills }, dupExecBound, extra: options.extra?.() }))
  expect(verdict).toMatchObject({ attempted: jobs, acknowledged: jobs, ...exactlyOnce })
  expect(verdict.dupExec).toBeLessThanOrEqual(dupExecBound)
  // The kills did take jobs from under workers, and each ran again once its lease ran out.
  expect(verdict.rescued).toBeGreaterThan(0)
  expect(verdict.restarted).toBe(verdict.rescued)
  expect(verdict.maxRescueMs).toBeLessThanOrEqual(restartBoundMs)
  return verdict
}
