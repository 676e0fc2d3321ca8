-- Flow control: job dependencies, per-queue limits and attribute filters.

alter table skiplock.jobs drop constraint jobs_state_check;
alter table skiplock.jobs add constraint jobs_state_check check (state in ('blocked', 'todo', 'doing'));

-- Dependencies: one row per edge while the parent has not finished. A parent that succeeds deletes its
-- edges, and a child runs once none is left, so 10,000 parents cost the child one update, not 10,000.
-- No foreign key: its per-row cascade would cost every completion, with or without dependencies.
create table skiplock.job_dependencies (
  parent_id bigint not null,
  child_id bigint not null,
  on_parent_failure text not null default 'fail',
  primary key (parent_id, child_id),
  constraint job_dependencies_on_parent_failure_check check (on_parent_failure in ('fail', 'cancel'))
);

create index job_dependencies_child_id_idx
  on skiplock.job_dependencies (child_id);

comment on table skiplock.job_dependencies is 'Edges from a job to a blocked job that waits for it; deleted when the parent finishes.';
comment on column skiplock.job_dependencies.on_parent_failure is 'What happens to the child when this parent fails or is cancelled: it fails, or it is cancelled.';

-- Attributes: small key/value pairs a worker can filter its claims on.
alter table skiplock.jobs add column attributes jsonb not null default '{}';
alter table skiplock.finished_jobs add column attributes jsonb not null default '{}';

comment on column skiplock.jobs.attributes is 'Flat object of string, number or boolean values that workers filter claims on.';

-- Filtered claims find their jobs here (containment, @>) and sort the matches. Every search reads the whole
-- GIN pending list, 4 MB by default: a rare value then cost 10 ms to find at 100,000 waiting jobs against
-- 2 ms with a list of 256 kB, which keeps inserts as cheap (perf/results/attribute-filters.md).
create index jobs_attributes_idx
  on skiplock.jobs using gin (attributes jsonb_path_ops)
  with (gin_pending_list_limit = 256)
  where state = 'todo' and attributes <> '{}';

-- Jobs of a queue with limits are counted by state, for its bound and its concurrency limit. Only those
-- are indexed for it: an index of every job by queue and state would cost every other queue's inserts
-- and claims about a third more, for counts they never need.
alter table skiplock.jobs add column in_limited_queue boolean not null default false;

comment on column skiplock.jobs.in_limited_queue is 'Whether the job''s queue has a row in skiplock.queues (set by defer_jobs, configure_queue and retry_job).';

create index jobs_limited_queue_state_idx
  on skiplock.jobs (queue_name, state)
  where in_limited_queue;

-- Limits per queue, enforced by defer_jobs (max_waiting) and fetch_jobs (max_running, max_starts_per_second).
create table skiplock.queues (
  name text primary key,
  max_waiting integer,
  max_running integer,
  max_starts_per_second double precision,
  -- A token bucket for the start rate: it fills at max_starts_per_second, up to one second's worth.
  start_tokens double precision not null default 0,
  start_tokens_at timestamptz not null default now(),
  constraint queues_max_waiting_check check (max_waiting > 0),
  constraint queues_max_running_check check (max_running > 0),
  constraint queues_max_starts_per_second_check check (max_starts_per_second > 0)
);

comment on table skiplock.queues is 'Limits of queues that have any; a queue without a row has none.';
comment on column skiplock.queues.max_waiting is 'Most jobs waiting (blocked or todo) a producer may bring the queue to; null: unbounded.';
comment on column skiplock.queues.max_running is 'Most jobs of the queue running at once over all workers; null: no limit.';
comment on column skiplock.queues.max_starts_per_second is 'Most job starts per second over all workers; null: no limit.';

create or replace view skiplock.all_jobs as
  select
    j.id, j.queue_name, j.task_name, j.payload, j.priority, j.run_at, j.state, j.attempts, j.max_attempts,
    j.lock, j.queueing_lock, j.worker_id, j.errors, null::jsonb as result, j.created_at, j.started_at,
    null::timestamptz as finished_at, j.cancel_requested_at, j.trace_context, j.attributes
  from skiplock.jobs as j
  union all
  select
    f.id, f.queue_name, f.task_name, f.payload, f.priority, f.run_at, f.state, f.attempts, f.max_attempts,
    f.lock, f.queueing_lock, f.worker_id, f.errors, f.result, f.created_at, f.started_at,
    f.finished_at, null::timestamptz as cancel_requested_at, f.trace_context, f.attributes
  from skiplock.finished_jobs as f;

-- New arguments and columns: the old signatures go, or a call naming only the old arguments would be ambiguous.
drop function if exists skiplock.defer_jobs(text[], text[], text[], integer[], timestamptz[], integer[], text[], text[], text, integer, text[]);
drop function if exists skiplock.new_jobs(text[], text[], text[], integer[], timestamptz[], integer[], text[], text[], integer, text[]);
drop function if exists skiplock.fetch_jobs(bigint, text[], integer, timestamptz);
drop function if exists skiplock.queue_stats(timestamptz);
drop function if exists skiplock.defer_periodic_job(text, timestamptz, text, text, integer, integer);

-- A job that finishes settles the jobs waiting for it: success unblocks a child once no edge is left,
-- failure or cancellation ends every job downstream. One trigger covers every way a job finishes.
create function skiplock.tg_finished_jobs__settle_dependents() returns trigger
  language plpgsql
as $$
begin
  -- Most queues use no dependencies: one cheap look spares them the rest.
  if not exists (select from skiplock.job_dependencies) then
    return null;
  end if;
  perform skiplock.release_dependents(array(select f.id from finished as f where f.state = 'succeeded'));
  perform skiplock.end_dependents(array(select f.id from finished as f where f.state <> 'succeeded'), now());
  return null;
end;
$$;

create trigger tg_finished_jobs__settle_dependents
  after insert on skiplock.finished_jobs
  referencing new table as finished
  for each statement
  execute function skiplock.tg_finished_jobs__settle_dependents();

-- A finished job frees a running slot: workers of a queue with a concurrency limit hear of it at once
-- rather than at their next poll.
create function skiplock.tg_finished_jobs__notify_limited_queues() returns trigger
  language plpgsql
as $$
begin
  perform skiplock.notify_queues(array_agg(q.name))
  from skiplock.queues as q
  where q.max_running is not null
    and q.name in (select f.queue_name from finished as f)
  having count(*) > 0;
  return null;
end;
$$;

create trigger tg_finished_jobs__notify_limited_queues
  after insert on skiplock.finished_jobs
  referencing new table as finished
  for each statement
  execute function skiplock.tg_finished_jobs__notify_limited_queues();
