import type { Command } from 'commander'

import { type Job, JobNotFoundError } from '../../index.ts'
import { addConnectionOptions, type ConnectionOptions, withSession } from '../connection.ts'
import { formatTime, print, printJson } from '../output.ts'
import { parseJobId } from '../parsers.ts'

interface ShowCommandOptions extends ConnectionOptions {
  json?: boolean
}

/** `skiplock show <id>`: one job in full, with its payload, result and error history. */
export function registerShowCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('show')
      .description('show one job in full: fields, payload, result and the error of each failed attempt')
      .argument('<id>', 'job id', parseJobId)
      .option('--json', 'print JSON'),
  ).action(async (jobId: string, options: ShowCommandOptions) => {
    const job = await withSession(options, ({ client }) => client.getJob(jobId))
    if (!job) throw new JobNotFoundError({ jobId })
    if (options.json) printJson(job)
    else print(describeJob(job))
  })
}

function describeJob(job: Job): string {
  const fields: [string, string][] = [
    ['id', job.id],
    ['task', job.taskName],
    ['queue', job.queueName],
    ['state', job.state],
    ['priority', String(job.priority)],
    ['attempts', `${job.attempts} of ${job.maxAttempts}`],
    ['lock', job.lock ?? '-'],
    ['queueing lock', job.queueingLock ?? '-'],
    ['worker', job.workerId ?? '-'],
    ['created at', formatTime(job.createdAt)],
    ['run at', formatTime(job.runAt)],
    ['started at', formatTime(job.startedAt)],
    ['finished at', formatTime(job.finishedAt)],
    ['cancel requested at', formatTime(job.cancelRequestedAt)],
  ]
  const labelWidth = Math.max(...fields.map(([label]) => label.length)) + 1
  const lines = fields.map(([label, value]) => `${`${label}:`.padEnd(labelWidth)} ${value}`)
  lines.push('', 'payload:', indent(JSON.stringify(job.payload, null, 2)))
  if (job.state === 'succeeded') lines.push('', 'result:', indent(JSON.stringify(job.result, null, 2)))
  if (job.errors.length > 0) {
    lines.push('', 'errors:')
    for (const error of job.errors) {
      lines.push(`  attempt ${error.attempt} at ${error.failedAt}: ${error.name ? `${error.name}: ` : ''}${error.message}`)
      // The stack's first line repeats the message just printed: keep its frames only.
      const frames = (error.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line))
      if (frames.length > 0) lines.push(indent(frames.map((frame) => frame.trim()).join('\n'), '      '))
    }
  }
  return lines.join('\n')
}

function indent(text: string, prefix = '  '): string {
  return text
    .split('\n')
    .map((line) => prefix + line)
    .join('\n')
}
