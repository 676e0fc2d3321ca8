import { Queue, Worker } from 'bullmq'

import { type ConfigName, installedVersion, type JobPayload, type Peer, type PeerTarget, planFor, queueName } from './peer.ts'

const shapes: Record<ConfigName, { processes: number; concurrency: number | undefined; description: string }> = {
  best: { processes: 2, concurrency: 100, description: '2 processes x concurrency 100' },
  defaults: { processes: 1, concurrency: undefined, description: '1 process, Worker defaults (concurrency 1)' },
}

/** addBulk runs one MULTI per call: keep each to this many jobs (S3's 20,000 then appear at once). */
const addBulkChunk = 20_000

/**
 * Every run gets its own key prefix, so a shared Redis is never flushed: the harness passes it in
 * PERF_BULLMQ_PREFIX to the worker processes, and sets a new one before each run.
 */
const prefix = () => (process.env.PERF_BULLMQ_PREFIX ??= `perf-compare-${process.pid}-${Date.now()}`)

function connection(target: PeerTarget) {
  if (!target.redisUrl) throw new Error('bullmq needs --redis-url')
  return { url: target.redisUrl, maxRetriesPerRequest: null }
}

async function withQueue<T>(target: PeerTarget, use: (queue: Queue) => Promise<T>): Promise<T> {
  const queue = new Queue(queueName, { connection: connection(target), prefix: prefix() })
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
    process.env.PERF_BULLMQ_PREFIX = `perf-compare-${process.pid}-${Date.now()}`
    await withQueue(target, (queue) => queue.obliterate({ force: true }))
  },
  async openProducer(target) {
    const queue = new Queue(queueName, { connection: connection(target), prefix: prefix() })
    return {
      async addBulk(payloads) {
        for (let added = 0; added < payloads.length; added += addBulkChunk) {
          await queue.addBulk(payloads.slice(added, added + addBulkChunk).map((data) => ({ name: queueName, data })))
        }
      },
      add: async (payload) => void (await queue.add(queueName, payload)),
      close: () => queue.close(),
    }
  },
  async countRemaining(target) {
    return withQueue(target, async (queue) => {
      const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized')
      return Object.values(counts).reduce((sum, count) => sum + count, 0)
    })
  },
  workerPlan: (config, slots) => planFor(config, shapes[config], slots),
  async startWorker(target, plan, handle) {
    const worker = new Worker(queueName, async (job) => handle(String(job.id), job.data as JobPayload), {
      connection: connection(target),
      prefix: prefix(),
      ...(plan.concurrency === undefined ? {} : { concurrency: plan.concurrency }),
    })
    worker.on('error', (error) => console.error(`bullmq: ${error.message}`))
    await worker.waitUntilReady()
    return { stop: () => worker.close() }
  },
}
