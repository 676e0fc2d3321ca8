/** Lets at most `limit` callers hold a slot at once; the rest wait in arrival order. */
export class Semaphore {
  readonly #limit: number
  readonly #waiting: (() => void)[] = []
  #held = 0

  constructor(limit: number) {
    this.#limit = limit
  }

  async acquire(): Promise<() => void> {
    if (this.#held < this.#limit) {
      this.#held += 1
    } else {
      // The releaser hands its slot over directly, so `held` stays counted.
      await new Promise<void>((resolve) => this.#waiting.push(resolve))
    }
    let isReleased = false
    return () => {
      if (isReleased) return
      isReleased = true
      const next = this.#waiting.shift()
      if (next) next()
      else this.#held -= 1
    }
  }
}
