// Prints what one sample of each sampler costs, and one whole round of all of them: wall time, median and
// p95 of 200 samples, with CONNECTIONS (default 20) extra idle sessions open so the server has backends.
// Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node --conditions=development scripts/sample-cost.ts
// POSTGRES_DATA_DIR defaults to the server's `show data_directory`.
import pg from 'pg'

import {
  connectionsSampler,
  databaseSampler,
  postgresServerPid,
  processSampler,
  type Sampler,
  startMonitor,
} from '../src/index.ts'

const connectionString = process.env['DATABASE_URL']
if (!connectionString) {
  console.error('set DATABASE_URL')
  process.exit(2)
}
const sessions = await Promise.all(
  Array.from({ length: Number(process.env['CONNECTIONS'] ?? 20) }, async () => {
    const client = new pg.Client({ connectionString, application_name: 'sample-cost' })
    await client.connect()
    return client
  }),
)
const dataDirectory = process.env['POSTGRES_DATA_DIR'] ?? (await showDataDirectory())

async function showDataDirectory(): Promise<string> {
  const client = new pg.Client({ connectionString })
  await client.connect()
  const { rows } = await client.query<{ data_directory: string }>('show data_directory')
  await client.end()
  return rows[0]!.data_directory
}

const createSamplers = async (): Promise<Sampler[]> => [
  connectionsSampler({ connectionString }),
  databaseSampler({ connectionString, tables: ['pg_catalog.pg_class', 'pg_catalog.pg_attribute'] }),
  processSampler({ name: 'postgres', pid: await postgresServerPid(dataDirectory) }),
  processSampler({ name: 'this node process', pid: process.pid }),
]
const rounds = 200

async function measure(label: string, sample: () => Promise<unknown>): Promise<void> {
  for (let round = 0; round < 10; round++) await sample()
  const durationsMs: number[] = []
  let last: unknown
  for (let round = 0; round < rounds; round++) {
    const startedAt = performance.now()
    last = await sample()
    durationsMs.push(performance.now() - startedAt)
  }
  durationsMs.sort((a, b) => a - b)
  const at = (fraction: number): string => durationsMs[Math.floor(fraction * (rounds - 1))]!.toFixed(2)
  console.log(`${label.padEnd(24)} median ${at(0.5)} ms  p95 ${at(0.95)} ms  max ${at(1)} ms`)
  console.log(`  ${JSON.stringify(last).slice(0, 300)}`)
}

console.log(`${rounds} samples each after 10 to warm up, ${sessions.length} extra idle sessions open`)
for (const sampler of await createSamplers()) {
  await measure(sampler.name, () => sampler.sample())
  await sampler.close?.()
}
const monitor = startMonitor({ intervalMs: 3_600_000, samplers: await createSamplers(), sinks: [] })
await measure('round of all four', () => monitor.sampleNow())
await monitor.stop()
await Promise.all(sessions.map((session) => session.end()))
