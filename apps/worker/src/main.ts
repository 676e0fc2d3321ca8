// Runs the benchmark's workers: N processes x concurrency S, like the study's run_workers.sh, until the
// run's jobs are all finished (or a signal), then stops them and reports any that crashed.
// Usage: node apps/worker/dist/main.js --run-id ID [--processes N] [--concurrency S] [--pool-size P]
//        [--prefix w_] [--no-listen] [--database-url URL]
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'

import { existsSync } from 'node:fs'

import { hasPendingJobs, toQueryable } from '@skiplock/schema'
import { assertReachable } from '@skiplock/schema/server'
import pg from 'pg'

const usage = 'usage: worker --run-id ID [--processes N] [--concurrency S] [--pool-size P] [--prefix w_] [--no-listen] [--database-url URL]'

interface Child {
  name: string
  process: ChildProcess
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

class UsageError extends Error {}

function readOptions(argv: readonly string[]) {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv.filter((arg) => arg !== '--'),
      options: {
        'run-id': { type: 'string' },
        processes: { type: 'string', default: '4' },
        concurrency: { type: 'string', default: '4' },
        'pool-size': { type: 'string', default: '2' },
        prefix: { type: 'string', default: 'w_' },
        'no-listen': { type: 'boolean', default: false },
        'database-url': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }))
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  const positive = (name: string, text: string | undefined) => {
    const value = Number(text)
    if (!Number.isInteger(value) || value < 1) throw new UsageError(`--${name}: ${JSON.stringify(text)} is not a whole number of at least 1`)
    return value
  }
  if (values.help) return undefined
  const runId = values['run-id']
  if (!runId) throw new UsageError('--run-id is required')
  const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL
  if (!databaseUrl) throw new UsageError('no database: pass --database-url or set DATABASE_URL')
  return {
    runId,
    processes: positive('processes', values.processes),
    concurrency: positive('concurrency', values.concurrency),
    poolSize: positive('pool-size', values['pool-size']),
    prefix: values.prefix!,
    listen: !values['no-listen'],
    databaseUrl,
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const options = readOptions(argv)
  if (!options) {
    console.log(usage)
    return 0
  }
  await assertReachable(options.databaseUrl)
  const queue = `bench.${options.runId}`
  const children: Child[] = []
  let isStopping = false
  const stopAll = () => {
    isStopping = true
    for (const child of children) if (child.process.exitCode === null) child.process.kill('SIGTERM')
  }
  process.once('SIGINT', stopAll)
  process.once('SIGTERM', stopAll)

  const crashed: string[] = []
  for (let index = 1; index <= options.processes; index++) {
    const name = `${options.prefix}${options.runId}_${index}`
    const child = spawn(process.execPath, [...process.execArgv, new URL(`./child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).pathname], {
      env: {
        ...process.env,
        SKIPLOCK_DATABASE_URL: options.databaseUrl,
        SKIPLOCK_WORKER_NAME: name,
        SKIPLOCK_QUEUE: queue,
        SKIPLOCK_CONCURRENCY: String(options.concurrency),
        SKIPLOCK_POOL_SIZE: String(options.poolSize),
        SKIPLOCK_LISTEN: String(options.listen),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
    void exited.then(({ code, signal }) => {
      if (code !== 0) {
        // A crash is reported as it happens and again in the exit code; its jobs are rescued by the others.
        crashed.push(name)
        console.error(`worker: ${name} crashed (${signal ?? `exit code ${code}`})${isStopping ? '' : '; its jobs will be rescued by the others'}`)
      }
    })
    children.push({ name, process: child, exited })
  }
  await Promise.all(
    children.map(async (child) => {
      const lines = createInterface({ input: child.process.stdout! })
      await Promise.race([once(lines, 'line'), child.exited])
    }),
  )
  console.error(`worker: ${children.length} processes x ${options.concurrency} running on ${queue}`)

  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 1, application_name: 'skiplock-bench-watch' })
  pool.on('error', () => {})
  try {
    // The run is over once the orchestrator has recorded that it finished and no job is left waiting or running.
    const enqueueRecord = new URL(`../../../perf/runs/${options.runId}/enqueue.json`, import.meta.url)
    while (!isStopping) {
      if (existsSync(enqueueRecord) && !(await hasPendingJobs(toQueryable(pool), 'skiplock', queue))) break
      if (children.every((child) => child.process.exitCode !== null)) break
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  } finally {
    await pool.end()
  }
  stopAll()
  await Promise.all(children.map((child) => child.exited))
  if (crashed.length > 0) {
    console.error(`worker: ${crashed.length} of ${children.length} processes crashed: ${crashed.join(', ')}`)
    return 1
  }
  console.error(`worker: all ${children.length} processes stopped cleanly`)
  return 0
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  if (error instanceof UsageError) {
    console.error(`worker: ${error.message}\n${usage}`)
    process.exitCode = 2
  } else {
    console.error(`worker: ${(error as Error).message}`)
    process.exitCode = 1
  }
}
