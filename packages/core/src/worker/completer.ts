import { completeJobs, failJobs, type FailOutcome, type Failure, type Job, releaseJobs, toQueryable } from '@skiplock/schema'
import type pg from 'pg'

import { inTransaction } from '../transaction.ts'

/** Lets another package write inside the transaction that completes jobs (the result store does). */
export type CompletionHook = (tx: pg.ClientBase, completedJobs: readonly Job[]) => Promise<void>

/** What happened to a job when its outcome was committed. */
export type Outcome =
  | { kind: 'completed'; job: Job }
  | { kind: 'failed'; outcome: FailOutcome }
  | { kind: 'released' }
  /** The lease no longer held (the job was rescued): the outcome was not recorded. */
  | { kind: 'lease-lost' }

type Item =
  | { kind: 'complete'; job: Job; resultJson: string | null; settle: (outcome: Outcome) => void }
  | { kind: 'fail'; job: Job; failure: Omit<Failure, 'jobId' | 'attempt'>; settle: (outcome: Outcome) => void }
  | { kind: 'release'; job: Job; settle: (outcome: Outcome) => void }

export interface CompleterOptions {
  pool: pg.Pool
  schema: string
  /** How long an outcome waits for others to share its transaction (group commit). */
  windowMs: number
  /** Outcomes per transaction at most. */
  maxBatchSize: number
  hook: CompletionHook | undefined
  onError: (error: unknown) => void
}

/**
 * Records job outcomes in batches: outcomes that arrive within a short window share one transaction
 * (complete_jobs, the completion hook, fail_jobs, release_jobs), so a busy worker commits far less
 * than once per job. A failed flush is retried with backoff; outcomes are never dropped.
 */
export class Completer {
  readonly #options: CompleterOptions
  #pending: Item[] = []
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> | undefined
  /** The batch of the flush in flight: its jobs are still held until the commit returns. */
  #committing: readonly Item[] = []
  #failures = 0
  #isClosed = false

  constructor(options: CompleterOptions) {
    this.#options = options
  }

  get pendingCount(): number {
    return this.#pending.length
  }

  /** Jobs whose outcome is waiting or being committed: the database still has them as running. */
  get jobIds(): string[] {
    return [...this.#committing, ...this.#pending].map((item) => item.job.id)
  }

  complete(job: Job, resultJson: string | null): Promise<Outcome> {
    return this.#add((settle) => ({ kind: 'complete', job, resultJson, settle }))
  }

  fail(job: Job, failure: Omit<Failure, 'jobId' | 'attempt'>): Promise<Outcome> {
    return this.#add((settle) => ({ kind: 'fail', job, failure, settle }))
  }

  release(job: Job): Promise<Outcome> {
    return this.#add((settle) => ({ kind: 'release', job, settle }))
  }

  /** Flushes everything pending now, retrying until it succeeds or `deadline` passes. */
  async drain(deadline: number): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    while ((this.#pending.length > 0 || this.#flushing) && Date.now() < deadline) {
      // A failed flush waits to retry; that wait must not carry the drain past its deadline.
      let timer: NodeJS.Timeout | undefined
      const deadlinePassed = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, deadline - Date.now())
      })
      await Promise.race([this.#flushing ?? this.#flush(), deadlinePassed])
      clearTimeout(timer)
    }
  }

  /**
   * Stops for good: no more flushes or retries (the pool is about to end). Outcomes still pending are not
   * recorded; their jobs are rescued after the lease.
   */
  close(): void {
    this.#isClosed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #add(build: (settle: (outcome: Outcome) => void) => Item): Promise<Outcome> {
    return new Promise((resolve) => {
      this.#pending.push(build(resolve))
      if (this.#pending.length >= this.#options.maxBatchSize) this.#schedule(0)
      else this.#schedule(this.#options.windowMs)
    })
  }

  #schedule(delayMs: number): void {
    if (this.#flushing || this.#isClosed) return // the running flush schedules the next one
    if (this.#timer && delayMs > 0) return
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#flush()
    }, delayMs)
  }

  #flush(): Promise<void> {
    const batch = this.#pending.splice(0, this.#options.maxBatchSize)
    this.#committing = batch
    this.#flushing = this.#commit(batch)
      .then((outcomes) => {
        this.#failures = 0
        batch.forEach((item, index) => item.settle(outcomes[index]!))
      })
      .catch((error: unknown) => {
        this.#failures += 1
        this.#options.onError(error)
        // Put the batch back in front: its outcomes must still be recorded.
        this.#pending.unshift(...batch)
        return new Promise<void>((resolve) => setTimeout(resolve, Math.min(5000, 50 * 2 ** this.#failures)))
      })
      .finally(() => {
        this.#committing = []
        this.#flushing = undefined
        if (this.#pending.length > 0) this.#schedule(this.#pending.length >= this.#options.maxBatchSize ? 0 : this.#options.windowMs)
      })
    return this.#flushing
  }

  #commit(batch: readonly Item[]): Promise<Outcome[]> {
    return inTransaction(this.#options.pool, async (client) => {
      const db = toQueryable(client)
      const completed = new Map<string, Job>()
      const failed = new Map<string, FailOutcome>()
      const released = new Set<string>()
      for (const [workerId, items] of groupByWorker(batch)) {
        const completions = items.flatMap((item) => (item.kind === 'complete' ? [{ jobId: item.job.id, attempt: item.job.attempts, resultJson: item.resultJson }] : []))
        if (completions.length > 0) {
          const jobs = await completeJobs(db, this.#options.schema, workerId, completions)
          if (jobs.length > 0 && this.#options.hook) await this.#options.hook(client, jobs)
          for (const job of jobs) completed.set(job.id, job)
        }
        const failures = items.flatMap((item) => (item.kind === 'fail' ? [{ ...item.failure, jobId: item.job.id, attempt: item.job.attempts }] : []))
        if (failures.length > 0) {
          for (const outcome of await failJobs(db, this.#options.schema, workerId, failures)) failed.set(outcome.id, outcome)
        }
        const releases = items.flatMap((item) => (item.kind === 'release' ? [{ jobId: item.job.id, attempt: item.job.attempts }] : []))
        if (releases.length > 0) {
          for (const job of await releaseJobs(db, this.#options.schema, workerId, releases)) released.add(job.id)
        }
      }
      return batch.map((item): Outcome => {
        const job = completed.get(item.job.id)
        if (item.kind === 'complete' && job) return { kind: 'completed', job }
        const outcome = failed.get(item.job.id)
        if (item.kind === 'fail' && outcome) return { kind: 'failed', outcome }
        if (item.kind === 'release' && released.has(item.job.id)) return { kind: 'released' }
        return { kind: 'lease-lost' }
      })
    })
  }
}

function groupByWorker(batch: readonly Item[]): Map<string, Item[]> {
  const groups = new Map<string, Item[]>()
  for (const item of batch) {
    const workerId = item.job.workerId ?? ''
    const group = groups.get(workerId)
    if (group) group.push(item)
    else groups.set(workerId, [item])
  }
  return groups
}
