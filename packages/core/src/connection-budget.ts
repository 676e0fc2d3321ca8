import { InvalidArgumentError, SkiplockError } from '@skiplock/schema'
import pg from 'pg'

import type { WorkerOptions } from './worker/worker.ts'

/** A fleet about to start: how many processes, each holding at most this many connections. */
export interface ConnectionPlan {
  processes: number
  /** Connections one process opens at most; {@link connectionsPerWorker} derives it from worker options. */
  connectionsPerProcess: number
}

/** What the server can give a fleet, as {@link checkConnectionBudget} read it. */
export interface ConnectionBudget {
  /** Connections the fleet opens at most: processes times connections per process. */
  needed: number
  /** Connections a role without reserved slots can still open: the limit, less the reserved slots and those open now. */
  available: number
  /** Whether `needed` is at most `available`. */
  fits: boolean
  /** The server's `max_connections`. */
  maxConnections: number
  /** `superuser_reserved_connections` plus `reserved_connections` (PostgreSQL 16 and later, else 0). */
  reservedConnections: number
  /** Client sessions open now, besides the one that read the budget. */
  openConnections: number
}

/**
 * Connections one worker holds at most, the way {@link WorkerOptions} sizes them: its pool, plus one
 * for LISTEN unless `listen` is false. Default pool: 1, or 2 without LISTEN or with a transactional task.
 * @example
 * connectionsPerWorker({}) // 2
 * connectionsPerWorker({ poolSize: 4, listen: false }) // 4
 */
export function connectionsPerWorker(options: Pick<WorkerOptions, 'poolSize' | 'listen'> & { tasks?: WorkerOptions['tasks'] }): number {
  const isListening = options.listen !== false
  const hasTransactionalTask = options.tasks?.some((task) => task.definition.transactional) ?? false
  const poolSize = options.poolSize ?? (!isListening || hasTransactionalTask ? 2 : 1)
  return poolSize + (isListening ? 1 : 0)
}

/**
 * Reads how many connections the server at `connectionString` can still give, and compares it with
 * what `plan` needs. Ordinary roles cannot use the reserved slots, so they do not count as available;
 * sessions of other roles this role may not inspect count as open, to err on the safe side.
 * Works on PostgreSQL 15 and later.
 * @example
 * const budget = await checkConnectionBudget(url, { processes: 12, connectionsPerProcess: connectionsPerWorker({}) })
 * if (!budget.fits) console.warn(`${budget.needed} connections needed, ${budget.available} available`)
 */
export async function checkConnectionBudget(connectionString: string, plan: ConnectionPlan): Promise<ConnectionBudget> {
  for (const [name, value] of Object.entries(plan)) {
    if (!(Number.isSafeInteger(value) && value >= 0)) {
      throw new InvalidArgumentError({ argument: name, reason: `${String(value)} is not a whole number of at least 0` })
    }
  }
  const client = new pg.Client({ connectionString, application_name: 'skiplock-connection-check' })
  await client.connect()
  try {
    const { rows } = await client.query<{ max_connections: number; reserved_connections: number; open_connections: number }>(`
      select
        current_setting('max_connections')::int as max_connections,
        current_setting('superuser_reserved_connections')::int
          + coalesce(current_setting('reserved_connections', true), '0')::int as reserved_connections,
        (
          select count(*)::int
          from pg_stat_activity
          -- Without pg_read_all_stats, other roles' sessions show no backend_type: count those in a database.
          where (backend_type = 'client backend' or (backend_type is null and datid is not null))
            and pid <> pg_backend_pid()
        ) as open_connections
    `)
    const row = rows[0]!
    const needed = plan.processes * plan.connectionsPerProcess
    const available = Math.max(0, row.max_connections - row.reserved_connections - row.open_connections)
    return {
      needed,
      available,
      fits: needed <= available,
      maxConnections: row.max_connections,
      reservedConnections: row.reserved_connections,
      openConnections: row.open_connections,
    }
  } finally {
    await client.end()
  }
}

/**
 * {@link checkConnectionBudget}, throwing when the fleet does not fit: a fleet that asks for more
 * connections than the server has keeps some workers waiting to register, and whatever else
 * connects (a deploy, a migration, psql) is refused too.
 * @throws {ConnectionBudgetExceededError} naming the connections needed and available.
 */
export async function assertConnectionBudget(connectionString: string, plan: ConnectionPlan): Promise<ConnectionBudget> {
  const budget = await checkConnectionBudget(connectionString, plan)
  if (!budget.fits) throw new ConnectionBudgetExceededError(plan, budget)
  return budget
}

/** The planned fleet needs more connections than the server has available. */
export class ConnectionBudgetExceededError extends SkiplockError {
  readonly needed: number
  readonly available: number

  constructor(plan: ConnectionPlan, budget: ConnectionBudget) {
    super(
      'CONNECTION_BUDGET_EXCEEDED',
      `${plan.processes} processes x ${plan.connectionsPerProcess} connections need ${budget.needed} connections, ` +
        `but only ${budget.available} are available (max_connections ${budget.maxConnections}, ` +
        `${budget.reservedConnections} reserved, ${budget.openConnections} open)`,
    )
    this.needed = budget.needed
    this.available = budget.available
  }
}
