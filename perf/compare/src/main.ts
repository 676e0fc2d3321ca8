// The comparison harness: runs scenarios S1 (bulk enqueue) and S2 (drain) against skiplock and its
// peers, each on a fresh embedded PostgreSQL with the same settings, and writes perf/results/peers.md.
// Usage: node --conditions=development perf/compare/src/main.ts [--peers skiplock,graphile-worker]
//   [--scenarios S1,S2] [--jobs 100000] [--config best|defaults|both] [--redis-url redis://127.0.0.1:6379]
//   [--max-seconds 120] [--out perf/results/peers.md]
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { startDatabaseServer } from '@skiplock/schema/server'
import pg from 'pg'

import { type ConfigName, loadPeer, type PeerName, peerNames } from './peers/peer.ts'
import { writeReport, type ReportContext } from './report.ts'
import { runBulkEnqueue } from './scenarios/s1-bulk-enqueue.ts'
import { runDrain } from './scenarios/s2-drain.ts'
import { type ScenarioName, scenarioNames, type ScenarioResult } from './scenarios/scenario.ts'

/** The settings every server gets: the issue's "identical settings". */
const settings = { max_connections: 200, synchronous_commit: 'on' } as const

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
const usageText = `usage: pnpm bench -- --compare [--peers skiplock,graphile-worker,pg-boss,bullmq] [--scenarios S1,S2]
       [--jobs 100000] [--config best|defaults|both] [--redis-url URL] [--max-seconds 120] [--out FILE]`
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
}
const results: ScenarioResult[] = []

for (const scenario of scenarios as ScenarioName[]) {
  for (const peer of loadedPeers) {
    for (const config of scenario === 'S1' ? (['best'] as const) : configs) {
      // A fresh server per peer and scenario: nothing one run leaves behind (bloat, WAL, stats) reaches the next.
      const server = await startDatabaseServer({ databaseUrl: '', settings })
      try {
        if (context.postgresVersion === 'PostgreSQL') {
          const client = new pg.Client({ connectionString: server.url })
          await client.connect()
          const { rows } = await client.query<{ server_version: string }>('show server_version')
          context.postgresVersion = `PostgreSQL ${rows[0]?.server_version ?? ''}`.trim()
          await client.end()
        }
        const run = {
          peer,
          config,
          target: { databaseUrl: server.url, redisUrl },
          postmasterPid: server.postmasterPid,
          options: { jobs, maxSeconds },
        }
        const result = scenario === 'S1' ? await runBulkEnqueue(run) : await runDrain(run)
        results.push(result)
        const rate = Math.round(result.jobsDone / result.measurement.wallSeconds)
        console.error(
          `${scenario} ${peer.name} ${result.config}: ${rate} jobs/s in ${result.measurement.wallSeconds.toFixed(2)} s, ` +
            `exactly once: ${result.isExactlyOnce ? 'yes' : 'NO'}${result.note ? ` (${result.note})` : ''}`,
        )
        await writeReport(values.out, context, results)
      } finally {
        await server.stop()
      }
    }
  }
}
console.error(`wrote ${path.relative(process.cwd(), values.out)}`)
