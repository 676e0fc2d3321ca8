import { checkSchema } from '@skiplock/schema'
import type { Command } from 'commander'

import { createWorker, type Job, type Worker } from '../../index.ts'
import { addConnectionOptions, connectDatabase, type ConnectionOptions, requireDatabaseUrl } from '../connection.ts'
import { describeFailure, EXIT_FAILURE, redactSecrets } from '../errors.ts'
import { parseList, parsePositiveInteger } from '../parsers.ts'
import { loadTaskModule, type TaskModule } from '../task-module.ts'

interface WorkerCommandOptions extends ConnectionOptions {
  concurrency?: number
  poolSize?: number
  queues?: string[]
  batchSize?: number
  listen: boolean
  leaseSeconds?: number
  shutdownGracePeriodMs?: number
  name?: string
}

/** `skiplock worker <module>`: runs the tasks a module exports until SIGTERM or SIGINT. */
export function registerWorkerCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('worker')
      .description(
        'run the tasks an ES module exports (each task, or arrays of them; an optional export "periodic") until SIGTERM or SIGINT',
      )
      .argument('<module>', 'path of the module, relative to the current directory')
      .option('--concurrency <n>', 'handlers running at once (default 10)', parsePositiveInteger)
      .option('--pool-size <n>', 'database connections, besides one for LISTEN (default 2)', parsePositiveInteger)
      .option('--queues <names>', 'comma-separated queues to take jobs from (default: all)', parseList)
      .option('--batch-size <n>', 'jobs fetched per round trip (default: the concurrency)', parsePositiveInteger)
      .option('--no-listen', 'poll only, without LISTEN/NOTIFY (e.g. behind a transaction-mode pooler)')
      .option('--lease-seconds <n>', 'a worker silent this long is presumed dead and its jobs rescued (default 30)', parsePositiveInteger)
      .option('--shutdown-grace-period-ms <ms>', 'how long running handlers may finish after a signal (default 30000)', parsePositiveInteger)
      .option('--name <name>', 'shown in skiplock.workers and pg_stat_activity (default <host>:<pid>)'),
  ).action(async (moduleSpecifier: string, options: WorkerCommandOptions) => {
    // Usage first: a missing URL should not wait for the module's imports.
    requireDatabaseUrl(options)
    const taskModule = await loadTaskModule(moduleSpecifier)
    const url = await connectDatabase(options)
    await checkSchema(url, { schema: options.schema })
    warnAboutUnrunPeriodicTasks(taskModule)
    const worker = createWorker({
      connectionString: url,
      schema: options.schema,
      tasks: taskModule.tasks,
      periodic: taskModule.periodic,
      concurrency: options.concurrency,
      poolSize: options.poolSize,
      queues: options.queues,
      batchSize: options.batchSize,
      listen: options.listen,
      leaseSeconds: options.leaseSeconds,
      shutdownGracePeriodMs: options.shutdownGracePeriodMs,
      name: options.name,
      handleSignals: true,
    })
    const outcome = watchWorker(worker, taskModule, options.queues)
    await worker.start()
    const removeSignalLog = logSignals(worker)
    const { hasStopFailed } = await outcome
    removeSignalLog()
    if (hasStopFailed) process.exitCode = EXIT_FAILURE
  })
}

/** Writes one line to stderr: stdout stays free for a module's own output. */
function log(line: string): void {
  process.stderr.write(`${redactSecrets(line)}\n`)
}

/**
 * Logs one line per worker and job event, and resolves once the worker stopped. `stop()` cannot be
 * awaited here (the worker's own signal handler called it, and a second call forces the stop), so a
 * failed stop is learnt from its `error` event with `during: 'stop'`.
 */
function watchWorker(worker: Worker, taskModule: TaskModule, queues: readonly string[] | undefined): Promise<{ hasStopFailed: boolean }> {
  let hasStopFailed = false
  const line = (job: Job, verb: string, details = '') => log(`job ${job.id} ${verb} (${job.taskName})${details}`)
  worker
    .on('worker:started', ({ workerId }) => {
      const taskNames = taskModule.tasks.map((task) => task.name).join(', ')
      log(`worker ${workerId} started: tasks ${taskNames}; queues ${queues?.join(', ') ?? 'all'}`)
    })
    .on('job:started', ({ job }) => line(job, 'started', `, attempt ${job.attempts} of ${job.maxAttempts}`))
    .on('job:completed', ({ job }) => line(job, 'completed'))
    .on('job:failed', ({ job, error, willRetry, state, runAt }) => {
      const message = describeFailure(error)
      if (willRetry) line(job, 'failed', `: ${message}; retry at ${runAt.toISOString()}`)
      else line(job, state === 'cancelled' ? 'cancelled' : 'failed for good', `: ${message}`)
    })
    .on('job:released', ({ job }) => line(job, 'released', ': back in the queue'))
    .on('job:lease-lost', ({ job }) => line(job, 'lost its lease', ': it was rescued as if this worker were dead; its outcome was not recorded'))
    .on('job:deferred', ({ job }) => line(job, 'deferred', ' by its periodic schedule'))
    .on('jobs:rescued', ({ jobs }) => log(`rescued ${jobs.length} jobs of workers presumed dead`))
    .on('error', ({ error, during }) => {
      if (during === 'stop') hasStopFailed = true
      log(`worker error during ${during}: ${describeFailure(error)}`)
    })
  return worker.once('worker:stopped').then(({ workerId }) => {
    log(hasStopFailed ? `worker ${workerId} stopped after an error` : `worker ${workerId} stopped`)
    return { hasStopFailed }
  })
}

/** Says what a signal does, since the worker handles it silently: the first stops gracefully, the second aborts. */
function logSignals(worker: Worker): () => void {
  let signalCount = 0
  const onSignal = (signal: NodeJS.Signals) => {
    signalCount += 1
    if (signalCount === 1) log(`${signal}: stopping; ${worker.runningCount} running jobs may finish (send it again to abort them)`)
    else log(`${signal} again: aborting running jobs`)
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  return () => {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
  }
}

function warnAboutUnrunPeriodicTasks(taskModule: TaskModule): void {
  for (const { task } of taskModule.periodic) {
    if (!taskModule.tasks.includes(task)) {
      log(`periodic task ${task.name} is not exported as a task: this worker defers its jobs but does not run them`)
    }
  }
}
