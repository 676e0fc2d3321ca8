import type { Command } from 'commander'

import { addConnectionOptions, type ConnectionOptions, withSession } from '../connection.ts'
import { formatAge, formatTable, print, printJson } from '../output.ts'

interface StatsCommandOptions extends ConnectionOptions {
  json?: boolean
}

/** `skiplock stats`: job counts per queue and state. */
export function registerStatsCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('stats')
      .description('job counts per queue: waiting (runnable now), scheduled, running, finished; and the age of the oldest waiting job')
      .option('--json', 'print JSON instead of a table'),
  ).action(async (options: StatsCommandOptions) => {
    const stats = await withSession(options, ({ client }) => client.stats())
    if (options.json) return printJson(stats)
    if (stats.length === 0) return print('no jobs')
    const now = new Date()
    print(
      formatTable(
        [
          { heading: 'queue' },
          { heading: 'waiting', isNumeric: true },
          { heading: 'scheduled', isNumeric: true },
          { heading: 'running', isNumeric: true },
          { heading: 'succeeded', isNumeric: true },
          { heading: 'failed', isNumeric: true },
          { heading: 'cancelled', isNumeric: true },
          { heading: 'oldest waiting', isNumeric: true },
        ],
        stats.map((queue) => [
          queue.queueName,
          String(queue.waiting),
          String(queue.scheduled),
          String(queue.running),
          String(queue.succeeded),
          String(queue.failed),
          String(queue.cancelled),
          formatAge(queue.oldestWaitingAt, now),
        ]),
      ),
    )
  })
}
