create or replace function skiplock.result_counts(
  queue_name text
) returns table (
  results bigint,
  distinct_jobs bigint,
  succeeded_jobs bigint
)
  language sql
  stable
as $$
  -- distinct_jobs equals results while the primary key holds; a report shows both so that a reader
  -- checks effectively-once instead of assuming it.
  select
    r.results,
    r.distinct_jobs,
    (
      select count(*)
      from skiplock.finished_jobs as f
      where f.queue_name = result_counts.queue_name
        and f.state = 'succeeded'
    )
  from (
    select
      count(*) as results,
      count(distinct jr.job_id) as distinct_jobs
    from skiplock.job_results as jr
    where jr.queue_name = result_counts.queue_name
  ) as r
$$;

comment on function skiplock.result_counts is 'Counts the results stored for a queue, the distinct jobs they belong to, and the queue''s succeeded jobs, which match when every completion stored its result.';
