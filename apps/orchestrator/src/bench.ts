// `pnpm bench`: the whole benchmark pipeline for one scenario. It provides a database (embedded by
// default, DATABASE_URL to use another), migrates it, creates the jobs, runs the workers, and analyzes
// the run. Each stage is its own app and can run alone with the same flags.
// Usage: pnpm bench [-- --scenario NAME] [--max-jobs N --processes N ...]
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { connectionsSampler, databaseSampler, jsonlSink, processSampler, type Sampler, startMonitor } from '@skiplock/monitor'
import { checkConnectionBudget, ConnectionBudgetExceededError, connectionsPerWorker } from '@skiplock/core'
import { migrate, SkiplockError } from '@skiplock/schema'
import { startDatabaseServer } from '@skiplock/schema/server'
import pg from 'pg'

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
function runStage(
  app: 'orchestrator' | 'worker' | 'analyzer',
  args: string[],
  env: NodeJS.ProcessEnv,
  onLine?: (line: string) => void,
  onStarted?: (child: ChildProcess) => void,
) {
  const child = spawn(process.execPath, [...appCommand(app), ...args], { env, stdio: ['ignore', 'inherit', 'pipe'] })
  running.add(child)
  onStarted?.(child)
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
  if (argv.includes('--compare')) return compare(argv.filter((arg) => arg !== '--compare' && arg !== '--'))
  const { options, overrides } = parseScenarioFlags(argv)
  if (options.help) {
    console.log(`usage: pnpm bench [-- --scenario NAME] [--max-jobs N] [--processes N] [--concurrency S] [--pool-size P] [--no-listen] [--force] ...\nscenarios: ${(await scenarioNames()).join(', ')}`)
    return 0
  }
  const scenarioName = (options.scenario as string | undefined) ?? 'ci'
  const scenario = await loadScenario(scenarioName, overrides)
  const runId = (options['run-id'] as string | undefined) ?? `${scenarioName}-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}`
  console.error(`bench: scenario ${scenarioName}, run ${runId}: ${scenario.jobs} jobs, ${scenario.processes} processes x ${scenario.concurrency}`)

  // pg_stat_statements lets the analyzer measure queries per job and their latency for the connection model.
  const settings = { shared_preload_libraries: 'pg_stat_statements', ...scenario.database }
  await using server = await startDatabaseServer({ databaseUrl: (options['database-url'] as string | undefined) ?? process.env.DATABASE_URL, settings })
  const where = server.kind === 'embedded' ? `embedded PostgreSQL (postmaster ${server.postmasterPid}, ${server.dataDirectory})` : server.kind === 'container' ? 'a PostgreSQL container' : 'DATABASE_URL'
  console.error(`bench: database: ${where}`)
  await migrate(server.url)
  // A fleet the server cannot hold would measure workers waiting for connections: refused unless forced.
  const plan = { processes: scenario.processes, connectionsPerProcess: connectionsPerWorker({ poolSize: scenario.poolSize, listen: scenario.listen }) }
  const budget = await checkConnectionBudget(server.url, plan)
  if (!budget.fits) {
    const error = new ConnectionBudgetExceededError(plan, budget)
    if (!options.force) throw error
    console.error(`bench: ${error.message}; going on (--force)`)
  }
  await resetStatementStatistics(server.url)
  // The URL travels in the environment, not on command lines other users can read.
  const env = { ...process.env, DATABASE_URL: server.url }

  const runDirectory = new URL(`../../../perf/runs/${runId}/`, import.meta.url)
  await mkdir(runDirectory, { recursive: true })
  let workersPid: number | undefined
  let haveWorkersExited = false
  const monitor = startMonitor({
    intervalMs: 1000,
    samplers: [
      connectionsSampler({ connectionString: server.url }),
      databaseSampler({ connectionString: server.url, tables: ['skiplock.jobs', 'skiplock.finished_jobs'] }),
      ...(server.postmasterPid === undefined ? [] : [processSampler({ name: 'postgres', pid: server.postmasterPid })]),
      lazySampler('workers', () => (workersPid === undefined ? undefined : processSampler({ name: 'workers', pid: workersPid })), () => haveWorkersExited),
      workerProcessesSampler(() => workersPid, () => haveWorkersExited),
    ],
    sinks: [jsonlSink(fileURLToPath(new URL('samples.jsonl', runDirectory)))],
  })
  const onWorkersStarted = (child: ChildProcess) => {
    workersPid = child.pid
    child.once('exit', () => {
      haveWorkersExited = true
    })
  }

  const workerArgs = ['--run-id', runId, '--processes', String(scenario.processes), '--concurrency', String(scenario.concurrency), '--pool-size', String(scenario.poolSize), ...(scenario.listen ? [] : ['--no-listen'])]
  let workers: Promise<number> = Promise.resolve(0)
  let orchestrated: number
  let worked: number
  try {
    if (scenario.workersFirst) {
      let markReady: () => void = () => {}
      const ready = new Promise<void>((resolve) => (markReady = resolve))
      workers = runStage(
        'worker',
        workerArgs,
        env,
        (line) => {
          if (line.includes('running on')) markReady()
        },
        onWorkersStarted,
      )
      await Promise.race([ready, workers])
      orchestrated = await runStage('orchestrator', scenarioArgs(scenarioName, runId, scenario), env)
    } else {
      orchestrated = await runStage('orchestrator', scenarioArgs(scenarioName, runId, scenario), env)
      workers = orchestrated === 0 ? runStage('worker', workerArgs, env, undefined, onWorkersStarted) : Promise.resolve(0)
    }
    worked = await workers
    if (orchestrated !== 0) return orchestrated
  } finally {
    // The last sample closes the run's record before the analyzer reads it.
    await monitor.stop()
  }
  const analyzed = await runStage('analyzer', ['--run-id', runId], env)
  console.error(`bench: run ${runId} written to perf/runs/${runId}/`)
  return worked !== 0 ? worked : analyzed
}

/**
 * `pnpm bench -- --compare [flags]`: the peer comparison harness in perf/compare (skiplock against
 * graphile-worker, pg-boss and BullMQ), which writes perf/results/peers.md. It runs from its sources.
 */
async function compare(args: string[]): Promise<number> {
  const harness = new URL('../../../perf/compare/src/main.ts', import.meta.url).pathname
  const child = spawn(process.execPath, ['--conditions=development', harness, ...args], { stdio: 'inherit' })
  running.add(child)
  const [code] = await once(child, 'exit')
  running.delete(child)
  return (code as number | null) ?? 1
}

/** A sampler of a stage's process: nothing to sample before the stage starts or after it exits. */
function lazySampler(name: string, create: () => Sampler | undefined, hasEnded: () => boolean): Sampler {
  let sampler: Sampler | undefined
  return {
    name,
    sample: async () => (hasEnded() ? [] : ((sampler ??= create())?.sample() ?? [])),
    close: () => sampler?.close?.(),
  }
}

/**
 * Samples each worker process on its own, as `workers/<worker name>`, besides the whole tree: the
 * worker app's children are found in /proc once they run.
 */
function workerProcessesSampler(rootPid: () => number | undefined, hasEnded: () => boolean): Sampler {
  const samplers = new Map<number, Sampler>()
  return {
    name: 'worker processes',
    async sample() {
      const root = rootPid()
      if (root === undefined || hasEnded()) return []
      const children = (await readFile(`/proc/${root}/task/${root}/children`, 'utf8').catch(() => '')).split(' ').filter(Boolean).map(Number)
      for (const pid of children) {
        if (samplers.has(pid)) continue
        const environment = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '')
        const workerName = /(?:^|\0)SKIPLOCK_WORKER_NAME=([^\0]*)/.exec(environment)?.[1] ?? String(pid)
        samplers.set(pid, processSampler({ name: `workers/${workerName}`, pid }))
      }
      // A child that exited is skipped: a crash is the worker app's to report, not the monitor's.
      const live = children.map((pid) => samplers.get(pid)!)
      return (await Promise.all(live.map((sampler) => sampler.sample().catch(() => [])))).flat()
    },
  }
}

/**
 * Starts pg_stat_statements afresh for the run, where the server preloads it (the embedded one does).
 * Elsewhere the analyzer reports the queries per job as not measured.
 */
async function resetStatementStatistics(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'skiplock-bench' })
  await client.connect()
  try {
    await client.query('create extension if not exists pg_stat_statements')
    await client.query('select pg_stat_statements_reset()')
  } catch {
    console.error('bench: pg_stat_statements is not loaded on this server; queries per job will not be measured')
  } finally {
    await client.end()
  }
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
