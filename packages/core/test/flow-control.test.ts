import { createClient, createWorker, defineTask, DependencyCycleError, InvalidArgumentError, JobNotFoundError, QueueFullError } from '@skiplock/core'
import { describe, expect } from 'vitest'

import { test, waitFor } from '../src/testing.ts'

/** Records the order in which jobs ran, by the name in their payload. */
function recordingTask(ran: string[], options: { failOn?: string; ms?: number } = {}) {
  return defineTask({
    name: 'step',
    maxAttempts: 1,
    handler: async ({ name }: { name: string }) => {
      ran.push(name)
      if (options.ms) await new Promise((resolve) => setTimeout(resolve, options.ms))
      if (name === options.failOn) throw new Error(`${name} failed on purpose`)
      return name
    },
  })
}

async function stateOf(db: { query: (sql: string, values: unknown[]) => Promise<{ rows: { state: string }[] }> }, id: string): Promise<string> {
  return (await db.query(`select state from skiplock.all_jobs where id = $1`, [id])).rows[0]!.state
}

describe('job dependencies', () => {
  test('a graph runs parents before children, the child once all its parents succeeded', async ({ db, skiplock, startWorker }) => {
    const ran: string[] = []
    const step = recordingTask(ran)
    const jobs = await skiplock.deferGraph({
      report: { task: step, payload: { name: 'report' }, dependsOn: ['left', 'right'] },
      left: { task: step, payload: { name: 'left' }, dependsOn: ['fetch'] },
      right: { task: step, payload: { name: 'right' }, dependsOn: ['fetch'] },
      fetch: { task: step, payload: { name: 'fetch' } },
    })
    expect(jobs.fetch.state).toBe('todo')
    expect([jobs.left.state, jobs.right.state, jobs.report.state]).toEqual(['blocked', 'blocked', 'blocked'])

    await startWorker({ tasks: [step], concurrency: 4 })
    expect(await skiplock.result(jobs.report)).toBe('report')
    expect(ran[0]).toBe('fetch')
    expect(ran[3]).toBe('report')
    expect(ran.slice(1, 3).sort()).toEqual(['left', 'right'])
    expect(await db.query(`select count(*)::int as count from skiplock.job_dependencies`)).toMatchObject({ rows: [{ count: 0 }] })
  })

  test('a failed parent fails its descendants, naming it, or cancels those that chose so; none of them runs', async ({ db, skiplock, startWorker }) => {
    const ran: string[] = []
    const step = recordingTask(ran, { failOn: 'parent' })
    const jobs = await skiplock.deferGraph({
      parent: { task: step, payload: { name: 'parent' } },
      child: { task: step, payload: { name: 'child' }, dependsOn: ['parent'] },
      grandchild: { task: step, payload: { name: 'grandchild' }, dependsOn: ['child'] },
      cancelled: { task: step, payload: { name: 'cancelled' }, dependsOn: ['parent'], onParentFailure: 'cancel' },
    })
    await startWorker({ tasks: [step] })
    await waitFor(async () => (await stateOf(db, jobs.grandchild.id)) === 'failed', { description: 'the grandchild to fail' })

    expect(ran).toEqual(['parent'])
    const child = await skiplock.getJob(jobs.child.id)
    expect(child).toMatchObject({ state: 'failed', attempts: 0 })
    expect(child!.errors.at(-1)).toMatchObject({ parent_id: jobs.parent.id, message: expect.stringContaining(`job ${jobs.parent.id}`) })
    expect((await skiplock.getJob(jobs.grandchild.id))!.errors.at(-1)).toMatchObject({ parent_id: jobs.child.id })
    expect(await stateOf(db, jobs.cancelled.id)).toBe('cancelled')
  })

  test('cancelling a blocked job ends the jobs waiting for it', async ({ db, skiplock }) => {
    const step = recordingTask([])
    const jobs = await skiplock.deferGraph({
      parent: { task: step, payload: { name: 'parent' }, runAt: new Date(Date.now() + 60_000) },
      child: { task: step, payload: { name: 'child' }, dependsOn: ['parent'] },
      grandchild: { task: step, payload: { name: 'grandchild' }, dependsOn: ['child'], onParentFailure: 'cancel' },
    })
    expect(await skiplock.cancel(jobs.child.id)).toBe('cancelled')
    expect(await stateOf(db, jobs.grandchild.id)).toBe('cancelled')
    expect(await stateOf(db, jobs.parent.id)).toBe('todo')
  })

  test('defer depends on existing jobs: waiting ones block it, succeeded ones do not, a failed one ends it at once', async ({ db, skiplock, startWorker }) => {
    const ran: string[] = []
    const step = recordingTask(ran, { failOn: 'bad' })
    const good = await skiplock.defer(step, { name: 'good' })
    const bad = await skiplock.defer(step, { name: 'bad' })
    const worker = await startWorker({ tasks: [step] })
    await waitFor(async () => (await stateOf(db, bad.id)) === 'failed' && (await stateOf(db, good.id)) === 'succeeded')
    await worker.stop()

    const waiting = await skiplock.defer(step, { name: 'waiting' }, { delayMs: 60_000 })
    const afterGood = await skiplock.defer(step, { name: 'after-good' }, { dependsOn: [good] })
    const afterWaiting = await skiplock.defer(step, { name: 'after-waiting' }, { dependsOn: [good, waiting.id] })
    const afterBad = await skiplock.defer(step, { name: 'after-bad' }, { dependsOn: [bad], onParentFailure: 'cancel' })
    expect(afterGood.state).toBe('todo')
    expect(afterWaiting.state).toBe('blocked')
    expect(await stateOf(db, afterBad.id)).toBe('cancelled')
  })

  test('10,000 parents fan in to one child without an update of the child until the last one succeeds', async ({ db, skiplock }) => {
    const step = recordingTask([])
    const parentIds = await skiplock.deferMany(step, Array.from({ length: 10_000 }, (_, index) => ({ name: `p${index}` })))
    const child = await skiplock.defer(step, { name: 'child' }, { dependsOn: parentIds })
    const version = async () => (await db.query<{ xmin: string }>(`select xmin::text from skiplock.jobs where id = $1`, [child.id])).rows[0]?.xmin
    const created = await version()

    // Parents complete in batches of 500, as a worker's group commits would.
    const { rows } = await db.query<{ id: string }>(`select id::text from skiplock.register_worker('fan-in')`)
    const workerId = rows[0]!.id
    for (let done = 0; done < 10_000; ) {
      const claimed = await db.query<{ id: string; attempts: number }>(`select id::text, attempts from skiplock.fetch_jobs($1, null, 500) where id <> $2`, [workerId, child.id])
      await db.query(`select from skiplock.complete_jobs($1, $2::bigint[], $3::int[])`, [workerId, claimed.rows.map((row) => row.id), claimed.rows.map((row) => row.attempts)])
      done += claimed.rows.length
      if (done < 10_000) expect(await version(), `the child's row after ${done} parents`).toBe(created)
    }
    expect(await stateOf(db, child.id)).toBe('todo')
  }, 120_000)

  test('bad input is refused before anything is written: a cycle, an unknown key, a job that does not exist', async ({ db, skiplock }) => {
    const step = recordingTask([])
    const cycle = await skiplock
      .deferGraph({
        a: { task: step, payload: { name: 'a' }, dependsOn: ['c'] },
        b: { task: step, payload: { name: 'b' }, dependsOn: ['a'] },
        c: { task: step, payload: { name: 'c' }, dependsOn: ['b'] },
      })
      .catch((error: unknown) => error)
    expect(cycle).toBeInstanceOf(DependencyCycleError)
    expect(cycle).toMatchObject({ code: 'DEPENDENCY_CYCLE', cycle: ['a', 'c', 'b', 'a'] })

    await expect(skiplock.deferGraph({ a: { task: step, payload: { name: 'a' }, dependsOn: ['nope'] } })).rejects.toThrow(InvalidArgumentError)
    await expect(skiplock.defer(step, { name: 'x' }, { dependsOn: ['not an id'] })).rejects.toThrow(InvalidArgumentError)
    await expect(skiplock.defer(step, { name: 'x' }, { onParentFailure: 'ignore' as never })).rejects.toThrow(InvalidArgumentError)
    const missing = await skiplock
      .deferGraph({ a: { task: step, payload: { name: 'a' } }, b: { task: step, payload: { name: 'b' }, dependsOn: ['a', { id: '987654321' }] } })
      .catch((error: unknown) => error)
    expect(missing).toBeInstanceOf(JobNotFoundError)
    expect(missing).toMatchObject({ jobId: '987654321' })

    // Another language's client gets the same checks from defer_jobs: a parent after its child is refused.
    await expect(
      db.query(`select skiplock.defer_jobs(array['step', 'step'], dependency_child_positions => array[1], dependency_parent_positions => array[2], dependency_parent_ids => array[null]::bigint[])`),
    ).rejects.toMatchObject({ code: 'SK005' })
    expect(await db.query(`select (select count(*) from skiplock.all_jobs)::int as jobs, (select count(*) from skiplock.job_dependencies)::int as edges`)).toMatchObject({
      rows: [{ jobs: 0, edges: 0 }],
    })
  })
})

describe('bounded queues', () => {
  const job = defineTask({ name: 'bounded-job', queue: 'bounded', handler: async () => null })

  test('a defer past the bound gets QueueFullError and writes nothing; a batch that does not fit is refused whole', async ({ db, skiplock }) => {
    // Jobs waiting before the bound is set count toward it.
    await skiplock.deferMany(job, [1, 2, 3])
    await skiplock.configureQueue('bounded', { maxWaiting: 5 })
    const error = await skiplock.deferMany(job, [4, 5, 6]).catch((error: unknown) => error)
    expect(error).toBeInstanceOf(QueueFullError)
    expect(error).toMatchObject({ code: 'QUEUE_FULL', queueName: 'bounded', maxWaiting: 5, waiting: 3, requested: 3 })
    expect(await db.query(`select count(*)::int as count from skiplock.jobs`)).toMatchObject({ rows: [{ count: 3 }] })
    await skiplock.deferMany(job, [4, 5])
    await expect(skiplock.defer(job, 6)).rejects.toThrow(QueueFullError)
    // Other queues are not bounded.
    await skiplock.defer(job, 7, { queue: 'other' })
  })

  test('concurrent producers never overshoot the bound', async ({ db, skiplock }) => {
    await skiplock.configureQueue('bounded', { maxWaiting: 50 })
    const producers = Array.from({ length: 8 }, () => createClient({ connectionString: db.url, listen: false }))
    try {
      const outcomes = await Promise.allSettled(producers.flatMap((producer) => Array.from({ length: 10 }, () => producer.deferMany(job, [1, 2, 3]))))
      const accepted = outcomes.filter((outcome) => outcome.status === 'fulfilled').length
      expect(outcomes.filter((outcome) => outcome.status === 'rejected').every((outcome) => outcome.reason instanceof QueueFullError)).toBe(true)
      expect(accepted).toBe(16)
      expect(await db.query(`select count(*)::int as count from skiplock.jobs`)).toMatchObject({ rows: [{ count: 48 }] })
    } finally {
      await Promise.all(producers.map((producer) => producer.close()))
    }
  })

  test('a producer that waits for room gets it when a worker takes jobs, or QueueFullError at its timeout, or stops on abort', async ({ skiplock, startWorker }) => {
    await skiplock.configureQueue('bounded', { maxWaiting: 2 })
    await skiplock.deferMany(job, [1, 2])
    await expect(skiplock.defer(job, 3, { waitForRoom: { timeoutMs: 300 } })).rejects.toThrow(QueueFullError)
    const controller = new AbortController()
    const aborted = skiplock.defer(job, 3, { waitForRoom: { timeoutMs: 60_000, signal: controller.signal } })
    setTimeout(() => controller.abort(new Error('gave up')), 100)
    await expect(aborted).rejects.toThrow('gave up')

    const waiting = skiplock.defer(job, 3, { waitForRoom: { timeoutMs: 10_000 } })
    await new Promise((resolve) => setTimeout(resolve, 200))
    await startWorker({ tasks: [job] })
    expect((await waiting).state).toBe('todo')
  })

  test('waiting for room inside the caller\'s transaction keeps its earlier work', async ({ db, skiplock, startWorker }) => {
    await skiplock.configureQueue('bounded', { maxWaiting: 1 })
    await skiplock.defer(job, 1)
    const tx = await db.connect()
    await tx.query('begin')
    await tx.query(`create table orders (id int)`)
    await tx.query(`insert into orders values (1)`)
    const deferring = skiplock.defer(job, 2, { tx, waitForRoom: { timeoutMs: 10_000 } })
    await new Promise((resolve) => setTimeout(resolve, 200))
    await startWorker({ tasks: [job] })
    await deferring
    await tx.query('commit')
    expect(await db.query(`select count(*)::int as count from orders`)).toMatchObject({ rows: [{ count: 1 }] })
  })

  test('negative or absurd limits are refused with InvalidArgumentError, in the client and in SQL', async ({ db, skiplock }) => {
    for (const limits of [{ maxWaiting: 0 }, { maxWaiting: -1 }, { maxRunning: 1.5 }, { maxStartsPerSecond: -2 }, { maxStartsPerSecond: Number.NaN }]) {
      await expect(skiplock.configureQueue('q', limits), JSON.stringify(limits)).rejects.toThrow(InvalidArgumentError)
    }
    await expect(db.query(`select skiplock.configure_queue('q', max_running => 0)`)).rejects.toMatchObject({ code: 'SK005' })
    await expect(db.query(`select skiplock.configure_queue('q', max_starts_per_second => 'NaN')`)).rejects.toMatchObject({ code: 'SK005' })
    expect(await db.query(`select count(*)::int as count from skiplock.queues`)).toMatchObject({ rows: [{ count: 0 }] })
  })
})

describe('attribute filters', () => {
  const job = defineTask({ name: 'labelled', handler: async (payload: { n: number }) => payload.n })

  test('a worker claims only the jobs whose attributes match its filter', async ({ db, skiplock, startWorker }) => {
    const eu = await skiplock.defer(job, { n: 1 }, { attributes: { region: 'eu', tier: 'gold' } })
    const euSilver = await skiplock.defer(job, { n: 2 }, { attributes: { region: 'eu', tier: 'silver', size: 3 } })
    const euBronze = await skiplock.defer(job, { n: 3 }, { attributes: { region: 'eu', tier: 'bronze' } })
    const us = await skiplock.defer(job, { n: 4 }, { attributes: { region: 'us', tier: 'gold' } })
    const none = await skiplock.defer(job, { n: 5 })
    expect(eu.attributes).toEqual({ region: 'eu', tier: 'gold' })

    await startWorker({ tasks: [job], attributeFilter: { region: 'eu', tier: ['gold', 'silver'] } })
    await waitFor(async () => (await stateOf(db, eu.id)) === 'succeeded' && (await stateOf(db, euSilver.id)) === 'succeeded')
    await new Promise((resolve) => setTimeout(resolve, 300))
    for (const other of [euBronze, us, none]) expect(await stateOf(db, other.id)).toBe('todo')
    expect((await skiplock.getJob(euSilver.id))!.attributes).toEqual({ region: 'eu', tier: 'silver', size: 3 })
  })

  test('a filtered claim takes matches at the head of the queue and far behind it, in claim order', async ({ db }) => {
    const defer = (count: number, region: string) =>
      db.query<{ id: string }>(`select id::text from skiplock.defer_jobs(array_fill('labelled'::text, array[$1::int]), attributes => array_fill($2::jsonb, array[$1::int]))`, [
        count,
        JSON.stringify({ region }),
      ])
    const first = (await defer(1, 'eu')).rows
    // More than a claim looks at in the head of the queue: the rest are found through the attributes index.
    await defer(2000, 'us')
    const last = (await defer(3, 'eu')).rows
    const workerId = (await db.query(`select id from skiplock.register_worker('w')`)).rows[0].id
    const claim = async (batchSize: number) =>
      (await db.query<{ id: string }>(`select id::text from skiplock.fetch_jobs($1, null, $2, now(), '{"region": "eu"}')`, [workerId, batchSize])).rows.map((row) => row.id)
    expect(await claim(3)).toEqual([first[0]!.id, last[0]!.id, last[1]!.id])
    expect(await claim(10)).toEqual([last[2]!.id])
    expect(await claim(10)).toEqual([])
  })

  test('attributes and filters of an unknown type are refused before anything is written', async ({ db, skiplock }) => {
    for (const attributes of [{ region: { nested: 1 } }, { region: null }, { n: Number.NaN }, { ['x'.repeat(65)]: 1 }, ['eu'], { big: 'x'.repeat(2000) }]) {
      await expect(skiplock.defer(job, { n: 1 }, { attributes: attributes as never }), JSON.stringify(attributes)).rejects.toThrow(InvalidArgumentError)
    }
    for (const attributeFilter of [{}, { region: [] }, { region: null }, { region: { eu: true } }, { a: [1, 2, 3, 4, 5], b: [1, 2, 3, 4, 5], c: [1, 2, 3, 4, 5] }]) {
      expect(() => createWorker({ connectionString: db.url, tasks: [], attributeFilter: attributeFilter as never }), JSON.stringify(attributeFilter)).toThrow(
        InvalidArgumentError,
      )
    }
    await expect(db.query(`select skiplock.defer_jobs(array['labelled'], attributes => array['{"a": [1]}']::jsonb[])`)).rejects.toMatchObject({ code: 'SK005' })
    await expect(db.query(`select * from skiplock.fetch_jobs(1, null, 1, now(), '{"a": {"b": 1}}')`)).rejects.toMatchObject({ code: 'SK005' })
    expect(await db.query(`select count(*)::int as count from skiplock.all_jobs`)).toMatchObject({ rows: [{ count: 0 }] })
  })
})

describe('per-queue concurrency and rate limits', () => {
  test('workers together run at most maxRunning jobs of a queue at once', async ({ skiplock, startWorker }) => {
    let running = 0
    let mostRunning = 0
    const slow = defineTask({
      name: 'slow',
      queue: 'limited',
      handler: async () => {
        mostRunning = Math.max(mostRunning, ++running)
        await new Promise((resolve) => setTimeout(resolve, 30))
        running -= 1
      },
    })
    await skiplock.configureQueue('limited', { maxRunning: 2 })
    const ids = await skiplock.deferMany(slow, Array.from({ length: 30 }, () => null))
    await Promise.all([startWorker({ tasks: [slow], concurrency: 5 }), startWorker({ tasks: [slow], concurrency: 5 })])
    const startedAt = Date.now()
    await Promise.all(ids.map((id) => skiplock.result(id)))
    expect(mostRunning).toBe(2)
    // A finishing job wakes the workers at once: 15 rounds of 30 ms, not 15 polls.
    expect(Date.now() - startedAt).toBeLessThan(5_000)
  })

  test('workers together start at most about maxStartsPerSecond jobs of a queue per second', async ({ skiplock, startWorker }) => {
    const startedAt: number[] = []
    const quick = defineTask({ name: 'quick', queue: 'paced', handler: async () => void startedAt.push(Date.now()) })
    await skiplock.configureQueue('paced', { maxStartsPerSecond: 10 })
    const ids = await skiplock.deferMany(quick, Array.from({ length: 30 }, () => null))
    await Promise.all([startWorker({ tasks: [quick] }), startWorker({ tasks: [quick] })])
    await Promise.all(ids.map((id) => skiplock.result(id, { timeoutMs: 10_000 })))
    startedAt.sort((a, b) => a - b)
    // A full bucket of 10, then 10 a second: 30 starts take at least 2 s, and no second holds more than 10 + 10.
    expect(startedAt.at(-1)! - startedAt[0]!).toBeGreaterThan(1_800)
    for (const start of startedAt) expect(startedAt.filter((other) => other >= start && other < start + 1000).length).toBeLessThanOrEqual(20)
  })

  test('a job of a limited queue that becomes runnable while a claim waits its turn is still counted', async ({ db }) => {
    const admin = await db.connect()
    const q = (sql: string, values: unknown[] = []) => admin.query(sql, values)
    await q(`select skiplock.configure_queue('limited', max_running => 1)`)
    await q(`select skiplock.configure_queue('other', max_running => 10)`)
    const workerId = (await q(`select id from skiplock.register_worker('w')`)).rows[0].id
    await q(`select skiplock.defer_jobs(array['t'], queue_names => array['limited'])`)
    expect((await q(`select * from skiplock.fetch_jobs($1, null, 1)`, [workerId])).rowCount).toBe(1)
    // A parent in another queue, and its child in the limited queue, which is at its limit.
    const [parent] = (
      await q(
        `select id from skiplock.defer_jobs(array['t', 't'], queue_names => array['default', 'limited'],
           dependency_child_positions => array[2], dependency_parent_positions => array[1], dependency_parent_ids => array[null]::bigint[])`,
      )
    ).rows
    const claimedParent = (await q(`select id, attempts from skiplock.fetch_jobs($1, array['default'], 1)`, [workerId])).rows[0]
    expect(claimedParent.id).toBe(parent.id)
    await q(`select skiplock.defer_jobs(array['t'], queue_names => array['other'])`)

    // Another claim holds the 'other' queue's turn, so this claim waits between its first look and its last.
    const holder = await db.connect()
    await holder.query(`begin`)
    await holder.query(`select from skiplock.queues where name = 'other' for no key update`)
    const claimer = await db.connect()
    const claiming = claimer.query(`select queue_name from skiplock.fetch_jobs($1, null, 10)`, [workerId])
    await waitFor(async () => (await q(`select count(*)::int as count from pg_locks where not granted`)).rows[0].count > 0)
    await q(`select skiplock.complete_jobs($1, array[$2]::bigint[], array[$3]::int[])`, [workerId, claimedParent.id, claimedParent.attempts])
    await holder.query(`commit`)

    expect((await claiming).rows.map((row) => row.queue_name)).toEqual(['other'])
    expect((await q(`select count(*)::int as count from skiplock.jobs where queue_name = 'limited' and state = 'doing'`)).rows[0].count).toBe(1)
  })
})

