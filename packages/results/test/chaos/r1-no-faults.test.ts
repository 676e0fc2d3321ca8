import { chaosTest } from './support/fleet.ts'
import { chaosScale, scaled } from './support/scale.ts'
import { runWithoutFaults } from './support/scenarios.ts'

chaosTest('R1: without faults, every job runs exactly once and keyed jobs never overlap', { timeout: 90_000 * chaosScale }, async ({ ledger, fleet }) => {
  await runWithoutFaults(ledger, fleet, { id: 'R1', jobs: scaled(4000), processes: chaosScale >= 10 ? 8 : 4, perSecond: 400 })
})
