import type { Command } from 'commander'

import { type Client, SkiplockError } from '../../index.ts'
import { addConnectionOptions, type ConnectionOptions, withSession } from '../connection.ts'
import { CliUsageError, describeFailure, EXIT_FAILURE, printError } from '../errors.ts'
import { createProgress, print } from '../output.ts'
import { collectJobIds } from '../parsers.ts'

interface RetryCommandOptions extends ConnectionOptions {
  allFailed?: boolean
  queue?: string
}

/** Failed jobs read per round trip by `--all-failed`. */
const PAGE_SIZE = 1000

/** `skiplock retry <id...>` and `skiplock retry --all-failed`: puts failed or cancelled jobs back in the queue. */
export function registerRetryCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('retry')
      .description('put failed or cancelled jobs back in the queue with fresh attempts')
      .argument('[ids...]', 'job ids', collectJobIds)
      .option('--all-failed', 'retry every failed job (not cancelled ones)')
      .option('--queue <name>', 'with --all-failed: only jobs of this queue'),
  ).action(async (jobIds: string[] | undefined, options: RetryCommandOptions) => {
    const ids = jobIds ?? []
    if (options.allFailed && ids.length > 0) throw new CliUsageError('give job ids or --all-failed, not both')
    if (!options.allFailed && ids.length === 0) throw new CliUsageError('give job ids to retry, or --all-failed')
    if (options.queue !== undefined && !options.allFailed) throw new CliUsageError('--queue only applies with --all-failed')
    await withSession(options, async ({ client }) => {
      if (options.allFailed) await retryAllFailed(client, options.queue)
      else await retryEach(client, ids)
    })
  })
}

/** Retries each job, going on past failures: each is reported, and the exit status is 1 if any failed. */
async function retryEach(client: Client, jobIds: readonly string[]): Promise<void> {
  for (const jobId of jobIds) {
    try {
      const job = await client.retry(jobId)
      print(`retried job ${job.id} (${job.taskName})`)
    } catch (error) {
      printError(describeFailure(error))
      process.exitCode = EXIT_FAILURE
    }
  }
}

/**
 * Retries failed jobs page by page until none is left. A job another process retried or pruned
 * meanwhile is skipped and counted; a job that failed again after its retry here is not retried twice.
 */
async function retryAllFailed(client: Client, queue: string | undefined): Promise<void> {
  const progress = createProgress('retried')
  const seenJobIds = new Set<string>()
  let retriedCount = 0
  let skippedCount = 0
  try {
    for (;;) {
      const page = await client.listJobs({ state: 'failed', queue, limit: PAGE_SIZE })
      const fresh = page.filter((job) => !seenJobIds.has(job.id))
      if (fresh.length === 0) break
      for (const job of fresh) {
        seenJobIds.add(job.id)
        try {
          await client.retry(job.id)
          retriedCount += 1
        } catch (error) {
          if (!(error instanceof SkiplockError && (error.code === 'JOB_STATE' || error.code === 'JOB_NOT_FOUND'))) throw error
          skippedCount += 1
        }
        progress.update(retriedCount)
      }
    }
  } finally {
    progress.done()
  }
  const skipped = skippedCount > 0 ? `; skipped ${skippedCount} retried or pruned meanwhile` : ''
  print(`retried ${retriedCount} failed ${retriedCount === 1 ? 'job' : 'jobs'}${queue === undefined ? '' : ` of queue ${queue}`}${skipped}`)
}
