import { pruneJobs, toQueryable } from '@skiplock/schema'
import type { Command } from 'commander'

import { addConnectionOptions, type ConnectionOptions, withSession } from '../connection.ts'
import { createProgress, formatTime, print } from '../output.ts'
import { parseDurationMs } from '../parsers.ts'

interface PruneCommandOptions extends ConnectionOptions {
  olderThan: number
}

/** `skiplock prune --older-than 7d`: deletes finished jobs, in batches, and prints how many. */
export function registerPruneCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('prune')
      .description('delete succeeded, failed and cancelled jobs that finished longer ago than a duration')
      .requiredOption('--older-than <duration>', 'e.g. 7d, 12h, 30m, 1h30m (units: ms, s, m, h, d, w)', parseDurationMs),
  ).action(async (options: PruneCommandOptions) => {
    // Fixed once, so the loop ends even while workers keep finishing jobs.
    const finishedBefore = new Date(Date.now() - options.olderThan)
    const progress = createProgress('pruned')
    let prunedCount = 0
    try {
      await withSession(options, async ({ pool, schema }) => {
        const db = toQueryable(pool)
        // prune_jobs deletes a bounded batch per call, to keep locks and WAL short: repeat until none is left.
        for (;;) {
          const deletedCount = await pruneJobs(db, schema, { finishedBefore })
          if (deletedCount === 0) break
          prunedCount += deletedCount
          progress.update(prunedCount)
        }
      })
    } finally {
      progress.done()
    }
    print(`pruned ${prunedCount} ${prunedCount === 1 ? 'job' : 'jobs'} finished before ${formatTime(finishedBefore)}`)
  })
}
