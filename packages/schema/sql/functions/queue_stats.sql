create or replace function skiplock.queue_stats(
  now timestamptz default now()
) returns table (
  queue_name text,
  waiting bigint,
  scheduled bigint,
  blocked bigint,
  running bigint,
  succeeded bigint,
  failed bigint,
  cancelled bigint,
  oldest_waiting_at timestamptz
)
  language sql
  stable
as $$
  with counts as (
    select
      j.queue_name,
      count(*) filter (where j.state = 'todo' and j.run_at <= queue_stats.now) as waiting,
      count(*) filter (where j.state = 'todo' and j.run_at > queue_stats.now) as scheduled,
      count(*) filter (where j.state = 'blocked') as blocked,
      count(*) filter (where j.state = 'doing') as running,
      0::bigint as succeeded,
      0::bigint as failed,
      0::bigint as cancelled,
      min(j.run_at) filter (where j.state = 'todo' and j.run_at <= queue_stats.now) as oldest_waiting_at
    from skiplock.jobs as j
    group by j.queue_name
    union all
    select
      f.queue_name,
      0, 0, 0, 0,
      count(*) filter (where f.state = 'succeeded'),
      count(*) filter (where f.state = 'failed'),
      count(*) filter (where f.state = 'cancelled'),
      null
    from skiplock.finished_jobs as f
    group by f.queue_name
  )
  select
    c.queue_name,
    sum(c.waiting)::bigint,
    sum(c.scheduled)::bigint,
    sum(c.blocked)::bigint,
    sum(c.running)::bigint,
    sum(c.succeeded)::bigint,
    sum(c.failed)::bigint,
    sum(c.cancelled)::bigint,
    min(c.oldest_waiting_at)
  from counts as c
  group by c.queue_name
  order by c.queue_name
$$;

comment on function skiplock.queue_stats is 'Counts jobs per queue and state (waiting means runnable now, scheduled means run_at is later, blocked means waiting for other jobs), with the run_at of the oldest runnable job.';
