export { cancelJob } from './cancel-job.ts'
export { completeJobs, type Completion } from './complete-jobs.ts'
export { type AttributeValue, deferJobIds, deferJobs, type DeferJobsArgs } from './defer-jobs.ts'
export { configureQueue, type QueueLimits } from './configure-queue.ts'
export { failJobs, type FailOutcome, type Failure } from './fail-jobs.ts'
export { explainFetchJobs, fetchJobs, type FetchJobsArgs } from './fetch-jobs.ts'
export { toJob, type AnyJobRow, type Job, type JobError, type JobRow, type JobState } from './job.ts'
export { deferPeriodicJob, pruneJobs, raiseClaimFloor, rescueJobs, type RescuedJob } from './maintenance.ts'
export { findJobs, hasPendingJobs, listJobs, queueStats, type QueueStats } from './read-jobs.ts'
export {
  countResults,
  findJobResults,
  type JobResult,
  type JobResultRow,
  listJobResults,
  readRunJobs,
  type ResultCounts,
  type RunJobRow,
  storeResults,
  summarizeWorkerResults,
  toJobResult,
  type WorkerResultSummary,
} from './results.ts'
export { retryJob } from './retry-job.ts'
export { heartbeat, registerWorker, releaseJobs, unregisterWorker } from './workers.ts'
