import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { test, waitFor } from '@skiplock/schema/testing'
import { describe, expect } from 'vitest'

import { parseScenario } from '../src/scenario.ts'

const bench = fileURLToPath(new URL('../src/bench.ts', import.meta.url))
const analyzer = fileURLToPath(new URL('../../analyzer/src/main.ts', import.meta.url))
const runs = new URL('../../../perf/runs/', import.meta.url)

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a lab command from its sources and collects its output. */
async function run(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const child = spawn(process.execPath, ['--conditions=development', script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const [code] = await once(child, 'exit')
  return { code: code as number | null, stdout, stderr }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const withoutDatabase = () => {
  const env = { ...process.env }
  delete env.DATABASE_URL
  return env
}

/** Processes of a process group still alive. */
function groupMembers(groupId: number): number[] {
  const { stdout } = spawnSync('ps', ['-o', 'pid=', '-g', String(groupId)], { encoding: 'utf8' })
  return stdout.split('\n').map((line) => Number(line.trim())).filter((pid) => pid > 0)
}

describe('pnpm bench', () => {
  test('runs a small scenario end to end and ends with a clean verdict', async ({ db }) => {
    const runId = `test-e2e-${process.pid}`
    try {
      const result = await run(bench, ['--scenario', 'ci', '--max-jobs', '300', '--processes', '2', '--run-id', runId], { ...process.env, DATABASE_URL: db.url })
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).toContain('## Job Summary Aggregation')
      expect(result.stdout).toContain('## Completed Jobs per Worker')
      expect(result.stdout.trim().split('\n').at(-1)).toMatch(/^jobs=300 succeeded=\d+ failed=\d+ lost=0 dup_results=0$/)
      const summary = await readFile(new URL(`${runId}/summary.md`, runs), 'utf8')
      expect(summary).toContain('lost=0 dup_results=0')
      const runJson = JSON.parse(await readFile(new URL(`${runId}/run.json`, runs), 'utf8'))
      expect(runJson).toMatchObject({ scenario: { name: 'ci', jobs: 300, processes: 2 }, environment: { cpuCount: expect.any(Number) } })
      const lines = (await readFile(new URL(`${runId}/jobs.jsonl`, runs), 'utf8')).trim().split('\n')
      expect(lines).toHaveLength(300)
    } finally {
      await rm(new URL(`${runId}/`, runs), { recursive: true, force: true })
    }
  })

  test.each([
    [['--distribution', 'normal'], /distribution: Invalid option: expected one of "fixed"\|"uniform"\|"exponential"/],
    [['--max-jobs', 'many'], /--max-jobs: "many" is not a number/],
    [['--failure-rate', '2'], /failureRate: Too big: expected number to be <=1/],
    [['--no-such-flag'], /Unknown option '--no-such-flag'/],
    [['--scenario', 'nope'], /unknown scenario "nope": expected one of .*ci.*drain/],
  ])('rejects %j with one message and exit code 2, starting nothing', async (args, message) => {
    const started = Date.now()
    const result = await run(bench, args, withoutDatabase())
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(message)
    expect(result.stderr).not.toContain('database:')
    // Nothing was started: no embedded server takes a second or more to come up.
    expect(Date.now() - started).toBeLessThan(5000)
  })

  test('rejects an invalid scenario file naming the file and the field', async () => {
    const file = new URL(`../../../perf/scenarios/invalid-${process.pid}.json`, import.meta.url)
    await writeFile(file, JSON.stringify({ jobs: 10, avgDurationSeconds: 0, procesess: 2 }))
    try {
      const result = await run(bench, ['--scenario', `invalid-${process.pid}`], withoutDatabase())
      expect(result.code).toBe(2)
      expect(result.stderr).toContain(`perf/scenarios/invalid-${process.pid}.json`)
      expect(result.stderr).toContain('procesess')
    } finally {
      await rm(file)
    }
  })

  test('refuses a fleet the server has too few connections for, naming both numbers, before starting it', async () => {
    const result = await run(bench, ['--max-jobs', '10', '--processes', '12', '--pool-size', '1', '--max-connections', '20'], withoutDatabase())
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/12 processes x 2 connections need 24 connections, but only \d+ are available \(max_connections 20, 3 reserved/)
    expect(result.stderr).not.toContain('--force)')
  })

  test('reports an unreachable database in one line without its password, leaving no process behind', async () => {
    const result = await run(bench, ['--max-jobs', '10'], { ...process.env, DATABASE_URL: 'postgres://bench:hunter2@127.0.0.1:1/none' })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/cannot connect to PostgreSQL at 127\.0\.0\.1:1/)
    expect(result.stderr).not.toContain('hunter2')
  })

  test('Ctrl-C stops every stage and the embedded server, and the analyzer still reads what was recorded', async ({ db }) => {
    const runId = `test-interrupt-${process.pid}`
    const child = spawn(
      process.execPath,
      ['--conditions=development', bench, '--scenario', 'ci', '--max-jobs', '200', '--avg-duration', '5', '--processes', '2', '--run-id', runId],
      { env: { ...process.env, DATABASE_URL: db.url }, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    )
    const lines: string[] = []
    createInterface({ input: child.stderr }).on('line', (line) => lines.push(line))
    child.stdout.resume()
    const exited = once(child, 'exit')
    try {
      await waitFor(() => lines.some((line) => line.includes('running on')), { description: 'the workers to run', timeoutMs: 30_000 })
      await waitFor(async () => (await db.query(`select count(*)::int as count from skiplock.jobs where state = 'doing'`)).rows[0].count > 0, {
        description: 'jobs to be running',
      })
      // A terminal's Ctrl-C: SIGINT to the whole process group.
      process.kill(-child.pid!, 'SIGINT')
      const [code] = await exited
      expect(code).not.toBe(0)
      await waitFor(() => groupMembers(child.pid!).length === 0, { description: 'every process of the run to exit', timeoutMs: 15_000 })
      // Stopped workers handed their jobs back: nothing is left running.
      const { rows } = await db.query(`select count(*)::int as count from skiplock.jobs where state = 'doing'`)
      expect(rows[0].count).toBe(0)

      const analysis = await run(analyzer, ['--run-id', runId], { ...process.env, DATABASE_URL: db.url })
      expect(analysis.code, analysis.stderr).toBe(0)
      expect(analysis.stdout.trim().split('\n').at(-1)).toMatch(/^jobs=200 succeeded=\d+ failed=0 lost=0 dup_results=0$/)
    } finally {
      if (groupMembers(child.pid!).length > 0) process.kill(-child.pid!, 'SIGKILL')
      await rm(new URL(`${runId}/`, runs), { recursive: true, force: true })
    }
  })

  test('Ctrl-C during a run on the embedded server leaves no postgres process or data directory behind', async () => {
    const runId = `test-embedded-interrupt-${process.pid}`
    const child = spawn(
      process.execPath,
      ['--conditions=development', bench, '--scenario', 'ci', '--max-jobs', '100', '--avg-duration', '5', '--processes', '1', '--run-id', runId],
      { env: withoutDatabase(), stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    )
    const lines: string[] = []
    createInterface({ input: child.stderr }).on('line', (line) => lines.push(line))
    child.stdout.resume()
    const exited = once(child, 'exit')
    try {
      await waitFor(() => lines.some((line) => line.includes('running on')), { description: 'the workers to run', timeoutMs: 60_000 })
      const database = /embedded PostgreSQL \(postmaster (\d+), (\S+)\)/.exec(lines.join('\n'))
      expect(database, lines.join('\n')).not.toBeNull()
      const [, postmasterPid, dataDirectory] = database!
      process.kill(-child.pid!, 'SIGINT')
      await exited
      await waitFor(() => groupMembers(child.pid!).length === 0, { description: 'every process of the run to exit', timeoutMs: 15_000 })
      await waitFor(() => !existsSync(dataDirectory!) && !isAlive(Number(postmasterPid)), { description: 'the server to stop and its directory to go' })
    } finally {
      if (groupMembers(child.pid!).length > 0) process.kill(-child.pid!, 'SIGKILL')
      await rm(new URL(`${runId}/`, runs), { recursive: true, force: true })
    }
  })
})

describe('scenario files', () => {
  test('every scenario in perf/scenarios is valid', async () => {
    const { scenarioNames, loadScenario } = await import('../src/scenario.ts')
    const names = await scenarioNames()
    expect(names).toEqual(expect.arrayContaining(['ci', 'seed-100k', 'seed-1m', 'drain', 'io', 'latency', 'steady']))
    for (const name of names) await expect(loadScenario(name, {})).resolves.toMatchObject({ jobs: expect.any(Number) })
  })

  test('parseScenario names the field and what is allowed', () => {
    expect(() => parseScenario({ jobs: 0, avgDurationSeconds: 1 }, 'x.json')).toThrow(/x\.json: jobs: Too small: expected number to be >=1/)
  })
})
