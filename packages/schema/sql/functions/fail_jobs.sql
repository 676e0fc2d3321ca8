create or replace function skiplock.fail_jobs(
  worker_id bigint,
  job_ids bigint[],
  attempts integer[],
  errors jsonb[],
  retry_ats timestamptz[] default null,
  is_retryable boolean[] default null,
  now timestamptz default now()
) returns table (
  id bigint,
  state skiplock.job_state,
  run_at timestamptz
)
  language sql
as $$
  select skiplock.limit_idle_in_transaction(fail_jobs.worker_id);

  with failed as (
    select
      j.id,
      -- A job ends when its attempts are used up, the caller says retrying is pointless, or it was
      -- cancelled while running (then it ends as cancelled, not failed).
      (coalesce(f.is_retryable, true) and j.attempts < j.max_attempts and j.cancel_requested_at is null) as will_retry,
      case when j.cancel_requested_at is null then 'failed' else 'cancelled' end::skiplock.job_state as final_state,
      coalesce(f.retry_at, fail_jobs.now + skiplock.retry_delay(j.attempts)) as retry_at,
      jsonb_build_object('attempt', j.attempts, 'failed_at', fail_jobs.now) || coalesce(f.error, '{}') as error
    from skiplock.jobs as j
    join unnest(fail_jobs.job_ids, fail_jobs.attempts, fail_jobs.errors, fail_jobs.retry_ats, fail_jobs.is_retryable)
      as f(id, attempt, error, retry_at, is_retryable)
      on f.id = j.id
    -- The same lease check as complete_jobs: a late failure report changes nothing.
    where j.attempts = f.attempt
      and j.state = 'doing'
      and j.worker_id = fail_jobs.worker_id
    for update of j
  ),
  retried as (
    update skiplock.jobs as j
    set
      state = 'todo',
      worker_id = null,
      run_at = f.retry_at,
      errors = j.errors || jsonb_build_array(f.error),
      queueing_lock = skiplock.waiting_queueing_lock(j.queueing_lock)
    from failed as f
    where j.id = f.id
      and f.will_retry
    returning j.id, j.state, j.run_at
  ),
  dead as (
    delete from skiplock.jobs as j
    using failed as f
    where j.id = f.id
      and not f.will_retry
    returning j.*, f.error, f.final_state
  ),
  dead_finished as (
    insert into skiplock.finished_jobs (
      id, queue_name, task_name, payload, priority, run_at, state, attempts, max_attempts, lock,
      queueing_lock, worker_id, errors, result, created_at, started_at, finished_at, trace_context, attributes
    )
    select
      d.id, d.queue_name, d.task_name, d.payload, d.priority, d.run_at, d.final_state, d.attempts, d.max_attempts, d.lock,
      d.queueing_lock, d.worker_id, d.errors || jsonb_build_array(d.error), null, d.created_at, d.started_at, fail_jobs.now, d.trace_context, d.attributes
    from dead as d
    returning finished_jobs.id, finished_jobs.state, finished_jobs.run_at
  )
  select r.id, r.state, r.run_at
  from retried as r
  union all
  select d.id, d.state, d.run_at
  from dead_finished as d
$$;

comment on function skiplock.fail_jobs is 'Records a failed attempt of each job: it waits for a retry (at retry_ats, or after exponential backoff with jitter) or, when its attempts are used up or it is not retryable, moves to finished_jobs as failed (the dead-letter state), or as cancelled if its cancellation was requested while it ran.';
