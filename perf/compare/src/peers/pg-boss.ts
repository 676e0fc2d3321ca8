import { PgBoss } from 'pg-boss'

import { type ConfigName, installedVersion, type Peer, queryNumber, queueName, type WorkerPlan } from './peer.ts'

const plans: Record<ConfigName, WorkerPlan & { batchSize: number | undefined }> = {
  best: { processes: 1, batchSize: 1000, description: '1 process, work() batchSize 1000, burstWhenBatchFull, polling 0.5 s' },
  defaults: { processes: 1, batchSize: undefined, description: '1 process, work() defaults (batchSize 1, polling 2 s)' },
}

/** insert() sends its jobs as one JSON parameter: keep each call to this many. */
const insertChunk = 10_000

async function withBoss<T>(databaseUrl: string, use: (boss: PgBoss) => Promise<T>): Promise<T> {
  const boss = new PgBoss({ connectionString: databaseUrl, supervise: false, schedule: false })
  boss.on('error', (error) => console.error(`pg-boss: ${error.message}`))
  await boss.start()
  try {
    return await use(boss)
  } finally {
    await boss.stop({ graceful: false })
  }
}

export const pgBossPeer: Peer = {
  name: 'pg-boss',
  usesPostgres: true,
  version: async () => installedVersion('pg-boss'),
  async setup(target) {
    await withBoss(target.databaseUrl, (boss) => boss.createQueue(queueName))
  },
  async enqueue(target, jobs) {
    await withBoss(target.databaseUrl, async (boss) => {
      for (let added = 0; added < jobs; added += insertChunk) {
        const count = Math.min(insertChunk, jobs - added)
        await boss.insert(queueName, Array.from({ length: count }, () => ({ data: {} })))
      }
    })
  },
  countRemaining: (target) =>
    queryNumber(target.databaseUrl, `select count(*) from pgboss.job where state in ('created', 'retry', 'active')`),
  workerPlan: (config) => plans[config],
  async startWorker(target, config, onJob) {
    const { batchSize } = plans[config]
    const boss = new PgBoss(target.databaseUrl)
    boss.on('error', (error) => console.error(`pg-boss: ${error.message}`))
    await boss.start()
    const handler = async (jobs: { id: string }[]) => {
      for (const job of jobs) onJob(job.id)
    }
    if (batchSize === undefined) await boss.work(queueName, handler)
    else await boss.work(queueName, { batchSize, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 }, handler)
    return { stop: () => boss.stop({ graceful: true }) }
  },
}
