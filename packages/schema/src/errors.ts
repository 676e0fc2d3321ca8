/** Stable codes callers branch on; messages are for humans. */
export type SkiplockErrorCode =
  | 'DATABASE_UNREACHABLE'
  | 'DATABASE_SERVER_FAILED'
  | 'INVALID_SCHEMA_NAME'
  | 'MIGRATION_CHECKSUM_MISMATCH'
  | 'SCHEMA_VERSION'

/**
 * Base class of every error skiplock throws. Branch on `code`, which stays stable across
 * copies of the package; `message` names the field, the value and what was expected.
 */
export class SkiplockError extends Error {
  readonly code: SkiplockErrorCode

  constructor(code: SkiplockErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** The database at `host:port` did not accept a connection. The password is never part of it. */
export class DatabaseUnreachableError extends SkiplockError {
  readonly host: string
  readonly port: number

  constructor(data: { host: string; port: number }, options?: { cause?: unknown }) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : ''
    super('DATABASE_UNREACHABLE', `cannot connect to PostgreSQL at ${data.host}:${data.port}${reason}`, options)
    this.host = data.host
    this.port = data.port
  }
}

/** A PostgreSQL server that skiplock tried to start (embedded or container) did not come up. */
export class DatabaseServerError extends SkiplockError {
  readonly kind: 'embedded' | 'container'

  constructor(data: { kind: 'embedded' | 'container'; reason: string }, options?: { cause?: unknown }) {
    super('DATABASE_SERVER_FAILED', `the ${data.kind} PostgreSQL server failed to start: ${data.reason}`, options)
    this.kind = data.kind
  }
}

/** A schema name that is not a plain lowercase SQL identifier. */
export class InvalidSchemaNameError extends SkiplockError {
  readonly schema: string

  constructor(data: { schema: string }) {
    super(
      'INVALID_SCHEMA_NAME',
      `schema name ${JSON.stringify(data.schema)} is invalid: expected 1 to 63 characters of a-z, 0-9 and _, not starting with a digit`,
    )
    this.schema = data.schema
  }
}

/** An applied migration's file was edited after it ran: migrations are history, add a new one instead. */
export class MigrationChecksumError extends SkiplockError {
  readonly migration: string
  readonly expected: string
  readonly actual: string

  constructor(data: { migration: string; expected: string; actual: string }) {
    super(
      'MIGRATION_CHECKSUM_MISMATCH',
      `migration ${data.migration} was edited after it was applied (recorded checksum ${data.expected}, file checksum ${data.actual}); add a new migration instead`,
    )
    this.migration = data.migration
    this.expected = data.expected
    this.actual = data.actual
  }
}

/** The database holds migrations this version of skiplock does not know: it is newer than the code. */
export class SchemaVersionError extends SkiplockError {
  readonly expected: string
  readonly actual: string

  constructor(data: { expected: string; actual: string }) {
    super(
      'SCHEMA_VERSION',
      `database schema is at migration ${data.actual} but this skiplock knows migrations up to ${data.expected}; upgrade skiplock`,
    )
    this.expected = data.expected
    this.actual = data.actual
  }
}
