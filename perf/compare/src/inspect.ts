import pg from 'pg'

/** The application name of the harness's own sessions, left out of the peers' connections. */
export const harnessApplicationName = 'perf-compare'

/** The role the peers connect as, so that pg_stat_statements can tell their statements from the harness's. */
export const peerRole = 'peer'

/** WAL of one record type over a measured interval (pg_walinspect), in bytes per job. */
export interface WalRecordCost {
  /** `resource_manager/record_type`, for example `Heap/INSERT` or `Btree/INSERT_LEAF`. */
  type: string
  recordsPerJob: number
  bytesPerJob: number
  /** Of `bytesPerJob`, full-page images (the first change of a page after a checkpoint, or a hint bit with checksums). */
  fullPageBytesPerJob: number
}

/** The peer's statements over the interval (pg_stat_statements, the peer's role only). */
export interface StatementCost {
  query: string
  callsPerJob: number
  meanMs: number
  /** Share of the peer's total execution time. */
  timeShare: number
}

export interface Inspection {
  walByRecord: WalRecordCost[]
  /** Statements (round trips of top-level statements) the peer's sessions ran per job. */
  statementsPerJob: number
  topStatements: StatementCost[]
}

/**
 * Prepares a fresh server for inspection: creates the peers' role and the two extensions. Returns the
 * URL the peer connects with. Needs `shared_preload_libraries=pg_stat_statements`.
 */
export async function prepareInspection(databaseUrl: string): Promise<string> {
  const url = new URL(databaseUrl)
  const password = decodeURIComponent(url.password)
  const client = new pg.Client({ connectionString: databaseUrl, application_name: harnessApplicationName })
  await client.connect()
  try {
    // The server may ask for a password: the peers' role gets the harness's.
    await client.query(`create role ${peerRole} login superuser ${password ? `password ${client.escapeLiteral(password)}` : ''}`)
    await client.query('create extension if not exists pg_walinspect')
    await client.query('create extension if not exists pg_stat_statements')
  } finally {
    await client.end()
  }
  url.username = peerRole
  return url.toString()
}

/** Marks the start of an interval: resets statement statistics and returns the WAL insert position. */
export async function startInspection(databaseUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: harnessApplicationName })
  await client.connect()
  try {
    await client.query('select pg_stat_statements_reset()')
    return (await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]!.lsn
  } finally {
    await client.end()
  }
}

/** Reads what the peer wrote and ran since `startLsn`, per job. */
export async function finishInspection(databaseUrl: string, startLsn: string, jobs: number): Promise<Inspection> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: harnessApplicationName })
  await client.connect()
  try {
    const wal = await client.query<{ type: string; count: string; combined_size: string; fpi_size: string }>(
      `select "resource_manager/record_type" as type, count, combined_size, fpi_size
       from pg_get_wal_stats($1::pg_lsn, pg_current_wal_insert_lsn(), true)
       where count > 0
       order by combined_size desc`,
      [startLsn],
    )
    const statements = await client.query<{ query: string; calls: string; mean_exec_time: number; total_exec_time: number }>(
      `select s.query, s.calls, s.mean_exec_time, s.total_exec_time
       from pg_stat_statements as s
       join pg_roles as r on r.oid = s.userid
       where r.rolname = $1 and s.toplevel
       order by s.total_exec_time desc`,
      [peerRole],
    )
    const totalMs = statements.rows.reduce((sum, row) => sum + row.total_exec_time, 0)
    return {
      walByRecord: wal.rows.map((row) => ({
        type: row.type,
        recordsPerJob: Number(row.count) / jobs,
        bytesPerJob: Number(row.combined_size) / jobs,
        fullPageBytesPerJob: Number(row.fpi_size) / jobs,
      })),
      statementsPerJob: statements.rows.reduce((sum, row) => sum + Number(row.calls), 0) / jobs,
      topStatements: statements.rows.slice(0, 4).map((row) => ({
        query: row.query.replace(/\s+/g, ' ').trim(),
        callsPerJob: Number(row.calls) / jobs,
        meanMs: row.mean_exec_time,
        timeShare: totalMs ? row.total_exec_time / totalMs : 0,
      })),
    }
  } finally {
    await client.end()
  }
}
