import { execFile } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { promisify } from 'node:util'

import { expect } from 'vitest'

import { test } from '../src/testing.ts'

test('the README example works as written', async ({ db }) => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1]
  expect(example?.split('\n').length).toBeLessThanOrEqual(30)
  // Written next to the tests so that '@skiplock/core' and 'zod' resolve as in a project that depends on them.
  const file = new URL(`./fixtures/readme-example-${process.pid}.ts`, import.meta.url)
  await writeFile(file, example!)
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['--conditions=development', file.pathname], {
      env: { ...process.env, DATABASE_URL: db.url },
      timeout: 20_000,
    })
    expect(stdout.trim()).toBe(`{ sentTo: 'ada@example.com' }`)
  } finally {
    await rm(file, { force: true })
  }
})
