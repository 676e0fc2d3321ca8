import { chaosTest } from './support/fleet.ts'
import { chaosScale, scaled } from './support/scale.ts'
import { runWithKills } from './support/scenarios.ts'

chaosTest('R2: SIGKILLed workers lose no job, duplicate few, and their jobs restart within the lease', { timeout: 120_000 * chaosScale }, async ({ ledger, fleet }) => {
  await runWithKills(ledger, fleet, { id: 'R2', jobs: scaled(5000), kills: scaled(10), processes: chaosScale >= 10 ? 8 : 4 })
})
