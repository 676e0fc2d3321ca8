import { checkSchema, DEFAULT_SCHEMA, quoteSchemaName } from '@skiplock/schema'
import { assertReachable } from '@skiplock/schema/server'
import { type Command, Option } from 'commander'
import pg from 'pg'

import { type Client, createClient } from '../index.ts'
import { CliUsageError, hideUrlPassword, printError } from './errors.ts'

/** The options every command that talks to the database takes. */
export interface ConnectionOptions {
  databaseUrl?: string
  schema: string
}

/** A checked database: reachable, migrated to this version, with a small pool and a client on it. */
export interface Session {
  readonly url: string
  readonly schema: string
  readonly pool: pg.Pool
  readonly client: Client
}

/** Adds `--database-url` (default: env DATABASE_URL, never shown in help since it holds a password) and `--schema`. */
export function addConnectionOptions(command: Command): Command {
  return command
    .addOption(new Option('--database-url <url>', 'PostgreSQL URL').env('DATABASE_URL'))
    .addOption(new Option('--schema <name>', 'schema skiplock lives in').default(DEFAULT_SCHEMA))
}

/**
 * The database URL to use, its password remembered so that no printed message shows it, and the
 * schema name checked.
 * @throws {CliUsageError} when neither `--database-url` nor DATABASE_URL gives one.
 */
export function requireDatabaseUrl(options: ConnectionOptions): string {
  const url = options.databaseUrl
  if (!url) throw new CliUsageError('no database URL: pass --database-url <url> or set DATABASE_URL')
  hideUrlPassword(url)
  quoteSchemaName(options.schema)
  return url
}

/**
 * Connects once to fail fast with one readable line (`DatabaseUnreachableError` names host and port,
 * never the password) instead of a pool error later.
 */
export async function connectDatabase(options: ConnectionOptions): Promise<string> {
  const url = requireDatabaseUrl(options)
  await assertReachable(url)
  return url
}

/**
 * Runs `work` with a session and closes it afterwards, whatever happens.
 * @throws {DatabaseUnreachableError} {SchemaVersionError} before `work` runs.
 */
export async function withSession<T>(options: ConnectionOptions, work: (session: Session) => Promise<T>): Promise<T> {
  const url = await connectDatabase(options)
  // Without this, `jobs` on an unmigrated database would say `relation "skiplock.all_jobs" does not exist`.
  await checkSchema(url, { schema: options.schema })
  const pool = new pg.Pool({ connectionString: url, max: 2, application_name: 'skiplock-cli' })
  // An idle connection dropped by the server must not crash the command with an unhandled 'error'.
  pool.on('error', (error) => printError(`database connection lost: ${error.message}`))
  const client = createClient({ pool, schema: options.schema })
  try {
    return await work({ url, schema: options.schema, pool, client })
  } finally {
    await client.close()
    await pool.end()
  }
}
