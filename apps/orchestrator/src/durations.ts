import type { Scenario } from './scenario.ts'

/**
 * Returns a function drawing job durations in milliseconds for the scenario's distribution, from a
 * generator seeded with `seed`, so a run's jobs can be drawn again exactly.
 */
export function durationSampler(scenario: Pick<Scenario, 'avgDurationSeconds' | 'distribution'>, seed: string): () => number {
  const random = mulberry32(hash(seed))
  const meanMs = scenario.avgDurationSeconds * 1000
  switch (scenario.distribution) {
    case 'fixed':
      return () => Math.round(meanMs)
    case 'uniform':
      return () => Math.round(meanMs * (0.5 + random()))
    case 'exponential':
      return () => Math.round(-meanMs * Math.log(1 - random()))
  }
}

// A small, well-known 32-bit generator: fast, and good enough to spread sleep times.
function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function hash(text: string): number {
  let h = 2166136261
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619)
  return h >>> 0
}
