create or replace function skiplock.waiting_queueing_lock(
  queueing_lock text
) returns text
  language sql
  stable
as $$
  -- While a job ran, another job with its queueing lock may have been deferred. A job going back to
  -- waiting then gives the key up rather than being lost to the unique index.
  select case
    when waiting_queueing_lock.queueing_lock is null then null
    when exists (
      select
      from skiplock.jobs as other
      where other.queueing_lock = waiting_queueing_lock.queueing_lock
        and other.state = 'todo'
    ) then null
    else waiting_queueing_lock.queueing_lock
  end
$$;

comment on function skiplock.waiting_queueing_lock is 'Returns the queueing lock a job returning to the queue may keep: its own, or null when another waiting job holds it.';
