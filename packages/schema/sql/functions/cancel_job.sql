create or replace function skiplock.cancel_job(
  job_id bigint,
  now timestamptz default now()
) returns table (
  id bigint,
  state skiplock.job_state
)
  language plpgsql
as $$
declare
  v_job skiplock.jobs;
  v_finished_state skiplock.job_state;
begin
  select j.*
  into v_job
  from skiplock.jobs as j
  where j.id = cancel_job.job_id
  for update;

  if not found then
    select f.state
    into v_finished_state
    from skiplock.finished_jobs as f
    where f.id = cancel_job.job_id;
    if not found then
      raise exception 'cancel_job: job % does not exist', cancel_job.job_id
        using errcode = 'SK007';
    end if;
    -- Already finished: cancelling is a no-op that reports how it ended.
    return query select cancel_job.job_id, v_finished_state;
    return;
  end if;

  if v_job.state in ('blocked', 'todo') then
    -- Its own edges go; the jobs waiting for it end through the finished_jobs trigger.
    delete from skiplock.job_dependencies as d
    where d.child_id = v_job.id;
    with cancelled as (
      delete from skiplock.jobs as j
      where j.id = v_job.id
      returning j.*
    )
    insert into skiplock.finished_jobs (
      id, queue_name, task_name, payload, priority, run_at, state, attempts, max_attempts, lock,
      queueing_lock, worker_id, errors, result, created_at, started_at, finished_at, trace_context, attributes
    )
    select
      c.id, c.queue_name, c.task_name, c.payload, c.priority, c.run_at, 'cancelled', c.attempts, c.max_attempts, c.lock,
      c.queueing_lock, c.worker_id, c.errors, null, c.created_at, c.started_at, cancel_job.now, c.trace_context, c.attributes
    from cancelled as c;
    return query select v_job.id, 'cancelled'::skiplock.job_state;
    return;
  end if;

  -- A running job is cancelled cooperatively: its worker hears the NOTIFY (or its next heartbeat)
  -- and fires the handler's abort signal; the job stays 'doing' until the handler ends.
  update skiplock.jobs as j
  set cancel_requested_at = coalesce(j.cancel_requested_at, cancel_job.now)
  where j.id = v_job.id;
  perform pg_notify(skiplock.channel_name('cancel'), v_job.id::text);
  return query select v_job.id, v_job.state;
end;
$$;

comment on function skiplock.cancel_job is 'Cancels a waiting job at once (it moves to finished_jobs as cancelled) or asks a running job''s worker to abort it; returns the job''s state afterwards.';
