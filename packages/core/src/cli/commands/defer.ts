import { type Command, Option } from 'commander'

import { defineTask, type DeferOptions, InvalidPayloadError, type Task } from '../../index.ts'
import { addConnectionOptions, type ConnectionOptions, withSession } from '../connection.ts'
import { parseDate, parseInteger, parseMilliseconds, parsePositiveInteger } from '../parsers.ts'
import { print, printJson } from '../output.ts'

interface DeferCommandOptions extends ConnectionOptions {
  queue?: string
  priority?: number
  runAt?: Date
  delay?: number
  maxAttempts?: number
  lock?: string
  queueingLock?: string
  existing?: boolean
  json?: boolean
}

/** `skiplock defer <task> [payload]`: enqueues one job and prints its id. */
export function registerDeferCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('defer')
      .description('enqueue one job of a task and print its id')
      .argument('<task>', 'task name')
      .argument('[payload]', 'payload as JSON text', '{}')
      .option('--queue <name>', 'queue (default: the task default, "default")')
      .option('--priority <n>', 'higher runs first (default 0)', parseInteger)
      .addOption(new Option('--run-at <iso>', 'run no earlier than this ISO 8601 time').argParser(parseDate).conflicts('delay'))
      .option('--delay <ms>', 'run no earlier than this many milliseconds from now', parseMilliseconds)
      .option('--max-attempts <n>', 'attempts before the job fails for good (default 5)', parsePositiveInteger)
      .option('--lock <key>', 'jobs with the same lock run one at a time, in order')
      .option('--queueing-lock <key>', 'at most one waiting job per key')
      .option('--existing', 'when the queueing lock is taken, print the waiting job instead of failing')
      .option('--json', 'print the job as JSON'),
  ).action(async (taskName: string, payloadText: string, options: DeferCommandOptions) => {
    const task = commandLineTask(taskName)
    const payload = parsePayload(task, payloadText)
    const deferOptions: DeferOptions<unknown> = {
      queue: options.queue,
      priority: options.priority,
      runAt: options.runAt,
      delayMs: options.delay,
      maxAttempts: options.maxAttempts,
      lock: options.lock,
      queueingLock: options.queueingLock,
      onQueueingLockConflict: options.existing ? 'existing' : 'error',
    }
    const job = await withSession(options, ({ client }) => client.defer(task, payload, deferOptions))
    if (options.json) printJson(job)
    else print(job.id)
  })
}

/**
 * The CLI has no task module, only a name: a task with no schema and the built-in defaults, whose
 * handler never runs here (workers run their own task of the same name).
 * @throws {InvalidArgumentError} for an invalid task name.
 */
function commandLineTask(name: string): Task<unknown> {
  return defineTask({
    name,
    handler: () => {
      throw new Error(`task ${name} was defined by the skiplock CLI to defer jobs; it cannot run them`)
    },
  })
}

/** @throws {InvalidPayloadError} naming the task and the JSON parser's complaint, without the payload. */
function parsePayload(task: Task, text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    // V8 quotes the start of the text in its message (`Unexpected token 'x', "{..." is not valid JSON`),
    // and a payload may hold what must not reach a terminal or a log: so no `cause` either.
    const complaint = (error as Error).message.replace(/, ".*"(\.\.\.)? is not valid JSON$/s, ' in the JSON text')
    throw new InvalidPayloadError({ taskName: task.name, reason: `it is not JSON text (${complaint})` })
  }
}
