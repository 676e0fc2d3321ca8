create or replace function skiplock.has_pending_jobs(
  queue_name text
) returns boolean
  language sql
  stable
as $$
  -- exists stops at the first row, so a busy queue answers at once and only a drained one is scanned.
  select exists (
    select
    from skiplock.jobs as j
    where j.queue_name = has_pending_jobs.queue_name
  )
$$;

comment on function skiplock.has_pending_jobs is 'Tells whether a queue still has waiting or running jobs (including retries waiting for their time).';
