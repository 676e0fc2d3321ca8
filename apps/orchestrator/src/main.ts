// Creates a benchmark scenario's jobs: all at once (a backlog), or at a steady rate.
// Usage: node apps/orchestrator/dist/main.js --run-id ID [--scenario NAME] [--max-jobs N ...] [--database-url URL]
import { createClient, defineTask, SkiplockError } from '@skiplock/core'
import { assertReachable } from '@skiplock/schema/server'
import cliProgress from 'cli-progress'

import { durationSampler } from './durations.ts'
import { parseScenarioFlags } from './flags.ts'
import { runDirectory, runQueue, writeRunFile } from './run-directory.ts'
import { loadScenario, type Scenario, ScenarioError } from './scenario.ts'

/** The benchmark task as producers see it; apps/worker runs it under the same name. */
const benchTask = defineTask({
  name: 'bench.sleep',
  handler: (_payload: { ms: number; failureRate: number }) => {
    throw new Error('bench.sleep runs in apps/worker')
  },
})

/** What the orchestrator records about enqueueing, for the analyzer's enqueue rate. */
export interface EnqueueRecord {
  runId: string
  queue: string
  deferred: number
  startedAt: string
  finishedAt: string
  jobsPerSecond: number
}

/** Concurrent insert streams for a backlog; measured with the seed-1m scenario's enqueue stage. */
const enqueueStreams = 2

const usage = `usage: orchestrator --run-id ID [--scenario NAME] [--max-jobs N] [--avg-duration S] [--distribution fixed|uniform|exponential]
       [--failure-rate P] [--batch-size N] [--rate JOBS_PER_S] [--database-url URL]`

async function main(argv: readonly string[]): Promise<number> {
  const { options, overrides } = parseScenarioFlags(argv)
  if (options.help) {
    console.log(usage)
    return 0
  }
  const scenarioName = (options.scenario as string | undefined) ?? 'ci'
  const scenario = await loadScenario(scenarioName, overrides)
  const databaseUrl = (options['database-url'] as string | undefined) ?? process.env.DATABASE_URL
  if (!databaseUrl) throw new ScenarioError('no database: pass --database-url or set DATABASE_URL')
  const runId = (options['run-id'] as string | undefined) ?? `${scenarioName}-${Date.now()}`
  const directory = await runDirectory(runId)
  await writeRunFile(directory, 'scenario.json', { name: scenarioName, ...scenario })
  await assertReachable(databaseUrl)

  const client = createClient({ connectionString: databaseUrl })
  try {
    const record = await enqueue(client, scenario, runId)
    await writeRunFile(directory, 'enqueue.json', record)
    console.error(`orchestrator: deferred ${record.deferred} jobs to ${record.queue} at ${Math.round(record.jobsPerSecond)} jobs/s`)
  } finally {
    await client.close()
  }
  return 0
}

async function enqueue(client: ReturnType<typeof createClient>, scenario: Scenario, runId: string): Promise<EnqueueRecord> {
  const queue = runQueue(runId)
  const progress = startProgress(scenario.jobs)
  let deferred = 0
  function* payloads(count: number, nextDurationMs: () => number) {
    for (let i = 0; i < count; i++) {
      deferred += 1
      if (deferred % 1000 === 0) progress.update(deferred)
      yield { ms: nextDurationMs(), failureRate: scenario.failureRate }
    }
  }
  const options = { queue, maxAttempts: scenario.maxAttempts, batchSize: scenario.batchSize }
  const startedAt = new Date()
  if (scenario.rate === null) {
    // Inserting is bound by the server's CPU per row: two streams on two connections keep two cores busy.
    const streams = scenario.jobs >= 2 * scenario.batchSize ? enqueueStreams : 1
    await Promise.all(
      Array.from({ length: streams }, (_, stream) => {
        const count = Math.floor(scenario.jobs / streams) + (stream < scenario.jobs % streams ? 1 : 0)
        return client.deferMany(benchTask, payloads(count, durationSampler(scenario, `${runId}/${stream}`)), options)
      }),
    )
  } else {
    const nextDurationMs = durationSampler(scenario, runId)
    // Steady state: every tick, defer what the rate owes since the start.
    // Small ticks spread a low rate into single jobs; large rates go in small batches.
    const tickMs = Math.max(5, Math.min(50, 1000 / scenario.rate))
    while (deferred < scenario.jobs) {
      const owed = Math.min(scenario.jobs, Math.floor(((Date.now() - startedAt.getTime()) / 1000) * scenario.rate)) - deferred
      if (owed > 0) await client.deferMany(benchTask, payloads(owed, nextDurationMs), options)
      await new Promise((resolve) => setTimeout(resolve, tickMs))
    }
  }
  const finishedAt = new Date()
  progress.stop(deferred)
  return {
    runId,
    queue,
    deferred,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    jobsPerSecond: deferred / Math.max(0.001, (finishedAt.getTime() - startedAt.getTime()) / 1000),
  }
}

/** A progress bar on a terminal; a log line every 10% otherwise (escape codes would litter a log). */
function startProgress(total: number): { update: (value: number) => void; stop: (value: number) => void } {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar({ stream: process.stderr, format: 'enqueue [{bar}] {value}/{total} jobs {percentage}% {eta_formatted}' }, cliProgress.Presets.shades_classic)
    bar.start(total, 0)
    return { update: (value) => bar.update(value), stop: (value) => (bar.update(value), bar.stop()) }
  }
  let lastLoggedTenth = 0
  return {
    update: (value) => {
      const tenth = Math.floor((value / total) * 10)
      if (tenth > lastLoggedTenth) {
        lastLoggedTenth = tenth
        console.error(`orchestrator: deferred ${value}/${total} jobs`)
      }
    },
    stop: () => {},
  }
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  if (error instanceof ScenarioError) {
    console.error(`orchestrator: ${error.message}\n${usage}`)
    process.exitCode = 2
  } else if (error instanceof SkiplockError) {
    console.error(`orchestrator: ${error.message} (${error.code})`)
    process.exitCode = 1
  } else {
    throw error
  }
}
