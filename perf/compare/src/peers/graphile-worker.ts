import { Logger, makeWorkerUtils, run, runMigrations } from 'graphile-worker'

import { type ConfigName, harnessUrl, installedVersion, type JobPayload, type Peer, planFor, queryNumber, queueName } from './peer.ts'

const shapes: Record<ConfigName, { processes: number; concurrency: number | undefined; description: string }> = {
  best: {
    processes: 2,
    concurrency: 24,
    description: '2 processes x concurrentJobs 24, localQueue.size 2000, complete/failJobBatchDelay 0',
  },
  defaults: { processes: 1, concurrency: undefined, description: '1 process, run() defaults (concurrency 1)' },
}

/** https://worker.graphile.org/docs/performance: a local queue plus batched completion. */
function bestPreset(localQueueSize: number) {
  return { worker: { localQueue: { size: localQueueSize }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } }
}

/**
 * Warnings and errors only: the default logger writes a line per job, which would measure the
 * terminal rather than the queue (for both configurations).
 */
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`graphile-worker: ${message}`)
})

/** addJobs (the add_jobs SQL function) takes this many jobs per call (S3's 20,000 then appear at once). */
const addJobsChunk = 20_000

export const graphileWorkerPeer: Peer = {
  name: 'graphile-worker',
  usesPostgres: true,
  version: async () => installedVersion('graphile-worker'),
  async setup(target) {
    await runMigrations({ connectionString: target.databaseUrl, logger })
  },
  async openProducer(target) {
    const utils = await makeWorkerUtils({ connectionString: harnessUrl(target.databaseUrl), logger })
    return {
      async addBulk(payloads) {
        for (let added = 0; added < payloads.length; added += addJobsChunk) {
          const chunk = payloads.slice(added, added + addJobsChunk)
          await utils.addJobs(chunk.map((payload) => ({ identifier: queueName, payload })))
        }
      },
      add: async (payload) => void (await utils.addJob(queueName, payload)),
      close: async () => void (await utils.release()),
    }
  },
  countRemaining: (target) => queryNumber(target.databaseUrl, 'select count(*) from graphile_worker._private_jobs'),
  workerPlan(config, slots) {
    const plan = planFor(config, shapes[config], slots)
    // With a fixed number of handlers, a 2,000-job local queue would hoard jobs in one process: keep one batch.
    return plan.hasFixedSlots && config === 'best' ? { ...plan, description: `${plan.description} (maxPoolSize 20, localQueue.size = handlers, batch delay 0)` } : plan
  },
  async startWorker(target, plan, handle) {
    const runner = await run({
      connectionString: target.databaseUrl,
      noHandleSignals: true,
      logger,
      ...(plan.concurrency === undefined ? {} : { concurrency: plan.concurrency }),
      // A connection per handler would pass max_connections with 200 handlers: 20 per process then.
      ...(plan.config === 'best' ? { maxPoolSize: plan.hasFixedSlots ? 20 : plan.concurrency! + 1 } : {}),
      ...(plan.config === 'best' ? { preset: bestPreset(plan.hasFixedSlots ? plan.concurrency! : 2000) } : {}),
      taskList: {
        [queueName]: async (payload, helpers) => handle(String(helpers.job.id), payload as JobPayload),
      },
    })
    return { stop: () => runner.stop() }
  },
}
