import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'

import { readRunJobs, type RunJobRow, toQueryable } from '@skiplock/schema'
import type pg from 'pg'

/** Pages through every job of the queue, writing each as a JSON line to `jsonlFile` as it goes. */
export async function readAllJobs(db: ReturnType<typeof toQueryable>, queueName: string, jsonlFile: URL): Promise<RunJobRow[]> {
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
export async function describeEnvironment(pool: pg.Pool) {
  const { rows } = await pool.query<{ name: string; setting: string; unit: string | null }>(
    `select name, setting, unit from pg_settings
     where name in ('server_version', 'max_connections', 'shared_buffers', 'synchronous_commit', 'fsync', 'work_mem', 'max_wal_size', 'wal_level', 'shared_preload_libraries')`,
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
