import { expect } from 'vitest'

import { chaosTest, waitForDrain } from './support/fleet.ts'
import { formatVerdict, printVerdict } from './support/ledger.ts'
import { chaosScale, createRandom, scaled } from './support/scale.ts'
import { chaosTasks } from './support/tasks.ts'

chaosTest('R12: one hot key and many keys under SIGKILLs run one job per key at a time, in creation order', { timeout: 120_000 * chaosScale }, async ({ db, ledger, fleet }) => {
  // Fewer hot jobs than the even split: a fetch costs more the deeper one key's backlog, and the
  // hot key drains one job at a time, so its depth sets this test's duration.
  const hotJobs = scaled(500)
  const keyedJobs = scaled(1000)
  const keys = scaled(100)
  const kills = scaled(8)
  const concurrency = 4
  const batchSize = 4
  const random = createRandom()
  const deadlocksBefore = await deadlocks(db)
  fleet.configure({ CONCURRENCY: concurrency, BATCH_SIZE: batchSize, LEASE_SECONDS: 2, HEARTBEAT_MS: 500, MAINTENANCE_MS: 500 })
  await fleet.spawnMany(chaosScale >= 10 ? 8 : 4)

  // The hot key's jobs are interleaved with the others in creation order; every job has a key.
  // Each kill takes a worker that is running a job, so it holds a key: that key must be freed within the lease.
  const killing = fleet.killRepeatedly({
    kills,
    everyMs: 2000,
    choose: async (candidates) => {
      const { rows } = await db.query<{ pid: number }>(
        `select distinct pid from public.chaos_executions where finished_at is null and started_at > clock_timestamp() - interval '1 second'`,
      )
      return candidates.find((worker) => rows.some((row) => row.pid === worker.pid))
    },
  })
  const hotShare = hotJobs / (hotJobs + keyedJobs)
  await ledger.produce(chaosTasks.plain, hotJobs + keyedJobs, 500, () => ({
    ms: 1 + Math.floor(random() * 5),
    lock: random() < hotShare ? 'hot' : `key-${Math.floor(random() * keys)}`,
  }))
  await killing
  await waitForDrain(ledger, 90_000 * chaosScale)
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  const dupExecBound = kills * (concurrency + batchSize)
  const deadlocksDuring = (await deadlocks(db)) - deadlocksBefore
  const workerErrors = fleet.all.flatMap((worker) => worker.errors)
  printVerdict(formatVerdict('R12', verdict, { faults: { kills, keys: keys + 1 }, dupExecBound, extra: { key_order_violations: verdict.keyOrderViolations, deadlocks: deadlocksDuring } }))
  expect(verdict).toMatchObject({
    acknowledged: hotJobs + keyedJobs,
    lost: 0,
    unexpected: 0,
    dupResults: 0,
    completedWithoutResult: 0,
    keyOverlaps: 0,
    keyOrderViolations: 0,
  })
  expect(verdict.dupExec).toBeLessThanOrEqual(dupExecBound)
  expect(deadlocksDuring).toBe(0)
  expect(workerErrors.filter((line) => /deadlock/i.test(line))).toEqual([])
  // Every job is keyed, so each rescued job held its key: the key was free again, and the job running, within the lease.
  expect(verdict.rescued).toBeGreaterThan(0)
  expect(verdict.restarted).toBe(verdict.rescued)
  expect(verdict.maxRescueMs).toBeLessThanOrEqual(5000)
})

async function deadlocks(db: { query: (sql: string) => Promise<{ rows: { deadlocks: string }[] }> }): Promise<number> {
  const { rows } = await db.query(`select deadlocks from pg_stat_database where datname = current_database()`)
  return Number(rows[0]!.deadlocks)
}
