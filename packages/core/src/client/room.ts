import { setTimeout as sleep } from 'node:timers/promises'

import { InvalidArgumentError, QueueFullError, type Queryable } from '@skiplock/schema'

import type { WaitForRoom } from './defer.ts'

const FIRST_PAUSE_MS = 25
const LONGEST_PAUSE_MS = 500

/**
 * Runs `defer` and, while it fails with `QueueFullError` and `wait` allows, again after a growing pause.
 * Inside a transaction (`tx`), each try runs under a savepoint: a refused statement would otherwise abort it.
 * @throws {QueueFullError} when the queue stays full past `wait.timeoutMs`, or at once without `wait`.
 */
export async function deferWhenRoom<Deferred>(defer: () => Promise<Deferred>, wait: WaitForRoom | undefined, tx?: Queryable): Promise<Deferred> {
  if (wait === undefined) return defer()
  const timeoutMs = wait.timeoutMs ?? 30_000
  if (!(Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
    throw new InvalidArgumentError({ argument: 'waitForRoom.timeoutMs', reason: `${timeoutMs} is not a number of milliseconds` })
  }
  const deadline = Date.now() + timeoutMs
  const attempt = tx === undefined ? defer : () => inSavepoint(tx, defer)
  for (let pauseMs = FIRST_PAUSE_MS; ; pauseMs = Math.min(pauseMs * 2, LONGEST_PAUSE_MS)) {
    wait.signal?.throwIfAborted()
    try {
      return await attempt()
    } catch (error) {
      if (!(error instanceof QueueFullError) || Date.now() >= deadline) throw error
    }
    // Jittered, so producers waiting on one queue do not all try again at the same moment.
    const pause = Math.min(pauseMs * (0.5 + Math.random() / 2), deadline - Date.now())
    await sleep(pause, undefined, { signal: wait.signal }).catch(() => wait.signal?.throwIfAborted())
  }
}

async function inSavepoint<Result>(tx: Queryable, run: () => Promise<Result>): Promise<Result> {
  await tx.query('savepoint skiplock_defer')
  try {
    const result = await run()
    await tx.query('release savepoint skiplock_defer')
    return result
  } catch (error) {
    await tx.query('rollback to savepoint skiplock_defer')
    throw error
  }
}
