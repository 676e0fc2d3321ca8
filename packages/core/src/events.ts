import { EventEmitter } from 'node:events'

/**
 * A typed event emitter. `once(name)` without a listener returns a promise of the next event, so tests
 * and callers can subscribe before acting and then await.
 */
export class TypedEmitter<Events extends Record<string, unknown>> {
  readonly #emitter = new EventEmitter()

  constructor() {
    // Many concurrent result waiters or tests may listen at once; that is not a leak.
    this.#emitter.setMaxListeners(0)
  }

  on<K extends keyof Events & string>(name: K, listener: (event: Events[K]) => void): this {
    this.#emitter.on(name, listener)
    return this
  }

  off<K extends keyof Events & string>(name: K, listener: (event: Events[K]) => void): this {
    this.#emitter.off(name, listener)
    return this
  }

  /** Resolves with the next `name` event that `filter` (default: any) accepts. */
  once<K extends keyof Events & string>(name: K, filter: (event: Events[K]) => boolean = () => true): Promise<Events[K]> {
    return new Promise((resolve) => {
      const listener = (event: Events[K]) => {
        if (!filter(event)) return
        this.#emitter.off(name, listener)
        resolve(event)
      }
      this.#emitter.on(name, listener)
    })
  }

  listenerCount(name: keyof Events & string): number {
    return this.#emitter.listenerCount(name)
  }

  protected emit<K extends keyof Events & string>(name: K, event: Events[K]): void {
    this.#emitter.emit(name, event)
  }
}
