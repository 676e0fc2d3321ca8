import pg from 'pg'

import { InvalidSchemaNameError } from './errors.ts'

/** The schema skiplock uses when none is given. */
export const DEFAULT_SCHEMA = 'skiplock'

/**
 * Longest schema name. Notification channels are named `<schema>_jobs`, `<schema>_cancel` and
 * `<schema>_finished`, and PostgreSQL refuses a channel name past 63 bytes: 63 - 9 for `_finished`.
 */
const MAX_SCHEMA_NAME_LENGTH = 54

const SCHEMA_NAME_PATTERN = new RegExp(`^[a-z_][a-z0-9_]{0,${MAX_SCHEMA_NAME_LENGTH - 1}}$`)

/**
 * Checks that `schema` is a plain lowercase identifier and returns it quoted for SQL.
 * @throws {InvalidSchemaNameError} for anything else, before any SQL is built with it.
 */
export function quoteSchemaName(schema: string): string {
  if (!SCHEMA_NAME_PATTERN.test(schema)) {
    throw new InvalidSchemaNameError({ schema })
  }
  return pg.escapeIdentifier(schema)
}

/**
 * Rewrites the `skiplock.` qualifier of SQL written for the default schema to the given schema.
 * The files qualify every reference, so this is the only place a schema name enters SQL text.
 */
export function renderSql(sql: string, schema: string): string {
  const quoted = quoteSchemaName(schema)
  return sql.replace(/\bskiplock\./g, `${quoted}.`)
}
