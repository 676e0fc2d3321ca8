import { Logger, makeWorkerUtils, run, runMigrations } from 'graphile-worker'

import { type ConfigName, installedVersion, type Peer, queryNumber, queueName, type WorkerPlan } from './peer.ts'

interface GraphilePlan extends WorkerPlan {
  concurrency: number | undefined
  /** https://worker.graphile.org/docs/performance: local queue plus batched completion. */
  batching: boolean
}

const plans: Record<ConfigName, GraphilePlan> = {
  best: {
    processes: 2,
    concurrency: 24,
    batching: true,
    description: '2 processes x concurrentJobs 24, localQueue.size 2000, complete/failJobBatchDelay 0',
  },
  defaults: { processes: 1, concurrency: undefined, batching: false, description: '1 process, run() defaults (concurrency 1)' },
}

/**
 * Warnings and errors only: the default logger writes a line per job, which would measure the
 * terminal rather than the queue (for both configurations).
 */
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`graphile-worker: ${message}`)
})

/** addJobs (the add_jobs SQL function) takes this many jobs per call. */
const addJobsChunk = 10_000

export const graphileWorkerPeer: Peer = {
  name: 'graphile-worker',
  usesPostgres: true,
  version: async () => installedVersion('graphile-worker'),
  async setup(target) {
    await runMigrations({ connectionString: target.databaseUrl, logger })
  },
  async enqueue(target, jobs) {
    const utils = await makeWorkerUtils({ connectionString: target.databaseUrl, logger })
    try {
      for (let added = 0; added < jobs; added += addJobsChunk) {
        const count = Math.min(addJobsChunk, jobs - added)
        await utils.addJobs(Array.from({ length: count }, () => ({ identifier: queueName, payload: {} })))
      }
    } finally {
      await utils.release()
    }
  },
  countRemaining: (target) => queryNumber(target.databaseUrl, 'select count(*) from graphile_worker._private_jobs'),
  workerPlan: (config) => plans[config],
  async startWorker(target, config, onJob) {
    const plan = plans[config]
    const runner = await run({
      connectionString: target.databaseUrl,
      noHandleSignals: true,
      logger,
      ...(plan.concurrency === undefined ? {} : { concurrency: plan.concurrency, maxPoolSize: plan.concurrency + 1 }),
      ...(plan.batching
        ? { preset: { worker: { localQueue: { size: 2000 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } } }
        : {}),
      taskList: {
        [queueName]: async (_payload, helpers) => {
          onJob(String(helpers.job.id))
        },
      },
    })
    return { stop: () => runner.stop() }
  },
}
