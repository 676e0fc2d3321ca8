create or replace function skiplock.defer_periodic_job(
  task_name text,
  tick_at timestamptz,
  payload text default null,
  queue_name text default null,
  priority integer default null,
  max_attempts integer default null,
  trace_context text default null
) returns setof skiplock.jobs
  language plpgsql
as $$
begin
  -- Only the worker that moves the task's last tick forward defers it: with many workers running the
  -- same schedule, each tick is deferred exactly once. A tick already passed returns nothing.
  insert into skiplock.periodic_tasks as p (task_name, last_tick_at)
  values (defer_periodic_job.task_name, defer_periodic_job.tick_at)
  on conflict on constraint periodic_tasks_pkey do update
    set last_tick_at = excluded.last_tick_at
    where p.last_tick_at < excluded.last_tick_at;

  if not found then
    return;
  end if;

  return query
    select j.*
    from skiplock.defer_jobs(
      task_names => array[defer_periodic_job.task_name],
      payloads => array[defer_periodic_job.payload],
      queue_names => case when defer_periodic_job.queue_name is null then null else array[defer_periodic_job.queue_name] end,
      priorities => array[defer_periodic_job.priority],
      run_ats => array[defer_periodic_job.tick_at],
      max_attempts => array[defer_periodic_job.max_attempts],
      trace_contexts => array[defer_periodic_job.trace_context]
    ) as j;
end;
$$;

comment on function skiplock.defer_periodic_job is 'Defers a periodic task for one tick of its schedule, exactly once however many workers call it; returns the job, or nothing if that tick was already deferred.';
