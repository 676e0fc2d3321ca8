create or replace function skiplock.complete_jobs(
  worker_id bigint,
  job_ids bigint[],
  attempts integer[],
  results jsonb[] default null,
  now timestamptz default now()
) returns setof skiplock.finished_jobs
  language sql
as $$
  select skiplock.limit_idle_in_transaction(complete_jobs.worker_id);

  with completed as (
    -- The lease token: only the worker that claimed this very attempt may complete it, so a worker
    -- presumed dead, whose job was rescued and maybe run again, cannot complete it late.
    delete from skiplock.jobs as j
    using unnest(complete_jobs.job_ids, complete_jobs.attempts, complete_jobs.results) as c(id, attempt, result)
    where j.id = c.id
      and j.attempts = c.attempt
      and j.state = 'doing'
      and j.worker_id = complete_jobs.worker_id
    returning j.*, c.result
  )
  insert into skiplock.finished_jobs (
    id, queue_name, task_name, payload, priority, run_at, state, attempts, max_attempts, lock,
    queueing_lock, worker_id, errors, result, created_at, started_at, finished_at, trace_context, attributes
  )
  select
    c.id, c.queue_name, c.task_name, c.payload, c.priority, c.run_at, 'succeeded', c.attempts, c.max_attempts, c.lock,
    c.queueing_lock, c.worker_id, c.errors, c.result, c.created_at, c.started_at, complete_jobs.now, c.trace_context, c.attributes
  from completed as c
  returning *
$$;

comment on function skiplock.complete_jobs is 'Marks jobs succeeded and moves them to finished_jobs with their results; returns only the jobs whose lease (worker_id and attempt) still held, so the caller writes results for exactly those in the same transaction.';
