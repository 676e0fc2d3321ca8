import path from 'node:path'
import { pathToFileURL } from 'node:url'

import { InvalidArgumentError, type PeriodicTask, type Task } from '../index.ts'

/** What a worker module gives the `worker` command. */
export interface TaskModule {
  /** The module's absolute path. */
  readonly modulePath: string
  /** Every exported task, and every task in an exported array, once each, in export order. */
  readonly tasks: readonly Task[]
  /** The export named `periodic`, or none. */
  readonly periodic: readonly PeriodicTask[]
}

/**
 * Imports an ES module (a path relative to `cwd`) and collects its tasks. Exports are recognised by
 * shape, not by class, so a module that resolved its own copy of `@skiplock/core` still works.
 * @throws {InvalidArgumentError} when the module cannot be imported, exports no task, or exports a
 * `periodic` that is not an array of `{ task, cron }`.
 */
export async function loadTaskModule(specifier: string, cwd = process.cwd()): Promise<TaskModule> {
  const modulePath = path.resolve(cwd, specifier)
  let exports: Record<string, unknown>
  try {
    exports = (await import(pathToFileURL(modulePath).href)) as Record<string, unknown>
  } catch (error) {
    throw new InvalidArgumentError(
      { argument: 'module', reason: `cannot import ${modulePath}: ${(error as Error).message}` },
      { cause: error },
    )
  }
  const tasks = new Set<Task>()
  for (const [name, value] of Object.entries(exports)) {
    if (name === 'periodic') continue
    if (isTask(value)) tasks.add(value)
    else if (Array.isArray(value) && value.length > 0 && value.every(isTask)) for (const task of value) tasks.add(task)
  }
  if (tasks.size === 0) {
    throw new InvalidArgumentError({
      argument: 'module',
      reason: `${modulePath} exports no tasks: export what defineTask() returns, or an array of tasks`,
    })
  }
  return { modulePath, tasks: [...tasks], periodic: readPeriodic(exports.periodic, modulePath) }
}

function readPeriodic(value: unknown, modulePath: string): PeriodicTask[] {
  if (value === undefined) return []
  const isPeriodicTask = (entry: unknown) =>
    typeof entry === 'object' && entry !== null && isTask((entry as PeriodicTask).task) && typeof (entry as PeriodicTask).cron === 'string'
  if (!Array.isArray(value) || !value.every(isPeriodicTask)) {
    throw new InvalidArgumentError({
      argument: 'periodic',
      reason: `the export "periodic" of ${modulePath} must be an array of { task, cron, timeZone?, payload? }`,
    })
  }
  return value as PeriodicTask[]
}

/** Looks like what `defineTask` returns: a name and a handler. */
function isTask(value: unknown): value is Task {
  if (typeof value !== 'object' || value === null) return false
  const candidate = value as { name?: unknown; definition?: { handler?: unknown } }
  return typeof candidate.name === 'string' && typeof candidate.definition?.handler === 'function'
}
