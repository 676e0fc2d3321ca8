import { randomUUID } from 'node:crypto'

import type { Client, Task } from '@skiplock/core'
import type { TestDatabase } from '@skiplock/schema/testing'

import { chaosSeed, sleep } from './scale.ts'
import type { ChaosPayload, ChaosResult, Fault } from './tasks.ts'

/** One job the producer means to create. */
export interface JobSpec {
  ms: number
  lock?: string | null
  fault?: Fault
  /** What the job must end as; default `succeed`. */
  expected?: 'succeed' | 'fail'
}

/** Options of one enqueue, applied to all its jobs. */
export interface EnqueueOptions {
  queue?: string
  maxAttempts?: number
  priority?: number
  attributes?: (payload: ChaosPayload) => Record<string, string>
}

/**
 * The ledger's judgement of a run. `lost` and `unexpected` compare what the producer was told with what
 * the result store holds; the rest comes from the handlers' execution records.
 */
export interface Verdict {
  /** Enqueue attempts the producer made, and those whose COMMIT returned. */
  attempted: number
  acknowledged: number
  /** Acknowledged jobs that did not end as they must: no result for a job that must succeed, or not failed for one that must fail. */
  lost: number
  /** Results for jobs never attempted, or for jobs that must fail. */
  unexpected: number
  /** Result rows beyond one per job. */
  dupResults: number
  /** Succeeded jobs without a result row, and result rows without a succeeded job of that attempt. */
  completedWithoutResult: number
  resultsWithoutCompletion: number
  executions: number
  /** Executions beyond one per job, not counting attempts that failed on purpose (those are retries). */
  dupExec: number
  /** Executions of one lock key that overlap in time (a killed execution lasts until its process died). */
  keyOverlaps: number
  /** Executions of one lock key that started in another order than the producer created the jobs. */
  keyOrderViolations: number
  /** Jobs taken from a worker presumed dead, and how many of them ran again. */
  rescued: number
  restarted: number
  /** Longest time from a worker's death (or freeze) to a job it held starting again; null without any. */
  maxRescueMs: number | null
  /** 99th percentile of creation to first execution; null without executions. */
  p99PickupMs: number | null
}

/**
 * The Jepsen total-queue ledger, in tables of the test database: the producer records each enqueue
 * attempt (with an id it made) before sending it and marks it acknowledged once COMMIT returns; worker
 * processes record each execution attempt in autocommit and each fault they inflict on themselves; the
 * test records the faults it inflicts. {@link Ledger.verdict} judges it all in SQL.
 */
export class Ledger {
  readonly #db: TestDatabase
  readonly #client: Client
  #nextSeq = 1

  private constructor(db: TestDatabase, client: Client) {
    this.#db = db
    this.#client = client
  }

  static async create(db: TestDatabase, client: Client): Promise<Ledger> {
    await db.query(`
      create table public.chaos_enqueues (
        seq bigint primary key,
        client_id text not null unique,
        lock text,
        expected text not null check (expected in ('succeed', 'fail')),
        attempted_at timestamptz not null default clock_timestamp(),
        acked_at timestamptz,
        job_id bigint
      );
      create table public.chaos_executions (
        id bigserial primary key,
        client_id text not null,
        job_id bigint not null,
        attempt integer not null,
        lock text,
        pid integer not null,
        worker_name text not null,
        started_at timestamptz not null default clock_timestamp(),
        finished_at timestamptz,
        outcome text check (outcome in ('returned', 'threw', 'aborted'))
      );
      create index chaos_executions_job_id_idx on public.chaos_executions (job_id);
      create table public.chaos_faults (
        id bigserial primary key,
        kind text not null,
        pid integer not null,
        worker_id bigint,
        stops_worker boolean not null,
        at timestamptz not null default clock_timestamp()
      );
      create table public.chaos_effects (
        client_id text not null,
        job_id bigint not null,
        attempt integer not null
      );
    `)
    return new Ledger(db, client)
  }

  /** Records, defers in one transaction, then acknowledges `specs`; returns the job ids. */
  async enqueue(task: Task<ChaosPayload, ChaosResult>, specs: readonly JobSpec[], options: EnqueueOptions = {}): Promise<string[]> {
    const rows = specs.map((spec) => ({ ...spec, seq: this.#nextSeq++, id: randomUUID() }))
    await this.#db.query(
      `insert into public.chaos_enqueues (seq, client_id, lock, expected)
       select * from unnest($1::bigint[], $2::text[], $3::text[], $4::text[])`,
      [rows.map((row) => row.seq), rows.map((row) => row.id), rows.map((row) => row.lock ?? null), rows.map((row) => row.expected ?? 'succeed')],
    )
    const locks = new Map<string, string | null>(rows.map((row) => [row.id, row.lock ?? null]))
    const jobIds = await this.#client.deferMany(
      task,
      rows.map((row): ChaosPayload => ({ id: row.id, ms: row.ms, ...(row.fault ? { fault: row.fault } : {}) })),
      { lock: (payload) => locks.get(payload.id) ?? null, ...options },
    )
    await this.#db.query(
      `update public.chaos_enqueues as e
       set acked_at = clock_timestamp(), job_id = a.job_id
       from unnest($1::text[], $2::bigint[]) as a(client_id, job_id)
       where e.client_id = a.client_id`,
      [rows.map((row) => row.id), jobIds],
    )
    return jobIds
  }

  /**
   * Enqueues `count` jobs at a steady `perSecond`, in batches, so the queue is loaded but not just a backlog.
   * With `onError`, a batch that fails (the database is down) is reported there and production goes on: its
   * jobs stay unacknowledged, as for a producer whose COMMIT never returned, or were never recorded at all.
   * With `until`, production stops early once it returns true.
   */
  async produce(
    task: Task<ChaosPayload, ChaosResult>,
    count: number,
    perSecond: number,
    spec: (index: number) => JobSpec,
    { onError, until }: { onError?: (error: unknown) => void; until?: () => boolean } = {},
  ): Promise<void> {
    const batchSize = Math.max(1, Math.round(perSecond / 20))
    const startedAt = Date.now()
    for (let first = 0; first < count && !until?.(); first += batchSize) {
      const size = Math.min(batchSize, count - first)
      const batch = Array.from({ length: size }, (_, offset) => spec(first + offset))
      if (onError) await this.enqueue(task, batch).catch(onError)
      else await this.enqueue(task, batch)
      const dueAt = startedAt + ((first + size) * 1000) / perSecond
      if (dueAt > Date.now()) await sleep(dueAt - Date.now())
    }
  }

  /** Records a fault the test inflicts on a worker process. */
  async recordFault(kind: string, pid: number, workerId: string | undefined, stopsWorker: boolean): Promise<void> {
    await this.#db.query(`insert into public.chaos_faults (kind, pid, worker_id, stops_worker) values ($1, $2, $3, $4)`, [kind, pid, workerId ?? null, stopsWorker])
  }

  /** How many faults of these kinds were recorded, by the test or by the worker processes. */
  async countFaults(kinds: readonly string[]): Promise<number> {
    const { rows } = await this.#db.query<{ count: number }>(`select count(*)::int as count from public.chaos_faults where kind = any($1::text[])`, [kinds])
    return rows[0]!.count
  }

  /** Jobs acknowledged and not yet in a final state. */
  async unfinished(): Promise<number> {
    const { rows } = await this.#db.query<{ count: number }>(
      `select count(*)::int as count
       from public.chaos_enqueues as e
       join skiplock.jobs as j
         on j.id = e.job_id`,
    )
    return rows[0]!.count
  }

  async verdict(): Promise<Verdict> {
    const { rows } = await this.#db.query(verdictSql)
    const row = rows[0] as Record<string, string | number | null>
    const number = (name: string) => Number(row[name])
    const optional = (name: string) => (row[name] === null ? null : Math.round(Number(row[name])))
    return {
      attempted: number('attempted'),
      acknowledged: number('acknowledged'),
      lost: number('lost'),
      unexpected: number('unexpected'),
      dupResults: number('dup_results'),
      completedWithoutResult: number('completed_without_result'),
      resultsWithoutCompletion: number('results_without_completion'),
      executions: number('executions'),
      dupExec: number('dup_exec'),
      keyOverlaps: number('key_overlaps'),
      keyOrderViolations: number('key_order_violations'),
      rescued: number('rescued'),
      restarted: number('restarted'),
      maxRescueMs: optional('max_rescue_ms'),
      p99PickupMs: optional('p99_pickup_ms'),
    }
  }
}

/** The fields of a verdict line beyond those every test prints, e.g. `{ kills: 10 }` or `{ 'dup_exec': '37(bound 120)' }`. */
export type VerdictFields = Record<string, string | number>

/**
 * One line per test: `R2 jobs=5000 kills=10 lost=0 unexpected=0 dup_results=0 dup_exec=37(bound 120)
 * key_overlaps=0 max_rescue=3.4s p99_pickup=45ms seed=...`. Printed by the test, which then asserts its criteria.
 */
export function formatVerdict(testId: string, verdict: Verdict, options: { faults?: VerdictFields; dupExecBound?: number; extra?: VerdictFields } = {}): string {
  const fields: VerdictFields = {
    jobs: verdict.acknowledged,
    ...options.faults,
    lost: verdict.lost,
    unexpected: verdict.unexpected,
    dup_results: verdict.dupResults,
    dup_exec: options.dupExecBound === undefined ? verdict.dupExec : `${verdict.dupExec}(bound ${options.dupExecBound})`,
    key_overlaps: verdict.keyOverlaps,
    max_rescue: verdict.maxRescueMs === null ? '-' : `${(verdict.maxRescueMs / 1000).toFixed(1)}s`,
    p99_pickup: verdict.p99PickupMs === null ? '-' : `${verdict.p99PickupMs}ms`,
    ...options.extra,
    seed: chaosSeed,
  }
  return `${testId} ${Object.entries(fields)
    .map(([name, value]) => `${name}=${value}`)
    .join(' ')}`
}

/** Prints the verdict line; the one line a chaos test writes. */
export function printVerdict(line: string): void {
  console.log(line)
}

// One pass over the ledger and the queue's own tables. Executions of a process end at its death when
// they recorded no end; a job is rescued when its error history says its worker stopped heartbeating.
const verdictSql = `
  with
  results as materialized (
    select r.job_id, r.attempt, r.output ->> 'id' as client_id
    from skiplock.job_results as r
  ),
  failed as materialized (
    select f.payload ->> 'id' as client_id
    from skiplock.finished_jobs as f
    where f.state = 'failed'
  ),
  deaths as materialized (
    select f.pid, f.worker_id, f.at
    from public.chaos_faults as f
    where f.stops_worker
  ),
  executions as materialized (
    select
      e.*,
      coalesce(e.finished_at, (select min(d.at) from deaths as d where d.pid = e.pid and d.at >= e.started_at), 'infinity') as ended_at
    from public.chaos_executions as e
  ),
  rescues as materialized (
    select j.id as job_id, (x.error ->> 'attempt')::int as attempt, d.at as died_at
    from skiplock.all_jobs as j
    cross join lateral jsonb_array_elements(j.errors) as x(error)
    join deaths as d
      on d.worker_id = substring(x.error ->> 'message' from '^worker (\\d+) stopped heartbeating')::bigint
  ),
  restarts as (
    select r.died_at, (select min(e.started_at) from public.chaos_executions as e where e.job_id = r.job_id and e.attempt > r.attempt) as restarted_at
    from rescues as r
  )
  select
    (select count(*) from public.chaos_enqueues) as attempted,
    (select count(*) from public.chaos_enqueues where acked_at is not null) as acknowledged,
    (
      select count(*)
      from public.chaos_enqueues as e
      left join results as r
        on r.client_id = e.client_id
      left join failed as f
        on f.client_id = e.client_id
      where e.acked_at is not null
        and ((e.expected = 'succeed' and r.client_id is null) or (e.expected = 'fail' and f.client_id is null))
    ) as lost,
    (
      select count(*)
      from results as r
      left join public.chaos_enqueues as e
        on e.client_id = r.client_id
      where e.client_id is null
        or e.expected = 'fail'
    ) as unexpected,
    (select count(*) - count(distinct client_id) from results) as dup_results,
    (
      select count(*)
      from skiplock.finished_jobs as f
      where f.state = 'succeeded'
        and not exists (select from skiplock.job_results as r where r.job_id = f.id)
    ) as completed_without_result,
    (
      select count(*)
      from skiplock.job_results as r
      where not exists (select from skiplock.finished_jobs as f where f.id = r.job_id and f.state = 'succeeded' and f.attempts = r.attempt)
    ) as results_without_completion,
    (select count(*) from executions) as executions,
    (
      select count(*) filter (where outcome is distinct from 'threw') - count(distinct client_id) filter (where outcome is distinct from 'threw')
      from executions
    ) as dup_exec,
    (
      select count(*)
      from (
        select e.started_at, max(e.ended_at) over (partition by e.lock order by e.started_at, e.id rows between unbounded preceding and 1 preceding) as earlier_end
        from executions as e
        where e.lock is not null
      ) as k
      where k.started_at < k.earlier_end
    ) as key_overlaps,
    (
      select count(*)
      from (
        select q.seq, lag(q.seq) over (partition by e.lock order by e.started_at, e.id) as earlier_seq
        from executions as e
        join public.chaos_enqueues as q
          on q.client_id = e.client_id
        where e.lock is not null
      ) as o
      where o.earlier_seq > o.seq
    ) as key_order_violations,
    (select count(*) from rescues) as rescued,
    (select count(restarted_at) from restarts) as restarted,
    (select extract(epoch from max(restarted_at - died_at)) * 1000 from restarts) as max_rescue_ms,
    (
      select percentile_cont(0.99) within group (order by extract(epoch from p.first_started_at - j.created_at) * 1000)
      from (select e.job_id, min(e.started_at) as first_started_at from public.chaos_executions as e group by e.job_id) as p
      join skiplock.all_jobs as j
        on j.id = p.job_id
    ) as p99_pickup_ms
`
