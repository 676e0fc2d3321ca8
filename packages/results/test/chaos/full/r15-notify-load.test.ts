import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'

import { createClient } from '@skiplock/core'
import pg from 'pg'
import { expect, test } from 'vitest'

import { Fleet, waitForDrain } from '../support/fleet.ts'
import { formatVerdict, Ledger, printVerdict } from '../support/ledger.ts'
import { OwnServer } from '../support/own-server.ts'
import { chaosScale, createRandom, scaled, sleep } from '../support/scale.ts'
import { chaosTasks } from '../support/tasks.ts'

/** The minute in a full run; short enough to iterate on otherwise. */
const listenerStopMs = chaosScale >= 10 ? 60_000 : 15_000
const rowsPerTransaction = scaled(1000)
const producers = 8
/** Half the producers defer to a queue the workers serve, half to one nobody serves (see below). */
const servedQueue = 'r15-served'
const unservedQueue = 'r15-unserved'
/**
 * The server's NOTIFY queue, in 8 kB pages (PostgreSQL's default is 8 GB, its minimum 64 pages): small, so
 * a stuck listener shows as usage within seconds, and large enough not to fill, since a full queue fails
 * every notifying COMMIT, enqueues included. A stop here holds back about 20 pages, whatever the scale.
 */
const notifyQueuePages = 256
/** The worker's warning threshold (1 %), and how soon after the listener reads again the queue must be empty. */
const warningUsage = 0.01
const emptyAgainBoundMs = 10_000
/** The bulk jobs wait a day: their notifications are the load, running a million of them is not. */
const bulkDelayMs = 86_400_000
/** A stream of runnable jobs beside the bulk, so workers complete jobs (and notify `_finished`) all along. */
const runnablePerSecond = 100
/** Load before the stop, so the stop meets producers in full swing. */
const loadBeforeStopMs = 3000

const pgPath = createRequire(import.meta.url).resolve('pg')

test(
  'R15: 10k-row enqueues from 8 producers while a listener is stopped: one notification per transaction and queue, no enqueue fails, a warning, the queue empties',
  { timeout: 180_000 + 2 * listenerStopMs },
  async () => {
    const server = await OwnServer.start({ max_notify_queue_pages: notifyQueuePages })
    const producerPool = new pg.Pool({ connectionString: server.db.url, max: producers + 2, application_name: 'skiplock-test-producer' })
    producerPool.on('error', () => {})
    const client = createClient({ pool: producerPool, resultPollIntervalMs: 200 })
    const ledger = await Ledger.create(server.db, client)
    const fleet = new Fleet(server.db, ledger)
    let stuckListener: ChildProcess | undefined
    try {
      const schema = server.db.schema
      const jobsChannel = `${schema}_jobs`

      // The test's own listener, which reads all along: what every committed enqueue sent.
      const notificationsByQueue = new Map<string, number>()
      const counter = await server.db.connect()
      counter.on('notification', ({ payload = '' }) => notificationsByQueue.set(payload, (notificationsByQueue.get(payload) ?? 0) + 1))
      await counter.query(`listen ${pg.escapeIdentifier(jobsChannel)}`)

      fleet.configure({ CONCURRENCY: 8, BATCH_SIZE: 8, MAINTENANCE_MS: 500, QUEUES: `default,${servedQueue}` })
      const workers = await fleet.spawnMany(2)

      // The stuck listener: a process that listens on `_jobs` and is stopped in the middle of a transaction
      // on that connection. A backend inside a transaction does not read the NOTIFY queue, so the whole
      // server's queue is held back from the moment of the stop. (A listener stopped while idle is not
      // enough: its backend keeps reading and sends what it listens to into the socket buffers, and a
      // notification per transaction does not fill a megabyte of them in a minute.) On SIGCONT it commits.
      stuckListener = spawn(
        process.execPath,
        [
          '-e',
          `const pg = require(process.argv[1])
           const client = new pg.Client({ connectionString: process.argv[2], application_name: 'skiplock-test-stuck-listener' })
           process.on('SIGCONT', () => client.query('commit').then(() => console.log('committed')))
           client.connect()
             .then(() => client.query('listen ' + pg.escapeIdentifier(process.argv[3])))
             .then(() => client.query('begin; select 1'))
             .then(() => console.log('in a transaction'))`,
          pgPath,
          server.db.url,
          jobsChannel,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      await once(stuckListener.stdout!, 'data')

      const usageSamples: { atMs: number; usage: number }[] = []
      let isSampling = true
      const sampling = (async () => {
        while (isSampling) {
          const { rows } = await server.db.query<{ usage: number }>('select pg_notification_queue_usage() as usage')
          usageSamples.push({ atMs: Date.now(), usage: Number(rows[0]!.usage) })
          await sleep(200)
        }
      })()

      // The producers: each commits transactions of `rowsPerTransaction` jobs back to back until told to
      // stop; at 10k rows deferMany sends two statements, each of which notifies the queue. skiplock has
      // no way to defer without notifying, so "without NOTIFY" is a queue no worker serves: its
      // notifications reach only listeners that ignore them, and fill the server's NOTIFY queue all the same.
      const commitsByQueue = new Map<string, number>([
        [servedQueue, 0],
        [unservedQueue, 0],
      ])
      const failures: string[] = []
      let rowsCommitted = 0
      let isProducing = true
      const produceBulk = async (producer: number, queue: string) => {
        for (let transaction = 0; isProducing; transaction += 1) {
          const payloads = Array.from({ length: rowsPerTransaction }, (_, row) => ({ id: `bulk-${producer}-${transaction}-${row}`, ms: 0 }))
          try {
            await client.deferMany(chaosTasks.plain, payloads, { queue, delayMs: bulkDelayMs })
            commitsByQueue.set(queue, commitsByQueue.get(queue)! + 1)
            rowsCommitted += rowsPerTransaction
          } catch (error) {
            failures.push((error as Error).message)
          }
        }
      }
      const random = createRandom()
      const runnableJobs = Math.round((runnablePerSecond * (loadBeforeStopMs + listenerStopMs)) / 1000)
      let failedRunnableEnqueues = 0
      const producingRunnable = ledger.produce(chaosTasks.plain, runnableJobs, runnablePerSecond, () => ({ ms: 5 + Math.floor(random() * 20) }), {
        onError: (error) => {
          failedRunnableEnqueues += 1
          failures.push((error as Error).message)
        },
      })
      const startedAt = Date.now()
      const producing = Array.from({ length: producers }, (_, producer) => produceBulk(producer, producer % 2 === 0 ? servedQueue : unservedQueue))

      await sleep(loadBeforeStopMs)
      const backlogEventsBefore = countBacklogEvents(fleet)
      stuckListener.kill('SIGSTOP')
      const stoppedAt = Date.now()
      await sleep(listenerStopMs)
      const backlogEventsDuringStop = countBacklogEvents(fleet) - backlogEventsBefore
      const maxUsageStopped = Math.max(...usageSamples.filter((sample) => sample.atMs >= stoppedAt).map((sample) => sample.usage))

      // Load ends with the stop, so the queue can empty rather than trail the head by a page.
      isProducing = false
      stuckListener.kill('SIGCONT')
      const continuedAt = Date.now()
      const emptyingAgain = (async () => {
        while (Date.now() - continuedAt < emptyAgainBoundMs * 3) {
          const { rows } = await server.db.query<{ usage: number }>('select pg_notification_queue_usage() as usage')
          if (Number(rows[0]!.usage) === 0) return Date.now() - continuedAt
          await sleep(50)
        }
        return null
      })()
      await Promise.all(producing)
      const producedMs = Date.now() - startedAt
      await producingRunnable
      const emptyAgainMs = await emptyingAgain
      isSampling = false
      await sampling

      // Every committed transaction's notification has arrived once the listener saw a later one of its own.
      await counter.query(`select pg_notify($1, 'r15-end')`, [jobsChannel])
      while (!notificationsByQueue.has('r15-end')) await sleep(20)

      await waitForDrain(ledger, 60_000)
      expect(workers.every((worker) => worker.isAlive)).toBe(true)
      await fleet.stopAll()
      const verdict = await ledger.verdict()

      const transactions = [...commitsByQueue.values()].reduce((sum, count) => sum + count, 0)
      const notifications = [servedQueue, unservedQueue].reduce((sum, queue) => sum + (notificationsByQueue.get(queue) ?? 0), 0)
      const workerErrors = workers.flatMap((worker) => worker.errors)
      printVerdict(
        formatVerdict('R15', verdict, {
          faults: { listener_stop: `${listenerStopMs / 1000}s` },
          extra: {
            producers,
            transactions,
            rows: rowsCommitted,
            tx_per_s: ((transactions * 1000) / producedMs).toFixed(1),
            notifications: `${notifications}(served ${notificationsByQueue.get(servedQueue) ?? 0}/${commitsByQueue.get(servedQueue)} unserved ${notificationsByQueue.get(unservedQueue) ?? 0}/${commitsByQueue.get(unservedQueue)})`,
            max_usage: `${(maxUsageStopped * 100).toFixed(1)}%(${Math.round(maxUsageStopped * notifyQueuePages)}/${notifyQueuePages} pages)`,
            backlog_warnings: backlogEventsDuringStop,
            failures: failures.length,
            empty_again: emptyAgainMs === null ? '-' : `${emptyAgainMs}ms`,
            worker_errors: workerErrors.length,
          },
        }),
      )
      expect(failures, 'enqueues that failed').toEqual([])
      expect(failedRunnableEnqueues).toBe(0)
      // At most one per transaction and queue, and PostgreSQL delivers each to a listener that reads: exactly one.
      for (const queue of [servedQueue, unservedQueue]) expect(notificationsByQueue.get(queue) ?? 0, `notifications on ${queue}`).toBe(commitsByQueue.get(queue))
      expect(maxUsageStopped).toBeGreaterThanOrEqual(warningUsage)
      expect(maxUsageStopped).toBeLessThan(0.5)
      expect(backlogEventsDuringStop).toBeGreaterThan(0)
      expect(emptyAgainMs).not.toBeNull()
      expect(emptyAgainMs!).toBeLessThanOrEqual(emptyAgainBoundMs)
      expect(verdict).toMatchObject({ lost: 0, unexpected: 0, dupResults: 0, completedWithoutResult: 0, resultsWithoutCompletion: 0 })
      // No completion or heartbeat failed for a full NOTIFY queue either.
      expect(workerErrors.filter((line) => /notif/i.test(line))).toEqual([])
    } catch (error) {
      for (const worker of fleet.all) console.error(`${worker.name} stderr:\n${worker.errors.slice(-20).join('\n')}`)
      throw error
    } finally {
      stuckListener?.kill('SIGKILL')
      stuckListener?.kill('SIGCONT')
      fleet.killAll()
      await Promise.all(fleet.all.map((worker) => worker.exited))
      await client.close().catch(() => {})
      await producerPool.end().catch(() => {})
      await server.close()
    }
  },
)

function countBacklogEvents(fleet: Fleet): number {
  return fleet.all.reduce((sum, worker) => sum + worker.eventsOf('notifications-backlog').length, 0)
}
