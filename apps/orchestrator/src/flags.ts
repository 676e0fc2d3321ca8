import { parseArgs, type ParseArgsConfig } from 'node:util'

import { ScenarioError, scenarioFlags } from './scenario.ts'

/** Command-line options every lab stage shares, besides the scenario's own fields. */
export const commonOptions = {
  scenario: { type: 'string' },
  'run-id': { type: 'string' },
  'database-url': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  /** Run even when the server has fewer free connections than the workers need. */
  force: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options']

/**
 * Parses argv into common options and scenario overrides (`--max-jobs 100` → `{ jobs: 100 }`).
 * @throws {ScenarioError} for an unknown flag or a value of the wrong type.
 */
export function parseScenarioFlags(argv: readonly string[]): { options: Record<string, string | boolean | undefined>; overrides: Record<string, unknown> } {
  const options: ParseArgsConfig['options'] = { ...commonOptions }
  for (const [flag, { type }] of Object.entries(scenarioFlags)) {
    options[flag] = { type: type === 'boolean' ? 'boolean' : 'string' }
    if (type === 'boolean') options[`no-${flag}`] = { type: 'boolean' }
  }
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({ args: argv.filter((arg) => arg !== '--'), options, strict: true, allowPositionals: false }).values as typeof values
  } catch (error) {
    throw new ScenarioError((error as Error).message)
  }
  const overrides: Record<string, unknown> = {}
  for (const [flag, { field, type }] of Object.entries(scenarioFlags)) {
    if (values[`no-${flag}`]) overrides[field] = false
    const value = values[flag]
    if (value === undefined) continue
    if (type === 'number') {
      const number = Number(value)
      if (value === '' || !Number.isFinite(number)) throw new ScenarioError(`--${flag}: ${JSON.stringify(value)} is not a number`)
      overrides[field] = number
    } else {
      overrides[field] = value
    }
  }
  return { options: values, overrides }
}
