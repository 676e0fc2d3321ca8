import type { TestDatabase } from '@skiplock/schema/testing'

export { test, waitFor } from '@skiplock/core/testing'

/** Counts rows with one `count(*)::int as count` query. */
export async function count(db: TestDatabase, sql: string, values?: unknown[]): Promise<number> {
  return (await db.query<{ count: number }>(sql, values)).rows[0]!.count
}
