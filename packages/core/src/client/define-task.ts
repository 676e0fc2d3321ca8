import type { StandardSchemaV1 } from '@standard-schema/spec'
import { InvalidArgumentError, InvalidPayloadError, type Job } from '@skiplock/schema'
import type pg from 'pg'

import type { Logger } from '../logger.ts'
import type { Attributes } from './attributes.ts'

/** How long to wait before retry `attempt + 1`: exponential, capped, with jitter. */
export interface BackoffOptions {
  /** Wait after the first failure, before jitter; default 2000. Each later failure doubles it. */
  baseDelayMs?: number
  /** Cap of the wait, before jitter; default 3 600 000 (one hour). */
  maxDelayMs?: number
}

/** What a handler gets besides its payload. */
export interface JobContext<Payload> {
  /** The job as claimed: id, attempt count, queue, timings. */
  job: Job<Payload>
  /** Fires on cancellation, on the task's timeout, and when the worker is forced to stop. Its `reason` says which. */
  signal: AbortSignal
  logger: Logger
}

/** The context of a transactional task: `tx` is open, and the job completes in it when the handler returns. */
export interface TransactionalJobContext<Payload> extends JobContext<Payload> {
  /** A connection inside a transaction: writes made here commit together with the job's completion and result. */
  tx: pg.ClientBase
}

/** Options shared by a task's definition and each defer, which may override them. */
export interface JobOptions<Payload> {
  /** Default `default`. */
  queue?: string
  /** Higher runs first; default 0. */
  priority?: number
  /** Attempts before the job fails for good; default 5. */
  maxAttempts?: number
  /** Jobs with the same lock run one at a time, in creation order. */
  lock?: string | ((payload: Payload) => string | null | undefined)
  /** At most one waiting job per key: deferring a second gets a `QueueingLockTakenError` or the waiting job. */
  queueingLock?: string | ((payload: Payload) => string | null | undefined)
  /** Labels workers can filter claims on (`attributeFilter`): a flat object of strings, numbers and booleans. */
  attributes?: Attributes | ((payload: Payload) => Attributes)
}

interface TaskDefinitionBase<Schema extends StandardSchemaV1 | undefined, Payload> extends JobOptions<Payload> {
  /** Unique name, stored with each job: 1 to 128 characters of letters, digits and `_ . : / -`. */
  name: string
  /** Validates payloads at defer and again before the handler runs: zod, valibot, arktype or any Standard Schema. */
  schema?: Schema
  /** Retry waits; default 2 s doubling to an hour, jittered to 50-100%. */
  backoff?: BackoffOptions
  /** The handler's signal fires after this long, and the attempt fails (and may retry). */
  timeoutMs?: number
}

/** The type a task's handler receives: the schema's output, or `Payload` when there is no schema. */
type Output<Schema, Payload> = Schema extends StandardSchemaV1 ? StandardSchemaV1.InferOutput<Schema> : Payload
/** The type a producer passes to `defer`: the schema's input, or `Payload`. */
type Input<Schema, Payload> = Schema extends StandardSchemaV1 ? StandardSchemaV1.InferInput<Schema> : Payload

/** A task whose handler runs outside any transaction; its completion is batched with others. */
export interface PlainTaskDefinition<Schema extends StandardSchemaV1 | undefined, Payload, Result>
  extends TaskDefinitionBase<Schema, Input<Schema, Payload>> {
  transactional?: false
  handler: (payload: Output<Schema, Payload>, context: JobContext<Input<Schema, Payload>>) => Result | Promise<Result>
}

/**
 * A task whose handler gets a transaction that also completes the job (effectively-once side effects).
 * The transaction may not sit idle between statements for longer than the worker's lease (`leaseSeconds`):
 * the server then ends it, as it would for a worker cut off from it. Do slow work outside the transaction.
 */
export interface TransactionalTaskDefinition<Schema extends StandardSchemaV1 | undefined, Payload, Result>
  extends TaskDefinitionBase<Schema, Input<Schema, Payload>> {
  transactional: true
  handler: (payload: Output<Schema, Payload>, context: TransactionalJobContext<Input<Schema, Payload>>) => Result | Promise<Result>
}

/** A defined task: pass it to `defer` to enqueue, and to `createWorker` to run. */
export interface Task<Payload = any, Result = any> {
  readonly name: string
  readonly definition: TaskDefinitionBase<StandardSchemaV1 | undefined, Payload> & {
    transactional?: boolean
    handler: (payload: any, context: any) => unknown
  }
  /** Type carriers only: the payload `defer` accepts and the result `result()` resolves to. */
  readonly '~types'?: { payload: Payload; result: Result }
}

const TASK_NAME = /^[A-Za-z0-9_.:/-]{1,128}$/

/**
 * Largest count or number of milliseconds an option takes: PostgreSQL's integer, and the longest
 * delay `setTimeout` keeps (a larger one fires at once).
 */
export const MAX_INTEGER = 2_147_483_647

/**
 * Defines a task: its name, payload validator, handler and defaults.
 * @throws {InvalidArgumentError} for an invalid name or option, at definition time.
 * @example
 * const sendEmail = defineTask({
 *   name: 'send-email',
 *   schema: z.object({ to: z.email() }),
 *   handler: async ({ to }, { signal }) => mailer.send(to, { signal }),
 * })
 */
export function defineTask<Schema extends StandardSchemaV1 | undefined = undefined, Payload = unknown, Result = unknown>(
  definition: PlainTaskDefinition<Schema, Payload, Result> | TransactionalTaskDefinition<Schema, Payload, Result>,
): Task<Input<Schema, Payload>, Awaited<Result>> {
  if (!TASK_NAME.test(definition.name)) {
    throw new InvalidTaskDefinitionError(`task name ${JSON.stringify(definition.name)} is invalid: expected 1 to 128 characters of letters, digits and _ . : / -`)
  }
  checkPositiveInteger('maxAttempts', definition.maxAttempts)
  checkPositiveInteger('timeoutMs', definition.timeoutMs)
  checkPositiveInteger('backoff.baseDelayMs', definition.backoff?.baseDelayMs)
  checkPositiveInteger('backoff.maxDelayMs', definition.backoff?.maxDelayMs)
  return { name: definition.name, definition: definition as Task['definition'] }
}

function checkPositiveInteger(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= 1 && value <= MAX_INTEGER)) {
    throw new InvalidTaskDefinitionError(`${name} is ${value}: expected a whole number from 1 to ${MAX_INTEGER}`)
  }
}


class InvalidTaskDefinitionError extends InvalidArgumentError {
  constructor(reason: string) {
    super({ argument: 'task definition', reason }, { message: reason })
  }
}

/** The delay before the next try after `attempt` failed, per the task's backoff, jittered to 50-100%. */
export function backoffDelayMs(backoff: BackoffOptions, attempt: number): number {
  const base = backoff.baseDelayMs ?? 2000
  const max = backoff.maxDelayMs ?? 3_600_000
  const delay = Math.min(max, base * 2 ** Math.min(attempt - 1, 30))
  return delay * (0.5 + Math.random() / 2)
}

/**
 * Validates `payload` with the task's schema and returns the schema's output.
 * @throws {InvalidPayloadError} naming each issue's path and message.
 */
export async function validatePayload(task: Task, payload: unknown): Promise<unknown> {
  const schema = task.definition.schema
  if (!schema) return payload
  const result = await schema['~standard'].validate(payload)
  if (result.issues) {
    const reason = result.issues
      .map((issue) => {
        const path = issue.path?.map((segment) => (typeof segment === 'object' ? segment.key : segment)).join('.')
        return path ? `${path}: ${issue.message}` : issue.message
      })
      .join('; ')
    throw new InvalidPayloadError({ taskName: task.name, reason })
  }
  return result.value
}
