create or replace function skiplock.check_queue_room(
  queue_names text[],
  job_count integer
) returns void
  language plpgsql
as $$
declare
  v_bound record;
  v_waiting integer;
begin
  -- Most databases bound no queue: they skip counting the call's jobs per queue.
  if not exists (select from skiplock.queues as q where q.max_waiting is not null) then
    return;
  end if;

  for v_bound in
    select q.name, q.max_waiting, r.requested
    from (
      select coalesce(n.queue_name, 'default') as queue_name, count(*) as requested
      from unnest(coalesce(check_queue_room.queue_names, array_fill(null::text, array[check_queue_room.job_count]))) as n(queue_name)
      group by 1
    ) as r
    join skiplock.queues as q on q.name = r.queue_name
    where q.max_waiting is not null
    order by q.name
  loop
    -- Producers of a bounded queue take turns until they commit: two that each counted the other's jobs
    -- as not yet there would overshoot the bound together. Claims take no part: they only make room.
    perform pg_advisory_xact_lock(hashtext('skiplock.queues'), hashtext(v_bound.name));
    -- A new statement, so it sees what the producer before us committed.
    select count(*)
    into v_waiting
    from (
      select
      from skiplock.jobs as j
      where j.in_limited_queue
        and j.queue_name = v_bound.name
        and j.state in ('blocked', 'todo')
      limit v_bound.max_waiting
    ) as w;
    if v_waiting + v_bound.requested > v_bound.max_waiting then
      raise exception 'defer_jobs: queue % is full: % of % jobs waiting, % more refused', quote_literal(v_bound.name), v_waiting, v_bound.max_waiting, v_bound.requested
        using errcode = 'SK009',
          detail = json_build_object('queue_name', v_bound.name, 'max_waiting', v_bound.max_waiting, 'waiting', v_waiting, 'requested', v_bound.requested)::text;
    end if;
  end loop;
end;
$$;

comment on function skiplock.check_queue_room is 'Raises SK009 unless each bounded queue has room for the jobs about to be deferred into it, holding the queue''s producer lock until the transaction ends; internal to defer_jobs.';
