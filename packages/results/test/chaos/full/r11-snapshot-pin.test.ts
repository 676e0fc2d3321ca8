import { performance } from 'node:perf_hooks'

import { createClient } from '@skiplock/core'
import pg from 'pg'
import { expect, test } from 'vitest'

import { Fleet, waitForDrain } from '../support/fleet.ts'
import { formatVerdict, Ledger, printVerdict } from '../support/ledger.ts'
import { OwnServer } from '../support/own-server.ts'
import { chaosScale, createRandom, sleep } from '../support/scale.ts'
import { chaosTasks } from '../support/tasks.ts'

/** The ten minutes with a five-minute pin in a full run; about 90 s otherwise, to iterate on. */
const isFullRun = chaosScale >= 10
const baselineMs = isFullRun ? 120_000 : 20_000
const pinMs = isFullRun ? 300_000 : 40_000
const afterMs = isFullRun ? 180_000 : 35_000
/** The claim must be back near its baseline this soon after the release (the 2 minutes, scaled with the pin). */
const recoveryMs = isFullRun ? 120_000 : 15_000
const perSecond = 250
/** The bounds. */
const maxIdleInTransactionMs = 1000
const pinFactorBound = 5
const recoveryFactorBound = 1.5

const probeQueue = 'r11-probe'
/** Often enough that even the short run's recovery window holds 200 claims, so its p99 is not just its slowest one. */
const probeEveryMs = 100
const windowMs = 10_000

interface ProbeSample {
  atMs: number
  claimMs: number
}

/** The workers' own claims in one window, from pg_stat_statements. */
interface WorkerClaimWindow {
  endMs: number
  calls: number
  totalMs: number
  maxMs: number
}

test(
  'R11: a REPEATABLE READ snapshot pinned for minutes under 250 jobs/s: no worker idles in a transaction, the claim slows at most 5x and recovers, nothing lost',
  { timeout: baselineMs + pinMs + afterMs + 240_000 },
  async () => {
    // The server is the test's own: the pin holds back vacuum for the whole server, and pg_stat_statements
    // must be preloaded to see the workers' own claims.
    const server = await OwnServer.start({ shared_preload_libraries: 'pg_stat_statements' })
    const client = createClient({ connectionString: server.db.url, resultPollIntervalMs: 200 })
    const ledger = await Ledger.create(server.db, client)
    const fleet = new Fleet(server.db, ledger)
    const pin = new pg.Client({ connectionString: server.db.url, application_name: 'skiplock-test-snapshot-pin' })
    const probe = new pg.Client({ connectionString: server.db.url, application_name: 'skiplock-test-claim-probe' })
    pin.on('error', () => {})
    probe.on('error', () => {})
    let isSampling = true
    const samplers: Promise<void>[] = []
    try {
      const { db } = server
      await db.query('create extension pg_stat_statements')
      await Promise.all([pin.connect(), probe.connect()])
      // Workers serve only the load's queue, so the probe's jobs are left to the probe.
      fleet.configure({ CONCURRENCY: 8, BATCH_SIZE: 8, LEASE_SECONDS: 10, HEARTBEAT_MS: 1000, QUEUES: 'default' })
      await fleet.spawnMany(3)

      const before = await measureCosts(db)
      const startedAt = Date.now()
      const totalMs = baselineMs + pinMs + afterMs
      const random = createRandom()
      const jobCount = Math.round((perSecond * totalMs) / 1000)
      const producing = ledger.produce(chaosTasks.plain, jobCount, perSecond, () => ({ ms: 5 + Math.floor(random() * 20) })).then(() => Date.now())

      // How the claim is timed: pg_stat_statements sees the workers' own claims, but only as mean and max per
      // window, with no percentiles; the server log could give each claim's duration, but the embedded server
      // keeps no log file. So a probe times one claim every 100 ms, with the workers' call (fetch_jobs, its
      // index and its bloat) on a connection of its own, round trip included as a worker sees it. Its job is
      // deferred just before, so it sits in claim order behind every job deferred earlier and, as a worker's next
      // job does, behind every dead index entry the pin keeps; it is completed at once, as a worker would. The
      // workers' own mean and max per phase are reported beside it, to show the probe tracks them.
      const probeWorkerId = (await db.query<{ id: string }>(`select id from skiplock.register_worker('r11-probe', 3600)`)).rows[0]!.id
      const probeSamples: ProbeSample[] = []
      let probeMisses = 0
      samplers.push(
        (async () => {
          for (let index = 0; isSampling; index += 1) {
            const dueAt = Date.now() + probeEveryMs
            await client.defer(chaosTasks.plain, { id: `probe-${index}`, ms: 0 }, { queue: probeQueue })
            const claimStartedAt = performance.now()
            const { rows } = await probe.query<{ id: string; attempts: number }>(
              `select id, attempts from skiplock.fetch_jobs(worker_id => $1, queue_names => array['r11-probe'], batch_size => 1)`,
              [probeWorkerId],
            )
            probeSamples.push({ atMs: Date.now(), claimMs: performance.now() - claimStartedAt })
            if (rows[0] === undefined) probeMisses += 1
            else await probe.query('select from skiplock.complete_jobs($1, array[$2::bigint], array[$3::integer])', [probeWorkerId, rows[0].id, rows[0].attempts])
            await sleep(Math.max(0, dueAt - Date.now()))
          }
        })(),
      )

      // The longest any library session has been idle inside a transaction, sampled every 200 ms; the pin's own
      // session and the probe's have names of their own and are not counted.
      let maxIdleInTransaction = { ms: 0, applicationName: '-' }
      samplers.push(
        (async () => {
          while (isSampling) {
            const { rows } = await db.query<{ application_name: string; idle_ms: number }>(
              `select application_name, extract(epoch from clock_timestamp() - state_change) * 1000 as idle_ms
               from pg_stat_activity
               where state like 'idle in transaction%'
                 and (application_name like 'skiplock-worker%' or application_name = 'skiplock-listener')
               order by idle_ms desc
               limit 1`,
            )
            const longest = rows[0]
            if (longest && Number(longest.idle_ms) > maxIdleInTransaction.ms) maxIdleInTransaction = { ms: Number(longest.idle_ms), applicationName: longest.application_name }
            await sleep(200)
          }
        })(),
      )

      // The workers' claims per window: call counts and time are cumulative, the maximum is reset each window.
      const workerClaimWindows: WorkerClaimWindow[] = []
      samplers.push(
        (async () => {
          let previous = await readWorkerClaims(db)
          while (isSampling) {
            await sleep(windowMs)
            const current = await readWorkerClaims(db)
            workerClaimWindows.push({ endMs: Date.now(), calls: current.calls - previous.calls, totalMs: current.totalMs - previous.totalMs, maxMs: current.maxMs })
            previous = current
          }
        })(),
      )

      await sleep(startedAt + baselineMs - Date.now())
      const deadTuplesBeforePin = await readDeadTuples(db)
      // The pin: a REPEATABLE READ transaction takes its snapshot at its first query, then sits idle.
      await pin.query('begin isolation level repeatable read')
      await pin.query('select count(*) from skiplock.jobs')
      const pinnedAt = Date.now()
      const { rows: pinRows } = await db.query<{ backend_xmin: string | null }>(
        `select backend_xmin::text from pg_stat_activity where application_name = 'skiplock-test-snapshot-pin'`,
      )
      expect(pinRows[0]?.backend_xmin, 'the pinning session holds back the xmin horizon').not.toBeNull()

      await sleep(pinnedAt + pinMs - Date.now())
      const deadTuplesAtPinEnd = await readDeadTuples(db)
      await pin.query('commit')
      const releasedAt = Date.now()

      await sleep(releasedAt + afterMs - Date.now())
      isSampling = false
      await Promise.all(samplers)
      const producedMs = (await producing) - startedAt
      await waitForDrain(ledger, 120_000)
      expect(fleet.all.filter((worker) => !worker.isAlive).map((worker) => worker.name)).toEqual([])
      await fleet.stopAll()
      const after = await measureCosts(db)
      const deadTuplesAtEnd = await readDeadTuples(db)

      // The probe's jobs have no result row by design; the verdict counts such jobs as completions without one.
      await db.query(`delete from skiplock.finished_jobs where queue_name = $1`, [probeQueue])
      const verdict = await ledger.verdict()

      const claimsIn = (fromMs: number, toMs: number) => probeSamples.filter((sample) => sample.atMs >= fromMs && sample.atMs < toMs).map((sample) => sample.claimMs)
      const baseline = claimsIn(startedAt, pinnedAt)
      const pinned = claimsIn(pinnedAt, releasedAt)
      const pinEnd = claimsIn(releasedAt - windowMs, releasedAt)
      const released = claimsIn(releasedAt, Infinity)
      const recovered = claimsIn(releasedAt + recoveryMs, Infinity)
      const baselineP99 = percentile(baseline, 0.99)
      const pinnedP99 = percentile(pinned, 0.99)
      const recoveredP99 = percentile(recovered, 0.99)
      // The workers' windows do not start with the phases: each counts in the phase where most of it fell.
      const workerClaimsIn = (fromMs: number, toMs: number) => summarizeWorkerClaims(workerClaimWindows.filter((window) => window.endMs > fromMs + windowMs / 2 && window.endMs <= toMs + windowMs / 2))

      const jobs = verdict.acknowledged + probeSamples.length - probeMisses
      const harnessXids = after.harnessXids - before.harnessXids
      const xids = after.xid - before.xid
      const walBytes = after.walLsnBytes - before.walLsnBytes
      const harnessWalBytes = after.harnessWalBytes - before.harnessWalBytes
      printVerdict(
        formatVerdict('R11', verdict, {
          faults: { pin: `${pinMs / 1000}s` },
          extra: {
            rate: `${Math.round((verdict.acknowledged * 1000) / producedMs)}/s`,
            claim_base: formatClaims(baseline),
            claim_pin: formatClaims(pinned),
            claim_pin_last10s: formatClaims(pinEnd),
            claim_after: formatClaims(released),
            claim_recovered: formatClaims(recovered),
            pin_p99_factor: `${(pinnedP99 / baselineP99).toFixed(2)}(bound ${pinFactorBound})`,
            recovered_p99_factor: `${(recoveredP99 / baselineP99).toFixed(2)}(bound ${recoveryFactorBound})`,
            probe_misses: probeMisses,
            worker_claims_mean_max: [workerClaimsIn(startedAt, pinnedAt), workerClaimsIn(pinnedAt, releasedAt), workerClaimsIn(releasedAt, Infinity)].join(','),
            max_idle_in_tx: `${Math.round(maxIdleInTransaction.ms)}ms(${maxIdleInTransaction.applicationName})`,
            dead_tup_jobs: `${deadTuplesBeforePin.jobs}>${deadTuplesAtPinEnd.jobs}>${deadTuplesAtEnd.jobs}`,
            dead_tup_finished: `${deadTuplesBeforePin.finishedJobs}>${deadTuplesAtPinEnd.finishedJobs}>${deadTuplesAtEnd.finishedJobs}`,
            jobs_size_pin_end: `${formatBytes(deadTuplesAtPinEnd.jobsBytes)}+idx ${formatBytes(deadTuplesAtPinEnd.jobsIndexBytes)}`,
            xids_per_job: (xids / jobs).toFixed(2),
            queue_xids_per_job: ((xids - harnessXids) / jobs).toFixed(2),
            wal_per_job: `${Math.round(walBytes / jobs)}B`,
            queue_wal_per_job: `${Math.round((walBytes - harnessWalBytes) / jobs)}B`,
          },
        }),
      )
      expect(verdict).toMatchObject({ lost: 0, unexpected: 0, dupResults: 0, completedWithoutResult: 0, resultsWithoutCompletion: 0 })
      expect(verdict.acknowledged).toBe(jobCount)
      expect(probeMisses).toBe(0)
      // Soft: each bound is judged and reported even when another fails.
      expect.soft(maxIdleInTransaction.ms).toBeLessThanOrEqual(maxIdleInTransactionMs)
      // While the snapshot is pinned, the entry each claimed job left in the claim index (jobs_claim_idx, state
      // 'todo') can be neither vacuumed nor marked dead, so every claim walks past all jobs since the pin began:
      // its cost grows with the pin's length times the rate, which is what this bound measures.
      expect.soft(pinnedP99, 'claim p99 during the pin against 5x the baseline p99').toBeLessThanOrEqual(pinFactorBound * baselineP99)
      expect.soft(recoveredP99, 'claim p99 from 2 minutes (scaled) after the release against 1.5x the baseline p99').toBeLessThanOrEqual(recoveryFactorBound * baselineP99)
    } catch (error) {
      for (const worker of fleet.all) console.error(`${worker.name} stderr:\n${worker.errors.slice(-20).join('\n')}`)
      throw error
    } finally {
      isSampling = false
      await Promise.allSettled(samplers)
      await pin.end().catch(() => {})
      await probe.end().catch(() => {})
      fleet.killAll()
      await Promise.all(fleet.all.map((worker) => worker.exited))
      await client.close().catch(() => {})
      await server.close()
    }
  },
)

interface Costs {
  /** The next transaction id to be assigned (reading it assigns none). */
  xid: number
  walLsnBytes: number
  /** Transaction ids the ledger and the workers' execution recorder used: one per write they made in autocommit. */
  harnessXids: number
  /** WAL of the ledger's and the recorder's statements (on the chaos_ tables), by pg_stat_statements. */
  harnessWalBytes: number
}

/**
 * The server's transaction id and WAL position, and the share of both the test's bookkeeping used, which the
 * per-job figures of the queue leave out: each enqueue batch costs the ledger an insert and an update, and each
 * execution costs the recorder an insert and, once it ends, an update (each update leaves its own xmin).
 */
async function measureCosts(db: OwnServer['db']): Promise<Costs> {
  const { rows } = await db.query<{ xid: string; wal: string; enqueue_batches: string; executions: string; finished_executions: string; harness_wal: string | null }>(
    `select
       pg_snapshot_xmax(pg_current_snapshot())::text as xid,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text as wal,
       (select count(distinct xmin::text) from public.chaos_enqueues where acked_at is not null) as enqueue_batches,
       (select count(*) from public.chaos_executions) as executions,
       (select count(finished_at) from public.chaos_executions) as finished_executions,
       (select sum(wal_bytes)::text from pg_stat_statements where query like '%chaos\\_%') as harness_wal`,
  )
  const row = rows[0]!
  return {
    xid: Number(row.xid),
    walLsnBytes: Number(row.wal),
    harnessXids: 2 * Number(row.enqueue_batches) + Number(row.executions) + Number(row.finished_executions),
    harnessWalBytes: Number(row.harness_wal ?? 0),
  }
}

/** Cumulative calls and time of the workers' claims (not the probe's, which names its arguments), and the maximum since the last read. */
async function readWorkerClaims(db: OwnServer['db']): Promise<{ calls: number; totalMs: number; maxMs: number }> {
  const { rows } = await db.query<{ calls: string | null; total_ms: number | null; max_ms: number | null }>(
    `select sum(calls)::text as calls, sum(total_exec_time) as total_ms, max(max_exec_time) as max_ms
     from pg_stat_statements
     where query like '%fetch_jobs(%' and query not like '%worker_id =>%'`,
  )
  // Resets only the minimum and maximum (PostgreSQL 17+), so the next read's maximum is this window's.
  await db.query('select pg_stat_statements_reset(0, 0, 0, true)')
  const row = rows[0]!
  return { calls: Number(row.calls ?? 0), totalMs: Number(row.total_ms ?? 0), maxMs: Number(row.max_ms ?? 0) }
}

/** `mean/max ms` of the workers' claims over the windows of one phase. */
function summarizeWorkerClaims(windows: readonly WorkerClaimWindow[]): string {
  const calls = windows.reduce((sum, window) => sum + window.calls, 0)
  if (calls === 0) return '-'
  const totalMs = windows.reduce((sum, window) => sum + window.totalMs, 0)
  return `${(totalMs / calls).toFixed(2)}/${Math.max(...windows.map((window) => window.maxMs)).toFixed(1)}ms`
}

async function readDeadTuples(db: OwnServer['db']): Promise<{ jobs: number; finishedJobs: number; jobsBytes: number; jobsIndexBytes: number }> {
  const { rows } = await db.query<{ relname: string; n_dead_tup: string; table_bytes: string; index_bytes: string }>(
    `select relname, n_dead_tup::text, pg_relation_size(relid)::text as table_bytes, pg_indexes_size(relid)::text as index_bytes
     from pg_stat_user_tables
     where schemaname = 'skiplock' and relname in ('jobs', 'finished_jobs')`,
  )
  const of = (name: string) => rows.find((row) => row.relname === name)!
  return {
    jobs: Number(of('jobs').n_dead_tup),
    finishedJobs: Number(of('finished_jobs').n_dead_tup),
    jobsBytes: Number(of('jobs').table_bytes),
    jobsIndexBytes: Number(of('jobs').index_bytes),
  }
}

/** Nearest-rank percentile; NaN without samples. */
function percentile(values: readonly number[], fraction: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)]!
}

/** `p50/p99 ms (n)` of some probe claims. */
function formatClaims(values: readonly number[]): string {
  return `${percentile(values, 0.5).toFixed(2)}/${percentile(values, 0.99).toFixed(2)}ms(n${values.length})`
}

function formatBytes(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)}MiB` : `${Math.round(bytes / 2 ** 10)}KiB`
}
