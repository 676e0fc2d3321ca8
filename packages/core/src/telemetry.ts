import { createRequire } from 'node:module'

import {
  type Attributes,
  context,
  type Counter,
  type Histogram,
  isSpanContextValid,
  type Link,
  type MeterProvider,
  metrics,
  type ObservableGauge,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api'
import type { Job, QueueStats, RescuedJob } from '@skiplock/schema'

import type { Outcome } from './worker/completer.ts'

// Spans and metrics go through the global OpenTelemetry API: with no SDK registered, every call below is a
// no-op, and no trace context is stored with the jobs.

const { version } = createRequire(import.meta.url)('../package.json') as { version: string }

let tracerOf: { provider: TracerProvider; tracer: Tracer } | undefined

/**
 * The tracer of the global provider. That provider is a proxy which forwards to the SDK registered later, but
 * a new proxy replaces it when the API is reset (`trace.disable()`), so the tracer follows the proxy.
 */
function tracer(): Tracer {
  const provider = trace.getTracerProvider()
  if (tracerOf?.provider !== provider) tracerOf = { provider, tracer: provider.getTracer('skiplock', version) }
  return tracerOf.tracer
}

/** How an execution attempt ended, as the run span's `skiplock.job.outcome` says. */
export type RunOutcome = 'succeeded' | 'failed' | 'retry' | 'lease-lost' | 'released' | 'cancelled'

interface Instruments {
  provider: MeterProvider
  deferred: Counter
  started: Counter
  succeeded: Counter
  failed: Counter
  retried: Counter
  rescued: Counter
  waitTime: Histogram
  runTime: Histogram
  queueDepth: ObservableGauge
}

let instruments: Instruments | undefined

/**
 * The instruments of the meter provider registered now. The metrics API has no proxy: a meter taken before
 * an SDK registers stays a no-op, so the instruments are made again whenever the global provider changes.
 */
function meter(): Instruments {
  const provider = metrics.getMeterProvider()
  if (instruments?.provider === provider) return instruments
  const m = provider.getMeter('skiplock', version)
  instruments = {
    provider,
    deferred: m.createCounter('skiplock.jobs.deferred', { description: 'Jobs deferred', unit: '{job}' }),
    started: m.createCounter('skiplock.jobs.started', { description: 'Execution attempts started', unit: '{job}' }),
    succeeded: m.createCounter('skiplock.jobs.succeeded', { description: 'Jobs that succeeded', unit: '{job}' }),
    failed: m.createCounter('skiplock.jobs.failed', { description: 'Jobs that failed for good (no retry left, or not retryable)', unit: '{job}' }),
    retried: m.createCounter('skiplock.jobs.retried', { description: 'Failed attempts scheduled to run again', unit: '{job}' }),
    rescued: m.createCounter('skiplock.jobs.rescued', { description: "Jobs taken back from workers presumed dead", unit: '{job}' }),
    waitTime: m.createHistogram('skiplock.job.wait_time', { description: 'From the time a job could run (run_at) to the start of its attempt', unit: 's' }),
    runTime: m.createHistogram('skiplock.job.run_time', { description: 'From the start of an attempt to its recorded outcome', unit: 's' }),
    queueDepth: m.createObservableGauge('skiplock.queue.depth', { description: 'Jobs per queue and state (waiting, scheduled, running)', unit: '{job}' }),
  }
  return instruments
}

/**
 * Runs one defer (or a whole `deferMany`) in a `skiplock.defer` producer span and counts the jobs.
 * `defer` gets the span's W3C traceparent to store with the jobs, or `null` when no span is recording.
 */
export async function traceDefer<Deferred extends readonly (string | { id: string })[]>(
  taskName: string,
  queueName: string,
  defer: (traceContext: string | null) => Promise<Deferred>,
): Promise<Deferred> {
  const attributes = { 'messaging.system': 'skiplock', 'messaging.destination.name': queueName, 'skiplock.queue': queueName, 'skiplock.task': taskName }
  const span = tracer().startSpan('skiplock.defer', { kind: SpanKind.PRODUCER, attributes })
  try {
    const deferred = await defer(span.isRecording() ? toTraceparent(span) : null)
    span.setAttribute('skiplock.job.count', deferred.length)
    const [first] = deferred
    if (deferred.length === 1 && first !== undefined) span.setAttribute('skiplock.job.id', typeof first === 'string' ? first : first.id)
    meter().deferred.add(deferred.length, { 'skiplock.queue': queueName, 'skiplock.task': taskName })
    return deferred
  } catch (error) {
    recordError(span, error)
    throw error
  } finally {
    span.end()
  }
}

interface Run {
  span: Span
  startedAtMs: number
}

/** Attempts started and not yet ended, by the job object the worker fetched. */
const runs = new WeakMap<Job, Run>()

/**
 * Marks the start of an execution attempt: counts it, records how long the job waited, and starts its
 * `skiplock.run <task>` consumer span, linked to the span that deferred the job.
 */
export function recordJobStarted(job: Job): void {
  const attributes = jobAttributes(job)
  const m = meter()
  m.started.add(1, attributes)
  if (job.startedAt !== null) m.waitTime.record(Math.max(0, job.startedAt.getTime() - job.runAt.getTime()) / 1000, attributes)
  const deferContext = parseTraceparent(job.traceContext)
  const links: Link[] = deferContext ? [{ context: deferContext }] : []
  const span = tracer().startSpan(`skiplock.run ${job.taskName}`, {
    kind: SpanKind.CONSUMER,
    // A new trace per attempt, linked to the defer: a job may run long after, and more than once.
    root: true,
    links,
    attributes: {
      ...attributes,
      'messaging.system': 'skiplock',
      'messaging.destination.name': job.queueName,
      'skiplock.job.id': job.id,
      'skiplock.job.attempt': job.attempts,
    },
  })
  runs.set(job, { span, startedAtMs: performance.now() })
}

/**
 * Runs `handler` with the attempt's `skiplock.run` span as the active span, so spans the handler starts
 * (database calls, HTTP requests) are its children.
 */
export function inRunContext<Result>(job: Job, handler: () => Result): Result {
  const run = runs.get(job)
  return run ? context.with(trace.setSpan(context.active(), run.span), handler) : handler()
}

/** Ends the attempt of `job` with its recorded outcome (`error`: what the handler threw, if anything). */
export function recordJobOutcome(job: Job, outcome: Outcome, error: unknown): void {
  const run = runs.get(job)
  if (!run) return
  runs.delete(job)
  const result = toRunOutcome(outcome)
  const attributes = jobAttributes(job)
  const m = meter()
  m.runTime.record((performance.now() - run.startedAtMs) / 1000, { ...attributes, 'skiplock.job.outcome': result })
  if (result === 'succeeded') m.succeeded.add(1, attributes)
  else if (result === 'failed') m.failed.add(1, attributes)
  else if (result === 'retry') m.retried.add(1, attributes)
  run.span.setAttribute('skiplock.job.outcome', result)
  if (result === 'failed' || result === 'retry') recordError(run.span, error)
  else if (error !== undefined && result === 'cancelled') run.span.recordException(toException(error))
  run.span.end()
}

/** Counts jobs rescued from workers presumed dead, by what became of them (`todo`: they run again). */
export function recordJobsRescued(jobs: readonly RescuedJob[]): void {
  const { rescued } = meter()
  for (const job of jobs) rescued.add(1, { 'skiplock.job.state': job.state })
}

/**
 * Reports queue depth through the `skiplock.queue.depth` gauge, calling `readStats` only when a metric
 * reader collects (never without an SDK). Returns a function that stops reporting.
 */
export function observeQueueDepth(readStats: () => Promise<QueueStats[]>): () => void {
  const { queueDepth } = meter()
  const observe = async (result: { observe(value: number, attributes: Attributes): void }) => {
    for (const stats of await readStats()) {
      for (const state of ['waiting', 'scheduled', 'blocked', 'running'] as const) {
        result.observe(stats[state], { 'skiplock.queue': stats.queueName, 'skiplock.job.state': state })
      }
    }
  }
  queueDepth.addCallback(observe)
  return () => queueDepth.removeCallback(observe)
}

function jobAttributes(job: Job): Attributes {
  return { 'skiplock.queue': job.queueName, 'skiplock.task': job.taskName }
}

function toRunOutcome(outcome: Outcome): RunOutcome {
  switch (outcome.kind) {
    case 'completed':
      return 'succeeded'
    case 'released':
      return 'released'
    case 'lease-lost':
      return 'lease-lost'
    case 'failed':
      if (outcome.outcome.state === 'todo') return 'retry'
      return outcome.outcome.state === 'cancelled' ? 'cancelled' : 'failed'
  }
}

function recordError(span: Span, error: unknown): void {
  const exception = toException(error)
  span.recordException(exception)
  span.setStatus({ code: SpanStatusCode.ERROR, message: exception.message })
}

function toException(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}

/** The span's context as a W3C traceparent: `00-<trace id>-<span id>-<flags>`. */
function toTraceparent(span: Span): string {
  const { traceId, spanId, traceFlags } = span.spanContext()
  return `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, '0')}`
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** The span context a stored traceparent names; `undefined` for none or one that is not valid. */
export function parseTraceparent(traceparent: string | null): ReturnType<Span['spanContext']> | undefined {
  const match = traceparent === null ? null : TRACEPARENT.exec(traceparent)
  if (!match) return undefined
  const spanContext = { traceId: match[1]!, spanId: match[2]!, traceFlags: Number.parseInt(match[3]!, 16), isRemote: true }
  return isSpanContextValid(spanContext) ? spanContext : undefined
}
