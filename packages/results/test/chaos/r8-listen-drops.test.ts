import { expect } from 'vitest'

import { chaosTest, waitForDrain } from './support/fleet.ts'
import { formatVerdict, printVerdict } from './support/ledger.ts'
import { chaosScale, createRandom, scaled, sleep } from './support/scale.ts'
import { chaosTasks } from './support/tasks.ts'

chaosTest('R8: with LISTEN connections terminated every 5 s and a 30 s poll, jobs are still picked up within 2 s', { timeout: 90_000 * chaosScale }, async ({ db, ledger, fleet }) => {
  const processes = 3
  const rounds = scaled(3)
  const everyMs = 5000
  const random = createRandom()
  // The poll is too slow to matter: pickup rests on notifications, and on the listener coming back.
  fleet.configure({ CONCURRENCY: 4, BATCH_SIZE: 4, POLL_MS: 30_000 })
  await fleet.spawnMany(processes)

  const terminatedPerRound: number[] = []
  const terminating = (async () => {
    for (let round = 0; round < rounds; round += 1) {
      await sleep(everyMs)
      const { rows } = await db.query<{ pid: number }>(
        `select pid, pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and application_name = 'skiplock-listener'`,
      )
      for (const { pid } of rows) await ledger.recordFault('terminate-listen', pid, undefined, false)
      terminatedPerRound.push(rows.length)
    }
  })()
  const jobs = Math.round(((rounds + 1) * everyMs * 100) / 1000)
  await ledger.produce(chaosTasks.plain, jobs, 100, () => ({ ms: 5 + Math.floor(random() * 20) }))
  await terminating
  await waitForDrain(ledger, 60_000 * chaosScale)
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  const terminations = terminatedPerRound.reduce((sum, count) => sum + count, 0)
  printVerdict(formatVerdict('R8', verdict, { faults: { listen_terminations: terminations } }))
  // Each round found every listener back, so each reconnected within the 5 s between rounds.
  expect(terminatedPerRound).toEqual(Array.from({ length: rounds }, () => processes))
  expect(verdict).toMatchObject({ acknowledged: jobs, lost: 0, unexpected: 0, dupResults: 0, dupExec: 0 })
  expect(verdict.p99PickupMs).toBeLessThanOrEqual(2000)
})
