export {
  DatabaseUnreachableError,
  InvalidOptionError,
  InvalidTableNameError,
  MonitorError,
  type MonitorErrorCode,
  MonitorStoppedError,
  PostmasterPidError,
  ProcessNotFoundError,
  ProcessUnreadableError,
  TableNotFoundError,
} from './errors.ts'
export { type Monitor, type MonitorOptions, type Sampler, type Sink, startMonitor } from './monitor.ts'
export type {
  ConnectionsSample,
  DatabaseSample,
  ErrorSample,
  ProcessSample,
  Sample,
  SampleData,
  SampleKind,
} from './samples.ts'
export { connectionsSampler, type ConnectionsSamplerOptions } from './samplers/connections-sampler.ts'
export { databaseSampler, type DatabaseSamplerOptions } from './samplers/database-sampler.ts'
export { postgresServerPid } from './samplers/postgres-server-pid.ts'
export { processSampler, type ProcessSamplerOptions } from './samplers/process-sampler.ts'
export { callbackSink } from './sinks/callback-sink.ts'
export { jsonlSink } from './sinks/jsonl-sink.ts'
export { tableSink, type TableSinkOptions } from './sinks/table-sink.ts'
