import type { CompletionHook } from '@skiplock/core'
import { DEFAULT_SCHEMA, InvalidArgumentError, quoteSchemaName, storeResults, toQueryable } from '@skiplock/schema'

/** Options of {@link createResultStore}. */
export interface ResultStoreOptions {
  /** Stored with each result, so reports can say which worker completed what. Use one name per worker. */
  workerName: string
  /** Default `skiplock`: the schema the worker uses. */
  schema?: string
}

/** A result store for one worker. */
export interface ResultStore {
  /** Pass as the worker's `onJobsCompleting`. */
  readonly hook: CompletionHook
}

/**
 * Creates a result store whose `hook` writes a `job_results` row for every job a worker completes, in the
 * transaction that completes it: one statement per batch, committed with the batch or not at all, so a
 * crash never leaves a completed job without its result, or a result without its completion. Transactional
 * tasks get theirs in their own transaction too. A failed write rolls the completion back and the worker
 * retries it; a second result for one job is refused by the database (a unique violation).
 * @throws {InvalidArgumentError} when `workerName` is empty.
 * @throws {InvalidSchemaNameError} when `schema` is not a plain lowercase identifier.
 * @example
 * const worker = createWorker({ connectionString, tasks, onJobsCompleting: createResultStore({ workerName: 'w_1' }).hook })
 */
export function createResultStore(options: ResultStoreOptions): ResultStore {
  const { workerName } = options
  const schema = options.schema ?? DEFAULT_SCHEMA
  if (typeof workerName !== 'string' || workerName === '') {
    throw new InvalidArgumentError({ argument: 'workerName', reason: `${JSON.stringify(workerName)} is not a non-empty string` })
  }
  quoteSchemaName(schema)
  return {
    hook: async (tx, completedJobs) => {
      await storeResults(
        toQueryable(tx),
        schema,
        completedJobs.map((job) => job.id),
        workerName,
      )
    },
  }
}
