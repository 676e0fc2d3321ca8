import { Command } from 'commander'

import { registerCancelCommand } from './commands/cancel.ts'
import { registerCheckConnectionsCommand } from './commands/check-connections.ts'
import { registerDeferCommand } from './commands/defer.ts'
import { registerJobsCommand } from './commands/jobs.ts'
import { registerMigrateCommand } from './commands/migrate.ts'
import { registerPruneCommand } from './commands/prune.ts'
import { registerRetryCommand } from './commands/retry.ts'
import { registerShowCommand } from './commands/show.ts'
import { registerStatsCommand } from './commands/stats.ts'
import { registerWorkerCommand } from './commands/worker.ts'
import { EXIT_OK, reportError } from './errors.ts'

/** Builds the `skiplock` command and its subcommands. */
export function createProgram(): Command {
  const program = new Command('skiplock')
    .description('skiplock: a PostgreSQL job queue. Inspect and manage jobs, run migrations, run workers.')
    // Throw instead of exiting, so usage errors can exit 2 rather than commander's 1. Subcommands
    // made with .command() inherit this, so it must come before them.
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', '\nEvery command takes --database-url (default: env DATABASE_URL) and --schema (default: skiplock).')
  registerMigrateCommand(program)
  registerDeferCommand(program)
  registerWorkerCommand(program)
  registerStatsCommand(program)
  registerJobsCommand(program)
  registerShowCommand(program)
  registerRetryCommand(program)
  registerCancelCommand(program)
  registerPruneCommand(program)
  registerCheckConnectionsCommand(program)
  return program
}

/**
 * Runs the CLI on `argv` (as `process.argv`) and returns the exit status: 0 on success, 1 when the
 * command failed, 2 for bad usage.
 */
export async function runCli(argv: readonly string[]): Promise<number> {
  try {
    await createProgram().parseAsync([...argv])
  } catch (error) {
    return reportError(error)
  }
  // A command that went on past failures (retry or cancel of several ids) sets the status itself.
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK
}
