import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'

import type { TestDatabase } from '@skiplock/schema/testing'
import { describe, expect } from 'vitest'

import {
  assertConnectionBudget,
  checkConnectionBudget,
  ConnectionBudgetExceededError,
  connectionsPerWorker,
  defineTask,
  InvalidArgumentError,
} from '../src/index.ts'
import { test } from '../src/testing.ts'

const cliPath = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url))

interface CliRun {
  exitCode: number | null
  stdout: string
  stderr: string
}

/** Runs the CLI from source as a real process, on the test's database. */
function runCli(db: TestDatabase, args: readonly string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--conditions=development', cliPath, ...args], { env: { ...process.env, DATABASE_URL: db.url } }, (error, stdout, stderr) => {
      resolve({ exitCode: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr })
    })
  })
}

/** The server's connection settings, read apart from the code under test. */
async function readSettings(db: TestDatabase): Promise<{ maxConnections: number; reservedConnections: number }> {
  const { rows } = await db.query<{ max_connections: number; superuser_reserved: number; reserved: number | null }>(
    `select current_setting('max_connections')::int as max_connections,
            current_setting('superuser_reserved_connections')::int as superuser_reserved,
            current_setting('reserved_connections', true)::int as reserved`,
  )
  const row = rows[0]!
  return { maxConnections: row.max_connections, reservedConnections: row.superuser_reserved + (row.reserved ?? 0) }
}

describe('connectionsPerWorker', () => {
  test('counts the pool and the LISTEN connection as the worker sizes them', () => {
    const transactional = defineTask({ name: 'tx', transactional: true, handler: async () => {} })
    expect(connectionsPerWorker({})).toBe(2)
    expect(connectionsPerWorker({ listen: false })).toBe(2)
    expect(connectionsPerWorker({ tasks: [transactional] })).toBe(3)
    expect(connectionsPerWorker({ poolSize: 3 })).toBe(4)
    expect(connectionsPerWorker({ poolSize: 3, listen: false })).toBe(3)
  })
})

describe('checkConnectionBudget', () => {
  test('needs processes times connections, and leaves out reserved and open connections from what is available', async ({ db }) => {
    const settings = await readSettings(db)
    // Sessions held during the check: they must count as open.
    const held = await Promise.all([db.connect(), db.connect(), db.connect()])
    const budget = await checkConnectionBudget(db.url, { processes: 3, connectionsPerProcess: 2 })
    expect(budget).toMatchObject({ needed: 6, maxConnections: settings.maxConnections, reservedConnections: settings.reservedConnections })
    expect(budget.openConnections).toBeGreaterThanOrEqual(held.length)
    expect(budget.available).toBe(settings.maxConnections - settings.reservedConnections - budget.openConnections)
    expect(budget.fits).toBe(budget.needed <= budget.available)
  })

  test('a fleet larger than the server does not fit, and the assert names needed and available', async ({ db }) => {
    const { maxConnections } = await readSettings(db)
    const plan = { processes: maxConnections, connectionsPerProcess: 2 }
    const budget = await checkConnectionBudget(db.url, plan)
    expect(budget).toMatchObject({ needed: maxConnections * 2, fits: false })

    const error = await assertConnectionBudget(db.url, plan).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(ConnectionBudgetExceededError)
    const exceeded = error as ConnectionBudgetExceededError
    expect(exceeded.code).toBe('CONNECTION_BUDGET_EXCEEDED')
    expect(exceeded.needed).toBe(maxConnections * 2)
    expect(exceeded.message).toMatch(
      new RegExp(`^${maxConnections} processes x 2 connections need ${maxConnections * 2} connections, but only ${exceeded.available} are available \\(max_connections ${maxConnections}, \\d+ reserved, \\d+ open\\)$`),
    )
  })

  test('a small fleet fits, and the assert returns the budget', async ({ db }) => {
    const budget = await assertConnectionBudget(db.url, { processes: 1, connectionsPerProcess: 1 })
    expect(budget).toMatchObject({ needed: 1, fits: true })
  })

  test('counts the sessions of roles it may not inspect', async ({ db }) => {
    // A role without pg_read_all_stats sees no backend_type for other roles' sessions.
    const role = `skiplock_budget_${randomBytes(4).toString('hex')}`
    const password = randomBytes(12).toString('hex')
    await db.query(`create role ${role} login password '${password}'`)
    try {
      const url = new URL(db.url)
      url.username = role
      url.password = password
      const held = await Promise.all([db.connect(), db.connect(), db.connect()])
      const budget = await checkConnectionBudget(url.href, { processes: 1, connectionsPerProcess: 1 })
      expect(budget.openConnections).toBeGreaterThanOrEqual(held.length)
    } finally {
      await db.query(`drop role ${role}`)
    }
  })

  test('rejects a plan that is not whole numbers', async ({ db }) => {
    await expect(checkConnectionBudget(db.url, { processes: 1.5, connectionsPerProcess: 2 })).rejects.toThrow(InvalidArgumentError)
    await expect(checkConnectionBudget(db.url, { processes: 2, connectionsPerProcess: -1 })).rejects.toThrow(/connectionsPerProcess is invalid/)
  })
})

describe('skiplock check-connections', () => {
  test('exits 0 when the fleet fits, 1 naming needed and available when it does not, 2 without --processes', async ({ db }) => {
    const { maxConnections } = await readSettings(db)
    const [fits, json, tooMany, noProcesses] = await Promise.all([
      runCli(db, ['check-connections', '--processes', '1']),
      runCli(db, ['check-connections', '--processes', '2', '--pool-size', '3', '--no-listen', '--json']),
      runCli(db, ['check-connections', '--processes', String(maxConnections), '--connections-per-process', '2']),
      runCli(db, ['check-connections']),
    ])
    expect(fits).toMatchObject({ exitCode: 0, stderr: '' })
    expect(fits.stdout).toMatch(/^1 processes x 2 connections need 2 connections; \d+ are available \(max_connections \d+, \d+ reserved, \d+ open\)\n$/)
    expect(json).toMatchObject({ exitCode: 0, stderr: '' })
    expect(JSON.parse(json.stdout)).toMatchObject({ processes: 2, connectionsPerProcess: 3, needed: 6, fits: true, maxConnections })
    expect(tooMany).toMatchObject({ exitCode: 1, stdout: '' })
    expect(tooMany.stderr).toMatch(
      new RegExp(`^skiplock: ${maxConnections} processes x 2 connections need ${maxConnections * 2} connections, but only \\d+ are available .*\\(CONNECTION_BUDGET_EXCEEDED\\)\\n$`),
    )
    expect(noProcesses.exitCode).toBe(2)
    expect(noProcesses.stderr).toContain(`required option '--processes <n>' not specified`)
  })
})
