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
 * rollback failed is discarded rather than returned to the pool. With `idleTimeoutMs`, the server ends the
 * transaction if it sits idle that long between statements (set in the same round trip as `begin`).
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
  { idleTimeoutMs }: { idleTimeoutMs?: number } = {},
): Promise<T> {
  const client = await pool.connect()
  let isBroken = false
  // A checked-out client is ours to watch: a socket error (a server crash, a session the server ended)
  // would otherwise be an unhandled 'error' event and end the process. It says why the connection broke,
  // which the next query's "not queryable" error does not, so it is what the transaction fails with.
  let connectionError: unknown
  const onSocketError = (error: unknown) => {
    isBroken = true
    connectionError ??= error
  }
  client.on('error', onSocketError)
  try {
    await client.query(idleTimeoutMs === undefined ? 'begin' : `begin; set local idle_in_transaction_session_timeout = ${Math.trunc(idleTimeoutMs)}`)
    const value = await work(client)
    await client.query('commit')
    return value
  } catch (error) {
    await client.query('rollback').catch(() => {
      isBroken = true
    })
    if (error instanceof Rollback) return error.value as T
    throw connectionError ?? error
  } finally {
    client.off('error', onSocketError)
    client.release(isBroken)
  }
}
