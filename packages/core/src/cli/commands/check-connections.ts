import type { Command } from 'commander'

import { checkConnectionBudget, ConnectionBudgetExceededError, connectionsPerWorker } from '../../index.ts'
import { addConnectionOptions, connectDatabase, type ConnectionOptions } from '../connection.ts'
import { print, printJson } from '../output.ts'
import { parsePositiveInteger } from '../parsers.ts'

interface CheckConnectionsCommandOptions extends ConnectionOptions {
  processes: number
  connectionsPerProcess?: number
  poolSize?: number
  listen: boolean
  json?: boolean
}

/**
 * `skiplock check-connections --processes 12`: whether a fleet of worker processes fits in the server's
 * connections. Exits 1 when it does not, so a deploy script can stop before starting the fleet.
 */
export function registerCheckConnectionsCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('check-connections')
      .description('check that the server has enough free connections for a fleet of worker processes; exits 1 if not')
      .requiredOption('--processes <n>', 'worker processes to start', parsePositiveInteger)
      .option('--connections-per-process <n>', 'connections one process holds (default: from --pool-size and --no-listen)', parsePositiveInteger)
      .option('--pool-size <n>', 'the workers\' pool size (default 1, or 2 with --no-listen)', parsePositiveInteger)
      .option('--no-listen', 'the workers poll only, so hold no LISTEN connection')
      .option('--json', 'print the budget as JSON'),
  ).action(async (options: CheckConnectionsCommandOptions) => {
    const url = await connectDatabase(options)
    const plan = {
      processes: options.processes,
      connectionsPerProcess: options.connectionsPerProcess ?? connectionsPerWorker({ poolSize: options.poolSize, listen: options.listen }),
    }
    const budget = await checkConnectionBudget(url, plan)
    if (options.json) printJson({ ...plan, ...budget })
    if (!budget.fits) throw new ConnectionBudgetExceededError(plan, budget)
    if (!options.json) {
      print(
        `${plan.processes} processes x ${plan.connectionsPerProcess} connections need ${budget.needed} connections; ${budget.available} are available ` +
          `(max_connections ${budget.maxConnections}, ${budget.reservedConnections} reserved, ${budget.openConnections} open)`,
      )
    }
  })
}
