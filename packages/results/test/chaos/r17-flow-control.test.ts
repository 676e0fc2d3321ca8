// R17: flow control under SIGKILLs. Job dependencies, a queue's limit on running jobs, its start rate, its
// bound on waiting jobs and workers' attribute filters are all enforced in the database, over every worker
// and producer: the kills must not let a child run before its parents, a fourth job run beside three,
// starts outpace the bucket, a refused producer leave jobs behind, or a job run on a worker that filters it out.
import { randomUUID } from 'node:crypto'

import { type Client, createClient, type Job, QueueFullError } from '@skiplock/core'
import type { TestDatabase } from '@skiplock/schema/testing'
import { expect } from 'vitest'

import { chaosTest, waitForDrain, type WorkerProcess } from './support/fleet.ts'
import { formatVerdict, printVerdict } from './support/ledger.ts'
import { chaosScale, createRandom, scaled, sleep } from './support/scale.ts'
import { type ChaosPayload, chaosTasks } from './support/tasks.ts'

const concurrency = 4
const batchSize = 4
/** R2's worker settings: a short lease, so orphans (and the running slots they hold) come back within seconds. */
const killSettings = { CONCURRENCY: concurrency, BATCH_SIZE: batchSize, LEASE_SECONDS: 2, HEARTBEAT_MS: 500, MAINTENANCE_MS: 500 }
/** What every run must hold for the jobs the producers were told exist. */
const exactlyOnce = { lost: 0, unexpected: 0, dupResults: 0, completedWithoutResult: 0, resultsWithoutCompletion: 0 }

chaosTest('R17: dependency graphs under SIGKILLs run every child after all its parents succeeded, and end the children of failed parents', { timeout: 120_000 * chaosScale }, async ({ db, skiplock, ledger, fleet }) => {
  const diamonds = scaled(200)
  const fanIn = scaled(500)
  const kills = scaled(4)
  const random = createRandom()
  const ms = () => 20 + Math.floor(random() * 60)
  const producer = new GraphProducer(db, skiplock)
  await producer.createTables()
  fleet.configure(killSettings)
  await fleet.spawnMany(4)

  // Every tenth diamond's root always throws, with one attempt: the rest of it must never run.
  const doomed: Record<'a' | 'b' | 'c' | 'd', Job>[] = []
  const killing = fleet.killRepeatedly({ kills, everyMs: 1500, choose: runningAJob(db) })
  const startedAt = Date.now()
  const productionMs = 6000 * chaosScale
  for (let index = 0; index < diamonds; index += 1) {
    if (index === Math.floor(diamonds / 2)) {
      // One child of `fanIn` parents, in one statement.
      const nodes: Record<string, GraphNodeSpec> = {}
      for (let parent = 0; parent < fanIn; parent += 1) nodes[`p${parent}`] = { ms: 1 + Math.floor(random() * 20) }
      nodes.sink = { ms: 5, dependsOn: Object.keys(nodes) }
      await producer.defer(nodes, { isFanIn: true })
    }
    const isDoomed = index % 10 === 5
    // Some of the diamonds (three in ten) also wait for a recent diamond's last job, an existing job that may be waiting,
    // running or done: the edge to it races its completion.
    const earlier = isDoomed ? undefined : producer.recentSink(random)
    const jobs = await producer.defer(
      {
        a: isDoomed ? { ms: 5, fault: 'throw-always', maxAttempts: 1, expected: 'fail' } : { ms: ms(), dependsOn: earlier && random() < 0.3 ? [earlier] : [] },
        b: { ms: ms(), dependsOn: ['a'], ...(isDoomed ? { onParentFailure: 'cancel', untracked: true } : {}) },
        c: { ms: ms(), dependsOn: ['a'], ...(isDoomed ? { onParentFailure: 'fail', untracked: true } : {}) },
        d: { ms: ms(), dependsOn: ['b', 'c'], ...(isDoomed ? { onParentFailure: 'cancel', untracked: true } : {}) },
      },
      { isSink: (key) => !isDoomed && key === 'd' },
    )
    if (isDoomed) doomed.push(jobs as Record<'a' | 'b' | 'c' | 'd', Job>)
    const dueAt = startedAt + ((index + 1) * productionMs) / diamonds
    if (dueAt > Date.now()) await sleep(dueAt - Date.now())
  }
  await killing
  await waitForDrain(ledger, 60_000 * chaosScale)
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  const order = await dependencyOrder(db)
  const ended = await endedChildren(db, doomed)
  const { rows: left } = await db.query<{ jobs: number; edges: number }>(
    `select (select count(*)::int from skiplock.jobs) as jobs, (select count(*)::int from skiplock.job_dependencies) as edges`,
  )
  const dupExecBound = kills * (concurrency + batchSize)
  printVerdict(
    formatVerdict('R17 dependencies', verdict, {
      faults: { kills, graphs: diamonds + 1, edges: order.edges },
      dupExecBound,
      extra: {
        order_violations: order.violations,
        children_run: order.childrenRun,
        max_release: `${order.maxReleaseMs}ms`,
        fan_in_release: `${order.sinkReleaseMs}ms`,
        doomed_ended: `${ended.correct}/${doomed.length * 3}`,
        doomed_ran: ended.ran,
        left_blocked: left[0]!.jobs,
        left_edges: left[0]!.edges,
      },
    }),
  )
  expect(verdict).toMatchObject({ attempted: producer.recorded, acknowledged: producer.recorded, ...exactlyOnce })
  expect(verdict.dupExec).toBeLessThanOrEqual(dupExecBound)
  expect(order.violations).toBe(0)
  // Every child of a succeeded graph ran (none was lost while blocked), the fan-in's child too.
  expect(order.childrenRun).toBe(order.children)
  expect(order.sinkReleaseMs).not.toBeNull()
  expect(ended).toEqual({ correct: doomed.length * 3, ran: 0, wrong: [] })
  expect(left[0]).toEqual({ jobs: 0, edges: 0 })
  // The kills did take jobs from under workers.
  expect(verdict.rescued).toBeGreaterThan(0)
})

chaosTest('R17: maxRunning holds over the whole fleet while SIGKILLs leave running jobs to be rescued', { timeout: 120_000 * chaosScale }, async ({ db, skiplock, ledger, fleet }) => {
  const maxRunning = 3
  const limitedJobs = scaled(300)
  const otherJobs = scaled(300)
  const kills = scaled(4)
  const random = createRandom()
  await skiplock.configureQueue('limited', { maxRunning })
  // The workers are up before the backlog commits: a claim in flight while jobs of a limited queue become
  // runnable must still count them against the limit.
  const sampler = await Sampler.start(db, `select count(*)::int as doing from skiplock.jobs where queue_name = 'limited' and state = 'doing'`)
  fleet.configure(killSettings)
  await fleet.spawnMany(4)
  await ledger.enqueue(
    chaosTasks.plain,
    Array.from({ length: limitedJobs }, () => ({ ms: 40 + Math.floor(random() * 20) })),
    { queue: 'limited' },
  )
  // Kills take a worker running a job of the limited queue: its slot stays taken until the rescue.
  const killing = fleet.killRepeatedly({ kills, everyMs: 1500, choose: runningAJob(db, 'limited') })
  // Unlimited jobs beside them: their claims must go on while the limited queue is at its cap.
  await ledger.produce(chaosTasks.plain, otherJobs, otherJobs / 4, () => ({ ms: 5 + Math.floor(random() * 15) }))
  await killing
  await waitForDrain(ledger, 60_000 * chaosScale)
  const samples = await sampler.stop()
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  const sampledMax = Math.max(...samples.map((sample) => sample.doing!))
  const executionMax = await maxOverlap(db, 'limited')
  const dupExecBound = kills * (concurrency + batchSize)
  printVerdict(
    formatVerdict('R17 max-running', verdict, {
      faults: { kills, processes: `4x${concurrency}` },
      dupExecBound,
      extra: { max_running: maxRunning, sampled_max: sampledMax, samples: samples.length, overlap_max: executionMax },
    }),
  )
  expect(verdict).toMatchObject({ attempted: limitedJobs + otherJobs, acknowledged: limitedJobs + otherJobs, ...exactlyOnce })
  expect(verdict.dupExec).toBeLessThanOrEqual(dupExecBound)
  expect(sampledMax).toBeLessThanOrEqual(maxRunning)
  expect(executionMax).toBeLessThanOrEqual(maxRunning)
  // The limit was reached (16 slots wanted the jobs), and the kills held slots that rescues freed.
  expect(sampledMax).toBe(maxRunning)
  expect(verdict.rescued).toBeGreaterThan(0)
  expect(verdict.restarted).toBe(verdict.rescued)
})

chaosTest('R17: maxStartsPerSecond caps starts over the whole fleet, also across SIGKILLs', { timeout: 90_000 * chaosScale }, async ({ db, skiplock, ledger, fleet }) => {
  const rate = 20
  const burst = Math.max(rate, 1)
  const jobs = scaled(100)
  const kills = Math.min(scaled(2), 10)
  const random = createRandom()
  // Every claim of the queue, with the time the bucket counted it at (the claim's `now`), including claims
  // that a kill lost before their handler started: the ledger alone would miss those.
  await db.query(`
    create table public.r17_claims (job_id bigint not null, attempt integer not null, claimed_at timestamptz not null);
    create function public.r17_record_claim() returns trigger language plpgsql as $$
    begin
      insert into public.r17_claims (job_id, attempt, claimed_at) values (new.id, new.attempts, new.started_at);
      return null;
    end;
    $$;
    create trigger r17_record_claim after update of state on skiplock.jobs
      for each row when (old.state <> 'doing' and new.state = 'doing' and new.queue_name = 'rated')
      execute function public.r17_record_claim();
  `)
  await skiplock.configureQueue('rated', { maxStartsPerSecond: rate })
  // Jobs of a tenth of a second or two: a few run at any time, so each kill takes one (and its claim) from under a
  // worker. Deferred once the workers run: a claim in flight as they commit must not take them without tokens.
  fleet.configure(killSettings)
  await fleet.spawnMany(4)
  await ledger.enqueue(chaosTasks.plain, Array.from({ length: jobs }, () => ({ ms: 100 + Math.floor(random() * 100) })), { queue: 'rated' })
  await fleet.killRepeatedly({ kills, everyMs: 1500, choose: runningAJob(db, 'rated') })
  await waitForDrain(ledger, 60_000 * chaosScale)
  await fleet.stopAll()

  const verdict = await ledger.verdict()
  const claims = await startTimes(db, `select claimed_at as at from public.r17_claims`)
  const executions = await startTimes(db, `select e.started_at as at from public.chaos_executions as e join public.r17_claims as c on c.job_id = e.job_id and c.attempt = e.attempt`)
  // A handler starts a little after its claim: executions in a window were claimed in one that much longer.
  const { rows: delays } = await db.query<{ delay_ms: number }>(
    `select coalesce(max(extract(epoch from e.started_at - c.claimed_at)), 0) * 1000 as delay_ms
     from public.chaos_executions as e
     join public.r17_claims as c on c.job_id = e.job_id and c.attempt = e.attempt`,
  )
  const delayMs = Number(delays[0]!.delay_ms)
  const windowBound = rate + burst
  const executionWindowBound = Math.floor(rate * (1 + delayMs / 1000)) + burst
  const spanS = (claims.at(-1)! - claims[0]!) / 1000
  const overallBound = rate * 1.1 * spanS + burst
  const achieved = (claims.length - burst) / spanS
  printVerdict(
    formatVerdict('R17 start-rate', verdict, {
      faults: { kills },
      extra: {
        rate,
        claims: claims.length,
        max_1s: `${maxInWindow(claims, 1000)}(bound ${windowBound})`,
        max_1s_started: `${maxInWindow(executions, 1000)}(bound ${executionWindowBound})`,
        max_start_delay: `${Math.round(delayMs)}ms`,
        span: `${spanS.toFixed(1)}s`,
        overall: `${achieved.toFixed(1)}/s(bound ${(rate * 1.1).toFixed(0)})`,
      },
    }),
  )
  expect(verdict).toMatchObject({ attempted: jobs, acknowledged: jobs, ...exactlyOnce })
  // Every execution was claimed, and every job at least once; the kills made jobs claimed again.
  expect(claims.length).toBeGreaterThanOrEqual(Math.max(jobs, executions.length))
  expect(executions.length).toBe(verdict.executions)
  expect(verdict.rescued).toBeGreaterThan(0)
  expect(verdict.restarted).toBe(verdict.rescued)
  expect(maxInWindow(claims, 1000)).toBeLessThanOrEqual(windowBound)
  expect(maxInWindow(executions, 1000)).toBeLessThanOrEqual(executionWindowBound)
  expect(claims.length).toBeLessThanOrEqual(overallBound)
  // The limit slows the queue down, not to a crawl: workers pick up the refilled tokens at their polls.
  expect(achieved).toBeGreaterThan(rate / 3)
})

chaosTest('R17: maxWaiting bounds a queue filled by concurrent producers, refusing whole batches that leave nothing behind', { timeout: 90_000 * chaosScale }, async ({ db, ledger, fleet }) => {
  const maxWaiting = 50
  const producers = 4
  const kills = scaled(3)
  const productionMs = 6000 * chaosScale
  const random = createRandom()
  const recorder = new EnqueueRecorder(db)
  fleet.configure({ ...killSettings, CONCURRENCY: 2, BATCH_SIZE: 2 })
  await fleet.spawnMany(4)
  const clients = Array.from({ length: producers }, () => createClient({ connectionString: db.url }))
  try {
    await clients[0]!.configureQueue('bounded', { maxWaiting })
    // Rescued jobs go back to waiting without asking for room (they were admitted once): the bound is on what
    // producers add, so the sampler tells never-claimed jobs from rescued ones.
    const sampler = await Sampler.start(
      db,
      `select count(*) filter (where attempts = 0)::int as fresh, count(*)::int as total
       from skiplock.jobs
       where queue_name = 'bounded' and state in ('blocked', 'todo')`,
    )
    const batches: Batch[] = []
    const until = Date.now() + productionMs
    // Half the producers wait a little for room, half are refused at once.
    const produce = async (client: Client, index: number) => {
      const waitForRoom = index % 2 === 0 ? { timeoutMs: 300 } : undefined
      while (Date.now() < until) {
        const ids = Array.from({ length: 1 + Math.floor(random() * 10) }, () => randomUUID())
        const batch: Batch = { ids, outcome: 'pending' }
        batches.push(batch)
        await recorder.record(ids.map((id) => ({ id, expected: 'succeed' })))
        try {
          const payloads = ids.map((id): ChaosPayload => ({ id, ms: 50 + Math.floor(random() * 50) }))
          const jobIds = await client.deferMany(chaosTasks.plain, payloads, { queue: 'bounded', ...(waitForRoom ? { waitForRoom } : {}) })
          batch.outcome = 'acknowledged'
          await recorder.acknowledge(ids, jobIds)
        } catch (error) {
          if (!(error instanceof QueueFullError)) {
            batch.outcome = `error: ${(error as Error).message}`
            continue
          }
          batch.outcome = 'refused'
          batch.refusal = { queueName: error.queueName, maxWaiting: error.maxWaiting, waiting: error.waiting, requested: error.requested, code: error.code }
        }
        await sleep(random() * 20)
      }
    }
    const killing = fleet.killRepeatedly({ kills, everyMs: 1500 })
    await Promise.all(clients.map(produce))
    await killing
    await waitForDrain(ledger, 60_000 * chaosScale)
    const samples = await sampler.stop()
    await fleet.stopAll()

    const verdict = await ledger.verdict()
    const refused = batches.filter((batch) => batch.outcome === 'refused')
    const acknowledged = batches.filter((batch) => batch.outcome === 'acknowledged')
    const failed = batches.filter((batch) => batch.outcome !== 'refused' && batch.outcome !== 'acknowledged')
    // A refusal names the queue and its bound, and was right: the batch did not fit.
    const badRefusals = refused.filter(({ ids, refusal }) => {
      const { queueName, maxWaiting: bound, waiting, requested, code } = refusal!
      return !(code === 'QUEUE_FULL' && queueName === 'bounded' && bound === maxWaiting && requested === ids.length && waiting <= maxWaiting && waiting + requested > maxWaiting)
    })
    const stored = await storedPerBatch(db, batches)
    const partial = batches.filter((batch, index) => stored[index] !== 0 && stored[index] !== batch.ids.length).length
    const refusedStored = refused.filter((batch) => stored[batches.indexOf(batch)] !== 0).length
    const acknowledgedMissing = acknowledged.filter((batch) => stored[batches.indexOf(batch)] !== batch.ids.length).length
    const freshMax = Math.max(...samples.map((sample) => sample.fresh!))
    const totalMax = Math.max(...samples.map((sample) => sample.total!))
    const dupExecBound = kills * (2 + 2)
    printVerdict(
      formatVerdict('R17 max-waiting', verdict, {
        faults: { kills, producers },
        dupExecBound,
        extra: {
          batches: batches.length,
          refused: refused.length,
          bad_refusals: badRefusals.length,
          other_errors: failed.length,
          partial_batches: partial,
          refused_stored: refusedStored,
          acked_missing: acknowledgedMissing,
          waiting_max: `${freshMax}(bound ${maxWaiting})`,
          waiting_max_with_rescued: totalMax,
          samples: samples.length,
        },
      }),
    )
    expect(verdict).toMatchObject({ acknowledged: acknowledged.reduce((sum, batch) => sum + batch.ids.length, 0), ...exactlyOnce })
    expect(verdict.dupExec).toBeLessThanOrEqual(dupExecBound)
    expect(failed.map((batch) => batch.outcome)).toEqual([])
    expect({ badRefusals: badRefusals.length, partial, refusedStored, acknowledgedMissing }).toEqual({ badRefusals: 0, partial: 0, refusedStored: 0, acknowledgedMissing: 0 })
    expect(freshMax).toBeLessThanOrEqual(maxWaiting)
    // The producers did fill the queue: it came up to its bound (the sampler may miss the very top) and refused them.
    expect(freshMax).toBeGreaterThanOrEqual(maxWaiting - 5)
    expect(refused.length).toBeGreaterThan(0)
  } finally {
    await Promise.all(clients.map((client) => client.close()))
  }
})

/** One producer call and what came of it. */
interface Batch {
  ids: string[]
  outcome: string
  refusal?: { queueName: string; maxWaiting: number; waiting: number; requested: number; code: string }
}

/** One node of a graph the test defers: a chaos job, and what the ledger expects of it. */
interface GraphNodeSpec {
  ms: number
  fault?: ChaosPayload['fault']
  maxAttempts?: number
  /** Keys of the graph, or existing jobs. */
  dependsOn?: (string | Job)[]
  onParentFailure?: 'fail' | 'cancel'
  expected?: 'succeed' | 'fail'
  /** Left out of the ledger: a job that must never run, checked on its own. */
  untracked?: boolean
}

/**
 * The ledger's producer protocol (record each job's client id before the call, acknowledge it once COMMIT
 * returned) for calls `Ledger.enqueue` does not make: graphs, and other clients' batches.
 */
class EnqueueRecorder {
  readonly #db: TestDatabase
  // Above any sequence number the ledger's own producer gives out.
  #nextSeq = 1_000_000_000
  recorded = 0

  constructor(db: TestDatabase) {
    this.#db = db
  }

  async record(rows: readonly { id: string; expected: 'succeed' | 'fail' }[]): Promise<void> {
    const seqs = rows.map(() => this.#nextSeq++)
    this.recorded += rows.length
    await this.#db.query(
      `insert into public.chaos_enqueues (seq, client_id, expected) select * from unnest($1::bigint[], $2::text[], $3::text[])`,
      [seqs, rows.map((row) => row.id), rows.map((row) => row.expected)],
    )
  }

  async acknowledge(ids: readonly string[], jobIds: readonly string[]): Promise<void> {
    await this.#db.query(
      `update public.chaos_enqueues as e
       set acked_at = clock_timestamp(), job_id = a.job_id
       from unnest($1::text[], $2::bigint[]) as a(client_id, job_id)
       where e.client_id = a.client_id`,
      [ids, jobIds],
    )
  }
}

/** Defers graphs of chaos jobs with `deferGraph`, recording their jobs in the ledger and their edges in `public.r17_edges`. */
class GraphProducer extends EnqueueRecorder {
  readonly #db: TestDatabase
  readonly #client: Client
  readonly #sinks: Job[] = []

  constructor(db: TestDatabase, client: Client) {
    super(db)
    this.#db = db
    this.#client = client
  }

  async createTables(): Promise<void> {
    await this.#db.query(`create table public.r17_edges (parent_id bigint not null, child_id bigint not null, fan_in boolean not null, must_run boolean not null)`)
  }

  /** A job ending a recent graph that must succeed, to depend on; none before the first. */
  recentSink(random: () => number): Job | undefined {
    const recent = this.#sinks.slice(-10)
    return recent[Math.floor(random() * recent.length)]
  }

  /** Defers one graph; `isSink` names the jobs later graphs may depend on, `isFanIn` marks the fan-in's edges. */
  async defer(nodes: Record<string, GraphNodeSpec>, options: { isSink?: (key: string) => boolean; isFanIn?: boolean } = {}): Promise<Record<string, Job>> {
    const ids = Object.fromEntries(Object.keys(nodes).map((key) => [key, randomUUID()]))
    await this.record(
      Object.entries(nodes)
        .filter(([, node]) => !node.untracked)
        .map(([key, node]) => ({ id: ids[key]!, expected: node.expected ?? 'succeed' })),
    )
    const graph = Object.fromEntries(
      Object.entries(nodes).map(([key, node]) => [
        key,
        {
          task: chaosTasks.plain,
          payload: { id: ids[key]!, ms: node.ms, ...(node.fault ? { fault: node.fault } : {}) } satisfies ChaosPayload,
          dependsOn: node.dependsOn ?? [],
          ...(node.maxAttempts === undefined ? {} : { maxAttempts: node.maxAttempts }),
          ...(node.onParentFailure === undefined ? {} : { onParentFailure: node.onParentFailure }),
        },
      ]),
    )
    const jobs = (await this.#client.deferGraph(graph)) as Record<string, Job>
    const tracked = Object.keys(nodes).filter((key) => !nodes[key]!.untracked)
    await this.acknowledge(
      tracked.map((key) => ids[key]!),
      tracked.map((key) => jobs[key]!.id),
    )
    const edges = Object.entries(nodes).flatMap(([key, node]) =>
      (node.dependsOn ?? []).map((parent) => ({ parentId: typeof parent === 'string' ? jobs[parent]!.id : parent.id, childId: jobs[key]!.id, mustRun: !node.untracked })),
    )
    await this.#db.query(
      `insert into public.r17_edges (parent_id, child_id, fan_in, must_run) select p, c, $3, m from unnest($1::bigint[], $2::bigint[], $4::boolean[]) as e(p, c, m)`,
      [edges.map((edge) => edge.parentId), edges.map((edge) => edge.childId), options.isFanIn ?? false, edges.map((edge) => edge.mustRun)],
    )
    for (const key of Object.keys(nodes)) if (options.isSink?.(key)) this.#sinks.push(jobs[key]!)
    return jobs
  }
}

/**
 * Checks every edge whose child ran: its parent succeeded, and the child's first execution started after
 * both the parent's completion (`finished_at`) and the end of the parent's execution that succeeded.
 * The release time of a child is its first start after its last parent finished.
 */
async function dependencyOrder(db: TestDatabase): Promise<{ edges: number; children: number; childrenRun: number; violations: number; maxReleaseMs: number; sinkReleaseMs: number | null }> {
  const { rows } = await db.query<{ edges: number; children: number; children_run: number; violations: number; max_release_ms: number | null; sink_release_ms: number | null }>(`
    with
    first_starts as (
      select e.job_id, min(e.started_at) as started_at
      from public.chaos_executions as e
      group by e.job_id
    ),
    parents as (
      select
        edge.child_id,
        edge.fan_in,
        edge.must_run,
        p.state as parent_state,
        p.finished_at as parent_finished_at,
        (select e.finished_at from public.chaos_executions as e where e.job_id = p.id and e.attempt = p.attempts and e.outcome = 'returned') as parent_returned_at,
        s.started_at as child_started_at
      from public.r17_edges as edge
      join skiplock.all_jobs as p on p.id = edge.parent_id
      left join first_starts as s on s.job_id = edge.child_id
    ),
    releases as (
      select p.child_id, bool_or(p.fan_in) as fan_in, min(p.child_started_at) - max(p.parent_finished_at) as release
      from parents as p
      where p.child_started_at is not null
      group by p.child_id
    )
    select
      (select count(*)::int from public.r17_edges) as edges,
      (select count(distinct p.child_id)::int from parents as p where p.must_run) as children,
      (select count(distinct p.child_id)::int from parents as p where p.must_run and p.child_started_at is not null) as children_run,
      (
        select count(*)::int
        from parents as p
        where p.child_started_at is not null
          and (
            p.parent_state <> 'succeeded'
            or p.child_started_at <= p.parent_finished_at
            or p.parent_returned_at is null
            or p.child_started_at <= p.parent_returned_at
          )
      ) as violations,
      (select round(extract(epoch from max(r.release)) * 1000)::int from releases as r) as max_release_ms,
      (select round(extract(epoch from max(r.release)) * 1000)::int from releases as r where r.fan_in) as sink_release_ms
  `)
  const row = rows[0]!
  return {
    edges: row.edges,
    children: row.children,
    childrenRun: row.children_run,
    violations: row.violations,
    maxReleaseMs: row.max_release_ms ?? 0,
    sinkReleaseMs: row.sink_release_ms,
  }
}

/** The children of failed roots: each must end as its `onParentFailure` chose, naming its parent, without running. */
async function endedChildren(db: TestDatabase, graphs: readonly Record<'a' | 'b' | 'c' | 'd', Job>[]): Promise<{ correct: number; ran: number; wrong: string[] }> {
  const expectations = graphs.flatMap(({ a, b, c, d }) => [
    { id: b.id, state: 'cancelled', parents: [a.id] },
    { id: c.id, state: 'failed', parents: [a.id] },
    { id: d.id, state: 'cancelled', parents: [b.id, c.id] },
  ])
  const roots = graphs.map(({ a }) => a.id)
  const { rows } = await db.query<{ id: string; state: string; last_error: { message?: string; parent_id?: string } | null; executions: number }>(
    `select j.id::text, j.state, j.errors -> -1 as last_error, (select count(*)::int from public.chaos_executions as e where e.job_id = j.id) as executions
     from skiplock.all_jobs as j
     where j.id = any($1::bigint[])`,
    [[...expectations.map((expectation) => expectation.id), ...roots]],
  )
  const byId = new Map(rows.map((row) => [row.id, row]))
  const wrong: string[] = []
  let correct = 0
  for (const expectation of expectations) {
    const row = byId.get(expectation.id)
    const parentId = row?.last_error?.parent_id
    if (
      row?.state === expectation.state &&
      parentId !== undefined &&
      expectation.parents.includes(parentId) &&
      row.last_error?.message === `job ${parentId}, which this job depends on, did not succeed`
    ) {
      correct += 1
    } else {
      wrong.push(`job ${expectation.id}: ${JSON.stringify(row)}`)
    }
  }
  for (const root of roots) if (byId.get(root)?.state !== 'failed') wrong.push(`root ${root}: ${JSON.stringify(byId.get(root))}`)
  const ran = expectations.reduce((sum, expectation) => sum + (byId.get(expectation.id)?.executions ?? 0), 0)
  return { correct, ran, wrong }
}

/** Most executions of the queue running at once, from the ledger; a killed execution runs until its process died. */
async function maxOverlap(db: TestDatabase, queue: string): Promise<number> {
  const { rows } = await db.query<{ running: number }>(
    `with
     executions as (
       select
         e.id,
         e.started_at,
         coalesce(
           e.finished_at,
           (select min(f.at) from public.chaos_faults as f where f.stops_worker and f.pid = e.pid and f.at >= e.started_at),
           'infinity'
         ) as ended_at
       from public.chaos_executions as e
       join skiplock.all_jobs as j on j.id = e.job_id
       where j.queue_name = $1
     ),
     events as (
       select started_at as at, 1 as delta, id from executions
       union all
       select ended_at, -1, id from executions
     )
     select coalesce(max(s.running), 0)::int as running
     from (select sum(delta) over (order by at, delta, id rows unbounded preceding) as running from events) as s`,
    [queue],
  )
  return rows[0]!.running
}

/** The times (ms since the epoch, ascending) a query's `at` column holds. */
async function startTimes(db: TestDatabase, sql: string): Promise<number[]> {
  const { rows } = await db.query<{ at_ms: number }>(`select extract(epoch from s.at) * 1000 as at_ms from (${sql}) as s where s.at is not null order by 1`)
  return rows.map((row) => Number(row.at_ms))
}

/** Most of the ascending `times` inside any window [t, t + windowMs). */
function maxInWindow(times: readonly number[], windowMs: number): number {
  let most = 0
  let first = 0
  for (let last = 0; last < times.length; last += 1) {
    while (times[last]! - times[first]! >= windowMs) first += 1
    most = Math.max(most, last - first + 1)
  }
  return most
}

/** Jobs stored (waiting, running or finished) of each batch's client ids. */
async function storedPerBatch(db: TestDatabase, batches: readonly Batch[]): Promise<number[]> {
  const ids = batches.flatMap((batch) => batch.ids)
  const batchIndexes = batches.flatMap((batch, index) => batch.ids.map(() => index))
  const { rows } = await db.query<{ batch: number; stored: number }>(
    `select b.batch, count(j.id)::int as stored
     from unnest($1::text[], $2::int[]) as b(client_id, batch)
     left join skiplock.all_jobs as j on j.payload ->> 'id' = b.client_id
     group by b.batch`,
    [ids, batchIndexes],
  )
  const stored = batches.map(() => 0)
  for (const row of rows) stored[row.batch] = row.stored
  return stored
}

/** Picks a live worker running a job (of `queue`, if given), so the kill orphans it; undefined lets the fleet pick at random. */
chaosTest('R17: attribute filters under SIGKILLs: every job runs only on workers whose filter it matches', { timeout: 120_000 * chaosScale }, async ({ db, ledger, fleet }) => {
  const jobs = scaled(400)
  const kills = scaled(3)
  const random = createRandom()
  const filters = [{ region: 'eu' }, { region: ['us', 'ap'] }]
  fleet.configure(killSettings)
  for (const filter of filters) await fleet.spawnMany(2, { ATTRIBUTE_FILTER: JSON.stringify(filter) })
  const killing = fleet.killRepeatedly({ kills, everyMs: 1500, choose: runningAJob(db) })
  const regions = ['eu', 'us', 'ap']
  await ledger.enqueue(
    chaosTasks.plain,
    Array.from({ length: jobs }, () => ({ ms: 10 + Math.floor(random() * 30) })),
    // The producer's id is random: its first hex digit spreads the jobs over the regions.
    { attributes: (payload) => ({ region: regions[Number.parseInt(payload.id[0]!, 16) % regions.length]! }) },
  )
  await killing
  await waitForDrain(ledger, 60_000 * chaosScale)
  await fleet.stopAll()

  const allowedByPid = new Map(fleet.all.map((worker) => [worker.pid, [JSON.parse(worker.settings.ATTRIBUTE_FILTER!).region].flat()]))
  const { rows } = await db.query<{ pid: number; region: string }>(
    `select e.pid, j.attributes->>'region' as region from public.chaos_executions as e join skiplock.all_jobs as j on j.id = e.job_id`,
  )
  const mismatched = rows.filter((row) => !allowedByPid.get(row.pid)?.includes(row.region)).length
  const verdict = await ledger.verdict()
  const dupExecBound = kills * (concurrency + batchSize)
  printVerdict(
    formatVerdict('R17 attribute-filters', verdict, {
      faults: { kills, processes: `4x${concurrency}` },
      dupExecBound,
      extra: { filters: filters.length, executions: rows.length, mismatched },
    }),
  )
  expect(verdict).toMatchObject({ attempted: jobs, acknowledged: jobs, ...exactlyOnce })
  expect(verdict.dupExec).toBeLessThanOrEqual(dupExecBound)
  expect(mismatched).toBe(0)
  expect(new Set(rows.map((row) => row.region))).toEqual(new Set(regions))
})

function runningAJob(db: TestDatabase, queue?: string): (candidates: readonly WorkerProcess[]) => Promise<WorkerProcess | undefined> {
  return async (candidates) => {
    const { rows } = await db.query<{ pid: number }>(
      `select distinct e.pid
       from public.chaos_executions as e
       join skiplock.jobs as j on j.id = e.job_id and j.state = 'doing'
       where e.finished_at is null and ($1::text is null or j.queue_name = $1)`,
      [queue ?? null],
    )
    return candidates.find((worker) => rows.some((row) => row.pid === worker.pid))
  }
}

/** Runs one query every 5 ms on a session of its own until stopped, keeping each row it returned. */
class Sampler {
  readonly #samples: Record<string, number>[] = []
  #isRunning = true
  #loop: Promise<void> = Promise.resolve()

  static async start(db: TestDatabase, sql: string): Promise<Sampler> {
    const session = await db.connect()
    const sampler = new Sampler()
    sampler.#loop = (async () => {
      while (sampler.#isRunning) {
        const { rows } = await session.query<Record<string, number>>(sql)
        sampler.#samples.push(rows[0]!)
        await sleep(5)
      }
    })()
    return sampler
  }

  async stop(): Promise<Record<string, number>[]> {
    this.#isRunning = false
    await this.#loop
    return this.#samples
  }
}
