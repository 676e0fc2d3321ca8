import { SkiplockError } from '@skiplock/schema'

/**
 * Thrown by a handler to fail its job at once, without the retries left.
 * @example
 * if (!user) throw new NonRetryableError(`user ${payload.userId} does not exist`)
 */
export class NonRetryableError extends SkiplockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NON_RETRYABLE', message, options)
  }
}

/** A job names a task this worker or client does not know. */
export class UnknownTaskError extends SkiplockError {
  readonly taskName: string

  constructor(data: { taskName: string; knownTaskNames: readonly string[] }) {
    super(
      'UNKNOWN_TASK',
      `task ${JSON.stringify(data.taskName)} is not registered here; known tasks: ${data.knownTaskNames.map((name) => JSON.stringify(name)).join(', ') || 'none'}`,
    )
    this.taskName = data.taskName
  }
}

/** `result()` waited `timeoutMs` and the job had not finished. */
export class ResultTimeoutError extends SkiplockError {
  readonly jobId: string
  readonly timeoutMs: number

  constructor(data: { jobId: string; timeoutMs: number }) {
    super('RESULT_TIMEOUT', `job ${data.jobId} did not finish within ${data.timeoutMs} ms`)
    this.jobId = data.jobId
    this.timeoutMs = data.timeoutMs
  }
}

/** The awaited job failed for good; `lastError` is the error its last attempt stored. */
export class JobFailedError extends SkiplockError {
  readonly jobId: string
  readonly lastError: { message: string; [key: string]: unknown } | undefined

  constructor(data: { jobId: string; lastError?: { message: string; [key: string]: unknown } }) {
    super('JOB_FAILED', `job ${data.jobId} failed: ${data.lastError?.message ?? 'no error recorded'}`)
    this.jobId = data.jobId
    this.lastError = data.lastError
  }
}

/** The awaited job was cancelled. Also the abort reason a handler sees when its job is cancelled. */
export class JobCancelledError extends SkiplockError {
  readonly jobId: string

  constructor(data: { jobId: string }) {
    super('JOB_CANCELLED', `job ${data.jobId} was cancelled`)
    this.jobId = data.jobId
  }
}

/** The abort reason a handler sees when it ran past its task's `timeoutMs`. */
export class JobTimeoutError extends SkiplockError {
  readonly jobId: string
  readonly timeoutMs: number

  constructor(data: { jobId: string; timeoutMs: number }) {
    super('JOB_TIMEOUT', `job ${data.jobId} ran longer than its timeout of ${data.timeoutMs} ms`)
    this.jobId = data.jobId
    this.timeoutMs = data.timeoutMs
  }
}

/** The abort reason a handler sees when the worker stops before the handler finished. */
export class WorkerStoppedError extends SkiplockError {
  constructor() {
    super('WORKER_STOPPED', 'the worker stopped before the job finished; the job goes back to the queue')
  }
}
