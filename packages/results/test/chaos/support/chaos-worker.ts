// A worker process for the chaos tests, configured by environment. It records every execution attempt
// in the ledger in autocommit (so a killed attempt stays visible) and stores results through the result
// store, in the transaction that completes the job. It prints JSON lines on stdout: `started` once it
// runs, then `signal`, `lease-lost`, `released` and `stopped` as they happen; it exits 0 after a clean stop.
import { createWorker, type Job, type Logger } from '@skiplock/core'
import pg from 'pg'

import { createResultStore } from '../../../src/index.ts'
import { type ChaosPayload, defineChaosTasks, type Fault } from './tasks.ts'

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const connectionString = process.env.DATABASE_URL!
const workerName = process.env.WORKER_NAME ?? `chaos-worker-${process.pid}`
/** A worker that drains what others left can cap every job's duration. */
const maxJobMs = env('MAX_JOB_MS', Number.POSITIVE_INFINITY)

function print(event: Record<string, unknown>): void {
  console.log(JSON.stringify(event))
}

// The recorder may connect elsewhere than the worker (not through a test's proxy, which counts the worker's own attempts).
// Its pool is small on a server with few connections to spare (RECORDER_POOL_SIZE).
const recorder = new pg.Pool({
  connectionString: process.env.RECORDER_URL ?? connectionString,
  max: env('RECORDER_POOL_SIZE', 2),
  application_name: 'skiplock-chaos-recorder',
})
recorder.on('error', (error) => console.error(`recorder error: ${error.message}`))

/** Records why the process is about to die, then dies at once: no cleanup runs, as in a crash. */
async function die(kind: string): Promise<never> {
  await recorder.query(`insert into public.chaos_faults (kind, pid, worker_id, stops_worker) values ($1, $2, $3, true)`, [kind, process.pid, worker.workerId])
  process.kill(process.pid, 'SIGKILL')
  return new Promise<never>(() => {})
}

function lineLogger(): Logger {
  const line = (level: string) => (fields: object, message?: string) => print({ event: 'log', level, message, atMs: Date.now(), ...fields })
  return { debug: () => {}, info: line('info'), warn: line('warn'), error: line('error') }
}

function faultOf(job: Job): Fault | undefined {
  return (job.payload as ChaosPayload | undefined)?.fault
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => {
      clearTimeout(timer)
      reject(signal.reason)
    })
  })
}

const tasks = defineChaosTasks(async (payload, { job, signal, tx }) => {
  const { rows } = await recorder.query<{ id: string }>(
    `insert into public.chaos_executions (client_id, job_id, attempt, lock, pid, worker_name) values ($1, $2, $3, $4, $5, $6) returning id`,
    [payload.id, job.id, job.attempts, job.lock, process.pid, workerName],
  )
  const executionId = rows[0]!.id
  const finish = (outcome: string) => recorder.query(`update public.chaos_executions set finished_at = clock_timestamp(), outcome = $2 where id = $1`, [executionId, outcome])
  if (payload.fault === 'kill-self') await die('kill-self')
  try {
    await sleep(Math.min(payload.ms, maxJobMs), payload.fault === 'ignore-abort' ? undefined : signal)
  } catch (error) {
    await finish('aborted')
    throw error
  }
  const shouldThrow = payload.fault === 'throw-always' || (payload.fault === 'throw-once' && job.attempts === 1)
  await finish(shouldThrow ? 'threw' : 'returned')
  if (shouldThrow) throw new Error(`planned failure of attempt ${job.attempts}`)
  // A side effect in the completing transaction: it must commit exactly once, with the result.
  if (tx) await tx.query(`insert into public.chaos_effects (client_id, job_id, attempt) values ($1, $2, $3)`, [payload.id, job.id, job.attempts])
  return { id: payload.id, pid: process.pid }
})

const store = createResultStore({ workerName })
const worker = createWorker({
  connectionString,
  tasks: [tasks.plain, tasks.transactional, tasks.flaky],
  name: workerName,
  ...(process.env.LISTEN_URL ? { listenConnectionString: process.env.LISTEN_URL } : {}),
  ...(process.env.QUEUES ? { queues: process.env.QUEUES.split(',') } : {}),
  ...(process.env.ATTRIBUTE_FILTER ? { attributeFilter: JSON.parse(process.env.ATTRIBUTE_FILTER) } : {}),
  concurrency: env('CONCURRENCY', 4),
  // A fixed batch keeps the jobs one process holds at most concurrency + batch, the bound on duplicates.
  batchSize: env('BATCH_SIZE', 4),
  poolSize: env('POOL_SIZE', 2),
  leaseSeconds: env('LEASE_SECONDS', 2),
  heartbeatIntervalMs: env('HEARTBEAT_MS', 500),
  maintenanceIntervalMs: env('MAINTENANCE_MS', 500),
  pollIntervalMs: env('POLL_MS', 200),
  shutdownGracePeriodMs: env('GRACE_MS', 30_000),
  handleSignals: true,
  // With LOG set, the worker's log lines become `log` events, so a test can count them.
  ...(process.env.LOG ? { logger: lineLogger() } : {}),
  onJobsCompleting: async (tx, jobs) => {
    await store.hook(tx, jobs)
    if (jobs.some((job) => faultOf(job) === 'kill-before-commit' && job.attempts === 1)) await die('kill-before-commit')
  },
})
worker.on('error', ({ error, during }) => console.error(`worker error during ${during}: ${(error as Error).message}`))
worker.on('job:completed', ({ job }) => {
  if (faultOf(job) === 'kill-after-commit' && job.attempts === 1) void die('kill-after-commit')
})
worker.on('job:lease-lost', ({ job }) => print({ event: 'lease-lost', jobId: job.id }))
worker.on('job:released', ({ job }) => print({ event: 'released', jobId: job.id }))
worker.on('notifications:backlog', ({ usage }) => print({ event: 'notifications-backlog', usage }))

// Claims and starts after the shutdown signal: a graceful stop must make none.
let isSignalled = false
let fetchedAfterSignal = 0
let startedAfterSignal = 0
worker.on('job:fetched', () => {
  if (isSignalled) fetchedAfterSignal += 1
})
worker.on('job:started', () => {
  if (isSignalled) startedAfterSignal += 1
})
worker.on('worker:stopped', ({ error }) => {
  print({ event: 'stopped', fetchedAfterSignal, startedAfterSignal, ...(error === undefined ? {} : { error: (error as Error).message }) })
  void recorder.end()
})

await worker.start()
print({ event: 'started', workerId: worker.workerId })
// Tells the test each signal arrived, so it can send the next one: signals of one kind do not queue.
process.on('SIGTERM', () => {
  isSignalled = true
  print({ event: 'signal', signal: 'SIGTERM' })
})
