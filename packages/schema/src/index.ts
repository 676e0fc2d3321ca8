export {
  DatabaseServerError,
  DatabaseUnreachableError,
  InvalidSchemaNameError,
  MigrationChecksumError,
  SchemaVersionError,
  SkiplockError,
  type SkiplockErrorCode,
} from './errors.ts'
export { checkSchema, migrate, type Connection, type MigrateOptions, type MigrateResult } from './migrate.ts'
export { DEFAULT_SCHEMA, quoteSchemaName, renderSql } from './schema-name.ts'
export type {
  DB,
  SkiplockFinishedJobs as FinishedJobsTable,
  SkiplockJobs as JobsTable,
  SkiplockJobState as JobState,
  SkiplockWorkers as WorkersTable,
} from './generated/db.ts'
