import { createClient } from '@skiplock/core'
import { expect, test } from 'vitest'

import { Fleet, waitForDrain, waitUntilEachClaims, type WorkerProcess } from '../support/fleet.ts'
import { formatVerdict, Ledger, printVerdict } from '../support/ledger.ts'
import { OwnServer } from '../support/own-server.ts'
import { createRandom, sleep } from '../support/scale.ts'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts'
import { chaosTasks } from '../support/tasks.ts'

const outageMs = 60_000
const graceMs = 5000
/** The bounds: about one connection attempt a second, one log line a second, claims within 10 s. */
const maxAttemptsPerSecond = 1.5
const resumeBoundMs = 10_000

test('R6: through a 60 s outage workers stay up, retry about once a second, resume within 10 s, and stop within the grace', { timeout: 300_000 }, async () => {
  const server = await OwnServer.start()
  const client = createClient({ connectionString: server.db.url, resultPollIntervalMs: 200 })
  const ledger = await Ledger.create(server.db, client)
  const fleet = new Fleet(server.db, ledger)
  const proxies: TcpProxy[] = []
  try {
    // Each worker connects through a proxy of its own, which counts its connection attempts; its handlers
    // record their executions directly, so only the queue's own attempts are counted.
    const workers: WorkerProcess[] = []
    for (let index = 0; index < 4; index += 1) {
      const proxy = await startTcpProxy(server.db.url)
      proxies.push(proxy)
      workers.push(await fleet.spawn({ DATABASE_URL: proxy.url, RECORDER_URL: server.db.url, LOG: '1', GRACE_MS: graceMs, CONCURRENCY: 4, BATCH_SIZE: 4 }))
    }
    const random = createRandom()
    let failedEnqueues = 0
    const perSecond = 100
    const producing = ledger.produce(chaosTasks.plain, perSecond * (outageMs / 1000 + 20), perSecond, () => ({ ms: 20 + Math.floor(random() * 180) }), {
      onError: () => (failedEnqueues += 1),
    })

    await sleep(5000)
    await server.stop()
    const downAt = Date.now()
    const attemptsAtDown = proxies.map((proxy) => proxy.acceptedConnections)

    // Two workers are told to stop while the database is away: they must not wait for it.
    const stopped = workers.slice(0, 2)
    const stopTimesMs: number[] = []
    for (const worker of stopped) {
      await sleep(10_000)
      const signalledAt = Date.now()
      worker.child.kill('SIGTERM')
      const exit = await worker.exited
      expect(exit.code, `${worker.name} exit code`).toBe(0)
      stopTimesMs.push(exit.atMs - signalledAt)
    }

    await sleep(downAt + outageMs - Date.now())
    const steady = workers.slice(2)
    const attemptsPerSecond = steady.map((worker) => {
      const index = workers.indexOf(worker)
      return (proxies[index]!.acceptedConnections - attemptsAtDown[index]!) / (outageMs / 1000)
    })
    // Log lines in any one-second window of the outage, after its first second (when each loop may report its own failure once).
    const maxLinesPerSecond = Math.max(...steady.map((worker) => maxPerWindow(worker.eventsOf('log').map((event) => Number(event.atMs)).filter((at) => at > downAt + 1000), 1000)))
    await server.startAgain()
    const upAt = await server.waitUntilAccepting()
    await ledger.recordFault('server-down', 0, undefined, false)
    const resumeMs = await waitUntilEachClaims(server.db, steady.map((worker) => worker.name), upAt, resumeBoundMs)

    await producing
    await waitForDrain(ledger, 60_000)
    expect(steady.every((worker) => worker.isAlive)).toBe(true)
    await fleet.stopAll()

    const verdict = await ledger.verdict()
    printVerdict(
      formatVerdict('R6', verdict, {
        faults: { outage: `${outageMs / 1000}s`, sigterms_during: stopped.length },
        extra: {
          attempts_per_s: Math.max(...attemptsPerSecond).toFixed(2),
          max_log_lines_per_s: maxLinesPerSecond,
          resume: `${(resumeMs / 1000).toFixed(1)}s`,
          max_stop: `${(Math.max(...stopTimesMs) / 1000).toFixed(1)}s(grace ${graceMs / 1000}s)`,
          failed_enqueues: failedEnqueues,
        },
      }),
    )
    expect(verdict).toMatchObject({ lost: 0, unexpected: 0, dupResults: 0, completedWithoutResult: 0, resultsWithoutCompletion: 0 })
    expect(Math.max(...attemptsPerSecond)).toBeLessThanOrEqual(maxAttemptsPerSecond)
    expect(maxLinesPerSecond).toBeLessThanOrEqual(1)
    expect(resumeMs).toBeLessThanOrEqual(resumeBoundMs)
    expect(Math.max(...stopTimesMs)).toBeLessThanOrEqual(graceMs + 2000)
  } catch (error) {
    for (const worker of fleet.all) console.error(`${worker.name} stderr:\n${worker.errors.slice(-20).join('\n')}`)
    throw error
  } finally {
    fleet.killAll()
    await Promise.all(fleet.all.map((worker) => worker.exited))
    await Promise.all(proxies.map((proxy) => proxy.close()))
    await client.close().catch(() => {})
    await server.close()
  }
})

/** The most timestamps that fall in any window of `windowMs`. */
function maxPerWindow(timesMs: readonly number[], windowMs: number): number {
  const sorted = [...timesMs].sort((a, b) => a - b)
  let most = 0
  for (let first = 0, last = 0; last < sorted.length; last += 1) {
    while (sorted[last]! - sorted[first]! >= windowMs) first += 1
    most = Math.max(most, last - first + 1)
  }
  return most
}
