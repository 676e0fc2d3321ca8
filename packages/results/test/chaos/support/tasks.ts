// The chaos tasks, shared by the worker processes (which run them) and the tests (which defer them).
import { defineTask, type JobContext, type Task, type TransactionalJobContext } from '@skiplock/core'

/**
 * What a job does besides sleeping `ms`. The kills and the first throw happen on attempt 1 only, so
 * the job can succeed when it runs again; `kill-self` and `throw-always` never succeed.
 */
export type Fault =
  /** SIGKILL its own process inside the completing transaction, after the result is written. */
  | 'kill-before-commit'
  /** SIGKILL its own process as soon as the completion has committed. */
  | 'kill-after-commit'
  /** SIGKILL its own process while running, on every attempt. */
  | 'kill-self'
  | 'throw-always'
  | 'throw-once'
  /** Keep running when the abort signal fires, like a handler stuck in a call it cannot cancel. */
  | 'ignore-abort'

export interface ChaosPayload {
  /** The producer's id for the job, made before the job exists. */
  id: string
  ms: number
  fault?: Fault
}

export interface ChaosResult {
  id: string
  pid: number
}

export type ChaosHandler = (payload: ChaosPayload, context: JobContext<ChaosPayload> & Partial<TransactionalJobContext<ChaosPayload>>) => Promise<ChaosResult>

export interface ChaosTasks {
  /** Completed in shared group commits. */
  plain: Task<ChaosPayload, ChaosResult>
  /** Completed in the handler's own transaction, where it also writes an effect row. */
  transactional: Task<ChaosPayload, ChaosResult>
  /** Retried with a short, known backoff (`retryBaseDelayMs`), for the retry timing checks. */
  flaky: Task<ChaosPayload, ChaosResult>
}

/** Retry waits of the flaky task: 2 s, 4 s, 8 s ... before jitter (the default backoff); long against a poll. */
export const retryBaseDelayMs = 2000

export function defineChaosTasks(handler: ChaosHandler): ChaosTasks {
  return {
    plain: defineTask({ name: 'chaos', handler: (payload: ChaosPayload, context) => handler(payload, context) }),
    transactional: defineTask({ name: 'chaos-tx', transactional: true, handler: (payload: ChaosPayload, context) => handler(payload, context) }),
    flaky: defineTask({
      name: 'chaos-flaky',
      backoff: { baseDelayMs: retryBaseDelayMs },
      handler: (payload: ChaosPayload, context) => handler(payload, context),
    }),
  }
}

/** The producer's view of the tasks: it defers them and never runs them. */
export const chaosTasks = defineChaosTasks(async () => {
  throw new Error('the chaos tasks run in worker processes, not in the test')
})
