import { translateDatabaseError, type ErrorContext } from '../database-errors.ts'
import type { Queryable } from '../queryable.ts'
import { quoteSchemaName } from '../schema-name.ts'

/**
 * Runs `select ... from <schema>.<function>(...)` and translates skiplock SQLSTATEs into typed errors.
 * `build` gets the quoted schema and returns the statement.
 */
export async function callSql<R>(
  db: Queryable,
  schema: string,
  build: (quotedSchema: string) => string,
  values: readonly unknown[],
  context?: ErrorContext,
): Promise<R[]> {
  const sql = build(quoteSchemaName(schema))
  try {
    return await db.query<R>(sql, values)
  } catch (error) {
    throw translateDatabaseError(error, context)
  }
}
