export type { JobResult, WorkerResultSummary } from '@skiplock/schema'
export {
  getResult,
  listResults,
  type ListResultsOptions,
  type ReadResultsOptions,
  type ResultsSummary,
  summarizeResults,
  type SummarizeResultsOptions,
} from './read-results.ts'
export { createResultStore, type ResultStore, type ResultStoreOptions } from './result-store.ts'
