import { dedicatedConnection } from '../connection.ts'
import type { Sampler } from '../monitor.ts'
import type { ConnectionsSample } from '../samples.ts'

/** Options of {@link connectionsSampler}. */
export interface ConnectionsSamplerOptions {
  /** Any database on the server: the sample covers client backends of all databases. */
  readonly connectionString: string
  /** Default `connections`. */
  readonly name?: string
  /** Shown in `pg_stat_activity.application_name` (default `skiplock-monitor`). */
  readonly applicationName?: string
}

interface ActivityRow {
  state: string | null
  wait_event_type: string | null
  application_name: string | null
  backends: number
}

// One row per combination keeps the answer small however many connections there are.
const ACTIVITY_SQL = `
  select state, wait_event_type, application_name, count(*)::int as backends
  from pg_stat_activity
  where backend_type = 'client backend'
    and pid <> pg_backend_pid()
  group by state, wait_event_type, application_name`

/**
 * Counts the server's client connections by state, by wait event type (active backends that wait) and
 * by application name, on one dedicated connection (application_name `skiplock-monitor`) that it
 * leaves out of the counts. Connects on first sample and reconnects after a lost connection.
 */
export function connectionsSampler(options: ConnectionsSamplerOptions): Sampler {
  const connection = dedicatedConnection({
    connectionString: options.connectionString,
    applicationName: options.applicationName ?? 'skiplock-monitor',
    // max_connections only changes with a restart, which ends this connection anyway.
    setup: async (client) => {
      const { rows } = await client.query<{ max_connections: number }>(
        `select current_setting('max_connections')::int as max_connections`,
      )
      return { maxConnections: rows[0]?.max_connections ?? 0 }
    },
  })

  return {
    name: options.name ?? 'connections',
    sample: () =>
      connection.run(async (client, session) => {
        const { rows } = await client.query<ActivityRow>(ACTIVITY_SQL)
        return [summarizeActivity(rows, session.maxConnections)]
      }),
    close: () => connection.close(),
  }
}

function summarizeActivity(rows: readonly ActivityRow[], maxConnections: number): ConnectionsSample {
  // The usual states are always present, so that a series of samples has the same columns.
  const byState: Record<string, number> = { active: 0, idle: 0, 'idle in transaction': 0, 'idle in transaction (aborted)': 0 }
  const waiting: Record<string, number> = {}
  const byApplication: Record<string, number> = {}
  let total = 0
  for (const row of rows) {
    total += row.backends
    // State is null for another user's session unless the role has pg_read_all_stats.
    const state = row.state ?? 'unknown'
    byState[state] = (byState[state] ?? 0) + row.backends
    const application = row.application_name ?? ''
    byApplication[application] = (byApplication[application] ?? 0) + row.backends
    if (state === 'active' && row.wait_event_type !== null) {
      waiting[row.wait_event_type] = (waiting[row.wait_event_type] ?? 0) + row.backends
    }
  }
  return { kind: 'connections', total, byState, waiting, byApplication, maxConnections }
}
