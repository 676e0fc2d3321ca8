create or replace function skiplock.notify_queues(
  queue_names text[]
) returns void
  language sql
as $$
  -- One notification per queue and call, never per job: NOTIFY takes a global lock at commit, and
  -- identical notifications of one transaction are folded into one anyway. Null means 'default'.
  select pg_notify(skiplock.channel_name('jobs'), q.queue_name)
  from (
    select distinct coalesce(n.queue_name, 'default') as queue_name
    from unnest(coalesce(notify_queues.queue_names, array[null::text])) as n(queue_name)
  ) as q
$$;

comment on function skiplock.notify_queues is 'Notifies <schema>_jobs once per distinct queue (null: default) that jobs were deferred there; internal to defer_jobs.';
