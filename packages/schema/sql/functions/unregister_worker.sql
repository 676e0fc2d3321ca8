create or replace function skiplock.unregister_worker(
  worker_id bigint
) returns setof skiplock.jobs
  language plpgsql
as $$
begin
  delete from skiplock.workers as w
  where w.id = unregister_worker.worker_id;

  -- Whatever the worker still holds goes back to the queue: a graceful shutdown never strands a job.
  return query
    update skiplock.jobs as j
    set
      state = 'todo',
      worker_id = null,
      attempts = j.attempts - 1,
      started_at = null,
      queueing_lock = skiplock.waiting_queueing_lock(j.queueing_lock)
    where j.worker_id = unregister_worker.worker_id
      and j.state = 'doing'
    returning j.*;
end;
$$;

comment on function skiplock.unregister_worker is 'Removes a worker that is shutting down and releases the jobs it still holds, without using up their attempts.';
