create or replace function skiplock.heartbeat(
  worker_id bigint,
  now timestamptz default now()
) returns table (
  job_id bigint
)
  language plpgsql
as $$
begin
  update skiplock.workers as w
  set last_heartbeat_at = heartbeat.now
  where w.id = heartbeat.worker_id;

  if not found then
    -- Another worker presumed this one dead and rescued its jobs: it must stop them and register again.
    raise exception 'heartbeat: worker % is not registered (presumed dead, its jobs were rescued)', heartbeat.worker_id
      using errcode = 'SK006';
  end if;

  -- The polling path for cancellation, in case the NOTIFY was missed.
  return query
    select j.id
    from skiplock.jobs as j
    where j.worker_id = heartbeat.worker_id
      and j.state = 'doing'
      and j.cancel_requested_at is not null;
end;
$$;

comment on function skiplock.heartbeat is 'Renews a worker''s lease and returns its running jobs whose cancellation was requested; raises SK006 if the worker was presumed dead.';
