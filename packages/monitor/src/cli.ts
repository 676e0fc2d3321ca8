#!/usr/bin/env node
import { CliUsageError, parseCliArguments, USAGE, type CliArguments } from './cli/arguments.ts'
import { summarySink } from './cli/summary-sink.ts'
import { assertReachable, errorMessage, redactor } from './connection.ts'
import { MonitorError } from './errors.ts'
import { type Sampler, type Sink, startMonitor } from './monitor.ts'
import { connectionsSampler } from './samplers/connections-sampler.ts'
import { databaseSampler } from './samplers/database-sampler.ts'
import { postgresServerPid } from './samplers/postgres-server-pid.ts'
import { processSampler } from './samplers/process-sampler.ts'
import { jsonlSink } from './sinks/jsonl-sink.ts'
import { tableSink } from './sinks/table-sink.ts'

const EXIT_FAILURE = 1
const EXIT_USAGE = 2

async function main(): Promise<number> {
  let cliArguments: CliArguments | 'help'
  try {
    cliArguments = parseCliArguments(process.argv.slice(2), process.env)
  } catch (error) {
    if (!(error instanceof CliUsageError)) throw error
    process.stderr.write(`skiplock-monitor: ${error.message}\nrun skiplock-monitor --help for the options\n`)
    return EXIT_USAGE
  }
  if (cliArguments === 'help') {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const redact = redactor(cliArguments.databaseUrl)
  try {
    return await monitorUntilStopped(cliArguments)
  } catch (error) {
    // Only our own errors have messages written for this line; anything else is a bug worth its stack.
    if (!(error instanceof MonitorError)) throw error
    process.stderr.write(`skiplock-monitor: ${redact(errorMessage(error))}\n`)
    return EXIT_FAILURE
  }
}

async function monitorUntilStopped(options: CliArguments): Promise<number> {
  const connectionString = options.databaseUrl
  await assertReachable(connectionString)
  const samplers: Sampler[] = [
    connectionsSampler({ connectionString }),
    databaseSampler({ connectionString, tables: options.tables }),
    ...options.pids.map(({ pid, name }) => processSampler({ name, pid })),
  ]
  if (options.postgresDataDirectory !== undefined) {
    samplers.push(processSampler({ name: 'postgres', pid: await postgresServerPid(options.postgresDataDirectory) }))
  }
  const summary = summarySink({
    print: (line) => process.stderr.write(`${line}\n`),
    // On a terminal a line per round is the live view; in a log, one line in ten is plenty.
    everyRounds: process.stderr.isTTY ? 1 : 10,
  })
  const sinks: Sink[] = [summary]
  if (options.outPath !== undefined) sinks.push(jsonlSink(options.outPath))
  if (options.databaseTable !== undefined) sinks.push(tableSink({ connectionString, table: options.databaseTable }))
  if (options.outPath === undefined && options.databaseTable === undefined) sinks.push(stdoutSink())

  const monitor = startMonitor({ intervalMs: options.intervalMs, samplers, sinks })
  const stopRequested = new Promise<string>((resolve) => {
    const durationTimer =
      options.durationMs === undefined ? undefined : setTimeout(() => resolve(`after ${options.durationMs} ms`), options.durationMs)
    // `skiplock-monitor … | head` closes stdout: stop as for a signal rather than crash on EPIPE.
    process.stdout.on('error', () => {
      clearTimeout(durationTimer)
      resolve('as stdout was closed')
    })
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        clearTimeout(durationTimer)
        resolve(`on ${signal}`)
        // A second signal while the last round is written means: do not wait.
        process.once(signal, () => process.exit(130))
      })
    }
  })
  const reason = await stopRequested
  // A sink that fails to close has already said so through the monitor's onError.
  const isClean = await monitor.stop().then(
    () => true,
    () => false,
  )
  const destination = [options.outPath, options.databaseTable && `table ${options.databaseTable}`].filter(Boolean).join(' and ') || 'stdout'
  process.stderr.write(
    `skiplock-monitor: stopped ${reason}: ${summary.rounds} rounds, ${summary.samples} samples (${summary.errors} errors) written to ${destination}\n`,
  )
  process.removeAllListeners('SIGINT').removeAllListeners('SIGTERM')
  return isClean ? 0 : EXIT_FAILURE
}

function stdoutSink(): Sink {
  return {
    name: 'stdout',
    write: (samples) => {
      process.stdout.write(samples.map((sample) => `${JSON.stringify(sample)}\n`).join(''))
    },
  }
}

process.exitCode = await main()
