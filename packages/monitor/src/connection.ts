import pg from 'pg'

import { DatabaseUnreachableError } from './errors.ts'

/** Where a connection string points, for messages: never its password. */
export interface DatabaseTarget {
  readonly host: string
  readonly port: number
}

/** A pg client of its own that connects on first use and again after the connection is lost. */
export interface DedicatedConnection<Session> {
  /**
   * Runs `work` on the connected client with what `setup` read when it connected.
   * @throws {DatabaseUnreachableError} when connecting fails; errors of `work` pass through with
   * any password or connection string in their message replaced by `***`.
   */
  run<T>(work: (client: pg.Client, session: Session) => Promise<T>): Promise<T>
  /** Closes the client, if any. Safe to call twice. */
  close(): Promise<void>
}

/** Options of {@link dedicatedConnection}. */
export interface DedicatedConnectionOptions<Session> {
  readonly connectionString: string
  /** Shown in `pg_stat_activity.application_name`. */
  readonly applicationName: string
  /** Reads what stays true for the life of a connection (settings, server version) once per connection. */
  readonly setup: (client: pg.Client) => Promise<Session>
}

// A monitor must not hang on a stuck server: the server cancels slow statements, the client gives up on
// a silent network, and either way the next round gets a fresh connection.
const CONNECT_TIMEOUT_MS = 5_000
const STATEMENT_TIMEOUT_MS = 5_000
const QUERY_TIMEOUT_MS = 10_000

/** Opens connections lazily; a lost connection is dropped so that the next `run` reconnects. */
export function dedicatedConnection<Session>(options: DedicatedConnectionOptions<Session>): DedicatedConnection<Session> {
  const redact = redactor(options.connectionString)
  let current: Promise<{ client: pg.Client; session: Session }> | undefined
  let liveClient: pg.Client | undefined

  const drop = (client: pg.Client): void => {
    if (liveClient === client) {
      current = undefined
      liveClient = undefined
    }
    client.end().catch(() => {})
  }

  const connect = async (): Promise<{ client: pg.Client; session: Session }> => {
    const client = new pg.Client({
      connectionString: options.connectionString,
      application_name: options.applicationName,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
    })
    // Without a listener, a server restart would crash the host program with an unhandled 'error'.
    client.on('error', () => drop(client))
    try {
      await client.connect()
    } catch (error) {
      client.end().catch(() => {})
      const target = databaseTarget(options.connectionString)
      throw new DatabaseUnreachableError({ ...target, reason: redact(errorMessage(error)) }, { cause: error })
    }
    try {
      const session = await options.setup(client)
      liveClient = client
      return { client, session }
    } catch (error) {
      client.end().catch(() => {})
      throw redactError(error, redact)
    }
  }

  return {
    async run(work) {
      const connecting = (current ??= connect())
      let connection: { client: pg.Client; session: Session }
      try {
        connection = await connecting
      } catch (error) {
        if (current === connecting) current = undefined
        throw error
      }
      try {
        return await work(connection.client, connection.session)
      } catch (error) {
        if (!isSqlError(error)) drop(connection.client)
        throw redactError(error, redact)
      }
    },
    async close() {
      const connecting = current
      current = undefined
      liveClient = undefined
      if (connecting === undefined) return
      const connection = await connecting.catch(() => undefined)
      await connection?.client.end().catch(() => {})
    },
  }
}

/**
 * The host and port a connection string points at, defaulting like libpq (PGHOST, PGPORT, localhost:5432).
 * Accepts URLs and `key=value` strings.
 */
export function databaseTarget(connectionString: string): DatabaseTarget {
  const defaultHost = process.env['PGHOST'] || 'localhost'
  const defaultPort = Number(process.env['PGPORT']) || 5432
  let host: string | undefined
  let port: string | undefined
  try {
    const url = new URL(connectionString)
    host = url.searchParams.get('host') || url.hostname.replace(/^\[(.*)\]$/, '$1') || undefined
    port = url.searchParams.get('port') || url.port || undefined
  } catch {
    host = /(?:^|\s)host=(\S+)/.exec(connectionString)?.[1]
    port = /(?:^|\s)port=(\d+)/.exec(connectionString)?.[1]
  }
  return { host: host ? decodeURIComponent(host) : defaultHost, port: Number(port) || defaultPort }
}

/** Returns a function that replaces the connection string and its password, in any spelling, with `***`. */
export function redactor(connectionString: string): (text: string) => string {
  const secrets = new Set<string>([connectionString])
  try {
    const password = new URL(connectionString).password
    if (password) secrets.add(password).add(decodeURIComponent(password))
  } catch {
    const password = /(?:^|\s)password=(\S+)/.exec(connectionString)?.[1]
    if (password) secrets.add(password.replace(/^'(.*)'$/, '$1'))
  }
  // Longest first, so that the whole connection string goes before the password inside it.
  const ordered = [...secrets].sort((a, b) => b.length - a.length)
  return (text) => ordered.reduce((redacted, secret) => redacted.replaceAll(secret, '***'), text)
}

/** The message of anything thrown. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

// A five-character SQLSTATE means the server answered: the connection is still good, except for the
// classes that end the session (08: connection exception, 57P: operator intervention such as a shutdown).
function isSqlError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08') && !code.startsWith('57P')
}

function redactError(error: unknown, redact: (text: string) => string): unknown {
  if (error instanceof Error) {
    const message = redact(error.message)
    if (message !== error.message) error.message = message
  }
  return error
}

/**
 * Connects once and disconnects, to fail fast with one readable line before sampling starts.
 * @throws {DatabaseUnreachableError} naming host and port, never the password.
 */
export async function assertReachable(connectionString: string): Promise<void> {
  const connection = dedicatedConnection({ connectionString, applicationName: 'skiplock-monitor', setup: async () => {} })
  try {
    await connection.run(async () => {})
  } finally {
    await connection.close()
  }
}
