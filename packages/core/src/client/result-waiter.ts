import { findJobs, JobNotFoundError, toQueryable, type Job } from '@skiplock/schema'
import pg from 'pg'

import { JobCancelledError, JobFailedError, ResultTimeoutError } from '../errors.ts'

interface Waiter {
  resolve: (result: unknown) => void
  reject: (error: unknown) => void
}

/**
 * Awaits job outcomes for any number of callers with one LISTEN connection and one polling query:
 * never a connection per waiting job. NOTIFY cuts latency; polling keeps it correct if a
 * notification is missed or the listening connection drops.
 */
export class ResultWaiter {
  readonly #pool: pg.Pool
  readonly #schema: string
  readonly #connectionString: string | undefined
  readonly #pollIntervalMs: number
  readonly #waiters = new Map<string, Set<Waiter>>()
  #listener: Promise<pg.Client> | undefined
  #pollTimer: NodeJS.Timeout | undefined
  #isClosed = false

  constructor(options: { pool: pg.Pool; schema: string; connectionString: string | undefined; pollIntervalMs: number }) {
    this.#pool = options.pool
    this.#schema = options.schema
    this.#connectionString = options.connectionString
    this.#pollIntervalMs = options.pollIntervalMs
  }

  /** Resolves with the job's result once it succeeded; rejects if it failed, was cancelled, or `timeoutMs` passed. */
  async wait(jobId: string, { timeoutMs, signal }: { timeoutMs: number; signal?: AbortSignal }): Promise<unknown> {
    const outcome = new Promise<unknown>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject }
      const timer = setTimeout(() => settle(() => reject(new ResultTimeoutError({ jobId, timeoutMs }))), timeoutMs)
      const onAbort = () => settle(() => reject(signal?.reason))
      const settle = (finish: () => void) => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#remove(jobId, waiter)
        finish()
      }
      waiter.resolve = (result) => settle(() => resolve(result))
      waiter.reject = (error) => settle(() => reject(error))
      signal?.addEventListener('abort', onAbort, { once: true })
      if (signal?.aborted) onAbort()
      const set = this.#waiters.get(jobId) ?? new Set()
      set.add(waiter)
      this.#waiters.set(jobId, set)
    })
    // Listen first, then look: a job that finished in between is caught by the look.
    await this.#ensureListening().catch(() => {})
    this.#ensurePolling()
    void this.#check([jobId])
    return outcome
  }

  async close(): Promise<void> {
    this.#isClosed = true
    clearInterval(this.#pollTimer)
    const listener = this.#listener
    this.#listener = undefined
    if (listener) await (await listener.catch(() => undefined))?.end().catch(() => {})
  }

  #remove(jobId: string, waiter: Waiter): void {
    const set = this.#waiters.get(jobId)
    set?.delete(waiter)
    if (set?.size === 0) this.#waiters.delete(jobId)
    if (this.#waiters.size === 0) {
      clearInterval(this.#pollTimer)
      this.#pollTimer = undefined
    }
  }

  #ensurePolling(): void {
    if (this.#pollTimer || this.#isClosed) return
    this.#pollTimer = setInterval(() => void this.#check([...this.#waiters.keys()]), this.#pollIntervalMs)
    this.#pollTimer.unref()
  }

  #ensureListening(): Promise<pg.Client> {
    if (this.#isClosed || !this.#connectionString) return Promise.reject(new Error('no listening connection'))
    this.#listener ??= (async () => {
      const client = new pg.Client({ connectionString: this.#connectionString, application_name: 'skiplock-results' })
      const reset = () => {
        // The next wait reconnects; polling covers the gap.
        if (this.#listener === connected) this.#listener = undefined
        client.end().catch(() => {})
      }
      client.on('error', reset)
      client.on('end', reset)
      client.on('notification', (message) => {
        const ids = message.payload ? message.payload.split(',') : [...this.#waiters.keys()]
        const waited = ids.filter((id) => this.#waiters.has(id))
        if (waited.length > 0) void this.#check(waited)
      })
      await client.connect()
      await client.query(`listen ${pg.escapeIdentifier(`${this.#schema}_finished`)}`)
      return client
    })()
    const connected = this.#listener
    connected.catch(() => {
      if (this.#listener === connected) this.#listener = undefined
    })
    return connected
  }

  async #check(jobIds: readonly string[]): Promise<void> {
    if (jobIds.length === 0) return
    let jobs: Job[]
    try {
      jobs = await findJobs(toQueryable(this.#pool), this.#schema, jobIds)
    } catch {
      return // The next poll tries again.
    }
    const found = new Set(jobs.map((job) => job.id))
    for (const id of jobIds) {
      if (!found.has(id)) this.#settle(id, (waiter) => waiter.reject(new JobNotFoundError({ jobId: id })))
    }
    for (const job of jobs) {
      if (job.state === 'succeeded') this.#settle(job.id, (waiter) => waiter.resolve(job.result))
      else if (job.state === 'failed') this.#settle(job.id, (waiter) => waiter.reject(new JobFailedError({ jobId: job.id, lastError: job.errors.at(-1) })))
      else if (job.state === 'cancelled') this.#settle(job.id, (waiter) => waiter.reject(new JobCancelledError({ jobId: job.id })))
    }
  }

  #settle(jobId: string, finish: (waiter: Waiter) => void): void {
    for (const waiter of [...(this.#waiters.get(jobId) ?? [])]) finish(waiter)
  }
}
