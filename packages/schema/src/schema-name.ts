import pg from 'pg'

import { InvalidSchemaNameError } from './errors.ts'

/** The schema skiplock uses when none is given. */
export const DEFAULT_SCHEMA = 'skiplock'

const SCHEMA_NAME_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/

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
