import { SchemaVersionError } from '@skiplock/schema'
import { CommanderError } from 'commander'

import { SkiplockError } from '../index.ts'

/**
 * The command line was wrong in a way commander cannot see (no database URL, `retry` with neither ids
 * nor `--all-failed`): the CLI exits 2, like any other usage error.
 */
export class CliUsageError extends Error {
  readonly code = 'CLI_USAGE'

  constructor(message: string) {
    super(message)
    this.name = 'CliUsageError'
  }
}

/** Exit statuses of the CLI: scripts branch on them. */
export const EXIT_OK = 0
/** The command ran and failed: a skiplock error, an unreachable database, a failed job operation. */
export const EXIT_FAILURE = 1
/** The command line itself was wrong; nothing was attempted. */
export const EXIT_USAGE = 2

const secrets = new Set<string>()

/**
 * Remembers the password in `url` so that no message the CLI prints shows it, whatever error
 * (ours, pg's, a user module's) carries it.
 */
export function hideUrlPassword(url: string): void {
  try {
    const encodedPassword = new URL(url).password
    // Both spellings: a message may quote the URL as given or the password as pg decoded it.
    if (encodedPassword) secrets.add(encodedPassword).add(decodeURIComponent(encodedPassword))
  } catch {
    // Not a URL that `new URL` parses: pg will reject it with its own message, which holds no password field.
  }
}

/** Replaces every remembered password in `text` with `***`. */
export function redactSecrets(text: string): string {
  let redacted = text
  for (const secret of secrets) redacted = redacted.replaceAll(secret, '***')
  return redacted
}

/**
 * Prints `error` on stderr the way a person needs it and returns the exit status: commander's own
 * messages are already printed, a skiplock error shows its stable code, anything else its message
 * (and a PostgreSQL error its SQLSTATE).
 */
export function reportError(error: unknown): number {
  if (error instanceof CommanderError) {
    // Help and version "errors" are successes; every other commander error is bad usage.
    return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE
  }
  if (error instanceof CliUsageError) {
    printError(`${error.message}\n(run skiplock --help for usage)`)
    return EXIT_USAGE
  }
  printError(describeFailure(error))
  if (error instanceof SchemaVersionError && error.isDatabaseBehind) printError('run skiplock migrate to bring the database up to date')
  return EXIT_FAILURE
}

/** One line for a failure: `<message> (<code>)` for skiplock errors, `<message> (SQLSTATE x)` for PostgreSQL ones. */
export function describeFailure(error: unknown): string {
  if (error instanceof SkiplockError) return `${error.message} (${error.code})`
  if (error instanceof Error) {
    const sqlState = (error as { code?: unknown }).code
    const isSqlState = typeof sqlState === 'string' && /^[0-9A-Z]{5}$/.test(sqlState)
    return isSqlState ? `${error.message} (SQLSTATE ${sqlState})` : error.message
  }
  return String(error)
}

/** Writes `skiplock: <message>` on stderr, without any remembered password. */
export function printError(message: string): void {
  process.stderr.write(`skiplock: ${redactSecrets(message)}\n`)
}
