import { dedicatedConnection } from '../connection.ts'
import type { Sink } from '../monitor.ts'
import { parseTableName } from '../table-name.ts'

/** Options of {@link tableSink}. */
export interface TableSinkOptions {
  /** The database to write to (it need not be the one being sampled). */
  readonly connectionString: string
  /** `table` or `schema.table`, lowercase (default `monitor_samples`); the schema must exist. */
  readonly table?: string
  /** Shown in `pg_stat_activity.application_name` (default `skiplock-monitor`). */
  readonly applicationName?: string
}

/**
 * Inserts each round's samples into `table (t timestamptz, kind text, sample jsonb)` in one statement,
 * creating the table on first use. `sample` holds the whole sample, `t` and `kind` included, so
 * `select sample->>'total' from monitor_samples where kind = 'connections'` reads back what was sampled.
 * A round whose insert fails is reported to the monitor's `onError`; the next round reconnects.
 * @throws {InvalidTableNameError} at once when `table` is not a plain `schema.table`.
 */
export function tableSink(options: TableSinkOptions): Sink {
  const table = parseTableName(options.table ?? 'monitor_samples')
  const connection = dedicatedConnection({
    connectionString: options.connectionString,
    applicationName: options.applicationName ?? 'skiplock-monitor',
    setup: async (client) => {
      await client.query(`create table if not exists ${table.quoted} (t timestamptz not null, kind text not null, sample jsonb not null)`)
    },
  })
  // Three arrays, not one placeholder per value: one statement and one plan however many samples a round has.
  const insertSql = `
    insert into ${table.quoted} (t, kind, sample)
    select * from unnest($1::timestamptz[], $2::text[], $3::jsonb[])`

  return {
    name: `table ${table.name}`,
    async write(samples) {
      if (samples.length === 0) return
      await connection.run((client) =>
        client.query(insertSql, [
          samples.map((sample) => sample.t),
          samples.map((sample) => sample.kind),
          samples.map((sample) => JSON.stringify(sample)),
        ]),
      )
    },
    close: () => connection.close(),
  }
}
