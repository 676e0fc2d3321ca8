/**
 * Client backends of every database on the server, except the sampler's own session.
 * States are `pg_stat_activity.state` (`active`, `idle`, `idle in transaction`, …); a state the
 * sampling role may not see (another user's session without `pg_read_all_stats`) counts as `unknown`.
 */
export interface ConnectionsSample {
  readonly kind: 'connections'
  readonly total: number
  readonly byState: Readonly<Record<string, number>>
  /** Active backends that wait, by `wait_event_type` (`Lock`, `LWLock`, `IO`, `Client`, …). */
  readonly waiting: Readonly<Record<string, number>>
  readonly byApplication: Readonly<Record<string, number>>
  /** The server's `max_connections`. */
  readonly maxConnections: number
}

/** Activity of the connected database. Counters are cumulative since the last statistics reset. */
export interface DatabaseSample {
  readonly kind: 'database'
  /** The name of the sampled database. */
  readonly database: string
  readonly commits: number
  readonly rollbacks: number
  readonly rowsInserted: number
  readonly rowsUpdated: number
  readonly rowsDeleted: number
  /** WAL written by the whole server in bytes (`pg_stat_wal.wal_bytes`); null before PostgreSQL 14. */
  readonly walBytes: number | null
  /** `n_dead_tup` of each named table that exists, keyed by the name as given. */
  readonly deadTuples: Readonly<Record<string, number>>
  /** Fraction (0 to 1) of the NOTIFY queue in use: near 1, NOTIFY starts failing. */
  readonly notificationQueueUsage: number
}

/** CPU and memory of a process and, by default, all its descendants. */
export interface ProcessSample {
  readonly kind: 'process'
  readonly name: string
  /** The root of the tree. */
  readonly pid: number
  /** Processes read in this sample (the root included). */
  readonly processes: number
  /** User plus system CPU, cumulative, in seconds, including children each process has reaped. */
  readonly cpuSeconds: number
  /** Proportional set size in bytes: shared pages are split between the processes that map them. */
  readonly pssBytes: number
}

/** A sampler failed this round; the other samplers' samples are unaffected. Never holds a password. */
export interface ErrorSample {
  readonly kind: 'error'
  /** The name of the sampler that failed. */
  readonly sampler: string
  readonly message: string
  /** `MonitorError.code`, a SQLSTATE or a Node error code, when the error had one. */
  readonly code?: string
}

/** What a sampler reads: one of the sample kinds, before the monitor stamps it with the round's time. */
export type SampleData = ConnectionsSample | DatabaseSample | ProcessSample | ErrorSample

/** A sample as sinks receive it: `t` is the ISO time at which its round started, the same for every sample of the round. */
export type Sample = { readonly t: string } & SampleData

/** The sample kinds, for filtering: `'connections' | 'database' | 'process' | 'error'`. */
export type SampleKind = SampleData['kind']
