create or replace function skiplock.end_dependents(
  parent_ids bigint[],
  now timestamptz default now()
) returns void
  language plpgsql
as $$
declare
  v_child_ids bigint[];
  v_parent_ids bigint[];
  v_on_parent_failures text[];
begin
  if coalesce(cardinality(end_dependents.parent_ids), 0) = 0 then
    return;
  end if;

  -- Every job downstream can no longer run, so all of them end here, each naming the parent that did
  -- not succeed. One pass rather than a trigger per level: a long chain would overflow the stack.
  with recursive doomed as (
    select d.child_id, d.parent_id, d.on_parent_failure
    from skiplock.job_dependencies as d
    where d.parent_id = any(end_dependents.parent_ids)
    union
    select d.child_id, d.parent_id, d.on_parent_failure
    from skiplock.job_dependencies as d
    join doomed as x on d.parent_id = x.child_id
  ),
  first_parent as (
    select distinct on (x.child_id) x.child_id, x.parent_id, x.on_parent_failure
    from doomed as x
    order by x.child_id, x.parent_id
  )
  select array_agg(f.child_id order by f.child_id), array_agg(f.parent_id order by f.child_id), array_agg(f.on_parent_failure order by f.child_id)
  into v_child_ids, v_parent_ids, v_on_parent_failures
  from first_parent as f;
  if v_child_ids is null then
    return;
  end if;

  delete from skiplock.job_dependencies as d
  where d.child_id = any(v_child_ids);

  with ended as (
    delete from skiplock.jobs as j
    using unnest(v_child_ids, v_parent_ids, v_on_parent_failures) as x(child_id, parent_id, on_parent_failure)
    where j.id = x.child_id
      and j.state = 'blocked'
    returning j.*, x.parent_id, x.on_parent_failure
  )
  insert into skiplock.finished_jobs (
    id, queue_name, task_name, payload, priority, run_at, state, attempts, max_attempts, lock,
    queueing_lock, worker_id, errors, result, created_at, started_at, finished_at, trace_context, attributes
  )
  select
    e.id, e.queue_name, e.task_name, e.payload, e.priority, e.run_at,
    case when e.on_parent_failure = 'cancel' then 'cancelled' else 'failed' end::skiplock.job_state,
    e.attempts, e.max_attempts, e.lock, e.queueing_lock, e.worker_id,
    e.errors || jsonb_build_array(jsonb_build_object(
      'attempt', e.attempts,
      'failed_at', end_dependents.now,
      'message', format('job %s, which this job depends on, did not succeed', e.parent_id),
      'parent_id', e.parent_id::text
    )),
    null, e.created_at, e.started_at, end_dependents.now, e.trace_context, e.attributes
  from ended as e;
end;
$$;

comment on function skiplock.end_dependents is 'Fails or cancels (as each chose) every blocked job downstream of jobs that failed or were cancelled, naming the parent in the error; internal to the finished_jobs trigger and defer_jobs.';
