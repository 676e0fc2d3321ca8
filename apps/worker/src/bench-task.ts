import { defineTask } from '@skiplock/core'

/** The benchmark's payload: how long to "call the external service", and how often that call fails. */
export interface BenchPayload {
  ms: number
  failureRate: number
}

/** An injected failure: the attempt throws and the job retries up to its max attempts. */
export class InjectedFailure extends Error {
  constructor() {
    super('injected failure')
    this.name = 'InjectedFailure'
  }
}

/**
 * The study's I/O-bound job: sleep as long as the payload says (an external call), then fail with
 * the scenario's probability, or return a small result that the result store keeps.
 */
export function createBenchTask(workerName: string) {
  return defineTask({
    name: 'bench.sleep',
    handler: async ({ ms, failureRate }: BenchPayload, { signal }) => {
      if (ms > 0) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, ms)
          signal.addEventListener('abort', () => {
            clearTimeout(timer)
            reject(signal.reason)
          })
        })
      }
      if (failureRate > 0 && Math.random() < failureRate) throw new InjectedFailure()
      return { sleptMs: ms, workerName }
    },
  })
}
