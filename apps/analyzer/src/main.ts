// Reads a benchmark run's jobs and results, prints the study's tables and the lab's additions, and writes
// perf/runs/<run-id>/: summary.md, run.json, jobs.jsonl, plots/ and report.html. Exits 1 unless the verdict
// is lost=0 dup_results=0.
// Usage: node apps/analyzer/dist/main.js --run-id ID [--database-url URL]
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'

import { countResults, toQueryable } from '@skiplock/schema'
import { assertReachable } from '@skiplock/schema/server'
import pg from 'pg'

import type { EnqueueRecord } from './report.ts'
import { describeEnvironment, readAllJobs } from './run-database.ts'
import { writeRunReport } from './run-report.ts'
import { readStatementStats } from './statement-stats.ts'

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
    // Before reading the jobs: the analyzer's own queries must not count as the run's statements.
    const statements = await readStatementStats(pool)
    const jobs = await readAllJobs(db, enqueue.queue, new URL('jobs.jsonl', directory))
    const counts = await countResults(db, 'skiplock', enqueue.queue)
    const report = await writeRunReport(directory, { runId, scenario, enqueue, jobs, counts, statements, environment: await describeEnvironment(pool) })
    console.log(report.markdown)
    console.log(report.verdict)
    return report.isClean ? 0 : 1
  } finally {
    await pool.end()
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
