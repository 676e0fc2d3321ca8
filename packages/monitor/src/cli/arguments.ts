import { parseArgs } from 'node:util'

import { parseTableName } from '../table-name.ts'

/** The command line was wrong: the CLI prints the message and the usage, and exits 2. */
export class CliUsageError extends Error {
  readonly code = 'CLI_USAGE'

  constructor(message: string) {
    super(message)
    this.name = 'CliUsageError'
  }
}

/** A process tree to follow, from `--pid PID[:name]`. */
export interface PidArgument {
  readonly pid: number
  readonly name: string
}

/** What the command line asked for, checked. */
export interface CliArguments {
  readonly databaseUrl: string
  readonly pids: readonly PidArgument[]
  readonly postgresDataDirectory: string | undefined
  readonly tables: readonly string[]
  readonly outPath: string | undefined
  readonly databaseTable: string | undefined
  readonly intervalMs: number
  /** Undefined: until SIGINT or SIGTERM. */
  readonly durationMs: number | undefined
}

/** Shown by `--help` and after a usage error. */
export const USAGE = `usage: skiplock-monitor --database-url URL [options]

Samples PostgreSQL connections and activity, and CPU/PSS of process trees, until SIGINT/SIGTERM or --duration.

  --database-url URL       database to sample (default: env DATABASE_URL)
  --pid PID[:name]         also sample this process and its descendants (repeatable)
  --postgres-data-dir DIR  also sample the PostgreSQL server of DIR (pid from DIR/postmaster.pid)
  --table schema.table     report dead tuples of this table (repeatable)
  --out FILE               append samples as JSON lines to FILE (default: stdout, unless --db-table)
  --db-table name          insert samples into this table of the database (created if missing)
  --interval DURATION      time between samples, e.g. 500ms, 1s (default 1s)
  --duration DURATION      stop after this long, e.g. 60s, 5m (default: until interrupted)
  -h, --help               show this help

A summary of each round goes to stderr (every 10th round when stderr is not a terminal).
Exit status: 0 when stopped, 1 when the database is unreachable, 2 on bad usage.`

/**
 * Parses and checks `argv` (without node and the script); `'help'` when help was asked for.
 * @throws {CliUsageError} for an unknown option, a missing database URL or a malformed value.
 */
export function parseCliArguments(argv: readonly string[], env: NodeJS.ProcessEnv): CliArguments | 'help' {
  let values
  try {
    ;({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'database-url': { type: 'string' },
        pid: { type: 'string', multiple: true },
        'postgres-data-dir': { type: 'string' },
        table: { type: 'string', multiple: true },
        out: { type: 'string' },
        'db-table': { type: 'string' },
        interval: { type: 'string', default: '1s' },
        duration: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }))
  } catch (error) {
    // parseArgs' messages name the option and say what was wrong; they hold no values worth hiding.
    throw new CliUsageError(error instanceof Error ? error.message : String(error))
  }

  if (values.help) return 'help'
  const databaseUrl = values['database-url'] ?? env['DATABASE_URL'] ?? ''
  if (databaseUrl === '') throw new CliUsageError('no database: pass --database-url URL or set DATABASE_URL')
  const tables = values.table ?? []
  for (const table of [...tables, ...(values['db-table'] === undefined ? [] : [values['db-table']])]) checkTableName(table)
  const intervalMs = parseDuration('--interval', values.interval)
  return {
    databaseUrl,
    pids: (values.pid ?? []).map(parsePidArgument),
    postgresDataDirectory: values['postgres-data-dir'],
    tables,
    outPath: values.out,
    databaseTable: values['db-table'],
    intervalMs,
    durationMs: values.duration === undefined ? undefined : parseDuration('--duration', values.duration),
  }
}

/**
 * Milliseconds in a duration such as `250ms`, `1s`, `1.5s`, `5m` or `1h`. A bare number is refused: it
 * would be a guess between seconds and milliseconds.
 * @throws {CliUsageError} naming `option` otherwise.
 */
export function parseDuration(option: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim())
  const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
  const durationMs = match ? Number(match[1]) * unitMs[match[2] as keyof typeof unitMs] : Number.NaN
  if (!(durationMs >= 1)) throw new CliUsageError(`${option} must be a duration of at least 1ms such as 500ms, 1s, 5m or 1h, got ${JSON.stringify(text)}`)
  return durationMs
}

function parsePidArgument(text: string): PidArgument {
  const match = /^(\d+)(?::(.+))?$/.exec(text)
  const pid = Number(match?.[1])
  if (!match || !Number.isSafeInteger(pid) || pid <= 0) {
    throw new CliUsageError(`--pid must be PID or PID:name with a positive PID, got ${JSON.stringify(text)}`)
  }
  return { pid, name: match[2] ?? `pid ${pid}` }
}

function checkTableName(name: string): void {
  try {
    parseTableName(name)
  } catch (error) {
    throw new CliUsageError(error instanceof Error ? error.message : String(error))
  }
}
