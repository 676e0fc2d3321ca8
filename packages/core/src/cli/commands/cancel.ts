import type { Command } from 'commander'

import { addConnectionOptions, type ConnectionOptions, withSession } from '../connection.ts'
import { describeFailure, EXIT_FAILURE, printError } from '../errors.ts'
import { print } from '../output.ts'
import { collectJobIds } from '../parsers.ts'

/** `skiplock cancel <id...>`: cancels waiting jobs and asks the workers of running ones to abort them. */
export function registerCancelCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('cancel')
      .description('cancel waiting jobs; for running ones, ask their worker to abort them')
      .argument('<ids...>', 'job ids', collectJobIds),
  ).action(async (jobIds: string[], options: ConnectionOptions) => {
    await withSession(options, async ({ client }) => {
      // Go on past a failure, so one bad id does not leave the others uncancelled; the exit status says so.
      for (const jobId of jobIds) {
        try {
          print(describeCancellation(jobId, await client.cancel(jobId)))
        } catch (error) {
          printError(describeFailure(error))
          process.exitCode = EXIT_FAILURE
        }
      }
    })
  })
}

function describeCancellation(jobId: string, state: string): string {
  switch (state) {
    case 'cancelled':
      return `cancelled job ${jobId}`
    case 'doing':
      return `job ${jobId} is running: asked its worker to abort it`
    default:
      return `job ${jobId} already ${state}: nothing to cancel`
  }
}
