import { readdir, readFile } from 'node:fs/promises'

import { z } from 'zod'

/** Where scenario files and run outputs live: `perf/` at the repository root. */
export const perfDirectory = new URL('../../../perf/', import.meta.url)

/** A benchmark scenario: what `perf/scenarios/<name>.json` holds, after defaults. */
export const Scenario = z
  .object({
    description: z.string().default(''),
    /** Jobs to create. */
    jobs: z.int().min(1),
    /** Mean time a job sleeps (its "external call"), in seconds. */
    avgDurationSeconds: z.number().min(0),
    /** fixed: every job sleeps the mean; uniform: 50% to 150% of it; exponential: memoryless around it. */
    distribution: z.enum(['fixed', 'uniform', 'exponential']).default('uniform'),
    /** Probability that an attempt throws after its sleep; the job retries up to maxAttempts. */
    failureRate: z.number().min(0).max(1).default(0),
    maxAttempts: z.int().min(1).default(3),
    /** Jobs per insert statement. */
    batchSize: z.int().min(1).max(100_000).default(5000),
    /** Jobs created per second for a steady-state run; null creates them all at once. */
    rate: z.number().positive().nullable().default(null),
    /** Start the workers before creating jobs (steady-state and latency runs) rather than draining a backlog. */
    workersFirst: z.boolean().default(false),
    processes: z.int().min(1).max(500).default(4),
    concurrency: z.int().min(1).max(10_000).default(4),
    poolSize: z.int().min(1).max(100).default(2),
    listen: z.boolean().default(true),
    /** Settings of the embedded PostgreSQL (ignored with DATABASE_URL, whose settings are not ours). */
    database: z.record(z.string().regex(/^[a-z_]+$/), z.union([z.string(), z.number(), z.boolean()])).default({ max_connections: 100 }),
  })
  .strict()

export type Scenario = z.infer<typeof Scenario>

/** A scenario that cannot run: one line naming the field and what is allowed. */
export class ScenarioError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ScenarioError'
  }
}

/** Scenario fields settable from the command line, with the flag that sets each. */
export const scenarioFlags = {
  'max-jobs': { field: 'jobs', type: 'number' },
  'avg-duration': { field: 'avgDurationSeconds', type: 'number' },
  distribution: { field: 'distribution', type: 'string' },
  'failure-rate': { field: 'failureRate', type: 'number' },
  'max-attempts': { field: 'maxAttempts', type: 'number' },
  'batch-size': { field: 'batchSize', type: 'number' },
  rate: { field: 'rate', type: 'number' },
  'workers-first': { field: 'workersFirst', type: 'boolean' },
  processes: { field: 'processes', type: 'number' },
  concurrency: { field: 'concurrency', type: 'number' },
  'pool-size': { field: 'poolSize', type: 'number' },
  listen: { field: 'listen', type: 'boolean' },
  'max-connections': { field: 'database.max_connections', type: 'number' },
} as const

/** The names of the scenario files in `perf/scenarios/`. */
export async function scenarioNames(): Promise<string[]> {
  const files = await readdir(new URL('scenarios/', perfDirectory))
  return files.filter((file) => file.endsWith('.json')).map((file) => file.slice(0, -'.json'.length)).sort()
}

/**
 * Reads `perf/scenarios/<name>.json`, applies the command line's overrides, and validates the result.
 * @throws {ScenarioError} naming the scenario, the field and what is allowed.
 */
export async function loadScenario(name: string, overrides: Record<string, unknown>): Promise<Scenario> {
  const names = await scenarioNames()
  if (!names.includes(name)) {
    throw new ScenarioError(`unknown scenario ${JSON.stringify(name)}: expected one of ${names.join(', ')}`)
  }
  let file: unknown
  try {
    file = JSON.parse(await readFile(new URL(`scenarios/${name}.json`, perfDirectory), 'utf8'))
  } catch (error) {
    throw new ScenarioError(`perf/scenarios/${name}.json is not valid JSON: ${(error as Error).message}`)
  }
  return parseScenario({ ...(file as object), ...withoutUndefined(overrides) }, `perf/scenarios/${name}.json`)
}

/** Validates a scenario object. @throws {ScenarioError} naming the first invalid field. */
export function parseScenario(input: unknown, source: string): Scenario {
  const result = Scenario.safeParse(normalise(input))
  if (!result.success) {
    const issue = result.error.issues[0]!
    const field = issue.path.join('.') || '(root)'
    throw new ScenarioError(`${source}: ${field}: ${issue.message}`)
  }
  return result.data
}

// "database.max_connections" from a flag becomes a nested field.
function normalise(input: unknown): unknown {
  if (typeof input !== 'object' || input === null) return input
  const output: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(input)) {
    if (key.startsWith('database.')) {
      output.database = { ...((output.database as object) ?? {}), [key.slice('database.'.length)]: value }
    } else if (key === 'database') {
      output.database = { ...(value as object), ...((output.database as object) ?? {}) }
    } else {
      output[key] = value
    }
  }
  return output
}

function withoutUndefined(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined))
}
