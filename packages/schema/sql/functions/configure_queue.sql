create or replace function skiplock.configure_queue(
  queue_name text,
  max_waiting integer default null,
  max_running integer default null,
  max_starts_per_second double precision default null
) returns setof skiplock.queues
  language plpgsql
as $$
begin
  if configure_queue.queue_name is null
    or length(configure_queue.queue_name) not between 1 and 128
    or configure_queue.queue_name ~ '[^A-Za-z0-9_.:/-]'
  then
    raise exception 'configure_queue: queue name % is invalid', coalesce(quote_literal(configure_queue.queue_name), 'null')
      using errcode = 'SK001',
        detail = json_build_object('queue_name', configure_queue.queue_name)::text,
        hint = 'A queue name is 1 to 128 characters of letters, digits and _ . : / -';
  end if;
  if configure_queue.max_waiting < 1 then
    raise exception 'configure_queue: max_waiting is %, expected at least 1 (or null for no bound)', configure_queue.max_waiting
      using errcode = 'SK005', detail = json_build_object('argument', 'max_waiting')::text;
  end if;
  if configure_queue.max_running < 1 then
    raise exception 'configure_queue: max_running is %, expected at least 1 (or null for no limit)', configure_queue.max_running
      using errcode = 'SK005', detail = json_build_object('argument', 'max_running')::text;
  end if;
  -- NaN compares greater than every number in PostgreSQL, so it is named.
  if not configure_queue.max_starts_per_second > 0 or configure_queue.max_starts_per_second in ('infinity', 'NaN') then
    raise exception 'configure_queue: max_starts_per_second is %, expected a positive number (or null for no limit)', configure_queue.max_starts_per_second
      using errcode = 'SK005', detail = json_build_object('argument', 'max_starts_per_second')::text;
  end if;

  -- A queue without limits needs no row: claims of such queues skip the limits' bookkeeping.
  if num_nulls(configure_queue.max_waiting, configure_queue.max_running, configure_queue.max_starts_per_second) = 3 then
    delete from skiplock.queues as q
    where q.name = configure_queue.queue_name;
    return;
  end if;

  -- Jobs already waiting or running join the queue's counts.
  update skiplock.jobs as j
  set in_limited_queue = true
  where j.queue_name = configure_queue.queue_name
    and not j.in_limited_queue;

  return query
    -- A new queue starts with a full bucket: its first second may use the whole rate.
    insert into skiplock.queues as q (name, max_waiting, max_running, max_starts_per_second, start_tokens)
    values (
      configure_queue.queue_name,
      configure_queue.max_waiting,
      configure_queue.max_running,
      configure_queue.max_starts_per_second,
      greatest(coalesce(configure_queue.max_starts_per_second, 1), 1)
    )
    on conflict (name) do update
    set
      max_waiting = excluded.max_waiting,
      max_running = excluded.max_running,
      max_starts_per_second = excluded.max_starts_per_second
    returning q.*;
end;
$$;

comment on function skiplock.configure_queue is 'Sets a queue''s limits (null: none): most waiting jobs, most running jobs over all workers, most starts per second; returns the queue''s row, or nothing once it has no limit.';
