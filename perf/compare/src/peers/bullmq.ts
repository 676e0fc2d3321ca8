import { Queue, Worker } from 'bullmq'

import { type ConfigName, installedVersion, type Peer, type PeerTarget, queueName, type WorkerPlan } from './peer.ts'

const plans: Record<ConfigName, WorkerPlan & { concurrency: number | undefined }> = {
  best: { processes: 2, concurrency: 100, description: '2 processes x concurrency 100' },
  defaults: { processes: 1, concurrency: undefined, description: '1 process, Worker defaults (concurrency 1)' },
}

/** addBulk runs one MULTI per call: keep each to this many jobs. */
const addBulkChunk = 5_000

/**
 * Every run gets its own key prefix, so a shared Redis is never flushed: the harness passes it in
 * PERF_BULLMQ_PREFIX to the worker processes.
 */
const prefix = (process.env.PERF_BULLMQ_PREFIX ??= `perf-compare-${process.pid}-${Date.now()}`)

function connection(target: PeerTarget) {
  if (!target.redisUrl) throw new Error('bullmq needs --redis-url')
  return { url: target.redisUrl, maxRetriesPerRequest: null }
}

async function withQueue<T>(target: PeerTarget, use: (queue: Queue) => Promise<T>): Promise<T> {
  const queue = new Queue(queueName, { connection: connection(target), prefix })
  try {
    return await use(queue)
  } finally {
    await queue.close()
  }
}

export const bullmqPeer: Peer = {
  name: 'bullmq',
  usesPostgres: false,
  version: async () => installedVersion('bullmq'),
  async setup(target) {
    await withQueue(target, (queue) => queue.obliterate({ force: true }))
  },
  async enqueue(target, jobs) {
    await withQueue(target, async (queue) => {
      for (let added = 0; added < jobs; added += addBulkChunk) {
        const count = Math.min(addBulkChunk, jobs - added)
        await queue.addBulk(Array.from({ length: count }, () => ({ name: queueName, data: {} })))
      }
    })
  },
  async countRemaining(target) {
    return withQueue(target, async (queue) => {
      const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized')
      return Object.values(counts).reduce((sum, count) => sum + count, 0)
    })
  },
  workerPlan: (config) => plans[config],
  async startWorker(target, config, onJob) {
    const { concurrency } = plans[config]
    const worker = new Worker(
      queueName,
      async (job) => {
        onJob(String(job.id))
      },
      { connection: connection(target), prefix, ...(concurrency === undefined ? {} : { concurrency }) },
    )
    worker.on('error', (error) => console.error(`bullmq: ${error.message}`))
    await worker.waitUntilReady()
    return { stop: () => worker.close() }
  },
}
