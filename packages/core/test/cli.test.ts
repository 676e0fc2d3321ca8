import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { test, type TestDatabase, waitFor } from '@skiplock/schema/testing'
import { describe, expect } from 'vitest'

const cliPath = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url))
const tasksModulePath = fileURLToPath(new URL('./fixtures/cli-tasks.ts', import.meta.url))

interface CliRun {
  exitCode: number | null
  stdout: string
  stderr: string
}

/** A CLI process with its output so far, for commands that run until told to stop. */
interface RunningCli {
  child: ChildProcess
  output: { stdout: string; stderr: string }
  exited: Promise<CliRun>
}

/** Starts the CLI from source as a real process; `DATABASE_URL` is the test's database unless `env` overrides it. */
function startCli(db: TestDatabase | undefined, args: readonly string[], env: Record<string, string | undefined> = {}): RunningCli {
  const childEnv: Record<string, string | undefined> = { ...process.env, DATABASE_URL: db?.url, ...env }
  for (const [name, value] of Object.entries(childEnv)) if (value === undefined) delete childEnv[name]
  const child = spawn(process.execPath, ['--conditions=development', cliPath, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  const output = { stdout: '', stderr: '' }
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk))
  const exited = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (exitCode) => resolve({ exitCode, ...output }))
  })
  return { child, output, exited }
}

/** Runs one CLI command to its end. */
function runCli(db: TestDatabase | undefined, args: readonly string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  return startCli(db, args, env).exited
}

/** Defers a job of task `t` with plain SQL, fetches and fails it for good; returns its id. */
async function createFailedJob(db: TestDatabase, queue = 'default'): Promise<string> {
  const { rows: deferred } = await db.query<{ id: string }>(
    `select id from skiplock.defer_jobs(array['t'], queue_names => array[$1], max_attempts => array[1])`,
    [queue],
  )
  const { rows: workers } = await db.query<{ id: string }>(`select id from skiplock.register_worker('cli-test')`)
  const { rows: claimed } = await db.query<{ id: string; attempts: number }>(
    `select id, attempts from skiplock.fetch_jobs($1, queue_names => array[$2])`,
    [workers[0]!.id, queue],
  )
  expect(claimed.map((job) => job.id)).toEqual([deferred[0]!.id])
  const { rows } = await db.query(
    `select state from skiplock.fail_jobs($1, array[$2::bigint], array[$3::int], array['{"message": "boom"}'::jsonb])`,
    [workers[0]!.id, claimed[0]!.id, claimed[0]!.attempts],
  )
  expect(rows).toEqual([{ state: 'failed' }])
  return deferred[0]!.id
}

async function stateOf(db: TestDatabase, jobId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ state: string }>(`select state from skiplock.all_jobs where id = $1`, [jobId])
  return rows[0]?.state
}

describe('skiplock CLI', () => {
  test('migrate is a no-op on a migrated database', async ({ db }) => {
    const run = await runCli(db, ['migrate'])
    expect(run).toMatchObject({ exitCode: 0, stdout: 'schema skiplock is up to date\n', stderr: '' })
  })

  test('defers a job that jobs, show and stats then list', async ({ db }) => {
    const deferred = await runCli(db, ['defer', 'send-email', '{"to":"ada@example.com"}', '--queue', 'emails', '--priority', '3'])
    expect(deferred).toMatchObject({ exitCode: 0, stderr: '' })
    const jobId = deferred.stdout.trim()
    expect(jobId).toMatch(/^\d+$/)

    // Read-only commands: run them side by side, each process pays its own start-up.
    const [listed, table, shown, shownText, stats, statsTable] = await Promise.all([
      runCli(db, ['jobs', '--json']),
      runCli(db, ['jobs', '--state', 'todo', '--queue', 'emails']),
      runCli(db, ['show', jobId, '--json']),
      runCli(db, ['show', jobId]),
      runCli(db, ['stats', '--json']),
      runCli(db, ['stats']),
    ])
    expect([listed, table, shown, shownText, stats, statsTable].map((run) => run.exitCode)).toEqual([0, 0, 0, 0, 0, 0])
    expect(JSON.parse(listed.stdout)).toMatchObject([{ id: jobId, taskName: 'send-email', queueName: 'emails', priority: 3, state: 'todo' }])
    expect(table.stdout).toMatch(/^\s*ID\s+STATE\s+QUEUE\s+TASK/)
    expect(table.stdout).toMatch(new RegExp(`^\\s*${jobId}\\s+todo\\s+emails\\s+send-email\\s+0/5`, 'm'))
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: jobId, payload: { to: 'ada@example.com' }, errors: [] })
    expect(shownText.stdout).toContain('"to": "ada@example.com"')
    expect(JSON.parse(stats.stdout)).toMatchObject([{ queueName: 'emails', waiting: 1, scheduled: 0, running: 0, failed: 0 }])
    expect(statsTable.stdout).toMatch(/^emails\s+1\s+0\s+0\s+0\s+0\s+0\s+\d+s$/m)
  })

  test('rejects a payload that is not JSON, creating no job', async ({ db }) => {
    const run = await runCli(db, ['defer', 'send-email', '{to: ada}'])
    expect(run.exitCode).toBe(1)
    expect(run.stderr).toMatch(/^skiplock: payload of task "send-email" is invalid: it is not JSON text \(.+\) \(INVALID_PAYLOAD\)\n$/)
    expect((await db.query(`select id from skiplock.all_jobs`)).rows).toEqual([])
  })

  test('reports an invalid queue name with its code', async ({ db }) => {
    const run = await runCli(db, ['defer', 'send-email', '--queue', 'no spaces allowed'])
    expect(run.exitCode).toBe(1)
    expect(run.stderr).toMatch(/^skiplock: .*no spaces allowed.* \(INVALID_QUEUE_NAME\)\n$/)
  })

  test('cancels waiting jobs and reports unknown ids, going on past them', async ({ db }) => {
    const { rows } = await db.query<{ id: string }>(`select id from skiplock.defer_jobs(array['t', 't'])`)
    const [first, second] = rows.map((row) => row.id)
    const run = await runCli(db, ['cancel', first!, '999999', second!])
    expect(run.exitCode).toBe(1)
    expect(run.stdout).toBe(`cancelled job ${first}\ncancelled job ${second}\n`)
    expect(run.stderr).toContain('job 999999 does not exist (JOB_NOT_FOUND)')
    expect([await stateOf(db, first!), await stateOf(db, second!)]).toEqual(['cancelled', 'cancelled'])
  })

  test('retries a failed job by id', async ({ db }) => {
    const jobId = await createFailedJob(db)
    const run = await runCli(db, ['retry', jobId])
    expect(run).toMatchObject({ exitCode: 0, stdout: `retried job ${jobId} (t)\n`, stderr: '' })
    const { rows } = await db.query(`select state, attempts from skiplock.jobs where id = $1`, [jobId])
    expect(rows).toEqual([{ state: 'todo', attempts: 0 }])
  })

  test('retries every failed job of one queue with --all-failed --queue', async ({ db }) => {
    const inA = [await createFailedJob(db, 'a'), await createFailedJob(db, 'a')]
    const inB = await createFailedJob(db, 'b')
    const run = await runCli(db, ['retry', '--all-failed', '--queue', 'a'])
    // stderr is a pipe here, not a terminal: no progress line.
    expect(run).toMatchObject({ exitCode: 0, stdout: 'retried 2 failed jobs of queue a\n', stderr: '' })
    expect([await stateOf(db, inA[0]!), await stateOf(db, inA[1]!), await stateOf(db, inB)]).toEqual(['todo', 'todo', 'failed'])
  })

  test('refuses a retry with neither ids nor --all-failed as bad usage', async ({ db }) => {
    const run = await runCli(db, ['retry'])
    expect(run.exitCode).toBe(2)
    expect(run.stderr).toContain('give job ids to retry, or --all-failed')
  })

  test('prunes finished jobs older than the given duration only', async ({ db }) => {
    const { rows } = await db.query<{ id: string }>(`select id from skiplock.defer_jobs(array['t', 't', 't'])`)
    const [old, recent, waiting] = rows.map((row) => row.id)
    await db.query(`select skiplock.cancel_job($1, now => now() - interval '10 days')`, [old])
    await db.query(`select skiplock.cancel_job($1)`, [recent])
    const run = await runCli(db, ['prune', '--older-than', '7d'])
    expect(run.exitCode).toBe(0)
    expect(run.stdout).toMatch(/^pruned 1 job finished before \S+Z\n$/)
    expect([await stateOf(db, old!), await stateOf(db, recent!), await stateOf(db, waiting!)]).toEqual([undefined, 'cancelled', 'todo'])
  })

  test('names the unreachable host and port, never the password', async ({ db }) => {
    const run = await runCli(db, ['stats', '--database-url', 'postgres://u:secret@127.0.0.1:1/x'])
    expect(run.exitCode).toBe(1)
    expect(run.stderr).toMatch(/^skiplock: cannot connect to PostgreSQL at 127\.0\.0\.1:1\b.*\(DATABASE_UNREACHABLE\)\n$/)
    expect(run.stdout + run.stderr).not.toContain('secret')
  })

  test('exits 2 for bad usage: an unknown command, a bad option value, no database URL', async () => {
    const [unknown, badLimit, noUrl] = await Promise.all([
      runCli(undefined, ['frobnicate']),
      runCli(undefined, ['jobs', '--limit', 'many']),
      runCli(undefined, ['jobs'], { DATABASE_URL: undefined }),
    ])
    expect(unknown.exitCode).toBe(2)
    expect(unknown.stderr).toContain(`unknown command 'frobnicate'`)
    expect(badLimit.exitCode).toBe(2)
    expect(noUrl.exitCode).toBe(2)
    expect(noUrl.stderr).toContain('no database URL: pass --database-url <url> or set DATABASE_URL')
  })

  test('prints help for every command and exits 0', async () => {
    const commands = ['migrate', 'defer', 'worker', 'stats', 'jobs', 'show', 'retry', 'cancel', 'prune', 'check-connections']
    const runs = await Promise.all(commands.map((command) => runCli(undefined, [command, '--help'])))
    for (const [index, run] of runs.entries()) {
      expect(run.exitCode, commands[index]).toBe(0)
      expect(run.stdout, commands[index]).toContain('--database-url <url>')
    }
  })

  test('runs a module\'s tasks until SIGTERM, then exits 0', async ({ db }) => {
    const worker = startCli(db, ['worker', tasksModulePath, '--concurrency', '2', '--name', 'cli-test-worker'])
    try {
      await waitFor(() => /worker \d+ started: tasks cli-fail, cli-echo; queues all/.test(worker.output.stderr), {
        timeoutMs: 30_000,
        description: 'the worker to start',
      })

      const echoId = (await runCli(db, ['defer', 'cli-echo', '{"n":1}'])).stdout.trim()
      const failId = (await runCli(db, ['defer', 'cli-fail', '--max-attempts', '1'])).stdout.trim()
      await waitFor(() => worker.output.stderr.includes(`job ${echoId} completed (cli-echo)`), { timeoutMs: 20_000, description: 'the echo job to complete' })
      await waitFor(() => worker.output.stderr.includes(`job ${failId} failed for good (cli-fail): cli-fail always fails`), {
        timeoutMs: 20_000,
        description: 'the failing job to fail',
      })
      const shown = await runCli(db, ['show', echoId, '--json'])
      expect(JSON.parse(shown.stdout)).toMatchObject({ state: 'succeeded', result: { echoed: { n: 1 } } })

      worker.child.kill('SIGTERM')
      const run = await worker.exited
      expect(run.exitCode).toBe(0)
      expect(run.stderr).toMatch(/SIGTERM: stopping/)
      expect(run.stderr).toMatch(/worker \d+ stopped\n$/)
      expect((await db.query(`select id from skiplock.workers`)).rows).toEqual([])
    } finally {
      if (worker.child.exitCode === null) worker.child.kill('SIGKILL')
    }
  })

  test('refuses a worker module that cannot be imported', async ({ db }) => {
    const run = await runCli(db, ['worker', './no-such-module.ts'])
    expect(run.exitCode).toBe(1)
    expect(run.stderr).toMatch(/^skiplock: module is invalid: cannot import .*no-such-module\.ts.* \(INVALID_ARGUMENT\)\n$/)
  })
})
