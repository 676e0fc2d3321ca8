import { CompiledQuery } from 'kysely'
import type pg from 'pg'

/** Anything that runs a parameterised statement: a `pg` pool, client or pool client, or a Kysely instance or transaction. */
export type Connection = pg.Pool | pg.ClientBase | KyselyExecutor

/** The part of Kysely (`Kysely` or `Transaction`) skiplock needs. */
export interface KyselyExecutor {
  executeQuery<R>(query: CompiledQuery<R>): Promise<{ rows: R[] }>
}

/** The one shape every typed SQL caller takes. */
export interface Queryable {
  query<R>(sql: string, values?: readonly unknown[]): Promise<R[]>
}

/**
 * Adapts a `pg` pool or client, or a Kysely instance or transaction, to {@link Queryable}. Statements are
 * unnamed (never server-side prepared), so they also work through PgBouncer in transaction mode.
 */
export function toQueryable(connection: Connection): Queryable {
  if ('executeQuery' in connection) {
    return {
      query: async <R>(sql: string, values: readonly unknown[] = []) =>
        (await connection.executeQuery(CompiledQuery.raw(sql, [...values]) as CompiledQuery<R>)).rows,
    }
  }
  return {
    query: async <R>(sql: string, values: readonly unknown[] = []) =>
      (await (connection as pg.ClientBase).query(sql, values as unknown[])).rows as R[],
  }
}
