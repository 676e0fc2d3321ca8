import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { test, waitFor } from '@skiplock/schema/testing'
import { describe, expect, it, onTestFinished } from 'vitest'

import type { Sample } from '../src/index.ts'
import { temporaryDirectory } from './helpers.ts'

const cliPath = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

interface CliRun {
  exitCode: number | null
  stdout: string
  stderr: string
}

/** Starts the CLI from source as a real process, with no DATABASE_URL unless `args` or `env` give one. */
function startCli(args: readonly string[], env: Record<string, string> = {}): { child: ChildProcess; exited: Promise<CliRun> } {
  const { DATABASE_URL: _ignored, ...parentEnv } = process.env
  const child = spawn(process.execPath, [cliPath, ...args], { env: { ...parentEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  onTestFinished(() => void child.kill('SIGKILL'))
  const output = { stdout: '', stderr: '' }
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk))
  const exited = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (exitCode) => resolve({ exitCode, ...output }))
  })
  return { child, exited }
}

async function readSamples(path: string): Promise<Sample[]> {
  const text = await readFile(path, 'utf8').catch(() => '')
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Sample)
}

describe('skiplock-monitor CLI', () => {
  test('samples a database it did not start for --duration into JSONL and a table, then exits 0', async ({ db }) => {
    const path = join(await temporaryDirectory(), 'out', 'samples.jsonl')
    const { exited } = startCli([
      ...['--database-url', db.url, '--pid', `${process.pid}:vitest`, '--table', 'skiplock.jobs'],
      ...['--out', path, '--db-table', 'monitor_samples', '--interval', '200ms', '--duration', '2s'],
    ])
    const run = await exited
    expect(run.exitCode).toBe(0)
    expect(run.stdout).toBe('')

    const samples = await readSamples(path)
    const rounds = new Set(samples.map((sample) => sample.t))
    // A round at start, one every 200 ms, and a last one at stop.
    expect(rounds.size).toBeGreaterThanOrEqual(5)
    expect(samples.filter((sample) => sample.kind === 'error')).toEqual([])
    for (const t of rounds) {
      expect(samples.filter((sample) => sample.t === t).map((sample) => sample.kind)).toEqual(['connections', 'database', 'process'])
    }
    expect(samples.find((sample) => sample.kind === 'database')).toMatchObject({ database: db.name, deadTuples: { 'skiplock.jobs': 0 } })
    const processSample = samples.find((sample) => sample.kind === 'process')
    expect(processSample).toMatchObject({ name: 'vitest', pid: process.pid })
    // The CLI is a child of this process, so the tree has at least two.
    expect(processSample?.kind === 'process' && processSample.processes).toBeGreaterThanOrEqual(2)

    const { rows } = await db.query<{ count: number }>('select count(*)::int as count from monitor_samples')
    expect(rows[0]!.count).toBe(samples.length)
    // stderr is a pipe here: the first round's summary, then every tenth, and the final line.
    const lines = run.stderr.trim().split('\n')
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d connections \d+\/\d+ .*\| .* commits .*\| vitest \d+ processes/)
    expect(lines.at(-1)).toBe(
      `skiplock-monitor: stopped after 2000 ms: ${rounds.size} rounds, ${samples.length} samples (0 errors) written to ${path} and table monitor_samples`,
    )
  })

  test('writes JSONL to stdout without --out, and stops on SIGTERM with exit 0', async ({ db }) => {
    const { child, exited } = startCli(['--interval', '100ms'], { DATABASE_URL: db.url })
    let stdout = ''
    child.stdout!.on('data', (chunk: string) => (stdout += chunk))
    await waitFor(() => stdout.split('\n').length > 4, { description: 'two rounds on stdout' })
    child.kill('SIGTERM')
    const run = await exited
    expect(run.exitCode).toBe(0)
    expect(run.stderr).toMatch(/stopped on SIGTERM: \d+ rounds, \d+ samples \(0 errors\) written to stdout\n$/)
    const kinds = run.stdout.trim().split('\n').map((line) => (JSON.parse(line) as Sample).kind)
    expect(kinds.slice(0, 4)).toEqual(['connections', 'database', 'connections', 'database'])
  })

  it('exits 2 on bad usage, saying what was wrong', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /no database: pass --database-url URL or set DATABASE_URL/],
      [['--database-url', 'postgres://x', '--interval', '5'], /--interval must be a duration .* got "5"/],
      [['--database-url', 'postgres://x', '--pid', 'abc'], /--pid must be PID or PID:name/],
      [['--database-url', 'postgres://x', '--table', 'x; drop'], /table name "x; drop" must be/],
      [['--database-url', 'postgres://x', '--bogus'], /Unknown option '--bogus'/],
      [['--database-url', 'postgres://x', 'extra'], /Unexpected argument 'extra'/],
    ]
    const runs = await Promise.all(cases.map(([args]) => startCli(args).exited))
    runs.forEach((run, index) => {
      expect(run.exitCode).toBe(2)
      expect(run.stderr).toMatch(cases[index]![1])
    })
    const help = await startCli(['--help']).exited
    expect(help).toMatchObject({ exitCode: 0, stdout: expect.stringContaining('usage: skiplock-monitor --database-url URL') })
  })

  it('exits 1 naming host:port, never the password, when the database is unreachable', async () => {
    const run = await startCli(['--database-url', 'postgres://monitor:s3cret-pw@127.0.0.1:1/postgres', '--duration', '1s']).exited
    expect(run.exitCode).toBe(1)
    expect(run.stderr).toMatch(/^skiplock-monitor: cannot connect to PostgreSQL at 127\.0\.0\.1:1: .+\n$/)
    expect(run.stderr + run.stdout).not.toContain('s3cret-pw')
  })
})
