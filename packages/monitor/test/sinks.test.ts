import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

import { test } from '@skiplock/schema/testing'
import { describe, expect, it } from 'vitest'

import { callbackSink, connectionsSampler, databaseSampler, jsonlSink, processSampler, type Sample, startMonitor, tableSink } from '../src/index.ts'
import { temporaryDirectory } from './helpers.ts'

describe('sinks', () => {
  test('jsonlSink and tableSink store exactly the samples the monitor produced', async ({ db }) => {
    const path = join(await temporaryDirectory(), 'nested', 'run-1', 'samples.jsonl')
    const produced: Sample[] = []
    const monitor = startMonitor({
      intervalMs: 60_000,
      samplers: [
        connectionsSampler({ connectionString: db.url }),
        databaseSampler({ connectionString: db.url, tables: ['skiplock.jobs', 'public.missing'] }),
        processSampler({ name: 'vitest', pid: process.pid }),
      ],
      sinks: [
        jsonlSink(path),
        tableSink({ connectionString: db.url }),
        tableSink({ connectionString: db.url, table: 'skiplock.lab_samples' }),
        callbackSink((samples) => void produced.push(...samples)),
      ],
    })
    await monitor.sampleNow()
    await monitor.stop()
    expect(produced.map((sample) => sample.kind)).toEqual([
      ...['connections', 'database', 'error', 'process'],
      ...['connections', 'database', 'error', 'process'],
      ...['connections', 'database', 'error', 'process'],
    ])

    const lines = (await readFile(path, 'utf8')).split('\n')
    expect(lines.pop()).toBe('')
    expect(lines.map((line) => JSON.parse(line))).toEqual(produced)

    for (const table of ['public.monitor_samples', 'skiplock.lab_samples']) {
      const { rows } = await db.query<{ t: Date; kind: string; sample: Sample }>(`select t, kind, sample from ${table} order by t, kind`)
      expect(rows.map((row) => ({ t: row.t.toISOString(), kind: row.kind }))).toEqual(
        produced.map((sample) => ({ t: sample.t, kind: sample.kind })).sort((a, b) => a.t.localeCompare(b.t) || a.kind.localeCompare(b.kind)),
      )
      expect(rows.map((row) => row.sample)).toEqual(expect.arrayContaining(produced))
    }
    const { rows: columns } = await db.query(
      `select column_name, data_type from information_schema.columns where table_name = 'monitor_samples' order by ordinal_position`,
    )
    expect(columns).toEqual([
      { column_name: 't', data_type: 'timestamp with time zone' },
      { column_name: 'kind', data_type: 'text' },
      { column_name: 'sample', data_type: 'jsonb' },
    ])
  })

  test('jsonlSink appends to an existing file', async () => {
    const path = join(await temporaryDirectory(), 'samples.jsonl')
    for (let run = 0; run < 2; run++) {
      const sink = jsonlSink(path)
      await sink.write([{ t: `2026-01-0${run + 1}T00:00:00.000Z`, kind: 'error', sampler: 'x', message: `run ${run}` }])
      await sink.close?.()
    }
    expect((await readFile(path, 'utf8')).trim().split('\n').map((line) => JSON.parse(line).message)).toEqual(['run 0', 'run 1'])
  })

  it('tableSink refuses a table name that is not a plain lowercase schema.table', () => {
    expect(() => tableSink({ connectionString: 'postgres://unused', table: 'samples; drop table x' })).toThrow(
      expect.objectContaining({ code: 'INVALID_TABLE_NAME' }),
    )
  })

  test('tableSink names host and port, never the password, when the database is unreachable', async () => {
    const sink = tableSink({ connectionString: 'postgres://monitor:s3cret-pw@127.0.0.1:1/postgres' })
    const error = await Promise.resolve(sink.write([{ t: new Date().toISOString(), kind: 'error', sampler: 'x', message: 'm' }])).catch(
      (error: unknown) => error as Error,
    )
    expect(error).toMatchObject({ code: 'DATABASE_UNREACHABLE', message: expect.stringContaining('127.0.0.1:1') })
    expect((error as Error).message).not.toContain('s3cret-pw')
    await sink.close?.()
  })
})
