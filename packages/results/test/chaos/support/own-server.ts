import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'

import { DEFAULT_SCHEMA, migrate } from '@skiplock/schema'
import { type DatabaseServer, startDatabaseServer } from '@skiplock/schema/server'
import type { TestDatabase } from '@skiplock/schema/testing'
import pg from 'pg'

/**
 * An embedded PostgreSQL 18 of the test's own, whatever DATABASE_URL says, with one migrated database:
 * a test may kill its backends, crash it and stop it for a while without touching the server the other
 * tests share. `db` has the shape of the `db` fixture, so the ledger and the fleet work on it unchanged.
 */
export class OwnServer {
  readonly db: TestDatabase
  readonly #server: DatabaseServer
  readonly #dataDirectory: string
  readonly #clients: pg.Client[]

  private constructor(server: DatabaseServer, db: TestDatabase, clients: pg.Client[]) {
    this.#server = server
    this.#dataDirectory = server.dataDirectory!
    this.db = db
    this.#clients = clients
  }

  static async start(settings: Record<string, string | number | boolean> = {}): Promise<OwnServer> {
    const server = await startDatabaseServer({ databaseUrl: '', settings: { fsync: 'off', ...settings } })
    try {
      await migrate(server.url, { schema: DEFAULT_SCHEMA })
      const pool = new pg.Pool({ connectionString: server.url, max: 10, application_name: 'skiplock-test' })
      // The server goes down on purpose: its idle connections die with it.
      pool.on('error', () => {})
      const clients: pg.Client[] = []
      const db: TestDatabase = {
        name: 'postgres',
        url: server.url,
        schema: DEFAULT_SCHEMA,
        pool,
        query: (sql, values) => pool.query(sql, values),
        connect: async () => {
          const client = new pg.Client({ connectionString: server.url, application_name: 'skiplock-test' })
          client.on('error', () => {})
          await client.connect()
          clients.push(client)
          return client
        },
      }
      return new OwnServer(server, db, clients)
    } catch (error) {
      await server.stop()
      throw error
    }
  }

  /** SIGKILLs one backend: the postmaster then ends every session and recovers, as after any backend crash. */
  async killBackend(): Promise<void> {
    const { rows } = await this.db.query<{ pid: number }>(
      `select pid from pg_stat_activity where application_name like 'skiplock-worker%' order by random() limit 1`,
    )
    const pid = rows[0]?.pid
    if (pid === undefined) throw new Error('no worker backend to kill')
    process.kill(pid, 'SIGKILL')
  }

  /** `pg_ctl restart -m immediate`: the server stops without a checkpoint and starts again with crash recovery. */
  async restartImmediately(): Promise<void> {
    await this.#pgCtl(['restart', '-m', 'immediate', '-w'])
  }

  /** Stops the server at once (`pg_ctl stop -m immediate`); {@link startAgain} brings it back. */
  async stop(): Promise<void> {
    await this.#pgCtl(['stop', '-m', 'immediate', '-w'])
  }

  /** Starts the stopped server with the options it last ran with (pg_ctl restart starts a stopped server). */
  async startAgain(): Promise<void> {
    await this.#pgCtl(['restart', '-w'])
  }

  /** Polls until the server accepts a connection again; returns when it did (`Date.now()`). */
  async waitUntilAccepting(): Promise<number> {
    for (;;) {
      const probe = new pg.Client({ connectionString: this.db.url, connectionTimeoutMillis: 1000 })
      probe.on('error', () => {})
      try {
        await probe.connect()
        await probe.query('select 1')
        return Date.now()
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 20))
      } finally {
        await probe.end().catch(() => {})
      }
    }
  }

  /** Ends the test's sessions, then stops the server and removes its data. */
  async close(): Promise<void> {
    await Promise.all(this.#clients.map((client) => client.end().catch(() => {})))
    await this.db.pool.end().catch(() => {})
    await this.#server.stop()
  }

  /**
   * Runs the server's own pg_ctl as the owner of the data directory (PostgreSQL refuses to run as root).
   * The server it starts logs to a file in the data directory rather than to pg_ctl's output.
   */
  async #pgCtl(args: string[]): Promise<void> {
    const options = await fs.readFile(path.join(this.#dataDirectory, 'postmaster.opts'), 'utf8')
    const postgres = options.split(' ')[0]!
    const owner = await fs.stat(this.#dataDirectory)
    const pgCtl = path.join(path.dirname(postgres), 'pg_ctl')
    const child = spawn(pgCtl, [...args, '-D', this.#dataDirectory, '-l', path.join(this.#dataDirectory, 'server.log')], {
      cwd: this.#dataDirectory,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(process.getuid?.() === 0 ? { uid: owner.uid, gid: owner.gid } : {}),
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    // pg_ctl restart of a stopped server warns that there was no PID file, then starts it: that is success.
    if (code !== 0) throw new Error(`pg_ctl ${args.join(' ')} exited ${code}: ${output.trim()}`)
  }
}
