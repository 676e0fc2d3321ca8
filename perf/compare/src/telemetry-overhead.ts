// What OpenTelemetry costs a worker: the same drain of no-op jobs with no SDK registered (the API's no-op
// tracer and meter) and with an SDK recording every span and metric (batched spans to an exporter that
// drops them, a metric reader). Runs alternate between the two, on one embedded PostgreSQL 18 (or
// --database-url), and the report gives each mode's median and their ratio. Writes perf/results/telemetry.md.
//
//   node --conditions=development perf/compare/src/telemetry-overhead.ts [--jobs 20000] [--repeats 5] [--out FILE]
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { metrics, trace } from '@opentelemetry/api'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { BatchSpanProcessor, type SpanExporter, TracerProvider } from '@opentelemetry/sdk-trace'
import { createClient, createWorker, defineTask } from '@skiplock/core'
import { migrate } from '@skiplock/schema'
import { startDatabaseServer } from '@skiplock/schema/server'
import pg from 'pg'

const repositoryRoot = fileURLToPath(new URL('../../../', import.meta.url))
const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20000' },
    repeats: { type: 'string', default: '5' },
    'database-url': { type: 'string' },
    out: { type: 'string', default: path.join(repositoryRoot, 'perf/results/telemetry.md') },
  },
})
const jobCount = Number(values.jobs)
const repeats = Number(values.repeats)

/** Takes every span and keeps none: the cost measured is recording and exporting, not an exporter's I/O. */
const droppingExporter: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => {},
}

class DroppingReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

async function withSdk<T>(run: () => Promise<T>): Promise<T> {
  const tracerProvider = new TracerProvider({ spanProcessors: [new BatchSpanProcessor({ exporter: droppingExporter })] })
  const reader = new DroppingReader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  trace.setGlobalTracerProvider(tracerProvider)
  metrics.setGlobalMeterProvider(meterProvider)
  // A reader collects now and then: once a second, as an exporter's interval would.
  const collecting = setInterval(() => void reader.collect(), 1000)
  try {
    return await run()
  } finally {
    clearInterval(collecting)
    trace.disable()
    metrics.disable()
    await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()])
  }
}

const noop = defineTask({ name: 'noop', handler: async () => null })

/** Defers the jobs (untimed), then times one worker draining them: jobs per second. */
async function drain(url: string, schema: string): Promise<number> {
  const client = createClient({ connectionString: url, schema, listen: false })
  try {
    await client.deferMany(noop, Array.from({ length: jobCount }, () => null))
  } finally {
    await client.close()
  }
  const worker = createWorker({ connectionString: url, schema, tasks: [noop], concurrency: 50 })
  let completed = 0
  const drained = new Promise<void>((resolve) =>
    worker.on('job:completed', () => {
      completed += 1
      if (completed === jobCount) resolve()
    }),
  )
  const startedAt = performance.now()
  await worker.start()
  await drained
  const seconds = (performance.now() - startedAt) / 1000
  await worker.stop()
  return jobCount / seconds
}

const median = (numbers: number[]) => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)]!

const server = await startDatabaseServer({ databaseUrl: values['database-url'] ?? process.env.DATABASE_URL })
try {
  const admin = new pg.Client({ connectionString: server.url })
  await admin.connect()
  const version = (await admin.query<{ version: string }>('select version()')).rows[0]!.version
  await admin.end()
  const rates: Record<'without' | 'with', number[]> = { without: [], with: [] }
  for (let repeat = 0; repeat < repeats; repeat++) {
    // Each run on a schema of its own, so no run drains in the wake of another's dead rows.
    for (const mode of repeat % 2 === 0 ? (['without', 'with'] as const) : (['with', 'without'] as const)) {
      const schema = `telemetry_${mode}_${repeat}`
      await migrate(server.url, { schema })
      const rate = mode === 'with' ? await withSdk(() => drain(server.url, schema)) : await drain(server.url, schema)
      rates[mode].push(rate)
      console.error(`telemetry: run ${repeat + 1} ${mode} SDK: ${rate.toFixed(0)} jobs/s`)
    }
  }
  const without = median(rates.without)
  const withSdkRate = median(rates.with)
  const command = `node --conditions=development perf/compare/src/telemetry-overhead.ts --jobs ${jobCount} --repeats ${repeats}`
  const report = [
    '# Telemetry overhead',
    '',
    `Command: \`${command}\` (${server.kind === 'embedded' ? 'embedded PostgreSQL, started by the command' : 'the given database'}).`,
    '',
    `Machine: ${version.split(' on ')[0]} | ${os.cpus().length} CPUs | node ${process.version}. One worker (concurrency 50) drains ${jobCount} no-op jobs; runs alternate between the modes.`,
    '',
    '| mode | median jobs/s | runs (jobs/s) |',
    '| --- | --- | --- |',
    `| no SDK registered | ${without.toFixed(0)} | ${rates.without.map((rate) => rate.toFixed(0)).join(', ')} |`,
    `| SDK recording every span and metric | ${withSdkRate.toFixed(0)} | ${rates.with.map((rate) => rate.toFixed(0)).join(', ')} |`,
    '',
    `With the SDK the worker drains at ${(withSdkRate / without).toFixed(2)}x the rate without it.`,
    '',
  ].join('\n')
  await fs.writeFile(values.out, report)
  console.log(report)
} finally {
  await server.stop()
}
