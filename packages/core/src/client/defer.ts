import { type Connection, type DeferJobsArgs, InvalidArgumentError } from '@skiplock/schema'

import { toStorableJson } from '../json.ts'
import { validatePayload, type JobOptions, type Task } from './define-task.ts'

/** Options of one `defer` or `deferMany` call; each overrides the task's default. */
export interface DeferOptions<Payload> extends JobOptions<Payload> {
  /** Run no earlier than this. */
  runAt?: Date
  /** Run no earlier than this many milliseconds from now. */
  delayMs?: number
  /**
   * The caller's transaction (a `pg` client or a Kysely transaction): the jobs exist if and only if it commits.
   */
  tx?: Connection
  /** When a waiting job already holds the queueing lock: throw `QueueingLockTakenError` (default) or return that job. */
  onQueueingLockConflict?: 'error' | 'existing'
}

/**
 * Validates and serialises payloads for `defer_jobs`: the task's schema, JSON that jsonb can store, the
 * size limit, and the options, all before anything touches the database.
 */
export async function buildDeferArgs<Payload>(
  task: Task<Payload>,
  payloads: readonly Payload[],
  options: DeferOptions<Payload>,
  maxPayloadBytes: number,
): Promise<DeferJobsArgs> {
  const defaults = task.definition
  const runAt = resolveRunAt(options)
  const lock = options.lock ?? defaults.lock
  const queueingLock = options.queueingLock ?? defaults.queueingLock
  const maxAttempts = options.maxAttempts ?? defaults.maxAttempts
  if (maxAttempts !== undefined && !(Number.isInteger(maxAttempts) && maxAttempts >= 1)) {
    throw new InvalidArgumentError({ argument: 'maxAttempts', reason: `${maxAttempts} is not a whole number of at least 1` })
  }
  const priority = options.priority ?? defaults.priority
  if (priority !== undefined && !Number.isInteger(priority)) {
    throw new InvalidArgumentError({ argument: 'priority', reason: `${priority} is not a whole number` })
  }
  for (const payload of payloads) await validatePayload(task, payload)

  const count = payloads.length
  return {
    taskNames: Array(count).fill(task.name),
    payloads: payloads.map((payload) => toStorableJson(payload, { taskName: task.name, maxBytes: maxPayloadBytes })),
    queueNames: Array(count).fill(options.queue ?? defaults.queue ?? null),
    priorities: priority === undefined ? undefined : Array(count).fill(priority),
    runAts: runAt === undefined ? undefined : Array(count).fill(runAt),
    maxAttempts: maxAttempts === undefined ? undefined : Array(count).fill(maxAttempts),
    locks: lock === undefined ? undefined : payloads.map((payload) => resolveKey(lock, payload)),
    queueingLocks: queueingLock === undefined ? undefined : payloads.map((payload) => resolveKey(queueingLock, payload)),
    onQueueingLockConflict: options.onQueueingLockConflict ?? 'error',
    maxPayloadBytes,
  }
}

function resolveRunAt(options: { runAt?: Date; delayMs?: number }): Date | undefined {
  if (options.runAt !== undefined && options.delayMs !== undefined) {
    throw new InvalidArgumentError({ argument: 'runAt', reason: 'give runAt or delayMs, not both' })
  }
  if (options.runAt !== undefined) {
    if (!(options.runAt instanceof Date) || Number.isNaN(options.runAt.getTime())) {
      throw new InvalidArgumentError({ argument: 'runAt', reason: `${String(options.runAt)} is not a valid Date` })
    }
    return options.runAt
  }
  if (options.delayMs !== undefined) {
    if (!(Number.isFinite(options.delayMs) && options.delayMs >= 0)) {
      throw new InvalidArgumentError({ argument: 'delayMs', reason: `${options.delayMs} is not a number of milliseconds of at least 0` })
    }
    return new Date(Date.now() + options.delayMs)
  }
  return undefined
}

function resolveKey<Payload>(key: string | ((payload: Payload) => string | null | undefined), payload: Payload): string | null {
  return (typeof key === 'function' ? key(payload) : key) ?? null
}
