import { context, metrics, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { type DataPoint, type Histogram, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { type ClaimPlan, createWorker, defineTask, InvalidArgumentError } from '@skiplock/core'
import { describe, expect, onTestFinished } from 'vitest'

import { test, waitFor } from '../src/testing.ts'

/** Collects on demand, so a test reads the metrics at the moment it asserts. */
class CollectingReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** Registers an in-memory SDK as the global one for this test, as an application would register its exporter. */
function registerTelemetry() {
  const exporter = new InMemorySpanExporter()
  const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  const reader = new CollectingReader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  expect(trace.setGlobalTracerProvider(tracerProvider)).toBe(true)
  expect(metrics.setGlobalMeterProvider(meterProvider)).toBe(true)
  onTestFinished(async () => {
    trace.disable()
    metrics.disable()
    await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()])
  })
  return {
    spans: () => exporter.getFinishedSpans(),
    /** Every data point of the metric with this name. */
    async points(name: string): Promise<DataPoint<unknown>[]> {
      const { resourceMetrics, errors } = await reader.collect()
      expect(errors).toEqual([])
      const metric = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics).find((found) => found.descriptor.name === name)
      return (metric?.dataPoints ?? []) as DataPoint<unknown>[]
    },
  }
}

const greet = defineTask({ name: 'greet', queue: 'mail', handler: async ({ name }: { name: string }) => `hello ${name}` })

describe('telemetry', () => {
  test("traces and measures one job's life: a defer span, a run span linked to it, counters and histograms", async ({ skiplock, startWorker }) => {
    const telemetry = registerTelemetry()
    const worker = await startWorker({ tasks: [greet] })
    const completed = worker.once('job:completed')
    const job = await skiplock.defer(greet, { name: 'Ada' })
    await completed

    const deferSpan = telemetry.spans().find((span) => span.name === 'skiplock.defer')
    expect(deferSpan).toMatchObject({
      kind: SpanKind.PRODUCER,
      attributes: { 'messaging.system': 'skiplock', 'skiplock.queue': 'mail', 'skiplock.task': 'greet', 'skiplock.job.id': job.id, 'skiplock.job.count': 1 },
    })
    const { traceId, spanId, traceFlags } = deferSpan!.spanContext()
    expect(job.traceContext).toBe(`00-${traceId}-${spanId}-0${traceFlags}`)
    expect((await skiplock.getJob(job.id))?.traceContext).toBe(job.traceContext)

    const runSpan = telemetry.spans().find((span) => span.name === 'skiplock.run greet')
    expect(runSpan).toMatchObject({
      kind: SpanKind.CONSUMER,
      status: { code: SpanStatusCode.UNSET },
      attributes: {
        'messaging.system': 'skiplock',
        'skiplock.queue': 'mail',
        'skiplock.task': 'greet',
        'skiplock.job.id': job.id,
        'skiplock.job.attempt': 1,
        'skiplock.job.outcome': 'succeeded',
      },
    })
    expect(runSpan!.links.map((link) => link.context)).toEqual([{ traceId, spanId, traceFlags, isRemote: true }])

    const attributes = { 'skiplock.queue': 'mail', 'skiplock.task': 'greet' }
    for (const name of ['skiplock.jobs.deferred', 'skiplock.jobs.started', 'skiplock.jobs.succeeded']) {
      expect((await telemetry.points(name)).map((point) => [point.attributes, point.value]), name).toEqual([[attributes, 1]])
    }
    expect(await telemetry.points('skiplock.jobs.failed')).toEqual([])
    expect(await telemetry.points('skiplock.jobs.retried')).toEqual([])
    const [waitTime] = await telemetry.points('skiplock.job.wait_time')
    expect(waitTime?.attributes).toEqual(attributes)
    expect((waitTime?.value as Histogram).count).toBe(1)
    const [runTime] = await telemetry.points('skiplock.job.run_time')
    expect(runTime?.attributes).toEqual({ ...attributes, 'skiplock.job.outcome': 'succeeded' })
    expect((runTime?.value as Histogram).count).toBe(1)

    // The gauge reads queue_stats() when the reader collects: the job is finished, so nothing waits.
    const depth = await telemetry.points('skiplock.queue.depth')
    expect(depth.map((point) => [point.attributes, point.value])).toEqual([
      [{ 'skiplock.queue': 'mail', 'skiplock.job.state': 'waiting' }, 0],
      [{ 'skiplock.queue': 'mail', 'skiplock.job.state': 'scheduled' }, 0],
      [{ 'skiplock.queue': 'mail', 'skiplock.job.state': 'blocked' }, 0],
      [{ 'skiplock.queue': 'mail', 'skiplock.job.state': 'running' }, 0],
    ])
  })

  test('counts a failed attempt as retried and marks its span as an error, both attempts linked to the one defer', async ({ skiplock, startWorker }) => {
    const telemetry = registerTelemetry()
    let calls = 0
    const flaky = defineTask({
      name: 'flaky',
      backoff: { baseDelayMs: 10, maxDelayMs: 20 },
      handler: async () => {
        calls += 1
        if (calls === 1) throw new Error('first try fails')
        return 'ok'
      },
    })
    const worker = await startWorker({ tasks: [flaky] })
    const completed = worker.once('job:completed')
    const job = await skiplock.defer(flaky, {})
    await completed

    const attributes = { 'skiplock.queue': 'default', 'skiplock.task': 'flaky' }
    const valueOf = async (name: string) => (await telemetry.points(name)).map((point) => [point.attributes, point.value])
    expect(await valueOf('skiplock.jobs.deferred')).toEqual([[attributes, 1]])
    expect(await valueOf('skiplock.jobs.started')).toEqual([[attributes, 2]])
    expect(await valueOf('skiplock.jobs.retried')).toEqual([[attributes, 1]])
    expect(await valueOf('skiplock.jobs.succeeded')).toEqual([[attributes, 1]])
    expect(await valueOf('skiplock.jobs.failed')).toEqual([])
    const runTimes = await telemetry.points('skiplock.job.run_time')
    expect(runTimes.map((point) => [point.attributes['skiplock.job.outcome'], (point.value as Histogram).count])).toEqual([
      ['retry', 1],
      ['succeeded', 1],
    ])

    const deferSpan = telemetry.spans().find((span) => span.name === 'skiplock.defer')!
    const runs = telemetry.spans().filter((span) => span.name === 'skiplock.run flaky')
    expect(runs.map((span) => [span.attributes['skiplock.job.attempt'], span.attributes['skiplock.job.outcome'], span.status.code])).toEqual([
      [1, 'retry', SpanStatusCode.ERROR],
      [2, 'succeeded', SpanStatusCode.UNSET],
    ])
    expect(runs[0]!.events.map((event) => [event.name, event.attributes?.['exception.message']])).toEqual([['exception', 'first try fails']])
    for (const run of runs) {
      expect(run.links[0]?.context.spanId).toBe(deferSpan.spanContext().spanId)
      expect(run.spanContext().traceId).not.toBe(deferSpan.spanContext().traceId)
    }
    expect(job.traceContext).not.toBeNull()
  })

  test("a handler runs inside its attempt's span, so the spans it starts are children of the run", async ({ skiplock, startWorker }) => {
    const telemetry = registerTelemetry()
    const contextManager = new AsyncLocalStorageContextManager().enable()
    expect(context.setGlobalContextManager(contextManager)).toBe(true)
    onTestFinished(() => void context.disable())
    const traced = defineTask({
      name: 'traced',
      handler: async () => {
        await new Promise((resolve) => setTimeout(resolve, 5))
        trace.getTracer('app').startSpan('app.work').end()
        return trace.getActiveSpan()?.spanContext().spanId ?? null
      },
    })
    await startWorker({ tasks: [traced] })
    const activeSpanId = await skiplock.result(await skiplock.defer(traced, null))

    const runSpan = telemetry.spans().find((span) => span.name === 'skiplock.run traced')!
    expect(activeSpanId).toBe(runSpan.spanContext().spanId)
    const appSpan = telemetry.spans().find((span) => span.name === 'app.work')!
    expect(appSpan.parentSpanContext?.spanId).toBe(runSpan.spanContext().spanId)
    expect(appSpan.spanContext().traceId).toBe(runSpan.spanContext().traceId)
  })

  test('a periodic tick is deferred in a defer span, which its run links to', async ({ startWorker }) => {
    const telemetry = registerTelemetry()
    const tick = defineTask({ name: 'tick', handler: async () => null })
    const worker = await startWorker({ tasks: [tick], periodic: [{ task: tick, cron: '* * * * * *' }] })
    await worker.once('job:completed')

    const runSpan = telemetry.spans().find((span) => span.name === 'skiplock.run tick')!
    const deferSpan = telemetry.spans().find((span) => span.name === 'skiplock.defer' && span.attributes['skiplock.job.count'] === 1)
    expect(deferSpan).toMatchObject({ attributes: { 'skiplock.task': 'tick', 'skiplock.queue': 'default' } })
    expect(runSpan.links[0]?.context.spanId).toBe(deferSpan!.spanContext().spanId)
  })

  test('deferMany traces one span for every job and stores its context with each', async ({ skiplock }) => {
    const telemetry = registerTelemetry()
    const ids = await skiplock.deferMany(greet, [{ name: 'a' }, { name: 'b' }, { name: 'c' }], { batchSize: 2 })
    const [deferSpan] = telemetry.spans()
    expect(deferSpan).toMatchObject({ name: 'skiplock.defer', attributes: { 'skiplock.job.count': 3, 'skiplock.task': 'greet' } })
    const jobs = await Promise.all(ids.map((id) => skiplock.getJob(id)))
    expect(new Set(jobs.map((job) => job?.traceContext))).toEqual(new Set([`00-${deferSpan!.spanContext().traceId}-${deferSpan!.spanContext().spanId}-01`]))
    expect(await telemetry.points('skiplock.jobs.deferred')).toMatchObject([{ value: 3 }])
  })

  test('stores no trace context when no OpenTelemetry SDK is registered', async ({ db, skiplock, startWorker }) => {
    const worker = await startWorker({ tasks: [greet] })
    const completed = worker.once('job:completed')
    const job = await skiplock.defer(greet, { name: 'Ada' })
    await completed
    expect(job.traceContext).toBeNull()
    const { rows } = await db.query(`select trace_context from skiplock.finished_jobs where id = $1`, [job.id])
    expect(rows).toEqual([{ trace_context: null }])
  })

  test('samples claims with EXPLAIN ANALYZE in a rolled-back transaction, leaving the jobs it replayed unclaimed', async ({ db, skiplock, startWorker }) => {
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const hold = defineTask({ name: 'hold', handler: () => released })
    const jobs = [await skiplock.defer(hold, {}), await skiplock.defer(hold, {}), await skiplock.defer(hold, {})]
    const plans: ClaimPlan[] = []
    // One running and one buffered: the first claim takes two jobs, and its replay would take the third.
    const worker = await startWorker({ tasks: [hold], concurrency: 1, batchSize: 1, explainClaims: { sampleRate: 1, onPlan: (plan) => plans.push(plan) } })
    await waitFor(() => plans.length > 0, { description: 'the first claim to be sampled' })

    const [sample] = plans
    expect(sample).toMatchObject({ batchSize: 2, queueNames: null })
    expect(sample!.durationMs).toBeGreaterThan(0)
    const [explained] = sample!.plan as [{ Plan: Record<string, unknown>; 'Execution Time': number }]
    expect(explained.Plan).toMatchObject({ 'Node Type': 'Function Scan', 'Function Name': 'fetch_jobs', 'Actual Rows': 1 })
    expect(explained.Plan['Shared Hit Blocks']).toEqual(expect.any(Number))

    const { rows } = await db.query<{ id: string; state: string; attempts: number; worker_id: string | null }>(
      `select id::text, state, attempts, worker_id::text from skiplock.jobs order by id`,
    )
    expect(rows).toEqual([
      { id: jobs[0]!.id, state: 'doing', attempts: 1, worker_id: worker.workerId },
      { id: jobs[1]!.id, state: 'doing', attempts: 1, worker_id: worker.workerId },
      { id: jobs[2]!.id, state: 'todo', attempts: 0, worker_id: null },
    ])
    release()
  })

  test('rejects explainClaims with a sample rate outside 0 to 1, or without onPlan, before connecting', () => {
    const connectionString = 'postgres://nobody@127.0.0.1:1/none'
    for (const sampleRate of [-0.1, 1.5, Number.NaN, '0.5' as unknown as number]) {
      const create = () => createWorker({ connectionString, tasks: [greet], explainClaims: { sampleRate, onPlan: () => {} } })
      expect(create).toThrow(InvalidArgumentError)
      expect(create).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', argument: 'explainClaims.sampleRate' }))
    }
    const withoutOnPlan = () => createWorker({ connectionString, tasks: [greet], explainClaims: { sampleRate: 0.5 } as never })
    expect(withoutOnPlan).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', argument: 'explainClaims.onPlan' }))
  })
})
