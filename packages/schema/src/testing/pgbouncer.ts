import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants, readFileSync } from 'node:fs'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import pg from 'pg'

import type { TestDatabase } from '../testing.ts'
import { databaseUrl } from './database-url.ts'

/** A PgBouncer process in front of one test database; `url` is that database through it. */
export interface PgBouncer {
  readonly url: string
  /** The tail of PgBouncer's log. */
  log(): string
  /** Every complete line PgBouncer logged since it started, not only those in the tail. */
  logLines(): readonly string[]
  /** The lines of `logLines` at WARNING, ERROR or FATAL level. */
  problems(): string[]
  /** Runs a command on PgBouncer's admin console (`SHOW CLIENTS`, ...). */
  admin<R extends pg.QueryResultRow>(command: string): Promise<R[]>
  /** A session through PgBouncer, ended before PgBouncer stops. */
  connect(): Promise<pg.Client>
  /** Ends the sessions from `connect`, stops PgBouncer and removes its config. */
  stop(): Promise<void>
}

export interface PgBouncerOptions {
  /** Server connections per database and user (`default_pool_size`); default 20. */
  poolSize?: number
  /** Client connections PgBouncer accepts (`max_client_conn`); default 200. */
  maxClients?: number
  /** Log each closed connection and why (`log_disconnections`, at LOG level); default false. */
  logDisconnections?: boolean
}

/** How much of PgBouncer's log `log()` keeps. */
const logTailChars = 16_000

/** A log line's level follows the timestamp and the pid: `2025-01-02 03:04:05.678 UTC [123] WARNING ...`. */
const problemLine = /^[^[]*\[\d+\] (?:WARNING|ERROR|FATAL) /

/**
 * Starts Debian's PgBouncer on a free loopback port in transaction mode, in front of the test database,
 * with its config in a temporary directory. Clients authenticate with the URL's credentials: SCRAM when
 * the URL has a password (the embedded server), trust when it has none (a trust-auth server).
 * @throws naming the missing package when no pgbouncer binary is installed.
 */
export async function startPgBouncer(db: TestDatabase, { poolSize = 20, maxClients = 200, logDisconnections = false }: PgBouncerOptions = {}): Promise<PgBouncer> {
  const binary = findPgBouncer()
  const direct = new URL(db.url)
  const user = decodeURIComponent(direct.username) || process.env.PGUSER || os.userInfo().username
  const password = decodeURIComponent(direct.password)
  const database = decodeURIComponent(direct.pathname.slice(1))
  const host = direct.hostname.replace(/^\[(.*)\]$/, '$1')
  const port = direct.port || '5432'

  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'skiplock-pgbouncer-'))
  // PgBouncer refuses to run as root: as root it drops to an unprivileged user, who must read the directory.
  const runAs = process.getuid?.() === 0 ? unprivilegedUser() : undefined
  let child: ChildProcess | undefined
  // A test process that exits without the fixture's teardown must not leave PgBouncer running.
  const killOnExit = () => child?.kill('SIGKILL')
  const sessions: pg.Client[] = []
  try {
    const userlistPath = path.join(directory, 'userlist.txt')
    await fs.writeFile(userlistPath, `${quoteUserlist(user)} ${quoteUserlist(password)}\n`, { mode: 0o600 })
    if (runAs) {
      await fs.chown(directory, runAs.uid, runAs.gid)
      await fs.chown(userlistPath, runAs.uid, runAs.gid)
    }
    let lastError: unknown
    // The free port is free when we look: another process may take it before PgBouncer binds it.
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      const listenPort = await freeLoopbackPort()
      const configPath = path.join(directory, 'pgbouncer.ini')
      await fs.writeFile(
        configPath,
        [
          '[databases]',
          `${database} = host=${host} port=${port} dbname=${database} user=${user}`,
          '[pgbouncer]',
          'listen_addr = 127.0.0.1',
          `listen_port = ${listenPort}`,
          'unix_socket_dir =',
          `auth_type = ${password ? 'scram-sha-256' : 'trust'}`,
          `auth_file = ${userlistPath}`,
          `admin_users = ${user}`,
          'pool_mode = transaction',
          `default_pool_size = ${poolSize}`,
          `max_client_conn = ${maxClients}`,
          'server_tls_sslmode = disable',
          'log_connections = 0',
          `log_disconnections = ${logDisconnections ? 1 : 0}`,
          '',
        ].join('\n'),
        { mode: 0o600 },
      )
      if (runAs) await fs.chown(configPath, runAs.uid, runAs.gid)
      const started = spawn(binary, [...(runAs ? ['-u', runAs.name] : []), configPath], { stdio: ['ignore', 'ignore', 'pipe'] })
      child = started
      process.once('exit', killOnExit)
      let log = ''
      const lines: string[] = []
      let partialLine = ''
      started.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        log = (log + chunk).slice(-logTailChars)
        const chunkLines = (partialLine + chunk).split('\n')
        partialLine = chunkLines.pop() ?? ''
        lines.push(...chunkLines)
      })
      try {
        await waitUntilUp(started, () => log)
        const url = new URL(db.url)
        url.hostname = '127.0.0.1'
        url.port = String(listenPort)
        url.search = ''
        const pooledUrl = url.toString()
        return {
          url: pooledUrl,
          log: () => log,
          logLines: () => lines,
          problems: () => lines.filter((line) => problemLine.test(line)),
          admin: async (command) => {
            const admin = new pg.Client({ connectionString: databaseUrl(pooledUrl, 'pgbouncer') })
            await admin.connect()
            try {
              return (await admin.query(command)).rows
            } finally {
              await admin.end()
            }
          },
          connect: async () => {
            const session = new pg.Client({ connectionString: pooledUrl, application_name: 'skiplock-test' })
            session.on('error', () => {})
            await session.connect()
            sessions.push(session)
            return session
          },
          stop: async () => {
            await Promise.all(sessions.map((session) => session.end().catch(() => {})))
            await stopProcess(started)
            process.off('exit', killOnExit)
            await fs.rm(directory, { recursive: true, force: true })
          },
        }
      } catch (error) {
        lastError = error
        await stopProcess(started)
        process.off('exit', killOnExit)
        child = undefined
        if (!String(error).includes('Address already in use')) break
      }
    }
    throw lastError
  } catch (error) {
    await fs.rm(directory, { recursive: true, force: true })
    throw error
  }
}

/** Debian's pgbouncer: on PATH, or in /usr/sbin, which is not on a non-root PATH. */
function findPgBouncer(): string {
  const directories = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin']
  for (const directory of directories) {
    const candidate = path.join(directory, 'pgbouncer')
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // Not here.
    }
  }
  throw new Error(
    'pgbouncer is not installed, so the PgBouncer tests cannot run. Install Debian\'s PgBouncer ' +
      '(`apt-get install -y pgbouncer`, which provides /usr/sbin/pgbouncer); .ci/run installs it when it runs as root.',
  )
}

/** `postgres` (as the Debian package expects), else `nobody`. */
function unprivilegedUser(): { name: string; uid: number; gid: number } {
  const users = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'))
    .map(([name, , uid, gid]) => ({ name: name ?? '', uid: Number(uid), gid: Number(gid) }))
  const user = users.find((entry) => entry.name === 'postgres') ?? users.find((entry) => entry.name === 'nobody')
  if (!user) throw new Error('running as root, PgBouncer needs an unprivileged user to run as: neither postgres nor nobody exists')
  return user
}

function quoteUserlist(value: string): string {
  return `"${value.replaceAll('"', '""')}"`
}

async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Resolves once PgBouncer logs that it is up (it has bound its port by then); rejects with its log if it exits first. */
function waitUntilUp(child: ChildProcess, log: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: Error) => {
      clearTimeout(timer)
      child.stderr?.off('data', onData)
      child.off('exit', onExit)
      child.off('error', settle)
      if (error) reject(error)
      else resolve()
    }
    const onData = () => {
      if (log().includes('process up')) settle()
    }
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      settle(new Error(`pgbouncer exited (${signal ?? `code ${code}`}) before it was up:\n${log()}`))
    const timer = setTimeout(() => settle(new Error(`pgbouncer was not up within 10 s:\n${log()}`)), 10_000)
    child.stderr?.on('data', onData)
    child.once('exit', onExit)
    child.once('error', settle)
  })
}

/** SIGTERM (immediate shutdown), then SIGKILL if it is still there after 5 s. */
async function stopProcess(child: ChildProcess): Promise<void> {
  // No pid: it never started. An exit code or signal: it has already stopped.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
}
