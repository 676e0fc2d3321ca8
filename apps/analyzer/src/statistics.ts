/** The value below which `fraction` of the sorted values fall (nearest rank). */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil(fraction * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!
}

/** Mean, p50, p90, p99 and max of `values`, in their unit; NaN for each when there are none. Sorts `values`. */
export function summarize(values: number[]): { count: number; mean: number; p50: number; p90: number; p99: number; max: number } {
  const sorted = values.sort((a, b) => a - b)
  return {
    count: sorted.length,
    mean: mean(sorted),
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted.at(-1) ?? Number.NaN,
  }
}

/** The arithmetic mean; NaN when there are no values. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  let sum = 0
  for (const value of values) sum += value
  return sum / values.length
}

/** The largest value; NaN when there are none. A loop, not Math.max(...values): spreading a million values overflows the stack. */
export function peak(values: readonly number[]): number {
  let max = Number.NEGATIVE_INFINITY
  for (const value of values) if (value > max) max = value
  return values.length === 0 ? Number.NaN : max
}

/** How the report prints a measured number: '-' when it is not a number, fewer decimals as it grows. */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '-'
  const magnitude = Math.abs(value)
  if (magnitude >= 100 || Number.isInteger(value)) return value.toFixed(0)
  if (magnitude >= 10) return value.toFixed(1)
  if (magnitude >= 0.01) return value.toFixed(2)
  return value.toPrecision(2)
}
