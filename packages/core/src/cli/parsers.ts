import { InvalidArgumentError } from 'commander'

/*
 * Parsers for option and argument values. They throw commander's InvalidArgumentError, so a bad value
 * is reported as usage (`error: option '--priority <n>' argument 'x' is invalid. ...`) and exits 2.
 */

/** A whole number (negative allowed), for `--priority`. */
export function parseInteger(value: string): number {
  if (!/^[+-]?\d+$/.test(value)) throw new InvalidArgumentError('Expected a whole number.')
  return Number(value)
}

/** A whole number of at least 1, for counts and sizes. */
export function parsePositiveInteger(value: string): number {
  const number = parseInteger(value)
  if (number < 1) throw new InvalidArgumentError('Expected a whole number of at least 1.')
  return number
}

/** A number of milliseconds of at least 0 (fractions allowed), for `--delay`. */
export function parseMilliseconds(value: string): number {
  const number = Number(value)
  if (value.trim() === '' || !Number.isFinite(number) || number < 0) {
    throw new InvalidArgumentError('Expected a number of milliseconds of at least 0.')
  }
  return number
}

/** An ISO 8601 date and time, for `--run-at`. A time without a zone is local time, as `Date` reads it. */
export function parseDate(value: string): Date {
  const date = new Date(value)
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(date.getTime())) {
    throw new InvalidArgumentError('Expected an ISO 8601 date, e.g. 2030-01-31T09:00:00Z.')
  }
  return date
}

/** A job id: PostgreSQL's bigint, kept as text because it may not fit a JavaScript number. */
export function parseJobId(value: string): string {
  if (!/^\d{1,19}$/.test(value)) throw new InvalidArgumentError('Expected a job id (a whole number).')
  return value
}

/** Variadic job ids: commander passes each value with the ones parsed before it. */
export function collectJobIds(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), parseJobId(value)]
}

/** A comma-separated list, for `--queues a,b`; empty items are dropped. */
export function parseList(value: string): string[] {
  const items = value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
  if (items.length === 0) throw new InvalidArgumentError('Expected a comma-separated list, e.g. emails,reports.')
  return items
}

const DURATION_UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
}

/** A duration such as `7d`, `12h`, `30m`, `1h30m` or `90s`, in milliseconds. */
export function parseDurationMs(value: string): number {
  const parts = [...value.matchAll(/(\d+)(ms|s|m|h|d|w)/g)]
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== value) {
    throw new InvalidArgumentError('Expected a duration such as 7d, 12h, 30m or 1h30m (units: ms, s, m, h, d, w).')
  }
  return parts.reduce((totalMs, part) => totalMs + Number(part[1]) * DURATION_UNIT_MS[part[2]!]!, 0)
}
