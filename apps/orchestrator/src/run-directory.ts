import { mkdir, writeFile } from 'node:fs/promises'

import { perfDirectory } from './scenario.ts'

/** `perf/runs/<run-id>/`, created if needed. */
export async function runDirectory(runId: string): Promise<URL> {
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(runId)) {
    throw new Error(`run id ${JSON.stringify(runId)} is invalid: expected 1 to 100 characters of letters, digits and _ . -`)
  }
  const directory = new URL(`runs/${runId}/`, perfDirectory)
  await mkdir(directory, { recursive: true })
  return directory
}

/** Writes `value` as indented JSON to `name` in the run's directory. */
export async function writeRunFile(directory: URL, name: string, value: unknown): Promise<void> {
  await writeFile(new URL(name, directory), `${JSON.stringify(value, null, 2)}\n`)
}

/** The queue a run's jobs go to, so runs sharing a database stay apart. */
export function runQueue(runId: string): string {
  return `bench.${runId}`
}
