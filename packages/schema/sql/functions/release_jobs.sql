create or replace function skiplock.release_jobs(
  worker_id bigint,
  job_ids bigint[],
  attempts integer[]
) returns setof skiplock.jobs
  language sql
as $$
  select skiplock.limit_idle_in_transaction(release_jobs.worker_id);

  -- A released job did not really run (fetched but not started, or stopped by a graceful shutdown),
  -- so the attempt counted at fetch time is given back.
  update skiplock.jobs as j
  set
    state = 'todo',
    worker_id = null,
    attempts = j.attempts - 1,
    started_at = null,
    queueing_lock = skiplock.waiting_queueing_lock(j.queueing_lock)
  from unnest(release_jobs.job_ids, release_jobs.attempts) as r(id, attempt)
  where j.id = r.id
    and j.attempts = r.attempt
    and j.state = 'doing'
    and j.worker_id = release_jobs.worker_id
  returning j.*
$$;

comment on function skiplock.release_jobs is 'Returns jobs a worker holds to the queue without using up an attempt (fenced by worker and attempt like complete_jobs).';
