import pg from 'pg'

/** The worker's SQL functions: every statement a worker sends calls one of them, or is its begin/commit. */
export const workerFunctions = ['fetch_jobs', 'complete_jobs', 'fail_jobs', 'release_jobs', 'store_results', 'heartbeat', 'rescue_jobs', 'prune_jobs'] as const

/** What pg_stat_statements recorded for one of the worker's statements (a function, or begin/commit). */
export interface StatementStat {
  statement: string
  calls: number
  totalExecMs: number
}

/** The worker's statements in the run's database since the bench driver reset pg_stat_statements. */
export interface StatementStats {
  calls: number
  totalExecMs: number
  byStatement: StatementStat[]
}

/** Why a figure could not be measured, in words the report prints. */
export interface NotMeasured {
  notMeasured: string
}

export function isMeasured<T extends object>(value: T | NotMeasured): value is T {
  return !('notMeasured' in value)
}

// Read-only statistics of the server, not the queue: like the settings in run.json, this query stays with
// the analyzer that reports it rather than in @skiplock/schema's queue API.
const statementsSql = (schema: string) => `
  select coalesce((regexp_match(s.query, $1))[1], lower(btrim(s.query, E' \\t\\n;'))) as statement,
         sum(s.calls)::float8 as calls,
         sum(s.total_exec_time)::float8 as total_exec_ms
  from ${pg.escapeIdentifier(schema)}.pg_stat_statements as s
  where s.dbid = (select d.oid from pg_database as d where d.datname = current_database())
    and (s.query ~ $1 or lower(btrim(s.query, E' \\t\\n;')) in ('begin', 'commit'))
  group by 1
  order by 1`

/**
 * Sums calls and execution time of the worker's statements from pg_stat_statements, for the connection
 * model's Q (queries per job) and L (mean query latency). Returns why not when the extension is not
 * installed in the database, its library is not preloaded, or it recorded none of them.
 */
export async function readStatementStats(db: pg.Pool | pg.ClientBase): Promise<StatementStats | NotMeasured> {
  const { rows: extensions } = await db.query<{ schema: string }>(
    `select n.nspname as schema from pg_extension as e join pg_namespace as n on n.oid = e.extnamespace where e.extname = 'pg_stat_statements'`,
  )
  const schema = extensions[0]?.schema
  if (schema === undefined) return { notMeasured: 'pg_stat_statements is not installed in the run\'s database' }
  let rows: { statement: string; calls: number; total_exec_ms: number }[]
  try {
    ;({ rows } = await db.query(statementsSql(schema), [`\\m(${workerFunctions.join('|')})\\M`]))
  } catch (error) {
    // 55000 when the library is not in shared_preload_libraries; any other failure is reported the same way.
    return { notMeasured: `pg_stat_statements cannot be read: ${(error as Error).message}` }
  }
  const byStatement = rows.map((row) => ({ statement: row.statement, calls: row.calls, totalExecMs: row.total_exec_ms }))
  const calls = byStatement.reduce((sum, row) => sum + row.calls, 0)
  if (calls === 0) return { notMeasured: 'pg_stat_statements recorded none of the worker\'s statements' }
  return { calls, totalExecMs: byStatement.reduce((sum, row) => sum + row.totalExecMs, 0), byStatement }
}
