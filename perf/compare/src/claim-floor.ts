// What a pinned snapshot costs a claim, with the claim floor as it was when the pin began and once raised.
// A REPEATABLE READ session holds its snapshot while jobs are deferred, claimed and completed in batches
// (--churn, default 75,000: five minutes at 250 jobs/s); vacuum can remove none of their claim index
// entries. Then one session times single-job claims, each rolled back, first at the old floor, then after
// one raise_claim_floor(), and counts the claim index entries each reads. On an embedded PostgreSQL 18, or
// --database-url. Writes perf/results/claim-floor.md.
//
//   node --conditions=development perf/compare/src/claim-floor.ts [--churn 75000] [--claims 200] [--database-url URL] [--out FILE]
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { migrate } from '@skiplock/schema'
import { startDatabaseServer } from '@skiplock/schema/server'
import pg from 'pg'

const repositoryRoot = fileURLToPath(new URL('../../../', import.meta.url))
const { values } = parseArgs({
  options: {
    churn: { type: 'string', default: '75000' },
    claims: { type: 'string', default: '200' },
    'database-url': { type: 'string' },
    out: { type: 'string', default: path.join(repositoryRoot, 'perf/results/claim-floor.md') },
  },
})
const churnCount = Number(values.churn)
const claimCount = Number(values.claims)
const schema = 'claim_floor_bench'
const batch = 100

interface Claims {
  p50: number
  p99: number
  entriesRead: number
}

const percentile = (sorted: number[], fraction: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!

/** Times single-job claims, each rolled back so the queue stays as it is, and counts the claim index entries one reads. */
async function timeClaims(session: pg.Client, workerId: string): Promise<Claims> {
  const claim = `select id from ${schema}.fetch_jobs($1, batch_size => 1)`
  // Counted in this transaction only, so other sessions' reads cannot land in between.
  const entriesRead = async () => {
    const { rows } = await session.query<{ read: string }>(`select pg_stat_get_xact_tuples_returned('${schema}.jobs_claim_idx'::regclass) as read`)
    return Number(rows[0]!.read)
  }
  await session.query('begin')
  const before = await entriesRead()
  await session.query(claim, [workerId])
  const entries = (await entriesRead()) - before
  await session.query('rollback')
  const durations: number[] = []
  for (let index = 0; index < claimCount; index++) {
    await session.query('begin')
    const startedAt = performance.now()
    await session.query(claim, [workerId])
    durations.push(performance.now() - startedAt)
    await session.query('rollback')
  }
  durations.sort((a, b) => a - b)
  return { p50: percentile(durations, 0.5), p99: percentile(durations, 0.99), entriesRead: entries }
}

const server = await startDatabaseServer({ databaseUrl: values['database-url'] ?? process.env.DATABASE_URL })
const pool = new pg.Pool({ connectionString: server.url, max: 3 })
const session = new pg.Client({ connectionString: server.url })
const pin = new pg.Client({ connectionString: server.url })
try {
  await Promise.all([session.connect(), pin.connect()])
  await pool.query(`drop schema if exists ${schema} cascade`)
  await migrate(pool, { schema })
  const version = (await pool.query<{ version: string }>('select version()')).rows[0]!.version
  const workerId = (await pool.query<{ id: string }>(`select id from ${schema}.register_worker('bench')`)).rows[0]!.id
  const defer = (count: number) => pool.query(`select count(*) from ${schema}.defer_jobs(array_fill('bench'::text, array[$1::integer]))`, [count])

  await pool.query(`select ${schema}.raise_claim_floor()`)
  await pin.query('begin isolation level repeatable read')
  await pin.query(`select count(*) from ${schema}.jobs`)
  const churnStartedAt = performance.now()
  for (let done = 0; done < churnCount; done += batch) {
    await defer(batch)
    await pool.query(
      `select count(*)
       from (select array_agg(id) as ids, array_agg(attempts) as attempts from ${schema}.fetch_jobs($1, batch_size => ${batch})) as c,
         ${schema}.complete_jobs($1, c.ids, c.attempts)`,
      [workerId],
    )
  }
  const churnSeconds = (performance.now() - churnStartedAt) / 1000
  // A few jobs wait, as a worker's next ones would.
  await defer(20)

  const atPinStart = await timeClaims(session, workerId)
  await pool.query(`select ${schema}.raise_claim_floor()`)
  const raised = await timeClaims(session, workerId)
  await pin.query('rollback')

  const command = `node --conditions=development perf/compare/src/claim-floor.ts --churn ${churnCount} --claims ${claimCount}${server.kind === 'embedded' ? '' : ' --database-url URL --out FILE'}`
  const row = (label: string, claims: Claims) => `| ${label} | ${claims.entriesRead} | ${claims.p50.toFixed(2)} | ${claims.p99.toFixed(2)} |`
  const report = [
    '# The claim floor under a pinned snapshot',
    '',
    `Command: \`${command}\` (${server.kind === 'embedded' ? 'embedded PostgreSQL, started by the command' : 'the given database'}).`,
    '',
    `Machine: ${version.split(' on ')[0]} | ${os.cpus().length} CPUs | node ${process.version}. A REPEATABLE READ snapshot stayed open while ${churnCount} jobs were deferred, claimed and completed, ${batch} at a time (${churnSeconds.toFixed(1)} s); then ${claimCount} single-job claims, each rolled back, with 20 jobs waiting.`,
    '',
    '| claim floor | claim index entries read per claim | claim p50 (ms) | claim p99 (ms) |',
    '| --- | --- | --- | --- |',
    row('as when the snapshot was taken', atPinStart),
    row('raised once', raised),
    '',
    `Raised, a claim takes ${(raised.p50 / atPinStart.p50).toFixed(2)}x the time (p50).`,
    '',
  ].join('\n')
  await fs.writeFile(values.out, report)
  console.log(report)
} finally {
  await Promise.all([session.end(), pin.end()].map((ending) => ending.catch(() => {})))
  await pool.end()
  await server.stop()
}
