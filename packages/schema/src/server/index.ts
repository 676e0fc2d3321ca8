// The PostgreSQL provider shared by tests, the CLI and the benchmark: `@skiplock/schema/server`.
export {
  assertReachable,
  startDatabaseServer,
  type DatabaseServer,
  type ServerSettings,
  type StartDatabaseServerOptions,
} from './database-server.ts'
