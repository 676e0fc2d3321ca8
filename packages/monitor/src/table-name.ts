import pg from 'pg'

import { InvalidTableNameError } from './errors.ts'

/** A checked `table` or `schema.table` name. */
export interface TableName {
  /** The name as given, used as the key in samples. */
  readonly name: string
  /** Each part double-quoted, safe to splice into SQL or pass to `to_regclass`. */
  readonly quoted: string
}

// Lowercase only, as skiplock's schema names: a mixed-case name would mean one table quoted and another
// unquoted, and a reader could not tell which was meant.
const IDENTIFIER = /^[a-z_][a-z0-9_$]{0,62}$/

/**
 * Checks that `name` is `table` or `schema.table` made of lowercase identifiers and quotes it.
 * @throws {InvalidTableNameError} otherwise, before any SQL is written.
 */
export function parseTableName(name: string): TableName {
  const parts = name.split('.')
  if (parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) throw new InvalidTableNameError({ tableName: name })
  return { name, quoted: parts.map((part) => pg.escapeIdentifier(part)).join('.') }
}
