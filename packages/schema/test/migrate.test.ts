import { describe, expect } from 'vitest'

import { checkSchema, InvalidSchemaNameError, migrate, MigrationChecksumError, SchemaVersionError } from '../src/index.ts'
import { test, waitFor } from '../src/testing.ts'

describe('migrate', () => {
  test('is a no-op on an up-to-date database', async ({ db }) => {
    const result = await migrate(db.url)
    expect(result).toEqual({ appliedMigrations: [], updatedFunctions: [] })
    await checkSchema(db.url)
  })

  test('applies everything once when two connections migrate a new schema at once', async ({ db }) => {
    const [first, second] = await Promise.all([migrate(db.url, { schema: 'concurrent' }), migrate(db.url, { schema: 'concurrent' })])
    const applied = [first.appliedMigrations, second.appliedMigrations].sort((a, b) => b.length - a.length)
    expect(applied[0]).toContain('0001_create_queue')
    expect(applied[1]).toEqual([])
    const { rows } = await db.query(`select count(*)::int as count from concurrent.migrations where name not like 'functions/%'`)
    expect(rows[0].count).toBe(applied[0]!.length)
  })

  test('refuses a database whose applied migration was edited', async ({ db }) => {
    await db.query(`update skiplock.migrations set checksum = 'edited' where name = '0001_create_queue'`)
    const error = await migrate(db.url).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(MigrationChecksumError)
    expect(error).toMatchObject({ code: 'MIGRATION_CHECKSUM_MISMATCH', migration: '0001_create_queue', expected: 'edited' })
  })

  test('refuses a database that has migrations this package does not know', async ({ db }) => {
    await db.query(`insert into skiplock.migrations (name, checksum) values ('9999_from_the_future', 'x')`)
    await expect(migrate(db.url)).rejects.toMatchObject({
      code: 'SCHEMA_VERSION',
      actual: '9999_from_the_future',
      isDatabaseBehind: false,
      message: expect.stringContaining('upgrade skiplock'),
    })
    await expect(checkSchema(db.url)).rejects.toBeInstanceOf(SchemaVersionError)
  })

  test('checkSchema rejects a database that was never migrated', async ({ db }) => {
    await expect(checkSchema(db.url, { schema: 'never_migrated' })).rejects.toMatchObject({
      code: 'SCHEMA_VERSION',
      actual: 'none',
      isDatabaseBehind: true,
      message: expect.stringContaining('run migrate'),
    })
  })

  test('re-creates a function whose file changed', async ({ db }) => {
    await db.query(`update skiplock.migrations set checksum = 'old' where name = 'functions/fetch_jobs'`)
    const result = await migrate(db.url)
    expect(result).toEqual({ appliedMigrations: [], updatedFunctions: ['functions/fetch_jobs'] })
  })

  for (const schema of ['Skiplock', 'has-dash', '1starts_with_digit', 'x"; drop schema skiplock cascade; --', '', 'a'.repeat(64)]) {
    test(`rejects the schema name ${JSON.stringify(schema.slice(0, 40))} before touching the database`, async ({ db }) => {
      const error = await migrate(db.url, { schema }).catch((error: unknown) => error)
      expect(error).toBeInstanceOf(InvalidSchemaNameError)
      expect(error).toMatchObject({ code: 'INVALID_SCHEMA_NAME', schema })
      const { rows } = await db.query(`select count(*)::int as count from pg_namespace where nspname not in ('public', 'skiplock') and nspname not like 'pg\\_%' and nspname <> 'information_schema'`)
      expect(rows[0].count).toBe(0)
    })
  }

  test('installs the whole queue in a schema of the caller\'s choosing, with its own channel', async ({ db }) => {
    await migrate(db.url, { schema: 'tenant_a' })
    const listener = await db.connect()
    const channels: string[] = []
    listener.on('notification', (message) => channels.push(message.channel))
    await listener.query('listen tenant_a_jobs')

    await db.query(`select tenant_a.defer_jobs(array['t'])`)
    const { rows: workers } = await db.query(`select id from tenant_a.register_worker('w')`)
    const { rows } = await db.query(`select task_name from tenant_a.fetch_jobs($1)`, [workers[0].id])
    expect(rows).toEqual([{ task_name: 't' }])
    expect((await db.query(`select tenant_a.channel_name('jobs') as channel`)).rows[0].channel).toBe('tenant_a_jobs')
    await waitFor(() => channels.length > 0, { description: 'the tenant_a notification' })
    expect(channels).toEqual(['tenant_a_jobs'])
    // The default schema is untouched.
    expect((await db.query(`select count(*)::int as count from skiplock.jobs`)).rows[0].count).toBe(0)
  })
})
