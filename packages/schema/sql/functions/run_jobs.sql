create or replace function skiplock.run_jobs(
  queue_name text,
  after_id bigint default 0,
  max_rows integer default 10000
) returns table (
  job_id bigint,
  task_name text,
  state skiplock.job_state,
  attempts integer,
  enqueued_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  worker_name text,
  has_result boolean
)
  language plpgsql
  stable
as $$
begin
  if run_jobs.max_rows is null or run_jobs.max_rows < 1 then
    raise exception 'run_jobs: max_rows is %, expected at least 1', coalesce(run_jobs.max_rows::text, 'null')
      using errcode = 'SK005', detail = json_build_object('argument', 'max_rows')::text;
  end if;

  -- Keyset pagination: the next page starts after the last job_id of this one. Filtering and ordering
  -- by id lets both branches of all_jobs be read in primary key order and merged, however large the run.
  return query
    select
      a.id, a.task_name, a.state, a.attempts, a.created_at, a.started_at, a.finished_at, r.worker_name,
      r.job_id is not null
    from skiplock.all_jobs as a
    left join skiplock.job_results as r
      on r.job_id = a.id
    where a.queue_name = run_jobs.queue_name
      and a.id > coalesce(run_jobs.after_id, 0)
    order by a.id
    limit run_jobs.max_rows;
end;
$$;

comment on function skiplock.run_jobs is 'Lists every job of a queue (waiting, running or finished) with who stored its result, in id order, max_rows at a time after after_id: the raw material of a benchmark report.';
