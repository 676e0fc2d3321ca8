// Regenerates src/generated/db.ts from a freshly migrated database: `pnpm generate`.
import pg from 'pg'

import { migrate } from '../src/index.ts'
import { startDatabaseServer } from '../src/server/index.ts'
import { generatedTypesFile, runKyselyCodegen } from './kysely-codegen.ts'

await using server = await startDatabaseServer()
const database = `skiplock_codegen_${process.pid}`
const admin = new pg.Client({ connectionString: server.url })
await admin.connect()
try {
  await admin.query(`create database ${pg.escapeIdentifier(database)}`)
  const url = new URL(server.url)
  url.pathname = `/${database}`
  await migrate(url.toString())
  await runKyselyCodegen(url.toString(), generatedTypesFile)
  console.log(`wrote ${generatedTypesFile}`)
} finally {
  await admin.query(`drop database if exists ${pg.escapeIdentifier(database)} with (force)`)
  await admin.end()
}
