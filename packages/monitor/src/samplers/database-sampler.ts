import { dedicatedConnection } from '../connection.ts'
import { TableNotFoundError } from '../errors.ts'
import { errorSample, type Sampler } from '../monitor.ts'
import type { DatabaseSample, SampleData } from '../samples.ts'
import { parseTableName } from '../table-name.ts'

/** Options of {@link databaseSampler}. */
export interface DatabaseSamplerOptions {
  /** The database to sample (its statistics, and where `tables` live). */
  readonly connectionString: string
  /** Tables whose dead tuples to report, as `table` or `schema.table` in lowercase, e.g. `skiplock.jobs`. */
  readonly tables?: readonly string[]
  /** Default `database`. */
  readonly name?: string
  /** Shown in `pg_stat_activity.application_name` (default `skiplock-monitor`). */
  readonly applicationName?: string
}

interface DatabaseRow {
  database: string
  commits: number
  rollbacks: number
  rows_inserted: number
  rows_updated: number
  rows_deleted: number
  wal_bytes: number | null
  notification_queue_usage: number
  dead_tuples: Record<string, number> | null
}

/**
 * Reads the connected database's cumulative transaction and row counters, the server's WAL bytes, the
 * NOTIFY queue usage and the dead tuples of named tables, in one statement on a dedicated connection
 * (application_name `skiplock-monitor`). A named table that does not exist yields an error sample next
 * to the database sample, until it is created.
 * @throws {InvalidTableNameError} at once when a table name is not a plain `schema.table`.
 */
export function databaseSampler(options: DatabaseSamplerOptions): Sampler {
  const tables = (options.tables ?? []).map(parseTableName)
  const name = options.name ?? 'database'
  const connection = dedicatedConnection({
    connectionString: options.connectionString,
    applicationName: options.applicationName ?? 'skiplock-monitor',
    setup: async (client) => {
      const { rows } = await client.query<{ version: number }>(`select current_setting('server_version_num')::int as version`)
      return { sql: databaseSql({ hasWalStatistics: (rows[0]?.version ?? 0) >= 140000 }) }
    },
  })

  return {
    name,
    sample: () =>
      connection.run(async (client, session) => {
        const { rows } = await client.query<DatabaseRow>(session.sql, [
          tables.map((table) => table.name),
          tables.map((table) => table.quoted),
        ])
        const row = rows[0]
        if (row === undefined) throw new Error('pg_stat_database has no row for the connected database')
        const deadTuples = row.dead_tuples ?? {}
        const sample: DatabaseSample = {
          kind: 'database',
          database: row.database,
          commits: row.commits,
          rollbacks: row.rollbacks,
          rowsInserted: row.rows_inserted,
          rowsUpdated: row.rows_updated,
          rowsDeleted: row.rows_deleted,
          walBytes: row.wal_bytes,
          deadTuples,
          notificationQueueUsage: row.notification_queue_usage,
        }
        const missing = tables.filter((table) => !Object.hasOwn(deadTuples, table.name))
        return [
          sample,
          ...missing.map((table): SampleData => errorSample(name, new TableNotFoundError({ tableName: table.name, database: row.database }))),
        ]
      }),
    close: () => connection.close(),
  }
}

// Counters come back as float8: exact up to 2^53, and pg parses them into numbers rather than strings.
// Tables are looked up by relid, so a name is never spliced into the SQL; `to_regclass` returns null for a
// missing table instead of failing the statement.
function databaseSql(options: { hasWalStatistics: boolean }): string {
  return `
    select current_database() as database,
      d.xact_commit::float8 as commits,
      d.xact_rollback::float8 as rollbacks,
      d.tup_inserted::float8 as rows_inserted,
      d.tup_updated::float8 as rows_updated,
      d.tup_deleted::float8 as rows_deleted,
      ${options.hasWalStatistics ? '(select w.wal_bytes::float8 from pg_stat_wal w)' : 'null::float8'} as wal_bytes,
      pg_notification_queue_usage() as notification_queue_usage,
      (
        select json_object_agg(t.name, s.n_dead_tup)
        from unnest($1::text[], $2::text[]) as t(name, quoted)
        join pg_stat_all_tables s on s.relid = to_regclass(t.quoted)
      ) as dead_tuples
    from pg_stat_database d
    where d.datname = current_database()`
}
