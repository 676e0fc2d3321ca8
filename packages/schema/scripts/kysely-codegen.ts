import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

/** Where the committed Kysely types live. */
export const generatedTypesFile = fileURLToPath(new URL('../src/generated/db.ts', import.meta.url))

const codegenBin = fileURLToPath(new URL('../node_modules/.bin/kysely-codegen', import.meta.url))

/** Runs kysely-codegen against a migrated database and writes the types of the skiplock schema to `outFile`. */
export async function runKyselyCodegen(databaseUrl: string, outFile: string): Promise<void> {
  await promisify(execFile)(codegenBin, [
    '--dialect',
    'postgres',
    '--url',
    databaseUrl,
    '--include-pattern',
    'skiplock.*',
    '--log-level',
    'error',
    '--out-file',
    outFile,
  ])
}
