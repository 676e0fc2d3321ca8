import type pg from 'pg'

/** Thrown inside {@link inTransaction} to roll back without failing: the transaction resolves with `value`. */
export class Rollback<T> {
  readonly value: T

  constructor(value: T) {
    this.value = value
  }
}

/**
 * Runs `work` in a transaction on a pooled connection: commits when it returns, rolls back when it
 * throws (rethrowing) or throws a {@link Rollback} (resolving with its value). A connection whose
 * rollback failed is discarded rather than returned to the pool.
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let isBroken = false
  // A checked-out client is ours to watch: a socket error (a server crash) would otherwise be an unhandled
  // 'error' event and end the process. The query in flight fails with the error anyway.
  const onSocketError = () => {
    isBroken = true
  }
  client.on('error', onSocketError)
  try {
    await client.query('begin')
    const value = await work(client)
    await client.query('commit')
    return value
  } catch (error) {
    await client.query('rollback').catch(() => {
      isBroken = true
    })
    if (error instanceof Rollback) return error.value as T
    throw error
  } finally {
    client.off('error', onSocketError)
    client.release(isBroken)
  }
}
