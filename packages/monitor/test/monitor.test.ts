import { test, waitFor } from '@skiplock/schema/testing'
import { describe, expect, it, onTestFinished } from 'vitest'

import {
  callbackSink,
  connectionsSampler,
  databaseSampler,
  processSampler,
  type Sample,
  type Sampler,
  startMonitor,
} from '../src/index.ts'
import { deadPid } from './helpers.ts'

/** A sink that keeps every round it receives. */
function collectingSink(): { rounds: Sample[][]; sink: ReturnType<typeof callbackSink> } {
  const rounds: Sample[][] = []
  return { rounds, sink: callbackSink((samples) => void rounds.push([...samples])) }
}

describe('startMonitor', () => {
  test('keeps sampling the other samplers while some fail, and records each failure as an error sample', async ({ db }) => {
    const { rounds, sink } = collectingSink()
    const monitor = startMonitor({
      intervalMs: 50,
      samplers: [
        processSampler({ name: 'gone', pid: await deadPid() }),
        processSampler({ name: 'vitest', pid: process.pid }),
        databaseSampler({ connectionString: db.url, tables: ['public.missing'] }),
        connectionsSampler({ connectionString: 'postgres://monitor:s3cret-pw@127.0.0.1:1/postgres', name: 'elsewhere' }),
      ],
      sinks: [sink],
    })
    onTestFinished(() => monitor.stop())
    await waitFor(() => rounds.length >= 3, { description: 'three rounds' })
    await monitor.stop()

    for (const round of rounds) {
      expect(round.map((sample) => (sample.kind === 'error' ? `error ${sample.sampler} ${sample.code}` : sample.kind))).toEqual([
        'error gone PROCESS_NOT_FOUND',
        'process',
        'database',
        'error database TABLE_NOT_FOUND',
        'error elsewhere DATABASE_UNREACHABLE',
      ])
      expect(new Set(round.map((sample) => sample.t)).size).toBe(1)
    }
    const unreachable = rounds[0]!.find((sample) => sample.kind === 'error' && sample.sampler === 'elsewhere')
    expect(unreachable).toMatchObject({ message: expect.stringContaining('127.0.0.1:1') })
    expect(JSON.stringify(rounds)).not.toContain('s3cret-pw')
  })

  it('samples at start and every interval, in order, each round stamped with its start time', async () => {
    const { rounds, sink } = collectingSink()
    const monitor = startMonitor({ intervalMs: 40, samplers: [processSampler({ name: 'self', pid: process.pid })], sinks: [sink] })
    onTestFinished(() => monitor.stop())
    await waitFor(() => rounds.length >= 4, { description: 'four rounds' })
    await monitor.stop()
    const times = rounds.map((round) => Date.parse(round[0]!.t))
    expect(times).toEqual([...times].sort((a, b) => a - b))
    expect(rounds[0]![0]!.t).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  })

  it('sampleNow returns a round, stop takes a last one and closes sinks then samplers, once', async () => {
    const events: string[] = []
    const sampler: Sampler = {
      name: 'counter',
      sample: async () => [{ kind: 'error', sampler: 'counter', message: `sample ${events.push('sample')}` }],
      close: () => void events.push('close sampler'),
    }
    const { rounds, sink } = collectingSink()
    const monitor = startMonitor({
      intervalMs: 60_000,
      samplers: [sampler],
      sinks: [{ ...sink, close: () => void events.push('close sink') }],
    })
    const samples = await monitor.sampleNow()
    expect(samples).toEqual([{ t: expect.any(String), kind: 'error', sampler: 'counter', message: 'sample 2' }])
    const stopped = monitor.stop()
    expect(monitor.stop()).toBe(stopped)
    await stopped
    expect(events).toEqual(['sample', 'sample', 'sample', 'close sink', 'close sampler'])
    expect(rounds).toHaveLength(3)
    await expect(monitor.sampleNow()).rejects.toMatchObject({ code: 'MONITOR_STOPPED' })
  })

  it('reports a failing sink to onError and still writes to the others', async () => {
    const failures: string[] = []
    const { rounds, sink } = collectingSink()
    const monitor = startMonitor({
      intervalMs: 60_000,
      samplers: [{ name: 'thrower', sample: () => Promise.reject('not an Error') }],
      sinks: [{ name: 'broken', write: () => Promise.reject(new Error('disk full')) }, sink],
      onError: (error, { sink, during }) => failures.push(`${sink} ${during}: ${(error as Error).message}`),
    })
    await monitor.stop()
    expect(failures).toEqual(['broken write: disk full', 'broken write: disk full'])
    expect(rounds.flat()).toEqual([
      { t: expect.any(String), kind: 'error', sampler: 'thrower', message: 'not an Error' },
      { t: expect.any(String), kind: 'error', sampler: 'thrower', message: 'not an Error' },
    ])
  })

  it('refuses an interval that is not a positive number of milliseconds', () => {
    for (const intervalMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => startMonitor({ intervalMs, samplers: [], sinks: [] })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', option: 'intervalMs' }))
    }
  })
})
