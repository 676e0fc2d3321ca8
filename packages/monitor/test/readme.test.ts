import { execFile } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { test } from '@skiplock/schema/testing'
import { expect } from 'vitest'

import type { Sample } from '../src/index.ts'
import { temporaryDirectory } from './helpers.ts'

test('the README example works as written', async ({ db }) => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1]
  expect(example?.split('\n').length).toBeLessThanOrEqual(20)
  // Written next to the tests so that '@skiplock/monitor' and 'pg' resolve as in a project that depends on them.
  const file = new URL(`./fixtures/readme-example-${process.pid}.ts`, import.meta.url)
  await writeFile(file, example!)
  const directory = await temporaryDirectory()
  try {
    await promisify(execFile)(process.execPath, ['--conditions=development', file.pathname], {
      cwd: directory,
      env: { ...process.env, DATABASE_URL: db.url },
      timeout: 20_000,
    })
  } finally {
    await rm(file, { force: true })
  }
  const samples = (await readFile(join(directory, 'monitor', 'samples.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Sample)
  expect(samples.map((sample) => sample.kind).slice(-3)).toEqual(['connections', 'database', 'process'])
  expect(samples.findLast((sample) => sample.kind === 'database')).toMatchObject({ database: db.name })
  expect(samples.findLast((sample) => sample.kind === 'process')).toMatchObject({ name: 'app', processes: 1 })
})
