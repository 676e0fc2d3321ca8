// Reads a benchmark run's jobs and results, prints the study's tables and the lab's additions, and writes
// perf/runs/<run-id>/: summary.md, run.json and jobs.jsonl. Exits 1 unless the verdict is lost=0 dup_results=0.
// Usage: node apps/analyzer/dist/main.js --run-id ID [--database-url URL]
import { once } from 'node:events'
import { createWriteStream, existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { parseArgs } from 'node:util'

import { countResults, readRunJobs, type RunJobRow, toQueryable } from '@skiplock/schema'
import { assertReachable } from '@skiplock/schema/server'
import pg from 'pg'

import { buildReport, type EnqueueRecord } from './report.ts'

const usage = 'usage: analyzer --run-id ID [--database-url URL]'

class UsageError extends Error {}

async function main(argv: readonly string[]): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv.filter((arg) => arg !== '--'),
      options: { 'run-id': { type: 'string' }, 'database-url': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }))
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  if (values.help) {
    console.log(usage)
    return 0
  }
  const runId = values['run-id']
  if (!runId) throw new UsageError('--run-id is required')
  const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL
  if (!databaseUrl) throw new UsageError('no database: pass --database-url or set DATABASE_URL')
  const directory = new URL(`../../../perf/runs/${runId}/`, import.meta.url)
  if (!existsSync(new URL('enqueue.json', directory))) {
    throw new UsageError(`perf/runs/${runId}/enqueue.json does not exist: the orchestrator has not finished this run`)
  }
  const enqueue = JSON.parse(await readFile(new URL('enqueue.json', directory), 'utf8')) as EnqueueRecord & { queue: string }
  const scenario = JSON.parse(await readFile(new URL('scenario.json', directory), 'utf8')) as Record<string, unknown>
  await assertReachable(databaseUrl)

  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1, application_name: 'skiplock-analyzer' })
  try {
    const db = toQueryable(pool)
    const jobs = await readAllJobs(db, enqueue.queue, new URL('jobs.jsonl', directory))
    const counts = await countResults(db, 'skiplock', enqueue.queue)
    const report = buildReport(`Run ${runId} (${String(scenario.name)})`, jobs, enqueue, counts)
    await writeFile(new URL('summary.md', directory), report.markdown)
    await writeFile(
      new URL('run.json', directory),
      `${JSON.stringify({ runId, scenario, figures: report.figures, verdict: report.verdict, environment: await describeEnvironment(pool) }, null, 2)}\n`,
    )
    console.log(report.markdown)
    console.log(report.verdict)
    return report.figures.lost === 0 && report.figures.dupResults === 0 ? 0 : 1
  } finally {
    await pool.end()
  }
}

/** Pages through every job of the queue, writing each as a JSON line as it goes. */
async function readAllJobs(db: ReturnType<typeof toQueryable>, queueName: string, jsonlFile: URL): Promise<RunJobRow[]> {
  const out = createWriteStream(jsonlFile)
  const jobs: RunJobRow[] = []
  let afterId = '0'
  for (;;) {
    const page = await readRunJobs(db, 'skiplock', { queueName, afterId, maxRows: 50_000 })
    for (const job of page) {
      jobs.push(job)
      if (!out.write(`${JSON.stringify(job)}\n`)) await once(out, 'drain')
    }
    if (page.length < 50_000) break
    afterId = page.at(-1)!.jobId
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())))
  return jobs
}

/** What the run ran on: versions, the database's settings that shape a queue, and the machine. */
async function describeEnvironment(pool: pg.Pool) {
  const { rows } = await pool.query<{ name: string; setting: string; unit: string | null }>(
    `select name, setting, unit from pg_settings
     where name in ('server_version', 'max_connections', 'shared_buffers', 'synchronous_commit', 'fsync', 'work_mem', 'max_wal_size', 'wal_level')`,
  )
  const versions: Record<string, string> = { node: process.version }
  for (const name of ['core', 'schema', 'results']) {
    const manifest = JSON.parse(await readFile(new URL(`../../../packages/${name}/package.json`, import.meta.url), 'utf8')) as { version: string }
    versions[`@skiplock/${name}`] = manifest.version
  }
  return {
    versions,
    postgres: Object.fromEntries(rows.map((row) => [row.name, row.unit ? `${row.setting} ${row.unit}` : row.setting])),
    cpuCount: cpus().length,
    memoryBytes: totalmem(),
  }
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  if (error instanceof UsageError) {
    console.error(`analyzer: ${error.message}\n${usage}`)
    process.exitCode = 2
  } else {
    console.error(`analyzer: ${(error as Error).message}`)
    process.exitCode = 1
  }
}
