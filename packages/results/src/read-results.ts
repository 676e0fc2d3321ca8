import {
  type Connection,
  countResults,
  DEFAULT_SCHEMA,
  findJobResults,
  type JobResult,
  listJobResults,
  summarizeWorkerResults,
  toQueryable,
  type WorkerResultSummary,
} from '@skiplock/schema'

/** Where to read: the schema the workers use (default `skiplock`). */
export interface ReadResultsOptions {
  schema?: string
}

/** Options of {@link listResults}: every filter given must match. */
export interface ListResultsOptions extends ReadResultsOptions {
  /** Only results stored by the worker of this name. */
  workerName?: string
  queueName?: string
  /** Default 100. */
  limit?: number
}

/** Options of {@link summarizeResults}. */
export interface SummarizeResultsOptions extends ReadResultsOptions {
  queueName: string
}

/** What the workers completed in a queue. */
export interface ResultsSummary {
  queueName: string
  /** Result rows stored for the queue. */
  results: number
  /** Jobs those results belong to: equal to `results`, since a job never has two. */
  distinctJobs: number
  /** The queue's succeeded jobs: equal to `results` when every worker completing them stored results. */
  succeededJobs: number
  /** One entry per worker name, sorted by name. */
  workers: WorkerResultSummary[]
}

/**
 * Reads the stored result of one job; `undefined` when it has none (not succeeded yet, or completed by a
 * worker without a result store).
 * @example
 * const result = await getResult(pool, job.id) // { jobId, workerName, attempt, output, finishedAt, ... }
 */
export async function getResult<Output = unknown>(
  connection: Connection,
  jobId: string,
  options: ReadResultsOptions = {},
): Promise<JobResult<Output> | undefined> {
  const [result] = await findJobResults(toQueryable(connection), options.schema ?? DEFAULT_SCHEMA, [jobId])
  return result as JobResult<Output> | undefined
}

/** Lists stored results, most recently finished first, filtered by worker name and/or queue. */
export async function listResults<Output = unknown>(connection: Connection, options: ListResultsOptions = {}): Promise<JobResult<Output>[]> {
  const { schema, ...filters } = options
  return (await listJobResults(toQueryable(connection), schema ?? DEFAULT_SCHEMA, filters)) as JobResult<Output>[]
}

/**
 * Summarizes a queue's results: counts that prove effectively-once (results = distinct jobs = succeeded
 * jobs) and, per worker, jobs completed, first and last finish, and jobs per minute. The counts and the
 * per-worker rows are two reads: while workers run, they may be a few jobs apart.
 */
export async function summarizeResults(connection: Connection, options: SummarizeResultsOptions): Promise<ResultsSummary> {
  const db = toQueryable(connection)
  const schema = options.schema ?? DEFAULT_SCHEMA
  const [counts, workers] = await Promise.all([countResults(db, schema, options.queueName), summarizeWorkerResults(db, schema, options.queueName)])
  return { queueName: options.queueName, ...counts, workers }
}
