-- Creates the queue: a small hot table of waiting and running jobs, a history of finished ones, and workers.

create type skiplock.job_state as enum ('todo', 'doing', 'succeeded', 'failed', 'cancelled');

-- Only waiting ('todo') and running ('doing') jobs live here. A finished job leaves in the transaction
-- that finishes it, so churn leaves few dead tuples behind and the claim index stays small.
create table skiplock.jobs (
  id bigint generated always as identity primary key,
  queue_name text not null default 'default',
  task_name text not null,
  payload jsonb not null default '{}',
  priority integer not null default 0,
  run_at timestamptz not null default now(),
  state skiplock.job_state not null default 'todo',
  attempts integer not null default 0,
  max_attempts integer not null default 5,
  lock text,
  queueing_lock text,
  worker_id bigint,
  errors jsonb not null default '[]',
  created_at timestamptz not null default now(),
  started_at timestamptz,
  cancel_requested_at timestamptz,
  constraint jobs_state_check check (state in ('todo', 'doing')),
  constraint jobs_attempts_check check (attempts >= 0 and max_attempts >= 1)
);

comment on table skiplock.jobs is 'Waiting and running jobs; finished jobs move to skiplock.finished_jobs.';
comment on column skiplock.jobs.attempts is 'Attempts started so far; with worker_id it is the lease token that fences a late completion.';
comment on column skiplock.jobs.lock is 'Jobs sharing a lock run one at a time, in creation order.';
comment on column skiplock.jobs.queueing_lock is 'At most one waiting job per queueing lock (deduplication).';

-- The claim: waiting jobs in fetch order. Partial, so running jobs do not bloat it.
create index jobs_claim_idx
  on skiplock.jobs (priority desc, run_at, id)
  where state = 'todo';

-- Lets fetch_jobs find the running or earlier job of the same lock without a scan.
create index jobs_lock_id_idx
  on skiplock.jobs (lock, id)
  where lock is not null;

-- The database itself forbids two running jobs of one lock, whatever a client does.
create unique index jobs_lock_doing_idx
  on skiplock.jobs (lock)
  where state = 'doing' and lock is not null;

create unique index jobs_queueing_lock_todo_idx
  on skiplock.jobs (queueing_lock)
  where state = 'todo' and queueing_lock is not null;

create index jobs_worker_id_idx
  on skiplock.jobs (worker_id)
  where worker_id is not null;

-- Finished jobs: succeeded, failed (retries exhausted: the dead-letter state) or cancelled.
create table skiplock.finished_jobs (
  id bigint primary key,
  queue_name text not null,
  task_name text not null,
  payload jsonb not null,
  priority integer not null,
  run_at timestamptz not null,
  state skiplock.job_state not null,
  attempts integer not null,
  max_attempts integer not null,
  lock text,
  queueing_lock text,
  worker_id bigint,
  errors jsonb not null,
  result jsonb,
  created_at timestamptz not null,
  started_at timestamptz,
  finished_at timestamptz not null default now(),
  constraint finished_jobs_state_check check (state in ('succeeded', 'failed', 'cancelled'))
);

comment on table skiplock.finished_jobs is 'Succeeded, failed and cancelled jobs; pruned by skiplock.prune_jobs.';

create index finished_jobs_finished_at_idx
  on skiplock.finished_jobs (finished_at);

create index finished_jobs_failed_idx
  on skiplock.finished_jobs (queue_name, finished_at)
  where state = 'failed';

create table skiplock.workers (
  id bigint generated always as identity primary key,
  name text not null,
  lease_seconds integer not null default 30,
  started_at timestamptz not null default now(),
  last_heartbeat_at timestamptz not null default now(),
  constraint workers_lease_seconds_check check (lease_seconds > 0)
);

comment on table skiplock.workers is 'Live workers; a worker whose heartbeat is older than its lease is presumed dead and its jobs are rescued.';

-- Producers awaiting a result listen on "<schema>_finished". One notification per statement: the payload
-- lists the finished ids when they fit in a notification, and is empty otherwise ("look for yourself").
create function skiplock.tg_finished_jobs__notify_finished() returns trigger
  language plpgsql
as $$
declare
  v_ids text;
begin
  select string_agg(f.id::text, ',')
  into v_ids
  from finished as f;
  perform pg_notify(tg_table_schema || '_finished', case when length(v_ids) < 7900 then v_ids else '' end);
  return null;
end;
$$;

create trigger tg_finished_jobs__notify_finished
  after insert on skiplock.finished_jobs
  referencing new table as finished
  for each statement
  execute function skiplock.tg_finished_jobs__notify_finished();

-- Periodic tasks: the last tick each was deferred for. A worker defers a tick only if it moves this
-- forward, so many workers running the same schedule defer each tick exactly once.
create table skiplock.periodic_tasks (
  task_name text primary key,
  last_tick_at timestamptz not null
);

-- Every job, waiting, running or finished, for reads by id and for plain-SQL questions about the work.
create view skiplock.all_jobs as
  select
    j.id, j.queue_name, j.task_name, j.payload, j.priority, j.run_at, j.state, j.attempts, j.max_attempts,
    j.lock, j.queueing_lock, j.worker_id, j.errors, null::jsonb as result, j.created_at, j.started_at,
    null::timestamptz as finished_at, j.cancel_requested_at
  from skiplock.jobs as j
  union all
  select
    f.id, f.queue_name, f.task_name, f.payload, f.priority, f.run_at, f.state, f.attempts, f.max_attempts,
    f.lock, f.queueing_lock, f.worker_id, f.errors, f.result, f.created_at, f.started_at,
    f.finished_at, null::timestamptz as cancel_requested_at
  from skiplock.finished_jobs as f;
