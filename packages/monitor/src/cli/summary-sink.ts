import type { Sink } from '../monitor.ts'
import type { ConnectionsSample, DatabaseSample, ProcessSample, Sample } from '../samples.ts'

/** A sink that prints a one-line summary of rounds, and counts what it saw. */
export interface SummarySink extends Sink {
  readonly rounds: number
  readonly samples: number
  readonly errors: number
}

/** Options of {@link summarySink}. */
export interface SummarySinkOptions {
  /** Receives each line, without its newline. */
  readonly print: (line: string) => void
  /** Summarize every this many rounds (1 on a terminal); rates cover the rounds in between. */
  readonly everyRounds: number
}

type Timed<T> = T & { readonly t: string }

const MIB = 1024 * 1024

/**
 * Prints the first round and then every `everyRounds`-th: connections by state, database rates since
 * the previous line, and CPU (percent of one core) and PSS of each process tree. An error sample is
 * printed as soon as it appears, once until its sampler's message changes.
 */
export function summarySink(options: SummarySinkOptions): SummarySink {
  let rounds = 0
  let samples = 0
  let errors = 0
  const previous = new Map<string, Sample>()
  const lastErrors = new Map<string, string>()

  return {
    name: 'summary',
    get rounds() {
      return rounds
    },
    get samples() {
      return samples
    },
    get errors() {
      return errors
    },
    write(round) {
      rounds += 1
      samples += round.length
      const isSummaryRound = (rounds - 1) % options.everyRounds === 0
      const parts: string[] = []
      const failedSamplers = new Set<string>()
      for (const sample of round) {
        if (sample.kind === 'error') {
          errors += 1
          failedSamplers.add(sample.sampler)
          if (lastErrors.get(sample.sampler) !== sample.message) {
            options.print(`${clock(sample.t)} ${sample.sampler} failed: ${sample.message}`)
            lastErrors.set(sample.sampler, sample.message)
          }
          continue
        }
        if (!isSummaryRound) continue
        const key = sample.kind === 'process' ? `process ${sample.name}` : sample.kind
        const before = previous.get(key)
        previous.set(key, sample)
        if (sample.kind === 'connections') parts.push(describeConnections(sample))
        if (sample.kind === 'database') parts.push(describeDatabase(sample, before?.kind === 'database' ? before : undefined))
        if (sample.kind === 'process') parts.push(describeProcess(sample, before?.kind === 'process' ? before : undefined))
      }
      for (const sampler of lastErrors.keys()) if (!failedSamplers.has(sampler)) lastErrors.delete(sampler)
      if (isSummaryRound && parts.length > 0) options.print(`${clock(round[0]?.t)} ${parts.join(' | ')}`)
    },
  }
}

function describeConnections(sample: Timed<ConnectionsSample>): string {
  const states = Object.entries(sample.byState)
    .filter(([, count]) => count > 0)
    .map(([state, count]) => `${state} ${count}`)
  const waiting = Object.entries(sample.waiting).map(([type, count]) => `${type} ${count}`)
  return [
    `connections ${sample.total}/${sample.maxConnections}`,
    states.length > 0 ? ` (${states.join(', ')})` : '',
    waiting.length > 0 ? ` waiting ${waiting.join(', ')}` : '',
  ].join('')
}

function describeDatabase(sample: Timed<DatabaseSample>, before: Timed<DatabaseSample> | undefined): string {
  const parts = [`${sample.database}`]
  const seconds = before === undefined ? 0 : secondsBetween(before, sample)
  if (before !== undefined && seconds > 0) {
    parts.push(`${rate(sample.commits - before.commits, seconds)} commits/s`)
    if (sample.rollbacks > before.rollbacks) parts.push(`${rate(sample.rollbacks - before.rollbacks, seconds)} rollbacks/s`)
    if (sample.walBytes !== null && before.walBytes !== null) {
      parts.push(`WAL ${((sample.walBytes - before.walBytes) / MIB / seconds).toFixed(2)} MiB/s`)
    }
  } else {
    parts.push(`${sample.commits} commits`)
  }
  for (const [table, deadTuples] of Object.entries(sample.deadTuples)) parts.push(`${table} ${deadTuples} dead`)
  if (sample.notificationQueueUsage > 0) parts.push(`notify queue ${(sample.notificationQueueUsage * 100).toFixed(1)}%`)
  return parts.join(' ')
}

function describeProcess(sample: Timed<ProcessSample>, before: Timed<ProcessSample> | undefined): string {
  const seconds = before === undefined ? 0 : secondsBetween(before, sample)
  const cpu =
    before !== undefined && seconds > 0 ? `${(((sample.cpuSeconds - before.cpuSeconds) / seconds) * 100).toFixed(0)}% CPU` : `${sample.cpuSeconds.toFixed(1)} s CPU`
  const processes = sample.processes === 1 ? '1 process' : `${sample.processes} processes`
  return `${sample.name} ${processes} ${cpu} ${(sample.pssBytes / MIB).toFixed(0)} MiB`
}

function secondsBetween(before: { t: string }, after: { t: string }): number {
  return (Date.parse(after.t) - Date.parse(before.t)) / 1000
}

function rate(delta: number, seconds: number): string {
  return (delta / seconds).toFixed(delta / seconds < 10 ? 1 : 0)
}

function clock(t: string | undefined): string {
  return t === undefined ? '' : new Date(t).toTimeString().slice(0, 8)
}
