import {
  InvalidArgumentError,
  InvalidPayloadError,
  InvalidQueueNameError,
  JobNotFoundError,
  JobStateError,
  PayloadTooLargeError,
  QueueFullError,
  QueueingLockTakenError,
  SkiplockError,
  WorkerNotRegisteredError,
} from './errors.ts'

/** What the caller knows about the call that failed, to fill in what the database did not say. */
export interface ErrorContext {
  jobId?: string
  workerId?: string
  taskNames?: readonly string[]
}

interface DatabaseError {
  code?: string
  message: string
  detail?: string
}

/**
 * Turns a database error with a skiplock SQLSTATE (`SK001`...) into its typed error, keeping the
 * database's message and the original as `cause`. Any other error is returned untouched.
 */
export function translateDatabaseError(error: unknown, context: ErrorContext = {}): unknown {
  if (!isDatabaseError(error) || !error.code?.startsWith('SK')) return error
  const detail = parseDetail(error.detail)
  const options = { message: error.message, cause: error }
  const position = typeof detail.position === 'number' ? detail.position : undefined
  const taskName = position === undefined ? undefined : context.taskNames?.[position - 1]
  switch (error.code) {
    case 'SK001':
      return new InvalidQueueNameError({ queueName: String(detail.queue_name ?? '') }, options)
    case 'SK002':
      return new PayloadTooLargeError(
        { taskName, sizeBytes: Number(detail.size_bytes), maxBytes: Number(detail.max_payload_bytes) },
        options,
      )
    case 'SK003':
      return new InvalidPayloadError({ taskName, reason: String(detail.reason ?? error.message) }, options)
    case 'SK004':
      return new QueueingLockTakenError({ queueingLock: String(detail.queueing_lock ?? '') }, options)
    case 'SK005':
      return new InvalidArgumentError({ argument: detail.argument as string | undefined, reason: error.message }, options)
    case 'SK006':
      return new WorkerNotRegisteredError({ workerId: context.workerId ?? '' }, options)
    case 'SK007':
      return new JobNotFoundError({ jobId: typeof detail.job_id === 'string' ? detail.job_id : (context.jobId ?? '') }, options)
    case 'SK008':
      return new JobStateError({ jobId: context.jobId ?? '', reason: error.message }, options)
    case 'SK009':
      return new QueueFullError(
        {
          queueName: String(detail.queue_name ?? ''),
          maxWaiting: Number(detail.max_waiting),
          waiting: Number(detail.waiting),
          requested: Number(detail.requested),
        },
        options,
      )
    default:
      return new SkiplockError('INVALID_ARGUMENT', error.message, { cause: error })
  }
}

function isDatabaseError(error: unknown): error is DatabaseError {
  return error instanceof Error && typeof (error as DatabaseError).code === 'string'
}

function parseDetail(detail: string | undefined): Record<string, unknown> {
  if (!detail) return {}
  try {
    const parsed: unknown = JSON.parse(detail)
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}
