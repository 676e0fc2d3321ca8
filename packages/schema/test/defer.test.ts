import { describe, expect } from 'vitest'

import { test, waitFor } from '../src/testing.ts'

describe('defer_jobs', () => {
  test('enqueues many jobs in one statement, in order, with defaults for null arrays', async ({ db }) => {
    const { rows } = await db.query(`
      select id, task_name, queue_name, payload, priority, state, attempts, max_attempts
      from skiplock.defer_jobs(
        task_names => array['a', 'b', 'c'],
        payloads => array['{"n": 1}', null, '[1, 2]'],
        priorities => array[0, 5, null]
      )`)
    expect(rows.map((row) => row.task_name)).toEqual(['a', 'b', 'c'])
    expect(rows[0]).toMatchObject({ queue_name: 'default', payload: { n: 1 }, priority: 0, state: 'todo', attempts: 0, max_attempts: 5 })
    expect(rows[1]).toMatchObject({ payload: {}, priority: 5 })
    expect(rows[2]).toMatchObject({ payload: [1, 2], priority: 0 })
    expect(Number(rows[0].id)).toBeLessThan(Number(rows[1].id))
  })

  test('stores each job\'s trace context, and keeps it when the job finishes', async ({ db }) => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
    const { rows } = await db.query(`select id, trace_context from skiplock.defer_jobs(array['a', 'b'], trace_contexts => array[$1, null])`, [traceparent])
    expect(rows.map((row) => row.trace_context)).toEqual([traceparent, null])
    const { rows: workers } = await db.query(`select id from skiplock.register_worker('w')`)
    const { rows: claimed } = await db.query(`select id, attempts, trace_context from skiplock.fetch_jobs($1, batch_size => 2)`, [workers[0].id])
    expect(claimed.map((row) => row.trace_context)).toEqual([traceparent, null])
    await db.query(`select from skiplock.complete_jobs($1, $2::bigint[], $3::int[])`, [workers[0].id, claimed.map((row) => row.id), claimed.map((row) => row.attempts)])
    const { rows: finished } = await db.query(`select trace_context from skiplock.all_jobs where id = any($1::bigint[]) order by id`, [rows.map((row) => row.id)])
    expect(finished).toEqual([{ trace_context: traceparent }, { trace_context: null }])
  })

  test('enqueues 10,000 jobs in one call', async ({ db }) => {
    const { rows } = await db.query(`
      select count(*)::int as count
      from skiplock.defer_jobs(array_fill('bulk'::text, array[10000]), array_fill('{"x": 1}'::text, array[10000]))`)
    expect(rows[0].count).toBe(10_000)
    const stored = await db.query(`select count(*)::int as count from skiplock.jobs where state = 'todo'`)
    expect(stored.rows[0].count).toBe(10_000)
  })

  test('returns nothing and writes nothing for an empty batch', async ({ db }) => {
    const { rowCount } = await db.query(`select * from skiplock.defer_jobs(array[]::text[])`)
    expect(rowCount).toBe(0)
  })

  test('notifies once per call and queue, never per job', async ({ db }) => {
    const listener = await db.connect()
    const notifications: { channel: string; payload: string | undefined }[] = []
    listener.on('notification', (message) => notifications.push({ channel: message.channel, payload: message.payload }))
    await listener.query('listen skiplock_jobs')

    await db.query(`
      select count(*) from skiplock.defer_jobs(
        array_fill('t'::text, array[1000]),
        queue_names => (select array_agg(case when i % 2 = 0 then 'even' else 'odd' end) from generate_series(1, 1000) as i)
      )`)
    await db.query(`select count(*) from skiplock.defer_jobs(array['t'], queue_names => array['later'])`)
    await waitFor(() => notifications.length >= 3, { description: 'three notifications' })
    // A round trip on the listening session delivers anything still in flight.
    await listener.query('select 1')
    expect(notifications.map((n) => n.payload).sort()).toEqual(['even', 'later', 'odd'])
    expect(new Set(notifications.map((n) => n.channel))).toEqual(new Set(['skiplock_jobs']))
  })

  test('creates no job and sends no notification when the caller rolls back', async ({ db }) => {
    const listener = await db.connect()
    const payloads: (string | undefined)[] = []
    listener.on('notification', (message) => payloads.push(message.payload))
    await listener.query('listen skiplock_jobs')

    const client = await db.connect()
    await client.query('begin')
    await client.query(`select skiplock.defer_jobs(array['t'], queue_names => array['rolled-back'])`)
    await client.query('rollback')
    await client.query(`select skiplock.defer_jobs(array['t'], queue_names => array['committed'])`)

    await waitFor(() => payloads.includes('committed'), { description: 'the committed notification' })
    expect(payloads).toEqual(['committed'])
    const { rows } = await db.query(`select queue_name from skiplock.jobs`)
    expect(rows).toEqual([{ queue_name: 'committed' }])
  })
})

describe('defer_jobs rejects bad input with a project SQLSTATE and writes nothing', () => {
  const cases: { name: string; sql: string; code: string; message: RegExp }[] = [
    {
      name: 'an invalid queue name (SK001)',
      sql: `select skiplock.defer_jobs(array['t', 't'], queue_names => array['ok', 'no spaces'])`,
      code: 'SK001',
      message: /queue name 'no spaces' at position 2 is invalid/,
    },
    {
      name: 'an empty queue name (SK001)',
      sql: `select skiplock.defer_jobs(array['t'], queue_names => array[''])`,
      code: 'SK001',
      message: /queue name '' at position 1/,
    },
    {
      name: 'a payload over 1 MiB (SK002)',
      sql: `select skiplock.defer_jobs(array['t', 't'], array['{}', '"' || repeat('x', 1048576) || '"'])`,
      code: 'SK002',
      message: /payload at position 2 is 1048578 bytes, over the limit/,
    },
    {
      name: 'a payload holding \\u0000 (SK003)',
      sql: `select skiplock.defer_jobs(array['t', 't'], array['{}', '{"text": "a\\u0000b"}'])`,
      code: 'SK003',
      message: /payload at position 2 is not JSON that PostgreSQL can store/,
    },
    {
      name: 'a payload holding a lone surrogate (SK003)',
      sql: `select skiplock.defer_jobs(array['t'], array['"\\ud800"'])`,
      code: 'SK003',
      message: /payload at position 1 is not JSON/,
    },
    {
      name: 'a payload that is not JSON at all (SK003)',
      sql: `select skiplock.defer_jobs(array['t'], array['{not json'])`,
      code: 'SK003',
      message: /payload at position 1/,
    },
    {
      name: 'arrays of different lengths (SK005)',
      sql: `select skiplock.defer_jobs(array['t', 't'], array['{}'])`,
      code: 'SK005',
      message: /every array must have as many elements as task_names \(2\)/,
    },
    {
      name: 'more trace contexts than jobs (SK005)',
      sql: `select skiplock.defer_jobs(array['t'], trace_contexts => array[null, null]::text[])`,
      code: 'SK005',
      message: /every array must have as many elements as task_names \(1\)/,
    },
    {
      name: 'a missing task name (SK005)',
      sql: `select skiplock.defer_jobs(array['t', null])`,
      code: 'SK005',
      message: /task name null at position 2 is invalid/,
    },
    {
      name: 'max_attempts below 1 (SK005)',
      sql: `select skiplock.defer_jobs(array['t'], max_attempts => array[0])`,
      code: 'SK005',
      message: /max_attempts 0 at position 1 is invalid/,
    },
    {
      name: 'an unknown conflict mode (SK005)',
      sql: `select skiplock.defer_jobs(array['t'], on_queueing_lock_conflict => 'ignore')`,
      code: 'SK005',
      message: /on_queueing_lock_conflict is 'ignore'/,
    },
  ]

  for (const { name, sql, code, message } of cases) {
    test(name, async ({ db }) => {
      const error = await db.query(sql).then(
        () => undefined,
        (error: unknown) => error,
      )
      expect(error).toMatchObject({ code, message: expect.stringMatching(message) })
      const { rows } = await db.query(`select count(*)::int as count from skiplock.jobs`)
      expect(rows[0].count).toBe(0)
    })
  }
})
