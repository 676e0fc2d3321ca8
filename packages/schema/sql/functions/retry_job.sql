create or replace function skiplock.retry_job(
  job_id bigint,
  run_at timestamptz default now()
) returns setof skiplock.jobs
  language plpgsql
as $$
declare
  v_state skiplock.job_state;
begin
  select f.state
  into v_state
  from skiplock.finished_jobs as f
  where f.id = retry_job.job_id
  for update;

  if not found then
    if exists (select from skiplock.jobs as j where j.id = retry_job.job_id) then
      raise exception 'retry_job: job % is still waiting or running', retry_job.job_id
        using errcode = 'SK008';
    end if;
    raise exception 'retry_job: job % does not exist', retry_job.job_id
      using errcode = 'SK007';
  end if;

  if v_state = 'succeeded' then
    raise exception 'retry_job: job % succeeded; only failed or cancelled jobs can be retried', retry_job.job_id
      using errcode = 'SK008';
  end if;

  -- The job keeps its id and its error history, and gets a fresh set of attempts.
  return query
    with retried as (
      delete from skiplock.finished_jobs as f
      where f.id = retry_job.job_id
      returning f.*
    )
    insert into skiplock.jobs as j (
      id, queue_name, task_name, payload, priority, run_at, state, attempts, max_attempts, lock,
      queueing_lock, errors, created_at, trace_context, attributes, in_limited_queue
    )
    overriding system value
    select
      r.id, r.queue_name, r.task_name, r.payload, r.priority, retry_job.run_at, 'todo', 0, r.max_attempts, r.lock,
      skiplock.waiting_queueing_lock(r.queueing_lock), r.errors, r.created_at, r.trace_context, r.attributes,
      exists (select from skiplock.queues as q where q.name = r.queue_name)
    from retried as r
    returning j.*;
  perform skiplock.notify_queues(array(
    select j.queue_name
    from skiplock.jobs as j
    where j.id = retry_job.job_id
  ));
end;
$$;

comment on function skiplock.retry_job is 'Puts a failed or cancelled job back in the queue with fresh attempts, keeping its id and error history.';
