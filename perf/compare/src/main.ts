// The comparison harness: runs scenarios S1 (bulk enqueue), S2 (drain), S3 (sleeping jobs), S4 (pickup
// latency) and M1 (memory of 1,000 handlers) against skiplock and its peers, each on a fresh embedded
// PostgreSQL with the same settings, and writes perf/results/peers.md. Usage: see `usageText` below.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { startDatabaseServer } from '@skiplock/schema/server'
import pg from 'pg'

import { prepareInspection } from './inspect.ts'
import { type ConfigName, loadPeer, type PeerName, peerNames } from './peers/peer.ts'
import { writeReport, type ReportContext } from './report.ts'
import { runBulkEnqueue } from './scenarios/s1-bulk-enqueue.ts'
import { runDrain } from './scenarios/s2-drain.ts'
import { m1, runSleepingJobs, s3 } from './scenarios/s3-sleeping-jobs.ts'
import { runPickup } from './scenarios/s4-pickup.ts'
import { type ScenarioName, scenarioNames, type ScenarioResult, type ScenarioRun } from './scenarios/scenario.ts'

/** The settings every server gets: the issue's "identical settings" (synchronous_commit is per run). */
const settings = { max_connections: 200, shared_preload_libraries: 'pg_stat_statements' } as const

const repositoryRoot = fileURLToPath(new URL('../../../', import.meta.url))

function usage(message: string): never {
  console.error(`perf-compare: ${message}`)
  process.exit(2)
}

function parseList<T extends string>(value: string, allowed: readonly T[], flag: string): T[] {
  const items = value.split(',').map((item) => item.trim()).filter(Boolean)
  for (const item of items) if (!allowed.includes(item as T)) usage(`${flag}: unknown "${item}" (expected ${allowed.join(', ')})`)
  return items as T[]
}

// `pnpm ... compare -- --peers x` passes the `--` through.
const args = process.argv.slice(2).filter((arg, index) => !(index === 0 && arg === '--'))
const usageText = `usage: pnpm bench -- --compare [--peers skiplock,graphile-worker,pg-boss,bullmq] [--scenarios S1,S2,S3,S4,M1]
       [--jobs 100000] [--config best|defaults|both] [--synchronous-commit on|off|on,off] [--repeats 1]
       [--s4-seconds 10] [--redis-url URL] [--max-seconds 120] [--out FILE]`
let parsed
try {
  parsed = parseArgs({
    args,
    options: {
      help: { type: 'boolean', short: 'h' },
      peers: { type: 'string', default: 'skiplock,graphile-worker' },
      scenarios: { type: 'string', default: 'S1,S2' },
      jobs: { type: 'string', default: '100000' },
      config: { type: 'string', default: 'both' },
      'synchronous-commit': { type: 'string', default: 'on' },
      repeats: { type: 'string', default: '1' },
      's4-seconds': { type: 'string', default: '10' },
      'redis-url': { type: 'string' },
      'max-seconds': { type: 'string', default: '120' },
      out: { type: 'string', default: path.join(repositoryRoot, 'perf/results/peers.md') },
    },
  })
} catch (error) {
  usage(`${(error as Error).message}\n${usageText}`)
}
const { values } = parsed
if (values.help) {
  console.log(usageText)
  process.exit(0)
}
const peers = parseList(values.peers, peerNames, '--peers')
const scenarios = parseList(values.scenarios, scenarioNames, '--scenarios')
const jobs = Number(values.jobs)
if (!Number.isInteger(jobs) || jobs <= 0) usage('--jobs: expected a positive integer')
const maxSeconds = Number(values['max-seconds'])
if (!(maxSeconds > 0)) usage('--max-seconds: expected a positive number')
const repeats = Number(values.repeats)
if (!Number.isInteger(repeats) || repeats <= 0) usage('--repeats: expected a positive integer')
const s4Seconds = Number(values['s4-seconds'])
if (!(s4Seconds > 0)) usage('--s4-seconds: expected a positive number')
const synchronousCommits = parseList(values['synchronous-commit'], ['on', 'off'] as const, '--synchronous-commit')
const configs: ConfigName[] =
  values.config === 'both' ? ['best', 'defaults'] : parseList(values.config, ['best', 'defaults'] as const, '--config')
const redisUrl = values['redis-url'] ?? process.env.REDIS_URL
if (peers.includes('bullmq') && !redisUrl) usage('bullmq needs --redis-url (or REDIS_URL)')

const loadedPeers = await Promise.all(peers.map((name: PeerName) => loadPeer(name)))
const context: ReportContext = {
  command: `node --conditions=development perf/compare/src/main.ts ${args.join(' ')}`.trim(),
  startedAt: new Date(),
  settings,
  versions: Object.fromEntries(await Promise.all(loadedPeers.map(async (peer) => [peer.name, await peer.version()]))),
  postgresVersion: 'PostgreSQL',
  jobs,
  maxSeconds,
  repeats,
}
const results: ScenarioResult[] = []

/** S1 has no worker tuning; M1 is about one process with 1,000 handlers, which `defaults` is for every peer. */
const configsOf = (scenario: ScenarioName): readonly ConfigName[] =>
  scenario === 'S1' ? ['best'] : scenario === 'M1' ? ['defaults'] : configs
/** The durability comparison is about committing jobs: S2 and S3. */
const synchronousCommitsOf = (scenario: ScenarioName) => (scenario === 'S2' || scenario === 'S3' ? synchronousCommits : (['on'] as const))

function runScenario(scenario: ScenarioName, run: ScenarioRun): Promise<ScenarioResult> {
  switch (scenario) {
    case 'S1':
      return runBulkEnqueue(run)
    case 'S2':
      return runDrain(run)
    case 'S3':
      return runSleepingJobs(run, s3)
    case 'M1':
      return runSleepingJobs(run, m1)
    case 'S4':
      return runPickup(run, s4Seconds)
  }
}

// Repeats are the outer loop: a slow minute on a noisy machine then touches every peer, not one.
for (let repeat = 1; repeat <= repeats; repeat++) {
  for (const scenario of scenarios as ScenarioName[]) {
    for (const synchronousCommit of synchronousCommitsOf(scenario)) {
      for (const peer of loadedPeers) {
        for (const config of configsOf(scenario)) {
          // A fresh server per run: nothing one run leaves behind (bloat, WAL, stats) reaches the next.
          const server = await startDatabaseServer({ databaseUrl: '', settings: { ...settings, synchronous_commit: synchronousCommit } })
          try {
            if (context.postgresVersion === 'PostgreSQL') {
              const client = new pg.Client({ connectionString: server.url })
              await client.connect()
              const { rows } = await client.query<{ server_version: string }>('show server_version')
              context.postgresVersion = `PostgreSQL ${rows[0]?.server_version ?? ''}`.trim()
              await client.end()
            }
            // The peer connects as its own role: its statements can then be told from the harness's.
            const peerUrl = peer.usesPostgres ? await prepareInspection(server.url) : server.url
            const result = await runScenario(scenario, {
              peer,
              config,
              synchronousCommit,
              target: { databaseUrl: peerUrl, redisUrl },
              adminUrl: peer.usesPostgres ? server.url : undefined,
              postmasterPid: server.postmasterPid,
              options: { jobs, maxSeconds },
            })
            results.push(result)
            console.error(`[${repeat}/${repeats}] ${describeResult(result)}`)
            await writeReport(values.out, context, results)
          } finally {
            await server.stop()
          }
        }
      }
    }
  }
}
console.error(`wrote ${path.relative(process.cwd(), values.out)}`)

function describeResult(result: ScenarioResult): string {
  const rate = Math.round(result.jobsDone / result.measurement.wallSeconds)
  const extras = [
    result.efficiency !== null ? `efficiency ${result.efficiency.toFixed(3)}` : '',
    result.pickupP99Ms !== null ? `pickup p50 ${result.pickupP50Ms!.toFixed(1)} ms, p99 ${result.pickupP99Ms.toFixed(1)} ms` : '',
    result.maxRssBytes !== null ? `max RSS ${(result.maxRssBytes / 2 ** 20).toFixed(0)} MiB` : '',
  ].filter(Boolean)
  return (
    `${result.scenario} ${result.peer} ${result.config} sync=${result.synchronousCommit}: ${rate} jobs/s in ${result.measurement.wallSeconds.toFixed(2)} s` +
    `${extras.length ? `, ${extras.join(', ')}` : ''}, exactly once: ${result.isExactlyOnce ? 'yes' : 'NO'}${result.note ? ` (${result.note})` : ''}`
  )
}
