import { errorMessage } from './connection.ts'
import { InvalidOptionError, MonitorStoppedError } from './errors.ts'
import type { ErrorSample, Sample, SampleData } from './samples.ts'

/** Reads one kind of measurement. `sample()` should take a few milliseconds; it runs once per round. */
export interface Sampler {
  /** Names the sampler in error samples. */
  readonly name: string
  /** Reads the current values. A throw becomes an error sample for this round; the monitor carries on. */
  sample(): Promise<SampleData[]>
  /** Releases connections; called once by `monitor.stop()`. */
  close?(): Promise<void> | void
}

/** Receives each round's samples, in round order, never two rounds at once. */
export interface Sink {
  /** Names the sink when it fails. */
  readonly name: string
  /** Stores one round's samples. A throw is reported to `onError`; later rounds are still written. */
  write(samples: readonly Sample[]): Promise<void> | void
  /** Flushes and releases; called once by `monitor.stop()` after the last round. */
  close?(): Promise<void> | void
}

/** Options of {@link startMonitor}. */
export interface MonitorOptions {
  /** Time between the starts of two rounds, in milliseconds (default 1000). A late round skips the ticks it missed. */
  readonly intervalMs?: number
  readonly samplers: readonly Sampler[]
  readonly sinks: readonly Sink[]
  /** Told when a sink fails to write or close. Default: one line on stderr. */
  readonly onError?: (error: unknown, context: { readonly sink: string; readonly during: 'write' | 'close' }) => void
}

/** A running monitor. */
export interface Monitor {
  /** Runs one round now (after any round in progress) and returns its samples, as written to the sinks. */
  sampleNow(): Promise<Sample[]>
  /**
   * Stops the timer, takes a last round, then closes the sinks and the samplers. Calling it again returns
   * the same promise.
   * @throws the first error a sink or sampler raised while closing (all of them are still closed).
   */
  stop(): Promise<void>
}

/**
 * Samples at once and then every `intervalMs`: each round runs every sampler in parallel, stamps their
 * samples with the round's start time `t`, and hands them to every sink. A failing sampler yields an
 * `{ kind: 'error' }` sample and a failing sink a call to `onError`; neither stops the monitor. Its timer
 * keeps Node running until `stop()`.
 * @throws {InvalidOptionError} when `intervalMs` is not a positive number.
 * @example
 * const monitor = startMonitor({
 *   samplers: [connectionsSampler({ connectionString }), processSampler({ name: 'api', pid: process.pid })],
 *   sinks: [jsonlSink('samples.jsonl')],
 * })
 * process.once('SIGTERM', () => void monitor.stop())
 */
export function startMonitor(options: MonitorOptions): Monitor {
  const { intervalMs = 1000, samplers, sinks, onError = printSinkError } = options
  if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) {
    throw new InvalidOptionError({ option: 'intervalMs', value: intervalMs, expected: 'a positive number of milliseconds' })
  }

  const startedAt = performance.now()
  let timer: NodeJS.Timeout | undefined
  let isStopped = false
  let stopping: Promise<void> | undefined
  // Rounds run one after another so that sinks see them in order and a sampler never overlaps itself.
  let lastRound: Promise<unknown> = Promise.resolve()

  const runRound = (): Promise<Sample[]> => {
    const round = lastRound.then(() => sampleRound(samplers, sinks, onError))
    lastRound = round.catch(() => {})
    return round
  }

  const tick = (): void => {
    void runRound().finally(scheduleNext)
  }

  // Ticks stay on the grid that started with the monitor, so rounds do not drift by their own duration.
  function scheduleNext(): void {
    if (isStopped) return
    const elapsedMs = performance.now() - startedAt
    timer = setTimeout(tick, intervalMs - (elapsedMs % intervalMs))
  }

  tick()

  return {
    sampleNow() {
      if (isStopped) return Promise.reject(new MonitorStoppedError())
      return runRound()
    },
    stop() {
      stopping ??= (async () => {
        isStopped = true
        clearTimeout(timer)
        await runRound()
        const failures: unknown[] = []
        await Promise.all(
          sinks.map(async (sink) => {
            try {
              await sink.close?.()
            } catch (error) {
              onError(error, { sink: sink.name, during: 'close' })
              failures.push(error)
            }
          }),
        )
        await Promise.all(
          samplers.map(async (sampler) => {
            try {
              await sampler.close?.()
            } catch (error) {
              failures.push(error)
            }
          }),
        )
        if (failures.length > 0) throw failures[0]
      })()
      return stopping
    },
  }
}

async function sampleRound(
  samplers: readonly Sampler[],
  sinks: readonly Sink[],
  onError: NonNullable<MonitorOptions['onError']>,
): Promise<Sample[]> {
  const t = new Date().toISOString()
  const readings = await Promise.all(
    samplers.map(async (sampler): Promise<SampleData[]> => {
      try {
        return await sampler.sample()
      } catch (error) {
        return [errorSample(sampler.name, error)]
      }
    }),
  )
  const samples = readings.flat().map((data): Sample => ({ t, ...data }))
  await Promise.all(
    sinks.map(async (sink) => {
      try {
        await sink.write(samples)
      } catch (error) {
        onError(error, { sink: sink.name, during: 'write' })
      }
    }),
  )
  return samples
}

/** The error sample recording that `sampler` threw `error`, with its code when it has one. */
export function errorSample(sampler: string, error: unknown): ErrorSample {
  const code = (error as { code?: unknown } | null)?.code
  return {
    kind: 'error',
    sampler,
    message: errorMessage(error),
    ...(typeof code === 'string' ? { code } : {}),
  }
}

function printSinkError(error: unknown, context: { sink: string; during: 'write' | 'close' }): void {
  console.error(`skiplock-monitor: sink ${context.sink} failed to ${context.during}: ${errorMessage(error)}`)
}
