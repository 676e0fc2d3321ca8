import { type Command, Option } from 'commander'

import type { JobState } from '../../index.ts'
import { addConnectionOptions, type ConnectionOptions, withSession } from '../connection.ts'
import { formatTable, formatTime, print, printJson } from '../output.ts'
import { parsePositiveInteger } from '../parsers.ts'

/** Every job state, in the order a job goes through them. */
export const JOB_STATES: readonly JobState[] = ['todo', 'doing', 'succeeded', 'failed', 'cancelled']

interface JobsCommandOptions extends ConnectionOptions {
  state?: JobState
  queue?: string
  limit: number
  json?: boolean
}

/** `skiplock jobs`: the newest jobs, optionally of one state and queue. */
export function registerJobsCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('jobs')
      .description('list jobs, newest first')
      .addOption(new Option('--state <state>', 'only jobs in this state').choices(JOB_STATES))
      .option('--queue <name>', 'only jobs of this queue')
      .option('--limit <n>', 'at most this many jobs', parsePositiveInteger, 50)
      .option('--json', 'print JSON instead of a table'),
  ).action(async (options: JobsCommandOptions) => {
    const jobs = await withSession(options, ({ client }) =>
      client.listJobs({ state: options.state, queue: options.queue, limit: options.limit }),
    )
    if (options.json) return printJson(jobs)
    if (jobs.length === 0) return print('no jobs')
    print(
      formatTable(
        [
          { heading: 'id', isNumeric: true },
          { heading: 'state' },
          { heading: 'queue' },
          { heading: 'task' },
          { heading: 'attempts', isNumeric: true },
          { heading: 'run at' },
          { heading: 'finished at' },
        ],
        jobs.map((job) => [
          job.id,
          job.state,
          job.queueName,
          job.taskName,
          `${job.attempts}/${job.maxAttempts}`,
          formatTime(job.runAt),
          formatTime(job.finishedAt),
        ]),
      ),
    )
  })
}
