import pg from 'pg'

import { MigrationChecksumError, SchemaVersionError } from './errors.ts'
import { DEFAULT_SCHEMA, quoteSchemaName, renderSql } from './schema-name.ts'
import { readFunctions, readMigrations, type SqlFile } from './sql-files.ts'

/** Where to migrate: a connection string, or a connected client (it stays open). */
export type MigrationConnection = string | pg.ClientBase

export interface MigrateOptions {
  /** Default `skiplock`. Lowercase letters, digits and `_`. */
  schema?: string
}

export interface MigrateResult {
  /** Migrations applied by this call, in order; empty when the database was up to date. */
  readonly appliedMigrations: readonly string[]
  /** Function files (re)created by this call because they were new or changed. */
  readonly updatedFunctions: readonly string[]
}

interface AppliedRow {
  name: string
  checksum: string
}

/**
 * Brings the skiplock schema up to date: applies pending migrations in order, each in its own
 * transaction, then (re)creates changed functions. Running it again is a no-op, and processes
 * running it at once are serialised by an advisory lock.
 * @throws {InvalidSchemaNameError} when `schema` is not a plain identifier.
 * @throws {MigrationChecksumError} when an applied migration's file was edited.
 * @throws {SchemaVersionError} when the database has migrations this package does not know.
 * @example
 * await migrate('postgres://localhost/app')
 */
export async function migrate(connection: MigrationConnection, options: MigrateOptions = {}): Promise<MigrateResult> {
  const schema = options.schema ?? DEFAULT_SCHEMA
  const quotedSchema = quoteSchemaName(schema)
  const [migrations, functions] = await Promise.all([readMigrations(), readFunctions()])

  return withClient(connection, async (client) => {
    // A session lock, not a transaction lock: it must span the separate transaction of each migration.
    await client.query(`select pg_advisory_lock(hashtext('skiplock.migrate'), hashtext($1))`, [schema])
    try {
      await client.query(`create schema if not exists ${quotedSchema}`)
      await client.query(`
        create table if not exists ${quotedSchema}.migrations (
          name text primary key,
          checksum text not null,
          applied_at timestamptz not null default now()
        )`)
      const applied = await readApplied(client, quotedSchema)
      checkAppliedMigrations(migrations, applied)

      const appliedMigrations: string[] = []
      for (const migration of migrations.filter((file) => !applied.has(file.name))) {
        await inTransaction(client, async () => {
          await client.query(renderSql(migration.sql, schema))
          await record(client, quotedSchema, migration)
        })
        appliedMigrations.push(migration.name)
      }

      const changedFunctions = functions.filter((file) => applied.get(file.name) !== file.checksum)
      if (changedFunctions.length > 0) {
        await inTransaction(client, async () => {
          // Function bodies may call functions from files applied later in this loop.
          await client.query('set local check_function_bodies = off')
          for (const file of changedFunctions) {
            await client.query(renderSql(file.sql, schema))
            await record(client, quotedSchema, file)
          }
        })
      }
      return { appliedMigrations, updatedFunctions: changedFunctions.map((file) => file.name) }
    } finally {
      await client.query(`select pg_advisory_unlock(hashtext('skiplock.migrate'), hashtext($1))`, [schema])
    }
  })
}

/**
 * Checks that the database holds exactly the migrations this package knows, without changing it.
 * @throws {SchemaVersionError} when the database is behind or ahead of this package.
 * @throws {MigrationChecksumError} when an applied migration's file was edited.
 */
export async function checkSchema(connection: MigrationConnection, options: MigrateOptions = {}): Promise<void> {
  const quotedSchema = quoteSchemaName(options.schema ?? DEFAULT_SCHEMA)
  const migrations = await readMigrations()
  await withClient(connection, async (client) => {
    const exists = await client.query(`select to_regclass($1) is not null as "exists"`, [`${quotedSchema}.migrations`])
    const applied = exists.rows[0]?.exists ? await readApplied(client, quotedSchema) : new Map<string, string>()
    checkAppliedMigrations(migrations, applied)
    const missing = migrations.find((file) => !applied.has(file.name))
    if (missing !== undefined) {
      throw new SchemaVersionError({ expected: latestName(migrations), actual: latestName(migrations.filter((file) => applied.has(file.name))) })
    }
  })
}

function checkAppliedMigrations(migrations: readonly SqlFile[], applied: ReadonlyMap<string, string>): void {
  const known = new Map(migrations.map((file) => [file.name, file.checksum]))
  for (const [name, checksum] of applied) {
    if (name.startsWith('functions/')) continue
    const fileChecksum = known.get(name)
    if (fileChecksum === undefined) {
      throw new SchemaVersionError({ expected: latestName(migrations), actual: name })
    }
    if (fileChecksum !== checksum) {
      throw new MigrationChecksumError({ migration: name, expected: checksum, actual: fileChecksum })
    }
  }
}

function latestName(files: readonly SqlFile[]): string {
  return files.at(-1)?.name ?? 'none'
}

async function readApplied(client: pg.ClientBase, quotedSchema: string): Promise<Map<string, string>> {
  const result = await client.query<AppliedRow>(`select name, checksum from ${quotedSchema}.migrations order by name`)
  return new Map(result.rows.map((row) => [row.name, row.checksum]))
}

async function record(client: pg.ClientBase, quotedSchema: string, file: SqlFile): Promise<void> {
  await client.query(
    `insert into ${quotedSchema}.migrations (name, checksum) values ($1, $2)
     on conflict (name) do update set checksum = excluded.checksum, applied_at = now()`,
    [file.name, file.checksum],
  )
}

async function inTransaction(client: pg.ClientBase, work: () => Promise<void>): Promise<void> {
  await client.query('begin')
  try {
    await work()
    await client.query('commit')
  } catch (error) {
    await client.query('rollback')
    throw error
  }
}

async function withClient<T>(connection: MigrationConnection, work: (client: pg.ClientBase) => Promise<T>): Promise<T> {
  if (typeof connection !== 'string') return work(connection)
  const client = new pg.Client({ connectionString: connection, application_name: 'skiplock-migrate' })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}
