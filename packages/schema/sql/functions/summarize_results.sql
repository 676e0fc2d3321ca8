create or replace function skiplock.summarize_results(
  queue_name text
) returns table (
  worker_name text,
  jobs_completed bigint,
  first_started_at timestamptz,
  first_finished_at timestamptz,
  last_finished_at timestamptz,
  jobs_per_minute double precision
)
  language sql
  stable
as $$
  -- The rate runs from the start of the worker's first job to the end of its last, so a worker that
  -- completed a single job still has one (the span between two finishes would be zero).
  select
    r.worker_name,
    count(*),
    min(r.started_at),
    min(r.finished_at),
    max(r.finished_at),
    count(*) / nullif(extract(epoch from max(r.finished_at) - min(r.started_at)) / 60, 0)::double precision
  from skiplock.job_results as r
  where r.queue_name = summarize_results.queue_name
  group by r.worker_name
  order by r.worker_name
$$;

comment on function skiplock.summarize_results is 'Summarizes a queue''s results per worker: jobs completed, first start, first and last finish, and jobs per minute from first start to last finish.';
