create or replace function skiplock.heartbeat(
  worker_id bigint,
  now timestamptz default now(),
  held_job_ids bigint[] default null
) returns table (
  job_id bigint
)
  language plpgsql
as $$
declare
  v_lease_seconds integer;
begin
  update skiplock.workers as w
  set last_heartbeat_at = heartbeat.now
  where w.id = heartbeat.worker_id
  returning w.lease_seconds into v_lease_seconds;

  if not found then
    -- Another worker presumed this one dead and rescued its jobs: it must stop them and register again.
    raise exception 'heartbeat: worker % is not registered (presumed dead, its jobs were rescued)', heartbeat.worker_id
      using errcode = 'SK006';
  end if;

  if heartbeat.held_job_ids is not null then
    -- A claim whose rows never reached the worker (its connection died after the commit) would stay with
    -- this live worker for good. Jobs claimed over a lease ago that the worker does not hold go back to
    -- the queue in their place, with their attempt: they never ran. The lease of margin covers a claim
    -- whose rows are still on their way.
    perform skiplock.release_jobs(heartbeat.worker_id, s.job_ids, s.attempts)
    from (
      select array_agg(j.id) as job_ids, array_agg(j.attempts) as attempts
      from skiplock.jobs as j
      where j.worker_id = heartbeat.worker_id
        and j.state = 'doing'
        and j.started_at < heartbeat.now - make_interval(secs => v_lease_seconds)
        and j.id <> all (heartbeat.held_job_ids)
    ) as s
    where s.job_ids is not null;
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

comment on function skiplock.heartbeat is 'Renews a worker''s lease and returns its running jobs whose cancellation was requested; given the ids of the jobs the worker holds, returns to the queue those it was given over a lease ago and never received. Raises SK006 if the worker was presumed dead.';
