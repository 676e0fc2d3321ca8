/** Stable codes callers branch on; messages are for humans. */
export type SkiplockErrorCode =
  | 'DATABASE_UNREACHABLE'
  | 'DATABASE_SERVER_FAILED'
  | 'INVALID_SCHEMA_NAME'
  | 'MIGRATION_CHECKSUM_MISMATCH'
  | 'SCHEMA_VERSION'
  | 'INVALID_QUEUE_NAME'
  | 'PAYLOAD_TOO_LARGE'
  | 'INVALID_PAYLOAD'
  | 'QUEUEING_LOCK_TAKEN'
  | 'INVALID_ARGUMENT'
  | 'WORKER_NOT_REGISTERED'
  | 'JOB_NOT_FOUND'
  | 'JOB_STATE'
  | 'UNKNOWN_TASK'
  | 'RESULT_TIMEOUT'
  | 'JOB_FAILED'
  | 'JOB_CANCELLED'
  | 'JOB_TIMEOUT'
  | 'WORKER_STOPPED'
  | 'NON_RETRYABLE'
  | 'CONNECTION_BUDGET_EXCEEDED'
  | 'QUEUE_FULL'
  | 'DEPENDENCY_CYCLE'

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
      `schema name ${JSON.stringify(data.schema)} is invalid: expected 1 to 54 characters of a-z, 0-9 and _, not starting with a digit`,
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

/**
 * The database's migrations differ from this package's: it is behind (run `migrate`) or ahead
 * (it holds migrations this version of skiplock does not know: upgrade skiplock).
 */
export class SchemaVersionError extends SkiplockError {
  readonly expected: string
  readonly actual: string
  readonly isDatabaseBehind: boolean

  constructor(data: { expected: string; actual: string }) {
    // Migration names start with a zero-padded number, so they sort in order; 'none' means never migrated.
    const isDatabaseBehind = data.actual === 'none' || data.actual < data.expected
    super(
      'SCHEMA_VERSION',
      isDatabaseBehind
        ? `database schema is at migration ${data.actual} but this skiplock needs ${data.expected}; run migrate`
        : `database schema is at migration ${data.actual} but this skiplock knows migrations up to ${data.expected}; upgrade skiplock`,
    )
    this.expected = data.expected
    this.actual = data.actual
    this.isDatabaseBehind = isDatabaseBehind
  }
}

interface ErrorOptions {
  /** Overrides the default message, e.g. with the database's own wording. */
  message?: string
  cause?: unknown
}

/** A queue name that is not 1 to 128 characters of letters, digits and `_ . : / -` (SQLSTATE SK001). */
export class InvalidQueueNameError extends SkiplockError {
  readonly queueName: string

  constructor(data: { queueName: string }, options: ErrorOptions = {}) {
    super(
      'INVALID_QUEUE_NAME',
      options.message ??
        `queue name ${JSON.stringify(data.queueName)} is invalid: expected 1 to 128 characters of letters, digits and _ . : / -`,
      options,
    )
    this.queueName = data.queueName
  }
}

/** A payload whose JSON text is larger than the limit (SQLSTATE SK002). */
export class PayloadTooLargeError extends SkiplockError {
  readonly taskName: string | undefined
  readonly sizeBytes: number
  readonly maxBytes: number

  constructor(data: { taskName?: string; sizeBytes: number; maxBytes: number }, options: ErrorOptions = {}) {
    super(
      'PAYLOAD_TOO_LARGE',
      options.message ??
        `payload${data.taskName ? ` of task ${JSON.stringify(data.taskName)}` : ''} is ${data.sizeBytes} bytes of JSON, over the limit of ${data.maxBytes} bytes`,
      options,
    )
    this.taskName = data.taskName
    this.sizeBytes = data.sizeBytes
    this.maxBytes = data.maxBytes
  }
}

/**
 * A payload that fails its task's validator, that JSON cannot carry, or that PostgreSQL cannot store
 * (`\u0000`, lone surrogates: SQLSTATE SK003).
 */
export class InvalidPayloadError extends SkiplockError {
  readonly taskName: string | undefined
  readonly reason: string

  constructor(data: { taskName?: string; reason: string }, options: ErrorOptions = {}) {
    super(
      'INVALID_PAYLOAD',
      options.message ?? `payload${data.taskName ? ` of task ${JSON.stringify(data.taskName)}` : ''} is invalid: ${data.reason}`,
      options,
    )
    this.taskName = data.taskName
    this.reason = data.reason
  }
}

/** A waiting job already holds this queueing lock (SQLSTATE SK004). */
export class QueueingLockTakenError extends SkiplockError {
  readonly queueingLock: string

  constructor(data: { queueingLock: string }, options: ErrorOptions = {}) {
    super(
      'QUEUEING_LOCK_TAKEN',
      options.message ?? `a waiting job already holds the queueing lock ${JSON.stringify(data.queueingLock)}`,
      options,
    )
    this.queueingLock = data.queueingLock
  }
}

/** An argument outside its allowed range (SQLSTATE SK005). */
export class InvalidArgumentError extends SkiplockError {
  readonly argument: string | undefined

  constructor(data: { argument?: string; reason: string }, options: ErrorOptions = {}) {
    super('INVALID_ARGUMENT', options.message ?? `${data.argument ?? 'argument'} is invalid: ${data.reason}`, options)
    this.argument = data.argument
  }
}

/** The worker was presumed dead and its jobs were rescued (SQLSTATE SK006); it must register again. */
export class WorkerNotRegisteredError extends SkiplockError {
  readonly workerId: string

  constructor(data: { workerId: string }, options: ErrorOptions = {}) {
    super(
      'WORKER_NOT_REGISTERED',
      options.message ?? `worker ${data.workerId} is not registered: it was presumed dead and its jobs were rescued`,
      options,
    )
    this.workerId = data.workerId
  }
}

/** No job has this id (SQLSTATE SK007). */
export class JobNotFoundError extends SkiplockError {
  readonly jobId: string

  constructor(data: { jobId: string }, options: ErrorOptions = {}) {
    super('JOB_NOT_FOUND', options.message ?? `job ${data.jobId} does not exist`, options)
    this.jobId = data.jobId
  }
}

/** The job is not in a state that allows the operation (SQLSTATE SK008). */
export class JobStateError extends SkiplockError {
  readonly jobId: string

  constructor(data: { jobId: string; reason: string }, options: ErrorOptions = {}) {
    super('JOB_STATE', options.message ?? `job ${data.jobId}: ${data.reason}`, options)
    this.jobId = data.jobId
  }
}

/** The queue holds its maximum of waiting jobs (SQLSTATE SK009); nothing of the refused call was written. */
export class QueueFullError extends SkiplockError {
  readonly queueName: string
  readonly maxWaiting: number
  readonly waiting: number
  readonly requested: number

  constructor(data: { queueName: string; maxWaiting: number; waiting: number; requested: number }, options: ErrorOptions = {}) {
    super(
      'QUEUE_FULL',
      options.message ??
        `queue ${JSON.stringify(data.queueName)} is full: ${data.waiting} of ${data.maxWaiting} jobs waiting, ${data.requested} more refused`,
      options,
    )
    this.queueName = data.queueName
    this.maxWaiting = data.maxWaiting
    this.waiting = data.waiting
    this.requested = data.requested
  }
}

/** Jobs of one graph depend on each other in a circle, so none of them could ever run. */
export class DependencyCycleError extends SkiplockError {
  /** The keys of the jobs on the cycle, the first repeated at the end. */
  readonly cycle: readonly string[]

  constructor(data: { cycle: readonly string[] }, options: ErrorOptions = {}) {
    super('DEPENDENCY_CYCLE', options.message ?? `the jobs depend on each other in a cycle: ${data.cycle.join(' -> ')}`, options)
    this.cycle = data.cycle
  }
}
