/** Job and fault counts scale with SKIPLOCK_CHAOS_SCALE: 1 (the default) is the CI size, 10 a full run. */
export const chaosScale = parseScale(process.env.SKIPLOCK_CHAOS_SCALE)

/** `count` at the current scale, at least 1. */
export function scaled(count: number): number {
  return Math.max(1, Math.round(count * chaosScale))
}

/** The seed of this run's random choices (job durations and keys, which worker dies): printed in every verdict, replayed with SKIPLOCK_CHAOS_SEED. */
export const chaosSeed = Number(process.env.SKIPLOCK_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31))

/** A seeded random source (mulberry32): which worker dies when is part of what a run must reproduce. */
export function createRandom(seed = chaosSeed): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** A wait for fault schedules, which are time-based by design; conditions are awaited with waitFor. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function parseScale(value: string | undefined): number {
  if (value === undefined || value === '') return 1
  const scale = Number(value)
  if (!(Number.isFinite(scale) && scale > 0)) throw new Error(`SKIPLOCK_CHAOS_SCALE is ${JSON.stringify(value)}: expected a positive number`)
  return scale
}
