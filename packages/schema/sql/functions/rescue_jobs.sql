create or replace function skiplock.rescue_jobs(
  now timestamptz default now()
) returns table (
  id bigint,
  state skiplock.job_state,
  worker_id bigint
)
  language plpgsql
as $$
begin
  -- A worker whose heartbeat is older than its lease is presumed dead. Removing it also makes a
  -- late heartbeat fail, so the worker learns it lost its jobs. Time the server was down does not count:
  -- no worker could heartbeat then, and the first to come back must not rescue the jobs of all the others.
  delete from skiplock.workers as w
  where greatest(w.last_heartbeat_at, pg_postmaster_start_time()) < rescue_jobs.now - make_interval(secs => w.lease_seconds);

  -- A new statement, so it sees the deletion above: running jobs without a live worker are orphans.
  -- Rows a worker is completing right now are locked; skip them, a later rescue sees how they ended.
  return query
    with orphans as (
      select
        j.id,
        j.worker_id,
        j.attempts < j.max_attempts as will_retry,
        jsonb_build_object(
          'attempt', j.attempts,
          'failed_at', rescue_jobs.now,
          'message', format('worker %s stopped heartbeating; job rescued', j.worker_id)
        ) as error
      from skiplock.jobs as j
      where j.state = 'doing'
        and not exists (
          select
          from skiplock.workers as w
          where w.id = j.worker_id
        )
      for update of j skip locked
    ),
    retried as (
      -- The job keeps its place in the queue: it has waited its turn once already, and sending it behind
      -- a backlog would leave a crashed worker's jobs waiting far longer than the lease.
      update skiplock.jobs as j
      set
        state = 'todo',
        worker_id = null,
        run_at = least(j.run_at, rescue_jobs.now),
        errors = j.errors || jsonb_build_array(o.error),
        queueing_lock = skiplock.waiting_queueing_lock(j.queueing_lock)
      from orphans as o
      where j.id = o.id
        and o.will_retry
      returning j.id, j.state, o.worker_id
    ),
    dead as (
      delete from skiplock.jobs as j
      using orphans as o
      where j.id = o.id
        and not o.will_retry
      returning j.*, o.error
    ),
    dead_finished as (
      insert into skiplock.finished_jobs (
        id, queue_name, task_name, payload, priority, run_at, state, attempts, max_attempts, lock,
        queueing_lock, worker_id, errors, result, created_at, started_at, finished_at, trace_context, attributes
      )
      select
        d.id, d.queue_name, d.task_name, d.payload, d.priority, d.run_at, 'failed', d.attempts, d.max_attempts, d.lock,
        d.queueing_lock, d.worker_id, d.errors || jsonb_build_array(d.error), null, d.created_at, d.started_at, rescue_jobs.now, d.trace_context, d.attributes
      from dead as d
      returning finished_jobs.id, finished_jobs.state, finished_jobs.worker_id
    )
    select r.id, r.state, r.worker_id
    from retried as r
    union all
    select d.id, d.state, d.worker_id
    from dead_finished as d;
end;
$$;

comment on function skiplock.rescue_jobs is 'Removes workers whose heartbeat is older than their lease and returns their running jobs to the queue at once, in their place (or fails them if no attempts are left); safe to run from many workers.';
