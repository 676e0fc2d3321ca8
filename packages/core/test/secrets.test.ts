import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'

import { createClient, createWorker, defineTask, type Logger } from '@skiplock/core'
import pg from 'pg'
import { describe, expect } from 'vitest'
import { z } from 'zod'

import { test, waitFor } from '../src/testing.ts'

const cliPath = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url))
const tasksModulePath = fileURLToPath(new URL('./fixtures/cli-tasks.ts', import.meta.url))

/** Everything skiplock said, as text: log lines, event errors, thrown errors, CLI output, stored errors. */
class Transcript {
  readonly entries: { source: string; text: string }[] = []

  add(source: string, value: unknown): void {
    this.entries.push({ source, text: typeof value === 'string' ? value : (serialize(value) ?? String(value)) })
  }

  /** A logger writing JSON lines the way pino does, errors with every own property. */
  logger(): Logger {
    const write = (level: string) => (fields: object, message?: string) => this.add(`log ${level}`, { level, ...fields, msg: message })
    return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') }
  }

  /** Entries containing any of `needles`. */
  containing(needles: readonly string[]): string[] {
    return this.entries.filter(({ text }) => needles.some((needle) => text.includes(needle))).map(({ source, text }) => `${source}: ${text}`)
  }
}

/** JSON of a value with each error's name, message, stack, own properties and cause: what a logger would print. */
function serialize(value: unknown): string | undefined {
  const seen = new WeakSet()
  return JSON.stringify(value, (_, entry: unknown) => {
    if (typeof entry === 'bigint') return entry.toString()
    if (typeof entry !== 'object' || entry === null) return entry
    if (seen.has(entry)) return '[circular]'
    seen.add(entry)
    if (entry instanceof Error) {
      return { ...Object.fromEntries(Object.entries(entry)), name: entry.name, message: entry.message, stack: entry.stack, cause: entry.cause }
    }
    return entry
  })
}

function runCli(args: readonly string[], env: Record<string, string>): { exited: Promise<{ exitCode: number | null; stdout: string; stderr: string }>; output: { stdout: string; stderr: string }; kill: () => void } {
  const child = spawn(process.execPath, ['--conditions=development', cliPath, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const output = { stdout: '', stderr: '' }
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk))
  const exited = new Promise<{ exitCode: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (exitCode) => resolve({ exitCode, ...output }))
  })
  return { exited, output, kill: () => child.kill('SIGTERM') }
}

function withCredentials(url: string, user: string, password: string, port?: number): string {
  const parsed = new URL(url)
  parsed.username = user
  parsed.password = encodeURIComponent(password)
  if (port !== undefined) parsed.port = String(port)
  return parsed.toString()
}

describe('S3: no secrets in logs, events, errors or CLI output', () => {
  test('a password with @:/% and a payload marker never show, whatever fails', { timeout: 60_000 }, async ({ db, startWorker }) => {
    const suffix = randomBytes(4).toString('hex')
    const role = `skiplock_s3_${suffix}`
    const password = `p@ss:w/rd%${suffix}`
    const wrongPassword = `wr@ng:/%${suffix}`
    const marker = `payload-marker-${randomBytes(6).toString('hex')}`
    // JSON.parse quotes about ten characters around a syntax error: a short secret fits in whole.
    const shortMarker = `q${randomBytes(4).toString('hex')}`
    const url = withCredentials(db.url, role, password)
    const secrets = [password, encodeURIComponent(password), new URL(url).password, wrongPassword, encodeURIComponent(wrongPassword), marker, shortMarker]
    // The URL really holds the password in its encoded form, so both spellings are checked.
    expect(url).toContain(encodeURIComponent(password))

    const admin = await db.connect()
    // A database cannot refuse connections while the session altering it is connected to it.
    const serverAdminUrl = new URL(db.url)
    serverAdminUrl.pathname = '/postgres'
    const serverAdmin = new pg.Client({ connectionString: serverAdminUrl.toString() })
    await serverAdmin.connect()
    await admin.query(`create role ${pg.escapeIdentifier(role)} login password ${pg.escapeLiteral(password)}`)
    await admin.query(`grant usage on schema skiplock to ${pg.escapeIdentifier(role)}`)
    await admin.query(`grant select, insert, update, delete on all tables in schema skiplock to ${pg.escapeIdentifier(role)}`)
    await admin.query(`grant usage on all sequences in schema skiplock to ${pg.escapeIdentifier(role)}`)
    const transcript = new Transcript()
    let authFailure = 'none'
    try {
      // Refused connections: a wrong password, a closed port, a role that does not exist.
      const failures: [string, string][] = [
        ['wrong password', withCredentials(db.url, role, wrongPassword)],
        ['closed port', withCredentials(db.url, role, password, 1)],
        // Refused at authentication even by a server that trusts every local connection.
        ['unknown role', withCredentials(db.url, `${role}_missing`, password)],
      ]
      for (const [what, badUrl] of failures) {
        const client = createClient({ connectionString: badUrl })
        const error = await client.defer(defineTask({ name: 'noop', handler: () => null }), { marker }).then(
          () => undefined,
          (error: unknown) => error,
        )
        await client.close()
        // A server that trusts local connections lets the wrong password in: nothing fails, nothing to leak.
        if (what === 'wrong password') authFailure = error === undefined ? 'trust' : String((error as { code?: string }).code)
        transcript.add(`client error (${what})`, error)
        const worker = createWorker({ connectionString: badUrl, tasks: [], logger: transcript.logger() })
        // On a server that trusts every local connection the wrong password gets in: stop that worker.
        transcript.add(`worker start error (${what})`, await worker.start().then(() => worker.stop(), (error: unknown) => error))
      }

      // A running worker: handler errors, an unstorable result, a payload that fails validation, then the
      // database refusing every connection for a while.
      const failing = defineTask({
        name: 'failing',
        maxAttempts: 1,
        handler: () => {
          throw new Error('the handler failed')
        },
      })
      const unstorable = defineTask({ name: 'unstorable', handler: (payload: { secret: string }) => ({ copy: `${payload.secret}\u0000` }) })
      const strict = defineTask({ name: 'strict', maxAttempts: 1, schema: z.object({ count: z.number(), secret: z.string() }), handler: () => null })
      const worker = await startWorker({ connectionString: url, tasks: [failing, unstorable, strict], logger: transcript.logger(), leaseSeconds: 5, heartbeatIntervalMs: 200, maintenanceIntervalMs: 200 })
      for (const name of ['error', 'job:failed'] as const) worker.on(name, (event) => transcript.add(`event ${name}`, { error: (event as { error: unknown }).error }))
      const producer = createClient({ connectionString: url })
      const failedCount = () => transcript.entries.filter(({ source }) => source === 'event job:failed').length
      await producer.defer(failing, { secret: marker })
      await producer.defer(unstorable, { secret: marker })
      await producer.defer(strict, { count: 1, secret: marker })
      await db.query(`select skiplock.defer_jobs(array['strict'], array[$1])`, [JSON.stringify({ count: marker, secret: marker })])
      await waitFor(failedCount, { description: 'the first failure' })
      await waitFor(() => failedCount() >= 3, { description: 'three failed jobs' })
      const results = await Promise.allSettled((await producer.listJobs({ state: 'failed' })).map((job) => producer.result(job.id)))
      for (const result of results) transcript.add('result() error', result.status === 'rejected' ? result.reason : result.value)
      await producer.close()

      await serverAdmin.query(`alter database ${pg.escapeIdentifier(db.name)} allow_connections false`)
      await serverAdmin.query(`select pg_terminate_backend(pid) from pg_stat_activity where usename = $1`, [role])
      const errorsBefore = transcript.entries.length
      await waitFor(() => transcript.containing(['not currently accepting connections']).length >= 2 && transcript.entries.length > errorsBefore, {
        description: 'the worker to report the refused connections',
      })
      await serverAdmin.query(`alter database ${pg.escapeIdentifier(db.name)} allow_connections true`)
      await worker.stop()
      for (const job of (await admin.query(`select errors from skiplock.all_jobs`)).rows) transcript.add('stored errors', job.errors)

      // The CLI, given the URL in DATABASE_URL or --database-url.
      const runs = {
        closedPort: runCli(['jobs'], { DATABASE_URL: withCredentials(db.url, role, password, 1) }),
        wrongPassword: runCli(['stats', '--database-url', withCredentials(db.url, role, wrongPassword)], {}),
        unknownRole: runCli(['jobs'], { DATABASE_URL: withCredentials(db.url, `${role}_missing`, password) }),
        notJson: runCli(['defer', 'cli-echo', `[${shortMarker}]`], { DATABASE_URL: url }),
        notStorable: runCli(['defer', 'cli-echo', JSON.stringify({ secret: `${marker}\u0000` })], { DATABASE_URL: url }),
        noSchema: runCli(['jobs', '--schema', 'missing'], { DATABASE_URL: url }),
      }
      const worker2 = runCli(['worker', tasksModulePath, '--lease-seconds', '5'], { DATABASE_URL: url })
      await waitFor(() => /worker \d+ started/.test(worker2.output.stderr), { timeoutMs: 20_000, description: 'the CLI worker to start' })
      const cliClient = createClient({ connectionString: db.url })
      const job = await cliClient.defer(defineTask({ name: 'cli-fail', maxAttempts: 1, handler: () => null }), { secret: marker })
      await cliClient.close()
      await waitFor(() => worker2.output.stderr.includes(`job ${job.id} failed for good`), { timeoutMs: 20_000, description: 'the CLI worker to fail the job' })
      worker2.kill()
      const exits: Record<string, number | null> = {}
      for (const [name, run] of Object.entries({ ...runs, worker: worker2 })) {
        const { exitCode, stdout, stderr } = await run.exited
        exits[name] = exitCode
        transcript.add(`cli ${name} stdout`, stdout)
        transcript.add(`cli ${name} stderr`, stderr)
      }
      expect(exits).toEqual({ closedPort: 1, wrongPassword: authFailure === 'trust' ? 0 : 1, unknownRole: 1, notJson: 1, notStorable: 1, noSchema: 1, worker: 0 })
    } finally {
      await serverAdmin.query(`alter database ${pg.escapeIdentifier(db.name)} allow_connections true`)
      await serverAdmin.end()
      await admin.query(`drop owned by ${pg.escapeIdentifier(role)}`)
      await admin.query(`drop role ${pg.escapeIdentifier(role)}`).catch(() => {})
    }

    const leaks = transcript.containing(secrets)
    const sources = new Set(transcript.entries.map(({ source }) => source.replace(/ \(.*\)$/, '')))
    console.log(`S3 entries=${transcript.entries.length} sources=${sources.size} auth_failure=${authFailure} leaks=${leaks.length}`)
    expect(leaks).toEqual([])
    // The transcript did capture the failures it was meant to: an empty one would prove nothing.
    // A server that checks passwords does not say whether the role exists.
    const expectedFailures = [['ECONNREFUSED'], ['does not exist', 'password authentication failed'], ['the handler failed'], ['cannot be stored'], ['count:'], ['not currently accepting connections'], ['not JSON text']]
    expect(expectedFailures.filter((failure) => transcript.containing(failure).length === 0)).toEqual([])
  })
})
