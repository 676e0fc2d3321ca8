import { PgBoss } from 'pg-boss'

import { type ConfigName, harnessUrl, installedVersion, type JobPayload, type Peer, planFor, queryNumber, queueName } from './peer.ts'

const shapes: Record<ConfigName, { processes: number; concurrency: number | undefined; description: string }> = {
  best: {
    processes: 1,
    concurrency: undefined,
    description: '1 process, work() batchSize 1000, burstWhenBatchFull, polling 0.5 s, LISTEN/NOTIFY on',
  },
  defaults: { processes: 1, concurrency: undefined, description: '1 process, work() defaults (batchSize 1, polling 2 s)' },
}

/** insert() sends its jobs as one JSON parameter: keep each call to this many (S3's 20,000 then appear at once). */
const insertChunk = 20_000

function connect(databaseUrl: string, config: ConfigName, options: { isProducer: boolean }) {
  const boss = new PgBoss({
    connectionString: databaseUrl,
    ...(options.isProducer ? { supervise: false, schedule: false } : {}),
    ...(config === 'best' ? { useListenNotify: true } : {}),
  })
  boss.on('error', (error) => console.error(`pg-boss: ${error.message}`))
  return boss
}

export const pgBossPeer: Peer = {
  name: 'pg-boss',
  usesPostgres: true,
  version: async () => installedVersion('pg-boss'),
  async setup(target, config) {
    const boss = connect(target.databaseUrl, config, { isProducer: true })
    await boss.start()
    // NOTIFY on job creation is opt-in per queue: the best configuration wakes workers with it.
    await boss.createQueue(queueName, config === 'best' ? { notify: true } : {})
    await boss.stop({ graceful: false })
  },
  async openProducer(target, config) {
    const boss = connect(harnessUrl(target.databaseUrl), config, { isProducer: true })
    await boss.start()
    return {
      async addBulk(payloads) {
        for (let added = 0; added < payloads.length; added += insertChunk) {
          await boss.insert(queueName, payloads.slice(added, added + insertChunk).map((data) => ({ data })))
        }
      },
      add: async (payload) => void (await boss.send(queueName, payload)),
      close: () => boss.stop({ graceful: false }),
    }
  },
  countRemaining: (target) =>
    queryNumber(target.databaseUrl, `select count(*) from pgboss.job where state in ('created', 'retry', 'active')`),
  workerPlan(config, slots) {
    const plan = planFor(config, shapes[config], slots)
    if (!plan.hasFixedSlots) return plan
    return {
      ...plan,
      description:
        config === 'best'
          ? `${plan.description} (localConcurrency ${Math.ceil(plan.concurrency! / 10)} x batchSize 10, burstWhenBatchFull, polling 0.5 s, NOTIFY)`
          : `${plan.description} (localConcurrency)`,
    }
  },
  async startWorker(target, plan, handle) {
    const boss = connect(target.databaseUrl, plan.config, { isProducer: false })
    await boss.start()
    const handler = async (jobs: { id: string; data: JobPayload }[]) => {
      await Promise.all(jobs.map((job) => handle(job.id, job.data)))
    }
    // With NOTIFY on, pg-boss polls only every notifyPollingIntervalSeconds (30 s by default) after the wake-up.
    const tuning = plan.config === 'best' ? { pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 } : {}
    if (plan.hasFixedSlots && plan.config === 'best') {
      // One job per poll and worker would cap 200 workers at 400 jobs/s: fetch batches of 10 and refetch at once while full.
      const batchSize = 10
      await boss.work(queueName, { ...tuning, localConcurrency: Math.ceil(plan.concurrency! / batchSize), batchSize, burstWhenBatchFull: true }, handler)
    } else if (plan.hasFixedSlots) await boss.work(queueName, { localConcurrency: plan.concurrency }, handler)
    else if (plan.config === 'best') await boss.work(queueName, { ...tuning, batchSize: 1000, burstWhenBatchFull: true }, handler)
    else await boss.work(queueName, handler)
    return { stop: () => boss.stop({ graceful: true }) }
  },
}
