import { createClient, createWorker, defineTask, migrate } from '@skiplock/core'

import { type ConfigName, harnessUrl, installedVersion, type JobHandler, type JobPayload, type Peer, planFor, queryNumber, queueName } from './peer.ts'

const shapes: Record<ConfigName, { processes: number; concurrency: number | undefined; description: string }> = {
  // The same shape as graphile-worker's best (2 processes), more handlers each.
  best: { processes: 2, concurrency: 50, description: '2 processes x concurrency 50' },
  defaults: { processes: 1, concurrency: undefined, description: '1 process, createWorker defaults' },
}

function benchTask(handle: JobHandler = async () => {}) {
  return defineTask({
    name: queueName,
    handler: async (payload: JobPayload, { job }) => handle(String(job.id), payload),
  })
}

export const skiplockPeer: Peer = {
  name: 'skiplock',
  usesPostgres: true,
  version: async () => installedVersion('@skiplock/core'),
  async setup(target) {
    await migrate(target.databaseUrl)
  },
  async openProducer(target) {
    const client = createClient({ connectionString: harnessUrl(target.databaseUrl) })
    const task = benchTask()
    return {
      // deferMany: `batchSize` (default 5000) jobs per statement, all in one transaction.
      addBulk: async (payloads) => void (await client.deferMany(task, payloads)),
      add: async (payload) => void (await client.defer(task, payload)),
      close: () => client.close(),
    }
  },
  countRemaining: (target) => queryNumber(target.databaseUrl, 'select count(*) from skiplock.jobs'),
  workerPlan: (config, slots) => planFor(config, shapes[config], slots),
  async startWorker(target, plan, handle) {
    const worker = createWorker({
      connectionString: target.databaseUrl,
      tasks: [benchTask(handle)],
      ...(plan.concurrency === undefined ? {} : { concurrency: plan.concurrency }),
    })
    worker.on('error', ({ error, during }) => console.error(`skiplock: error during ${during}: ${(error as Error).message}`))
    await worker.start()
    return { stop: () => worker.stop() }
  },
}
