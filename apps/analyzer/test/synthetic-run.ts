// A small, deterministic benchmark run written as the bench driver writes one: scenario.json,
// enqueue.json, jobs.jsonl and the monitor's samples.jsonl, for tests of the analyzer's report.
import { writeFile } from 'node:fs/promises'

import type { RunJobRow } from '@skiplock/schema'

import type { RunInput } from '../src/run-report.ts'
import type { StatementStats } from '../src/statement-stats.ts'

export const syntheticScenario = {
  name: 'synthetic',
  description: 'A made-up drain of 400 jobs by 3 processes x 4, for the analyzer tests.',
  jobs: 400,
  avgDurationSeconds: 0.3,
  distribution: 'uniform',
  failureRate: 0.05,
  maxAttempts: 3,
  batchSize: 5000,
  rate: null,
  workersFirst: false,
  processes: 3,
  concurrency: 4,
  poolSize: 2,
  listen: true,
  database: { max_connections: 100 },
}

/** What pg_stat_statements would report: 3 statements per job at 0.2 ms each. */
export const syntheticStatements: StatementStats = {
  calls: 1200,
  totalExecMs: 240,
  byStatement: [
    { statement: 'begin', calls: 300, totalExecMs: 3 },
    { statement: 'commit', calls: 300, totalExecMs: 60 },
    { statement: 'complete_jobs', calls: 300, totalExecMs: 120 },
    { statement: 'fetch_jobs', calls: 300, totalExecMs: 57 },
  ],
}

/** Deterministic pseudo-random numbers in [0, 1), so every run of the test draws the same plots. */
function random(seed: number): () => number {
  let state = seed
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31
    return state / 2 ** 31
  }
}

/**
 * Writes a synthetic run into `directory` (samples.jsonl only when `withSamples`) and returns what the
 * analyzer would have read from the database for it.
 */
export async function writeSyntheticRun(directory: URL, options: { withSamples: boolean; statements: RunInput['statements'] }): Promise<RunInput> {
  const next = random(42)
  const startMs = Date.parse('2026-11-22T14:00:00.000Z')
  const enqueue = { runId: 'synthetic', queue: 'bench.synthetic', deferred: 400, startedAt: new Date(startMs).toISOString(), finishedAt: new Date(startMs + 40).toISOString(), jobsPerSecond: 10_000 }
  // 12 slots (3 workers x 4) take the backlog in order, each job 150 to 450 ms, 5% needing a second attempt.
  const slots = Array.from({ length: 12 }, (_, slot) => ({ freeAtMs: startMs + 800 + slot * 20, worker: `w_synthetic_${(slot % 3) + 1}` }))
  const jobs: RunJobRow[] = []
  for (let index = 0; index < 400; index++) {
    const slot = slots.reduce((earliest, candidate) => (candidate.freeAtMs < earliest.freeAtMs ? candidate : earliest))
    const attempts = next() < 0.05 ? 2 : 1
    const startedAt = slot.freeAtMs + 5 + (attempts - 1) * 300
    const finishedAt = startedAt + 150 + Math.round(next() * 300)
    slot.freeAtMs = finishedAt
    jobs.push({
      jobId: String(index + 1),
      taskName: 'bench.sleep',
      state: 'succeeded',
      attempts,
      enqueuedAt: new Date(startMs + Math.floor(index / 10)),
      startedAt: new Date(startedAt),
      finishedAt: new Date(finishedAt),
      workerName: slot.worker,
      hasResult: true,
    })
  }
  await writeFile(new URL('scenario.json', directory), JSON.stringify(syntheticScenario))
  await writeFile(new URL('enqueue.json', directory), JSON.stringify(enqueue))
  await writeFile(new URL('jobs.jsonl', directory), jobs.map((job) => `${JSON.stringify(job)}\n`).join(''))
  if (options.withSamples) {
    const endMs = Math.max(...jobs.map((job) => job.finishedAt!.getTime()))
    await writeFile(new URL('samples.jsonl', directory), samplesJsonl(startMs - 1000, endMs + 2000, next))
  }
  return {
    runId: 'synthetic',
    scenario: syntheticScenario,
    enqueue,
    jobs,
    counts: { results: 400, distinctJobs: 400, succeededJobs: 400 },
    statements: options.statements,
    environment: { versions: { node: process.version }, postgres: { max_connections: '100', server_version: '18.4' }, cpuCount: 2, memoryBytes: 2 * 2 ** 30 },
  }
}

function samplesJsonl(fromMs: number, toMs: number, next: () => number): string {
  const lines: string[] = []
  let commits = 1000
  const inserted = 5000
  let updated = 0
  let walBytes = 1e7
  let postgresCpu = 3
  let workersCpu = 10
  for (let time = fromMs, second = 0; time <= toMs; time += 1000, second++) {
    const t = new Date(time).toISOString()
    const busy = second >= 2 && time < toMs - 2000
    const active = busy ? 1 + Math.floor(next() * 4) : 0
    const total = busy ? 10 : 1
    lines.push(
      JSON.stringify({
        t,
        kind: 'connections',
        total,
        byState: { active, idle: total - active - (busy ? 1 : 0), 'idle in transaction': busy ? 1 : 0 },
        waiting: busy ? { Lock: Math.floor(next() * 2) } : {},
        byApplication: busy ? { 'skiplock-worker w_synthetic_1': 2, 'skiplock-worker w_synthetic_2': 2, 'skiplock-worker w_synthetic_3': 2, 'skiplock-listener': 3, 'skiplock-bench-watch': 1 } : { 'skiplock-bench-watch': 1 },
        maxConnections: 100,
      }),
    )
    if (busy) {
      commits += 100 + Math.floor(next() * 40)
      updated += 400 + Math.floor(next() * 100)
      walBytes += 300_000 + Math.floor(next() * 100_000)
      postgresCpu += 0.3 + next() * 0.2
      workersCpu += 0.5 + next() * 0.3
    }
    lines.push(
      JSON.stringify({ t, kind: 'database', commits, rollbacks: 0, rowsInserted: inserted, rowsUpdated: updated, rowsDeleted: 0, walBytes, deadTuples: { 'skiplock.jobs': updated }, notificationQueueUsage: 0 }),
      JSON.stringify({ t, kind: 'process', name: 'postgres', pid: 123, processes: 14, cpuSeconds: postgresCpu, pssBytes: (60 + second) * 2 ** 20 }),
      JSON.stringify({ t, kind: 'process', name: 'workers', pid: 456, processes: 4, cpuSeconds: workersCpu, pssBytes: (180 + 2 * second) * 2 ** 20 }),
    )
    if (second === 3) lines.push(JSON.stringify({ t, kind: 'error', sampler: 'process postgres', message: 'ENOENT: /proc/124/smaps_rollup (the backend exited)' }))
  }
  lines.push('{"t": "not a sample"')
  return `${lines.join('\n')}\n`
}
