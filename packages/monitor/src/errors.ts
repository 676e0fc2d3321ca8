/** Every condition a caller of `@skiplock/monitor` can branch on, stable across package copies. */
export type MonitorErrorCode =
  | 'DATABASE_UNREACHABLE'
  | 'INVALID_OPTION'
  | 'INVALID_TABLE_NAME'
  | 'MONITOR_STOPPED'
  | 'POSTMASTER_PID_UNREADABLE'
  | 'PROCESS_NOT_FOUND'
  | 'PROCESS_UNREADABLE'
  | 'TABLE_NOT_FOUND'

/**
 * The base of every error the monitor throws: branch on `code`; `cause` keeps the original error.
 * Monitor stands alone, so this mirrors skiplock's `SkiplockError` rather than importing it.
 */
export class MonitorError extends Error {
  readonly code: MonitorErrorCode

  constructor(code: MonitorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** The database at `host:port` did not accept a connection. The password is never part of it. */
export class DatabaseUnreachableError extends MonitorError {
  readonly host: string
  readonly port: number

  constructor(data: { host: string; port: number; reason: string }, options?: { cause?: unknown }) {
    super('DATABASE_UNREACHABLE', `cannot connect to PostgreSQL at ${data.host}:${data.port}: ${data.reason}`, options)
    this.host = data.host
    this.port = data.port
  }
}

/** An option is out of range or malformed: `option` names it, the message says what was expected. */
export class InvalidOptionError extends MonitorError {
  readonly option: string

  constructor(data: { option: string; value: unknown; expected: string }) {
    super('INVALID_OPTION', `${data.option} must be ${data.expected}, got ${JSON.stringify(data.value) ?? String(data.value)}`)
    this.option = data.option
  }
}

/** A table name is not `table` or `schema.table` made of plain identifiers, so it is refused before any SQL. */
export class InvalidTableNameError extends MonitorError {
  readonly tableName: string

  constructor(data: { tableName: string }) {
    super(
      'INVALID_TABLE_NAME',
      `table name ${JSON.stringify(data.tableName)} must be "table" or "schema.table", each part a letter or _ followed by letters, digits, _ or $ (at most 63 characters)`,
    )
    this.tableName = data.tableName
  }
}

/** A table named in `databaseSampler({ tables })` does not exist in the sampled database (or is a view, a sequence…). */
export class TableNotFoundError extends MonitorError {
  readonly tableName: string
  readonly database: string

  constructor(data: { tableName: string; database: string }) {
    super('TABLE_NOT_FOUND', `no table ${data.tableName} in database ${data.database}`)
    this.tableName = data.tableName
    this.database = data.database
  }
}

/** `sampleNow()` was called after `stop()`. */
export class MonitorStoppedError extends MonitorError {
  constructor() {
    super('MONITOR_STOPPED', 'the monitor is stopped: sampleNow() cannot run after stop()')
  }
}

/** `postmaster.pid` in the data directory is missing or its first line is not a pid. */
export class PostmasterPidError extends MonitorError {
  readonly dataDirectory: string

  constructor(data: { dataDirectory: string; reason: string }, options?: { cause?: unknown }) {
    super('POSTMASTER_PID_UNREADABLE', `cannot read the PostgreSQL server pid from ${data.dataDirectory}/postmaster.pid: ${data.reason}`, options)
    this.dataDirectory = data.dataDirectory
  }
}

/** The root process of a sampled tree is gone (or its pid now belongs to another process). */
export class ProcessNotFoundError extends MonitorError {
  readonly pid: number

  constructor(data: { pid: number; name: string; reason: string }) {
    super('PROCESS_NOT_FOUND', `process ${data.name} (pid ${data.pid}) ${data.reason}`)
    this.pid = data.pid
  }
}

/** `/proc/<pid>/…` exists but cannot be read, usually because the process belongs to another user. */
export class ProcessUnreadableError extends MonitorError {
  readonly pid: number
  readonly path: string

  constructor(data: { pid: number; path: string }, options?: { cause?: unknown }) {
    const reason = options?.cause instanceof Error ? options.cause.message : String(options?.cause)
    super(
      'PROCESS_UNREADABLE',
      `cannot read ${data.path} (${reason}): run the monitor as the process's user or as root`,
      options,
    )
    this.pid = data.pid
    this.path = data.path
  }
}
