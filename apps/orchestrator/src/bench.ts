// `pnpm bench`: the whole benchmark pipeline for one scenario. It provides a database (embedded by
// default, DATABASE_URL to use another), migrates it, creates the jobs, runs the workers, and analyzes
// the run. Each stage is its own app and can run alone with the same flags.
// Usage: pnpm bench [-- --scenario NAME] [--max-jobs N --processes N ...]
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'

import { migrate, SkiplockError } from '@skiplock/schema'
import { startDatabaseServer } from '@skiplock/schema/server'

import { parseScenarioFlags } from './flags.ts'
import { loadScenario, type Scenario, ScenarioError, scenarioNames } from './scenario.ts'

const isSource = import.meta.url.endsWith('.ts')

/** The command that runs an app's entry point: built JavaScript, or the sources when run from them. */
function appCommand(app: 'orchestrator' | 'worker' | 'analyzer'): string[] {
  const entry = new URL(`../../${app}/${isSource ? 'src/main.ts' : 'dist/main.js'}`, import.meta.url).pathname
  return [...(isSource ? ['--conditions=development'] : []), entry]
}

const running = new Set<ChildProcess>()

/** Runs a stage; resolves with its exit code. `onLine` sees its stderr lines, which are passed through. */
function runStage(app: 'orchestrator' | 'worker' | 'analyzer', args: string[], env: NodeJS.ProcessEnv, onLine?: (line: string) => void) {
  const child = spawn(process.execPath, [...appCommand(app), ...args], { env, stdio: ['ignore', 'inherit', 'pipe'] })
  running.add(child)
  createInterface({ input: child.stderr! }).on('line', (line) => {
    process.stderr.write(`${line}\n`)
    onLine?.(line)
  })
  return once(child, 'exit').then(([code, signal]) => {
    running.delete(child)
    return (code as number | null) ?? (signal ? 128 : 1)
  })
}

function scenarioArgs(scenarioName: string, runId: string, scenario: Scenario): string[] {
  return [
    '--scenario', scenarioName, '--run-id', runId,
    '--max-jobs', String(scenario.jobs), '--avg-duration', String(scenario.avgDurationSeconds),
    '--distribution', scenario.distribution, '--failure-rate', String(scenario.failureRate),
    '--max-attempts', String(scenario.maxAttempts), '--batch-size', String(scenario.batchSize),
    ...(scenario.rate === null ? [] : ['--rate', String(scenario.rate)]),
    '--processes', String(scenario.processes), '--concurrency', String(scenario.concurrency),
    '--pool-size', String(scenario.poolSize), scenario.listen ? '--listen' : '--no-listen',
    scenario.workersFirst ? '--workers-first' : '--no-workers-first',
    ...(typeof scenario.database.max_connections === 'number' ? ['--max-connections', String(scenario.database.max_connections)] : []),
  ]
}

async function main(argv: readonly string[]): Promise<number> {
  const { options, overrides } = parseScenarioFlags(argv)
  if (options.help) {
    console.log(`usage: pnpm bench [-- --scenario NAME] [--max-jobs N] [--processes N] [--concurrency S] [--pool-size P] [--no-listen] ...\nscenarios: ${(await scenarioNames()).join(', ')}`)
    return 0
  }
  const scenarioName = (options.scenario as string | undefined) ?? 'ci'
  const scenario = await loadScenario(scenarioName, overrides)
  const runId = (options['run-id'] as string | undefined) ?? `${scenarioName}-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}`
  console.error(`bench: scenario ${scenarioName}, run ${runId}: ${scenario.jobs} jobs, ${scenario.processes} processes x ${scenario.concurrency}`)

  await using server = await startDatabaseServer({ databaseUrl: (options['database-url'] as string | undefined) ?? process.env.DATABASE_URL, settings: scenario.database })
  const where = server.kind === 'embedded' ? `embedded PostgreSQL (postmaster ${server.postmasterPid}, ${server.dataDirectory})` : server.kind === 'container' ? 'a PostgreSQL container' : 'DATABASE_URL'
  console.error(`bench: database: ${where}`)
  await migrate(server.url)
  // The URL travels in the environment, not on command lines other users can read.
  const env = { ...process.env, DATABASE_URL: server.url }

  const workerArgs = ['--run-id', runId, '--processes', String(scenario.processes), '--concurrency', String(scenario.concurrency), '--pool-size', String(scenario.poolSize), ...(scenario.listen ? [] : ['--no-listen'])]
  let workers: Promise<number>
  let orchestrated: number
  if (scenario.workersFirst) {
    let markReady: () => void = () => {}
    const ready = new Promise<void>((resolve) => (markReady = resolve))
    workers = runStage('worker', workerArgs, env, (line) => {
      if (line.includes('running on')) markReady()
    })
    await Promise.race([ready, workers])
    orchestrated = await runStage('orchestrator', scenarioArgs(scenarioName, runId, scenario), env)
  } else {
    orchestrated = await runStage('orchestrator', scenarioArgs(scenarioName, runId, scenario), env)
    workers = orchestrated === 0 ? runStage('worker', workerArgs, env) : Promise.resolve(0)
  }
  const worked = await workers
  if (orchestrated !== 0) return orchestrated
  const analyzed = await runStage('analyzer', ['--run-id', runId], env)
  console.error(`bench: run ${runId} written to perf/runs/${runId}/`)
  return worked !== 0 ? worked : analyzed
}

// Ctrl-C reaches every stage of the process group; wait for them so the database stops last.
let signals = 0
const onSignal = () => {
  signals += 1
  if (signals > 1) for (const child of running) child.kill('SIGKILL')
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', () => {
  for (const child of running) child.kill('SIGTERM')
  onSignal()
})

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  if (error instanceof ScenarioError) {
    console.error(`bench: ${error.message}`)
    process.exitCode = 2
  } else if (error instanceof SkiplockError) {
    console.error(`bench: ${error.message} (${error.code})`)
    process.exitCode = 1
  } else {
    throw error
  }
}
if (signals > 0) process.exitCode = 130
