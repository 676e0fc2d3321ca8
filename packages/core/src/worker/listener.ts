import pg from 'pg'

import { ConnectionEndedError } from './outage.ts'

export interface ListenerOptions {
  connectionString: string
  schema: string
  /** A job was deferred to this queue. */
  onJobs: (queueName: string) => void
  /** A running job's cancellation was requested. */
  onCancel: (jobId: string) => void
  /** (Re)connected: anything announced while disconnected was missed, so look now. */
  onConnected: () => void
  onError: (error: unknown) => void
  /** How long opening the connection may take. */
  connectTimeoutMs: number
}

/**
 * The worker's one dedicated LISTEN connection. It reconnects with backoff when the connection drops;
 * a lost connection only adds latency, since polling is the correctness path. While it is up, the
 * worker also claims jobs on it, so its pool needs one connection fewer.
 */
export class Listener {
  readonly #options: ListenerOptions
  #client: pg.Client | undefined
  #isListening = false
  #reconnectTimer: NodeJS.Timeout | undefined
  #failures = 0
  #isStopped = false

  constructor(options: ListenerOptions) {
    this.#options = options
  }

  /** The listening connection while it is up and listening; undefined while it (re)connects. */
  get connection(): pg.Client | undefined {
    return this.#isListening ? this.#client : undefined
  }

  start(): void {
    void this.#connect()
  }

  async stop(): Promise<void> {
    this.#isStopped = true
    this.#isListening = false
    clearTimeout(this.#reconnectTimer)
    const client = this.#client
    this.#client = undefined
    await client?.end().catch(() => {})
  }

  /** The database is back: reconnect now rather than when the backoff ends. */
  reconnectNow(): void {
    if (this.#isStopped || this.#reconnectTimer === undefined) return
    clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = undefined
    this.#failures = 0
    void this.#connect()
  }

  async #connect(): Promise<void> {
    this.#reconnectTimer = undefined
    const { connectionString, schema } = this.#options
    const client = new pg.Client({
      connectionString,
      application_name: 'skiplock-listener',
      connectionTimeoutMillis: this.#options.connectTimeoutMs,
      keepAlive: true,
    })
    this.#client = client
    let hasDropped = false
    const drop = (error: unknown) => {
      if (hasDropped || this.#isStopped) return
      hasDropped = true
      this.#isListening = false
      this.#options.onError(error)
      client.end().catch(() => {})
      this.#scheduleReconnect()
    }
    client.on('error', drop)
    client.on('end', () => drop(new ConnectionEndedError('the listening connection ended')))
    client.on('notification', (message) => {
      if (message.channel === `${schema}_jobs`) this.#options.onJobs(message.payload ?? '')
      else if (message.channel === `${schema}_cancel` && message.payload) this.#options.onCancel(message.payload)
    })
    try {
      await client.connect()
      await client.query(`listen ${pg.escapeIdentifier(`${schema}_jobs`)}; listen ${pg.escapeIdentifier(`${schema}_cancel`)}`)
      if (this.#isStopped) {
        await client.end()
        return
      }
      this.#failures = 0
      this.#isListening = true
      this.#options.onConnected()
    } catch (error) {
      drop(error)
    }
  }

  #scheduleReconnect(): void {
    if (this.#isStopped) return
    this.#failures += 1
    const delayMs = Math.min(10_000, 100 * 2 ** this.#failures) * (0.5 + Math.random() / 2)
    this.#reconnectTimer = setTimeout(() => void this.#connect(), delayMs)
  }
}
