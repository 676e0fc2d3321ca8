create or replace function skiplock.register_worker(
  name text,
  lease_seconds integer default 30,
  now timestamptz default now()
) returns setof skiplock.workers
  language plpgsql
as $$
begin
  if register_worker.lease_seconds is null or register_worker.lease_seconds < 1 then
    raise exception 'register_worker: lease_seconds is %, expected at least 1', coalesce(register_worker.lease_seconds::text, 'null')
      using errcode = 'SK005';
  end if;

  return query
    insert into skiplock.workers as w (name, lease_seconds, started_at, last_heartbeat_at)
    values (register_worker.name, register_worker.lease_seconds, register_worker.now, register_worker.now)
    returning w.*;
end;
$$;

comment on function skiplock.register_worker is 'Registers a worker; it must call heartbeat more often than every lease_seconds, or its jobs are rescued.';
