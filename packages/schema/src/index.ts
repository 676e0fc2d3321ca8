export { translateDatabaseError, type ErrorContext } from './database-errors.ts'
export {
  DatabaseServerError,
  DatabaseUnreachableError,
  DependencyCycleError,
  InvalidArgumentError,
  InvalidPayloadError,
  InvalidQueueNameError,
  InvalidSchemaNameError,
  JobNotFoundError,
  JobStateError,
  MigrationChecksumError,
  PayloadTooLargeError,
  QueueFullError,
  QueueingLockTakenError,
  SchemaVersionError,
  SkiplockError,
  WorkerNotRegisteredError,
  type SkiplockErrorCode,
} from './errors.ts'
export * from './functions/index.ts'
export type { DB } from './generated/db.ts'
export { checkSchema, migrate, type MigrateOptions, type MigrateResult, type MigrationConnection } from './migrate.ts'
export { toQueryable, type Connection, type KyselyExecutor, type Queryable } from './queryable.ts'
export { DEFAULT_SCHEMA, quoteSchemaName, renderSql } from './schema-name.ts'
