create or replace function skiplock.fetch_jobs(
  worker_id bigint,
  queue_names text[] default null,
  batch_size integer default 1,
  now timestamptz default now(),
  attribute_filter jsonb default null
) returns setof skiplock.jobs
  language plpgsql
as $$
declare
  v_attribute_documents jsonb[] := skiplock.attribute_filter_documents(fetch_jobs.attribute_filter);
  -- Below it lie only index entries of jobs claimed already, which an old snapshot may keep from vacuum.
  v_run_at_floor timestamptz := skiplock.claim_floor();
  v_limited_queue_names text[];
  v_queue skiplock.queues;
  v_room integer;
  v_running integer;
  v_tokens double precision;
  v_claimed integer;
  v_claimed_total integer := 0;
begin
  if fetch_jobs.batch_size is null or fetch_jobs.batch_size < 1 then
    raise exception 'fetch_jobs: batch_size is %, expected at least 1', coalesce(fetch_jobs.batch_size::text, 'null')
      using errcode = 'SK005';
  end if;

  -- A claim need not wait for the disk: if the server crashes before its WAL is flushed, the job is
  -- simply waiting again, and the attempt fence rejects the lost claim's completion. A later durable
  -- commit (the completion) flushes this claim's WAL first. Saves an fsync per fetch (perf S4, S2).
  perform set_config('synchronous_commit', 'off', true);

  -- Every limited queue this worker serves is left out of the final, unlimited claim, even one with nothing
  -- to run now: its jobs may become runnable before that claim's statement (a commit, a released child).
  select array_agg(q.name)
  into v_limited_queue_names
  from skiplock.queues as q
  where (q.max_running is not null or q.max_starts_per_second is not null)
    and (fetch_jobs.queue_names is null or q.name = any(fetch_jobs.queue_names));

  -- Limited queues first, one at a time under the queue's row lock, so that claims over the whole fleet
  -- take turns counting what runs: running jobs never exceed max_running, starts never outpace the rate.
  -- The lock is held only until this claim commits; finishing jobs take no part.
  if v_limited_queue_names is not null then
    for v_queue in
      select q.*
      from skiplock.queues as q
      where q.name = any(v_limited_queue_names)
        -- A limited queue with nothing to run costs no lock: claims of other queues need not take turns.
        and exists (
          select
          from skiplock.jobs as j
          where j.in_limited_queue
            and j.queue_name = q.name
            and j.state = 'todo'
            and j.run_at <= fetch_jobs.now
        )
      order by q.name
      for no key update
    loop
      v_room := fetch_jobs.batch_size - v_claimed_total;
      exit when v_room = 0;
      if v_queue.max_running is not null then
        select count(*)
        into v_running
        from (
          select
          from skiplock.jobs as j
          where j.in_limited_queue
            and j.queue_name = v_queue.name
            and j.state = 'doing'
          limit v_queue.max_running
        ) as r;
        v_room := least(v_room, v_queue.max_running - v_running);
      end if;
      if v_queue.max_starts_per_second is not null then
        -- A token bucket: it fills at the rate, holding at most one second's worth (and at least one start).
        v_tokens := least(
          greatest(v_queue.max_starts_per_second, 1),
          v_queue.start_tokens + v_queue.max_starts_per_second * greatest(0, extract(epoch from fetch_jobs.now - v_queue.start_tokens_at))
        );
        v_room := least(v_room, floor(v_tokens)::integer);
      end if;

      v_claimed := 0;
      if v_room > 0 then
        return query
          select *
          from skiplock.claim_jobs(fetch_jobs.worker_id, array[v_queue.name], null, v_room, fetch_jobs.now, v_attribute_documents, v_run_at_floor);
        get diagnostics v_claimed = row_count;
        v_claimed_total := v_claimed_total + v_claimed;
      end if;
      if v_queue.max_starts_per_second is not null then
        update skiplock.queues as q
        set
          start_tokens = v_tokens - v_claimed,
          start_tokens_at = greatest(fetch_jobs.now, v_queue.start_tokens_at)
        where q.name = v_queue.name;
      end if;
    end loop;
  end if;

  if v_claimed_total < fetch_jobs.batch_size then
    return query
      select *
      from skiplock.claim_jobs(
        fetch_jobs.worker_id,
        fetch_jobs.queue_names,
        v_limited_queue_names,
        fetch_jobs.batch_size - v_claimed_total,
        fetch_jobs.now,
        v_attribute_documents,
        v_run_at_floor
      );
  end if;
end;
$$;

comment on function skiplock.fetch_jobs is 'Claims up to batch_size runnable jobs for a worker, by priority (highest first), then run_at, then id, skipping rows other workers hold, jobs whose lock is busy and (given attribute_filter) jobs whose attributes do not match; queues with a concurrency or rate limit get no more than it allows. Sets synchronous_commit off for the calling transaction: call it in a transaction of its own.';
