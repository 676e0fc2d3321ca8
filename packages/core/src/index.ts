export {
  type AttributeValue,
  DependencyCycleError,
  InvalidArgumentError,
  InvalidPayloadError,
  InvalidQueueNameError,
  type Job,
  type JobError,
  JobNotFoundError,
  type JobState,
  JobStateError,
  migrate,
  PayloadTooLargeError,
  QueueFullError,
  QueueingLockTakenError,
  type QueueLimits,
  type QueueStats,
  SkiplockError,
  type SkiplockErrorCode,
  WorkerNotRegisteredError,
} from '@skiplock/schema'
export { createClient, type Client, type ClientOptions, type DeferManyOptions } from './client/client.ts'
export {
  type BackoffOptions,
  defineTask,
  type JobContext,
  type JobOptions,
  type Task,
  type TransactionalJobContext,
} from './client/define-task.ts'
export type { AttributeFilter, Attributes } from './client/attributes.ts'
export type { DeferOptions, WaitForRoom } from './client/defer.ts'
export type { GraphNode } from './client/graph.ts'
export {
  assertConnectionBudget,
  checkConnectionBudget,
  type ConnectionBudget,
  ConnectionBudgetExceededError,
  type ConnectionPlan,
  connectionsPerWorker,
} from './connection-budget.ts'
export {
  JobCancelledError,
  JobFailedError,
  JobTimeoutError,
  NonRetryableError,
  ResultTimeoutError,
  UnknownTaskError,
  WorkerStoppedError,
} from './errors.ts'
export type { Logger } from './logger.ts'
export type { CompletionHook } from './worker/completer.ts'
export type { PeriodicTask } from './worker/periodic-scheduler.ts'
export { type ClaimPlan, createWorker, type ExplainClaimsOptions, Worker, type WorkerEvents, type WorkerOptions } from './worker/worker.ts'
