import { createClient } from '@skiplock/core'
import { expect, test } from 'vitest'

import { Fleet, waitForDrain, waitUntilEachClaims } from './support/fleet.ts'
import { formatVerdict, Ledger, printVerdict } from './support/ledger.ts'
import { OwnServer } from './support/own-server.ts'
import { chaosScale, createRandom, scaled, sleep } from './support/scale.ts'
import { chaosTasks } from './support/tasks.ts'

/** The bound: every worker claims again this soon after the server accepts connections. */
const claimAgainBoundMs = 10_000

test('R5: backend kills and immediate restarts under load: no worker exits, all claim again within 10 s, nothing lost', { timeout: 180_000 * chaosScale }, async () => {
  // The server is the test's own: crashing it must not touch the server the other tests share.
  const server = await OwnServer.start({ max_connections: 100 })
  const client = createClient({ connectionString: server.db.url, resultPollIntervalMs: 200 })
  const ledger = await Ledger.create(server.db, client)
  const fleet = new Fleet(server.db, ledger)
  try {
    const backendKills = scaled(3)
    const restarts = scaled(2)
    const processes = 4
    const random = createRandom()
    fleet.configure({ CONCURRENCY: 4, BATCH_SIZE: 4 })
    const workers = await fleet.spawnMany(processes)

    // A steady stream for as long as the faults last, so every worker always has jobs to claim.
    const faults = [...Array<'kill'>(backendKills).fill('kill'), ...Array<'restart'>(restarts).fill('restart')].sort(() => random() - 0.5)
    const faultEveryMs = 4000
    const perSecond = 150
    let failedEnqueues = 0
    let areFaultsDone = false
    const producing = ledger.produce(chaosTasks.plain, Number.MAX_SAFE_INTEGER, perSecond, () => ({ ms: 10 + Math.floor(random() * 40) }), {
      onError: () => (failedEnqueues += 1),
      until: () => areFaultsDone,
    })

    const claimAgainMs: number[] = []
    for (const fault of faults) {
      await sleep(faultEveryMs)
      if (fault === 'kill') await server.killBackend()
      else await server.restartImmediately()
      const acceptingAt = await server.waitUntilAccepting()
      await ledger.recordFault(`backend-${fault}`, 0, undefined, false)
      claimAgainMs.push(await waitUntilEachClaims(server.db, workers.map((worker) => worker.name), acceptingAt, claimAgainBoundMs))
    }
    areFaultsDone = true
    await producing
    await waitForDrain(ledger, 60_000 * chaosScale)

    // No worker process exited, and none had to be replaced.
    expect(fleet.all.filter((worker) => !worker.isAlive).map((worker) => worker.name)).toEqual([])
    expect(fleet.all).toHaveLength(processes)
    await fleet.stopAll()

    const verdict = await ledger.verdict()
    printVerdict(
      formatVerdict('R5', verdict, {
        faults: { backend_kills: backendKills, pg_restarts: restarts },
        extra: { max_claim_again: `${(Math.max(...claimAgainMs) / 1000).toFixed(1)}s`, failed_enqueues: failedEnqueues },
      }),
    )
    expect(verdict).toMatchObject({ lost: 0, unexpected: 0, dupResults: 0, completedWithoutResult: 0, resultsWithoutCompletion: 0 })
    // Most enqueues went through: the producer only fails while the server is down.
    expect(verdict.acknowledged).toBeGreaterThan(verdict.attempted * 0.8)
    expect(Math.max(...claimAgainMs)).toBeLessThanOrEqual(claimAgainBoundMs)
  } catch (error) {
    for (const worker of fleet.all) console.error(`${worker.name} stderr:\n${worker.errors.slice(-40).join('\n')}`)
    throw error
  } finally {
    fleet.killAll()
    await Promise.all(fleet.all.map((worker) => worker.exited))
    await client.close().catch(() => {})
    await server.close()
  }
})
