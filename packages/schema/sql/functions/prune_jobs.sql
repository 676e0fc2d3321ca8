create or replace function skiplock.prune_jobs(
  finished_before timestamptz,
  states skiplock.job_state[] default '{succeeded,failed,cancelled}',
  batch_size integer default 10000
) returns bigint
  language plpgsql
as $$
declare
  v_deleted bigint;
begin
  if prune_jobs.batch_size is null or prune_jobs.batch_size < 1 then
    raise exception 'prune_jobs: batch_size is %, expected at least 1', coalesce(prune_jobs.batch_size::text, 'null')
      using errcode = 'SK005';
  end if;

  -- Bounded batches keep each call's locks and WAL short; callers repeat until it returns 0.
  with pruned as (
    delete from skiplock.finished_jobs as f
    where f.id in (
      select old.id
      from skiplock.finished_jobs as old
      where old.finished_at < prune_jobs.finished_before
        and old.state = any(prune_jobs.states)
      limit prune_jobs.batch_size
      for update skip locked
    )
    returning f.id
  )
  select count(*)
  into v_deleted
  from pruned;

  return v_deleted;
end;
$$;

comment on function skiplock.prune_jobs is 'Deletes up to batch_size finished jobs older than finished_before in the given states; returns how many it deleted (repeat until 0).';
