import { createClient, createWorker, defineTask, migrate } from '@skiplock/core'

import { type ConfigName, installedVersion, type Peer, queryNumber, queueName, type WorkerPlan } from './peer.ts'

const plans: Record<ConfigName, WorkerPlan & { concurrency: number | undefined }> = {
  // Not tuned yet: the same shape as graphile-worker's best (2 processes), more handlers each.
  best: { processes: 2, concurrency: 50, description: '2 processes x concurrency 50' },
  defaults: { processes: 1, concurrency: undefined, description: '1 process, createWorker defaults' },
}

function noopTask(onJob: (id: string) => void = () => {}) {
  return defineTask({
    name: queueName,
    handler: async (_payload: Record<string, never>, { job }) => {
      onJob(String(job.id))
    },
  })
}

export const skiplockPeer: Peer = {
  name: 'skiplock',
  usesPostgres: true,
  version: async () => installedVersion('@skiplock/core'),
  async setup(target) {
    await migrate(target.databaseUrl)
  },
  async enqueue(target, jobs) {
    const client = createClient({ connectionString: target.databaseUrl })
    try {
      // deferMany: `batchSize` (default 5000) jobs per statement, all in one transaction.
      await client.deferMany(noopTask(), Array.from({ length: jobs }, () => ({})))
    } finally {
      await client.close()
    }
  },
  countRemaining: (target) => queryNumber(target.databaseUrl, 'select count(*) from skiplock.jobs'),
  workerPlan: (config) => plans[config],
  async startWorker(target, config, onJob) {
    const { concurrency } = plans[config]
    const worker = createWorker({
      connectionString: target.databaseUrl,
      tasks: [noopTask(onJob)],
      ...(concurrency === undefined ? {} : { concurrency }),
    })
    worker.on('error', ({ error, during }) => console.error(`skiplock: error during ${during}: ${(error as Error).message}`))
    await worker.start()
    return { stop: () => worker.stop() }
  },
}
