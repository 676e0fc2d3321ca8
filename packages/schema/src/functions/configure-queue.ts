import type { Queryable } from '../queryable.ts'
import { callSql } from './call.ts'

/** A queue's limits; `null` or absent: none. */
export interface QueueLimits {
  /** Most jobs waiting (blocked or runnable) that producers may bring the queue to. */
  maxWaiting?: number | null
  /** Most jobs of the queue running at once over all workers. */
  maxRunning?: number | null
  /** Most job starts per second over all workers. */
  maxStartsPerSecond?: number | null
}

/**
 * Calls `configure_queue`: sets the queue's limits, replacing any it had; all absent removes them.
 * @throws {InvalidQueueNameError} {InvalidArgumentError}
 */
export async function configureQueue(db: Queryable, schema: string, queueName: string, limits: QueueLimits): Promise<void> {
  await callSql(
    db,
    schema,
    (s) => `select from ${s}.configure_queue($1, $2, $3, $4)`,
    [queueName, limits.maxWaiting ?? null, limits.maxRunning ?? null, limits.maxStartsPerSecond ?? null],
  )
}
