import { type Connection, type DeferJobsArgs, InvalidArgumentError, InvalidQueueNameError, type Job } from '@skiplock/schema'

import { toStorableJson } from '../json.ts'
import { checkAttributes } from './attributes.ts'
import { MAX_INTEGER, validatePayload, type JobOptions, type Task } from './define-task.ts'

/** Longest lock or queueing lock, in UTF-8 bytes: index entries have a size limit, and a key is a name, not data. */
const MAX_LOCK_BYTES = 1024

const QUEUE_NAME = /^[A-Za-z0-9_.:/-]{1,128}$/

/** The earliest moment PostgreSQL's timestamptz holds: 4714-11-24 BC. */
const EARLIEST_RUN_AT_MS = -210_866_803_200_000

/** @throws {InvalidQueueNameError} unless `queue` is 1 to 128 letters, digits or `_.:/-`. */
export function checkQueueName(queue: string): void {
  if (!QUEUE_NAME.test(queue)) throw new InvalidQueueNameError({ queueName: queue })
}

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
  /**
   * Jobs that must succeed first (jobs or their ids). The job waits as `blocked` until they all have; if one
   * fails or is cancelled, so is this job (see `onParentFailure`). Every job of a `deferMany` depends on them all.
   */
  dependsOn?: readonly (Job | string)[]
  /** When a job it depends on fails or is cancelled: fail (default) or be cancelled. Either way it never runs. */
  onParentFailure?: 'fail' | 'cancel'
  /**
   * When the queue holds its `maxWaiting` jobs: absent, throw `QueueFullError` at once; given, retry until
   * there is room, for at most `timeoutMs` (default 30 000, then `QueueFullError`) or until `signal` aborts.
   */
  waitForRoom?: WaitForRoom
}

/** How long a defer into a full queue waits for room. */
export interface WaitForRoom {
  /** Default 30 000. */
  timeoutMs?: number
  signal?: AbortSignal
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
  // Both are integer columns: a number past their range would fail in PostgreSQL instead of here.
  const maxAttempts = options.maxAttempts ?? defaults.maxAttempts
  if (maxAttempts !== undefined && !(Number.isInteger(maxAttempts) && maxAttempts >= 1 && maxAttempts <= MAX_INTEGER)) {
    throw new InvalidArgumentError({ argument: 'maxAttempts', reason: `${maxAttempts} is not a whole number from 1 to ${MAX_INTEGER}` })
  }
  const priority = options.priority ?? defaults.priority
  if (priority !== undefined && !(Number.isInteger(priority) && Math.abs(priority) <= MAX_INTEGER)) {
    throw new InvalidArgumentError({ argument: 'priority', reason: `${priority} is not a whole number from -${MAX_INTEGER} to ${MAX_INTEGER}` })
  }
  // Checked here because a name holding \u0000 cannot even be sent to PostgreSQL to be refused there.
  const queue = options.queue ?? defaults.queue ?? null
  if (queue !== null) checkQueueName(queue)
  for (const payload of payloads) await validatePayload(task, payload)
  const attributes = options.attributes ?? defaults.attributes
  const onParentFailure = options.onParentFailure
  if (onParentFailure !== undefined && onParentFailure !== 'fail' && onParentFailure !== 'cancel') {
    throw new InvalidArgumentError({ argument: 'onParentFailure', reason: `${String(onParentFailure)} is neither 'fail' nor 'cancel'` })
  }
  const parentIds = (options.dependsOn ?? []).map((parent) => checkParentId(typeof parent === 'string' ? parent : parent?.id))

  const count = payloads.length
  return {
    taskNames: Array(count).fill(task.name),
    payloads: payloads.map((payload) => toStorableJson(payload, { taskName: task.name, maxBytes: maxPayloadBytes })),
    queueNames: Array(count).fill(queue),
    priorities: priority === undefined ? undefined : Array(count).fill(priority),
    runAts: runAt === undefined ? undefined : Array(count).fill(runAt),
    maxAttempts: maxAttempts === undefined ? undefined : Array(count).fill(maxAttempts),
    locks: lock === undefined ? undefined : payloads.map((payload) => resolveKey('lock', lock, payload)),
    queueingLocks: queueingLock === undefined ? undefined : payloads.map((payload) => resolveKey('queueingLock', queueingLock, payload)),
    onQueueingLockConflict: options.onQueueingLockConflict ?? 'error',
    maxPayloadBytes,
    attributes: attributes === undefined ? undefined : payloads.map((payload) => resolveAttributes(attributes, payload)),
    onParentFailures: onParentFailure === undefined ? undefined : Array(count).fill(onParentFailure),
    ...(parentIds.length === 0 ? {} : dependencyEdges(count, parentIds)),
  }
}

/** Every job of the call depends on every parent: the edges, as the columns `defer_jobs` takes. */
function dependencyEdges(count: number, parentIds: readonly string[]): Partial<DeferJobsArgs> {
  const edges = Array.from({ length: count }, (_, index) => parentIds.map((parentId) => ({ child: index + 1, parentId }))).flat()
  return {
    dependencyChildPositions: edges.map((edge) => edge.child),
    dependencyParentPositions: edges.map(() => null),
    dependencyParentIds: edges.map((edge) => edge.parentId),
  }
}

/** Ids are bigint in decimal: anything else names no job. */
export function isJobId(jobId: string): boolean {
  return /^[1-9][0-9]{0,18}$/.test(jobId)
}

/** @throws {InvalidArgumentError} unless `id` is a job id: a positive whole number in decimal. */
export function checkParentId(id: unknown): string {
  if (typeof id !== 'string' || !isJobId(id)) {
    throw new InvalidArgumentError({ argument: 'dependsOn', reason: `${JSON.stringify(id)} is not a job or a job id` })
  }
  return id
}

function resolveAttributes<Payload>(
  attributes: NonNullable<DeferOptions<Payload>['attributes']>,
  payload: Payload,
): Readonly<Record<string, string | number | boolean>> {
  const value = typeof attributes === 'function' ? attributes(payload) : attributes
  checkAttributes(value)
  return value
}

function resolveRunAt(options: { runAt?: Date; delayMs?: number }): Date | undefined {
  if (options.runAt !== undefined && options.delayMs !== undefined) {
    throw new InvalidArgumentError({ argument: 'runAt', reason: 'give runAt or delayMs, not both' })
  }
  if (options.runAt !== undefined) {
    if (!isStorableDate(options.runAt)) {
      throw new InvalidArgumentError({ argument: 'runAt', reason: `${String(options.runAt)} is not a valid Date that PostgreSQL can store` })
    }
    return options.runAt
  }
  if (options.delayMs !== undefined) {
    const runAtMs = Date.now() + options.delayMs
    // new Date() of a time past JavaScript's range (about 275,760 years from 1970) is an invalid Date.
    if (!(Number.isFinite(options.delayMs) && options.delayMs >= 0 && isStorableTime(new Date(runAtMs).getTime()))) {
      throw new InvalidArgumentError({ argument: 'delayMs', reason: `${options.delayMs} is not a number of milliseconds from 0 to the latest Date` })
    }
    return new Date(runAtMs)
  }
  return undefined
}

/** Whether `date` is a valid Date that PostgreSQL's timestamptz can hold. */
export function isStorableDate(date: unknown): date is Date {
  return date instanceof Date && isStorableTime(date.getTime())
}

function isStorableTime(timeMs: number): boolean {
  return !Number.isNaN(timeMs) && timeMs >= EARLIEST_RUN_AT_MS
}

/**
 * A job's lock or queueing lock: any text of at most {@link MAX_LOCK_BYTES} bytes that PostgreSQL can
 * store (no \u0000; unpaired surrogates would all be stored as U+FFFD, so two such keys would collide).
 */
function resolveKey<Payload>(
  argument: 'lock' | 'queueingLock',
  key: string | ((payload: Payload) => string | null | undefined),
  payload: Payload,
): string | null {
  const value = (typeof key === 'function' ? key(payload) : key) ?? null
  if (value === null) return null
  if (typeof value !== 'string' || !value.isWellFormed() || value.includes('\0')) {
    throw new InvalidArgumentError({ argument, reason: 'a key must be text without \\u0000 or unpaired UTF-16 surrogates' })
  }
  const sizeBytes = Buffer.byteLength(value)
  if (sizeBytes > MAX_LOCK_BYTES) {
    throw new InvalidArgumentError({ argument, reason: `the key is ${sizeBytes} bytes, over the limit of ${MAX_LOCK_BYTES}` })
  }
  return value
}
