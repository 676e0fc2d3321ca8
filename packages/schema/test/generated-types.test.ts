import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { expect } from 'vitest'

import { generatedTypesFile, runKyselyCodegen } from '../scripts/kysely-codegen.ts'
import { test } from '../src/testing.ts'

test('the committed Kysely types match a freshly migrated database (run `pnpm generate` after a migration)', async ({ db }) => {
  const directory = await mkdtemp(join(tmpdir(), 'skiplock-codegen-'))
  try {
    const outFile = join(directory, 'db.ts')
    await runKyselyCodegen(db.url, outFile)
    const [fresh, committed] = await Promise.all([readFile(outFile, 'utf8'), readFile(generatedTypesFile, 'utf8')])
    expect(committed).toBe(fresh)
  } finally {
    await rm(directory, { recursive: true, force: true })
  }
})
