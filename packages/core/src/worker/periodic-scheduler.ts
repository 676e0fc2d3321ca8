import { deferPeriodicJob, InvalidArgumentError, type Job, toQueryable } from '@skiplock/schema'
import { CronExpressionParser } from 'cron-parser'
import type pg from 'pg'

import type { Task } from '../client/define-task.ts'
import { toStorableJson } from '../json.ts'
import { traceDefer } from '../telemetry.ts'

/** A task to defer on a cron schedule. */
export interface PeriodicTask<Payload = unknown> {
  task: Task<Payload>
  /** A cron expression (`*\/5 * * * *`; an optional sixth, leading field is seconds). */
  cron: string
  /** IANA time zone of the schedule; default UTC. */
  timeZone?: string
  payload?: Payload
}

export interface PeriodicSchedulerOptions {
  pool: pg.Pool
  schema: string
  periodic: readonly PeriodicTask[]
  maxPayloadBytes: number
  onDeferred: (job: Job) => void
  onError: (error: unknown, taskName: string) => void
}

/**
 * Wakes at each tick of each periodic task and defers it through `defer_periodic_job`, which lets exactly
 * one of the workers running the same schedule defer a given tick. Ticks missed while no worker ran
 * are not made up.
 */
export class PeriodicScheduler {
  readonly #options: PeriodicSchedulerOptions
  readonly #timers = new Set<NodeJS.Timeout>()
  readonly #payloads: readonly string[]
  #isStopped = false

  /** @throws {InvalidArgumentError} for an invalid cron expression or time zone, or an unstorable payload. */
  constructor(options: PeriodicSchedulerOptions) {
    this.#options = options
    this.#payloads = options.periodic.map((entry) => {
      nextTick(entry, new Date())
      return toStorableJson(entry.payload ?? {}, { taskName: entry.task.name, maxBytes: options.maxPayloadBytes })
    })
  }

  start(): void {
    this.#options.periodic.forEach((entry, index) => this.#scheduleNext(entry, index))
  }

  stop(): void {
    this.#isStopped = true
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
  }

  #scheduleNext(entry: PeriodicTask, index: number): void {
    const tick = nextTick(entry, new Date())
    // Timers cannot wait longer than about 24.8 days; wake earlier and schedule again.
    const delayMs = Math.min(tick.getTime() - Date.now(), 2 ** 31 - 1)
    const timer = setTimeout(async () => {
      this.#timers.delete(timer)
      if (Date.now() >= tick.getTime()) await this.#defer(entry, index, tick)
      if (!this.#isStopped) this.#scheduleNext(entry, index)
    }, Math.max(0, delayMs))
    this.#timers.add(timer)
  }

  async #defer(entry: PeriodicTask, index: number, tick: Date): Promise<void> {
    const { task } = entry
    try {
      // Every worker running the schedule tries each tick; the span of those that find it deferred counts 0 jobs.
      const [job] = await traceDefer(task.name, task.definition.queue ?? 'default', async (traceContext) => {
        const deferred = await deferPeriodicJob(toQueryable(this.#options.pool), this.#options.schema, {
          taskName: task.name,
          tickAt: tick,
          payloadJson: this.#payloads[index],
          queueName: task.definition.queue,
          priority: task.definition.priority,
          maxAttempts: task.definition.maxAttempts,
          traceContext,
        })
        return deferred ? [deferred] : []
      })
      if (job) this.#options.onDeferred(job)
    } catch (error) {
      this.#options.onError(error, task.name)
    }
  }
}

function nextTick(entry: PeriodicTask, after: Date): Date {
  try {
    return CronExpressionParser.parse(entry.cron, { currentDate: after, tz: entry.timeZone ?? 'UTC', strict: false }).next().toDate()
  } catch (error) {
    throw new InvalidArgumentError(
      { argument: 'periodic.cron', reason: `${JSON.stringify(entry.cron)} for task ${JSON.stringify(entry.task.name)}: ${(error as Error).message}` },
      { cause: error },
    )
  }
}
