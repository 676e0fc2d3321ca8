/** SQLSTATEs of a server that is shutting down, crashed, starting up or full: none says a statement was wrong. */
const unavailableSqlStates = new Set(['57P01', '57P02', '57P03', '53300'])
/** Socket errors of a server that is down or unreachable. */
const socketErrorCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'])
/** node-postgres's own errors for a socket that closed or never opened carry no code, only these messages. */
const connectionMessages = [/^Connection terminated/, /connection error and is not queryable/, /^timeout exceeded when trying to connect/]

/** A connection the server (or something between) closed without an error: the socket just ended. */
export class ConnectionEndedError extends Error {
  override readonly name = 'ConnectionEndedError'
}

/**
 * Whether `error` says the database could not be reached or dropped the session (server down,
 * restarting, crashed, out of connections, network cut), as opposed to a statement that failed.
 */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  if (error instanceof ConnectionEndedError) return true
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && (code.startsWith('08') || unavailableSqlStates.has(code) || socketErrorCodes.has(code))) return true
  // A host name with several addresses fails with one error per address.
  if (error instanceof AggregateError) return error.errors.some(isConnectionError)
  return connectionMessages.some((pattern) => pattern.test(error.message))
}

export interface OutageOptions {
  /** One round trip that succeeds only once the database answers again (the worker heartbeats). */
  probe: () => Promise<void>
  /** The first probe failed: the database is down, not just one connection. */
  onDown: (error: unknown) => void
  /** Still down, at most every {@link stillDownReportMs}. */
  onStillDown: (info: { downMs: number; attempts: number; error: unknown }) => void
  /** A probe succeeded; `attempts` counts the probes, so 1 means a single connection had dropped. */
  onRestored: (info: { downMs: number; attempts: number }) => void
}

/** How often a long outage is reported again, so a minute-long outage makes a few log lines, not hundreds. */
const stillDownReportMs = 30_000
/** After the first few probes, about one a second: a fleet of workers must not hammer a recovering server. */
const maxProbeDelayMs = 1000

/**
 * The database as one worker sees it: reachable, or lost since a connection error until a probe
 * succeeds. While it is lost, the rest of the worker waits in {@link Outage.whenRestored} instead of
 * retrying on its own, so a process makes about one attempt a second however many loops it runs.
 * Probes back off from 100 ms to a second, jittered so that workers do not reconnect in lockstep.
 */
export class Outage {
  readonly #options: OutageOptions
  #lostAt: number | undefined
  #restored: Promise<void> = Promise.resolve()
  #resolveRestored: () => void = () => {}
  #timer: NodeJS.Timeout | undefined
  #isStopped = false
  #isReported = false

  constructor(options: OutageOptions) {
    this.#options = options
  }

  get isDown(): boolean {
    return this.#lostAt !== undefined
  }

  /** Down, and a probe has failed since: not one dropped connection but the database, already reported. */
  get isReportedDown(): boolean {
    return this.#isReported
  }

  /** Resolves at once while the database is reachable, else when a probe succeeds or the outage is stopped. */
  whenRestored(): Promise<void> {
    return this.#restored
  }

  /** A connection error happened: starts probing, unless an outage is already being probed. */
  report(): void {
    if (this.#lostAt !== undefined || this.#isStopped) return
    this.#lostAt = Date.now()
    this.#restored = new Promise((resolve) => {
      this.#resolveRestored = resolve
    })
    this.#scheduleProbe(1, undefined)
  }

  /** Stops probing and releases every waiter (the worker is stopping). */
  stop(): void {
    this.#isStopped = true
    clearTimeout(this.#timer)
    this.#lostAt = undefined
    this.#isReported = false
    this.#resolveRestored()
  }

  #scheduleProbe(attempt: number, lastReportAt: number | undefined): void {
    const delayMs = Math.min(maxProbeDelayMs, 100 * 2 ** (attempt - 1)) * (1 + Math.random() / 2)
    this.#timer = setTimeout(() => void this.#probe(attempt, lastReportAt), delayMs)
    this.#timer.unref()
  }

  async #probe(attempt: number, lastReportAt: number | undefined): Promise<void> {
    try {
      await this.#options.probe()
    } catch (error) {
      if (this.#isStopped || this.#lostAt === undefined) return
      const now = Date.now()
      let reportedAt = lastReportAt
      if (reportedAt === undefined) {
        this.#isReported = true
        this.#options.onDown(error)
        reportedAt = now
      } else if (now - reportedAt >= stillDownReportMs) {
        this.#options.onStillDown({ downMs: now - this.#lostAt, attempts: attempt, error })
        reportedAt = now
      }
      this.#scheduleProbe(attempt + 1, reportedAt)
      return
    }
    if (this.#isStopped || this.#lostAt === undefined) return
    const downMs = Date.now() - this.#lostAt
    this.#lostAt = undefined
    this.#isReported = false
    this.#resolveRestored()
    this.#options.onRestored({ downMs, attempts: attempt })
  }
}
