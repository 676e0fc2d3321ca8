// One benchmark worker process, started by main.ts. Configured through its environment; prints one
// line, "ready", once it runs, and exits 0 after a clean stop (SIGTERM).
import { createWorker } from '@skiplock/core'
import { createResultStore } from '@skiplock/results'

import { createBenchTask } from './bench-task.ts'

const workerName = process.env.SKIPLOCK_WORKER_NAME!
const worker = createWorker({
  connectionString: process.env.SKIPLOCK_DATABASE_URL!,
  name: workerName,
  tasks: [createBenchTask(workerName)],
  queues: [process.env.SKIPLOCK_QUEUE!],
  concurrency: Number(process.env.SKIPLOCK_CONCURRENCY),
  poolSize: Number(process.env.SKIPLOCK_POOL_SIZE),
  listen: process.env.SKIPLOCK_LISTEN === 'true',
  onJobsCompleting: createResultStore({ workerName }).hook,
  handleSignals: true,
})
worker.on('error', ({ error, during }) => console.error(`${workerName}: error during ${during}: ${(error as Error).message}`))
await worker.start()
console.log('ready')
