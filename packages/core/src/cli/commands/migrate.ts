import type { Command } from 'commander'

import { migrate } from '../../index.ts'
import { addConnectionOptions, connectDatabase, type ConnectionOptions } from '../connection.ts'
import { print } from '../output.ts'

/** `skiplock migrate`: brings the schema up to date and says what changed. */
export function registerMigrateCommand(program: Command): void {
  addConnectionOptions(
    program
      .command('migrate')
      .description('apply pending migrations and update changed functions (a no-op when up to date)'),
  ).action(async (options: ConnectionOptions) => {
    const url = await connectDatabase(options)
    const result = await migrate(url, { schema: options.schema })
    for (const name of result.appliedMigrations) print(`applied migration ${name}`)
    if (result.updatedFunctions.length > 0) print(`updated ${result.updatedFunctions.length} functions`)
    if (result.appliedMigrations.length === 0 && result.updatedFunctions.length === 0) {
      print(`schema ${options.schema} is up to date`)
    }
  })
}
