create or replace function skiplock.store_results(
  job_ids bigint[],
  worker_name text
) returns bigint
  language plpgsql
as $$
declare
  v_stored bigint;
begin
  if store_results.worker_name is null or store_results.worker_name = '' then
    raise exception 'store_results: worker_name is %, expected a name', coalesce(quote_literal(store_results.worker_name), 'null')
      using errcode = 'SK005', detail = json_build_object('argument', 'worker_name')::text;
  end if;

  -- A plain insert, never "on conflict": a second result for a job means the lease fencing is
  -- broken, and the unique violation must abort the completing transaction rather than hide it.
  -- Sorted by id so that concurrent stores take their index locks in one order.
  with stored as (
    insert into skiplock.job_results (
      job_id, queue_name, task_name, worker_name, attempt, output, enqueued_at, started_at, finished_at
    )
    select
      f.id, f.queue_name, f.task_name, store_results.worker_name, f.attempts, f.result, f.created_at, f.started_at,
      f.finished_at
    from skiplock.finished_jobs as f
    where f.id = any(store_results.job_ids)
      and f.state = 'succeeded'
    order by f.id
    returning 1
  )
  select count(*)
  into v_stored
  from stored;

  return v_stored;
end;
$$;

comment on function skiplock.store_results is 'Writes the result row of each given succeeded job, in one statement, for the caller''s transaction that completed them; returns how many it wrote and raises a unique violation for a job that already has one.';
