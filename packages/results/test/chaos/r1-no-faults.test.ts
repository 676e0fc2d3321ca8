import { expect } from 'vitest'

import { chaosTest, waitForDrain } from './support/fleet.ts'
import { formatVerdict, printVerdict } from './support/ledger.ts'
import { chaosScale, createRandom, scaled } from './support/scale.ts'
import { chaosTasks } from './support/tasks.ts'

chaosTest('R1: without faults, every job runs exactly once and keyed jobs never overlap', { timeout: 90_000 * chaosScale }, async ({ ledger, fleet }) => {
  const jobs = scaled(4000)
  const processes = chaosScale >= 10 ? 8 : 4
  const concurrency = 4
  const random = createRandom()
  fleet.configure({ CONCURRENCY: concurrency, BATCH_SIZE: concurrency })
  await fleet.spawnMany(processes)

  // 30% of the jobs share 200 lock keys, so several jobs of a key are often waiting at once.
  await ledger.produce(chaosTasks.plain, jobs, 400, () => ({
    ms: 1 + Math.floor(random() * 20),
    lock: random() < 0.3 ? `key-${Math.floor(random() * 200)}` : null,
  }))
  await waitForDrain(ledger, 60_000 * chaosScale)
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  printVerdict(formatVerdict('R1', verdict, { faults: { processes: `${processes}x${concurrency}` } }))
  expect(verdict).toMatchObject({
    attempted: jobs,
    acknowledged: jobs,
    lost: 0,
    unexpected: 0,
    dupResults: 0,
    completedWithoutResult: 0,
    resultsWithoutCompletion: 0,
    executions: jobs,
    dupExec: 0,
    keyOverlaps: 0,
    keyOrderViolations: 0,
  })
})
