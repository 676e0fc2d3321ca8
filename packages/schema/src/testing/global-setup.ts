import { randomBytes } from 'node:crypto'

import pg from 'pg'
import type { TestProject } from 'vitest/node'

import { migrate } from '../migrate.ts'
import { DEFAULT_SCHEMA } from '../schema-name.ts'
import { startDatabaseServer } from '../server/index.ts'
import { databaseUrl } from './database-url.ts'

declare module 'vitest' {
  export interface ProvidedContext {
    skiplockTestServer: { adminUrl: string; templateDatabase: string; schema: string; serverVersion: string }
  }
}

/**
 * Vitest global setup: one PostgreSQL server per run (DATABASE_URL, a container, or embedded) and one
 * migrated template database that every test clones.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startDatabaseServer({ settings: { max_connections: 200, fsync: 'off' } })
  const templateDatabase = `skiplock_template_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: server.url, application_name: 'skiplock-test-setup' })
  try {
    await admin.connect()
    await admin.query(`create database ${pg.escapeIdentifier(templateDatabase)}`)
    // migrate() closes its own connection: a clone fails while the template has sessions.
    await migrate(databaseUrl(server.url, templateDatabase), { schema: DEFAULT_SCHEMA })
    const version = await admin.query<{ server_version: string }>('show server_version')
    const serverVersion = `${server.kind} PostgreSQL ${version.rows[0]?.server_version ?? 'unknown'}`
    console.log(`tests use ${serverVersion}`)
    project.provide('skiplockTestServer', {
      adminUrl: server.url,
      templateDatabase,
      schema: DEFAULT_SCHEMA,
      serverVersion,
    })
  } catch (error) {
    await admin.end().catch(() => {})
    await server.stop()
    throw error
  }

  return async () => {
    try {
      await admin.query(`drop database if exists ${pg.escapeIdentifier(templateDatabase)} with (force)`)
      await admin.end()
    } finally {
      await server.stop()
    }
  }
}
