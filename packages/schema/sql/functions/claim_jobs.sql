create or replace function skiplock.claim_jobs(
  worker_id bigint,
  queue_names text[],
  excluded_queue_names text[],
  batch_size integer,
  now timestamptz,
  attribute_documents jsonb[],
  run_at_floor timestamptz
) returns setof skiplock.jobs
  language plpgsql
  -- Until autovacuum analyzes a freshly filled table, the planner takes it for a few rows and picks
  -- bitmap scans that read every waiting job and, for each, every job of its lock (about 130 ms for
  -- 4,000 jobs, half on one lock, against 4 ms). Index scans in claim order stop at batch_size.
  set enable_bitmapscan = off
  set enable_seqscan = off
  set enable_indexscan = on
  set plan_cache_mode = auto
as $$
declare
  v_remaining integer := claim_jobs.batch_size;
  v_claimed integer;
begin
  if claim_jobs.attribute_documents is not null then
    -- A filtered claim first looks at the head of the claim order, whatever the planner would guess of the
    -- filter: common values are found there at once. Planner estimates of jsonb containment are too rough to
    -- choose (a rare value taken for a common one walked 12,000 jobs), and they cannot see matches bunched at
    -- the end of the order (perf/results/attribute-filters.md).
    return query
      with candidate as (
        -- The walk stops at twice the batch of matches (a margin for those other workers are taking).
        select h.id
        from (
          select j.id, j.attributes
          from skiplock.jobs as j
          where j.state = 'todo'
            and j.run_at <= claim_jobs.now
            and j.run_at >= claim_jobs.run_at_floor
            and (claim_jobs.queue_names is null or j.queue_name = any(claim_jobs.queue_names))
            and (claim_jobs.excluded_queue_names is null or j.queue_name <> all(claim_jobs.excluded_queue_names))
          order by j.priority desc, j.run_at, j.id
          limit least(greatest(1000, 100 * claim_jobs.batch_size), 10000)
        ) as h
        where h.attributes <> '{}'
          and h.attributes @> any(claim_jobs.attribute_documents)
        limit 2 * claim_jobs.batch_size
      ),
      claimable as (
        select j.id
        from candidate as c
        join skiplock.jobs as j on j.id = c.id
        -- Checked again on the row's latest version once it is locked: another claim may have taken it.
        where j.state = 'todo'
          and (
            j.lock is null
            or not exists (
              select
              from skiplock.jobs as other
              where other.lock = j.lock
                and (other.id < j.id or other.state = 'doing')
            )
          )
        order by j.priority desc, j.run_at, j.id
        limit claim_jobs.batch_size
        for update of j skip locked
      ),
      claimed as (
        update skiplock.jobs as j
        set
          state = 'doing',
          worker_id = claim_jobs.worker_id,
          attempts = j.attempts + 1,
          started_at = claim_jobs.now
        from claimable as c
        where j.id = c.id
        returning j.*
      )
      select c.*
      from claimed as c
      order by c.priority desc, c.run_at, c.id;
    get diagnostics v_claimed = row_count;
    v_remaining := v_remaining - v_claimed;
    if v_remaining = 0 then
      return;
    end if;
    -- Too few there: the attributes index finds the rest, however far back they wait, and the matches are
    -- sorted. A plan made for the filter's own values, reading the index as a bitmap.
    perform set_config('enable_bitmapscan', 'on', true);
    perform set_config('enable_indexscan', 'off', true);
    perform set_config('plan_cache_mode', 'force_custom_plan', true);
  end if;

  return query
    with claimable as (
      select j.id
      from skiplock.jobs as j
      where j.state = 'todo'
        and j.run_at <= claim_jobs.now
        and j.run_at >= claim_jobs.run_at_floor
        and (claim_jobs.queue_names is null or j.queue_name = any(claim_jobs.queue_names))
        and (claim_jobs.excluded_queue_names is null or j.queue_name <> all(claim_jobs.excluded_queue_names))
        and (
          claim_jobs.attribute_documents is null
          or (j.attributes <> '{}' and j.attributes @> any(claim_jobs.attribute_documents))
        )
        -- A locked job waits while an earlier job of its lock is waiting or running, so each lock
        -- runs one job at a time, in creation order (and a batch never holds two of one lock).
        and (
          j.lock is null
          or not exists (
            select
            from skiplock.jobs as other
            where other.lock = j.lock
              and (other.id < j.id or other.state = 'doing')
          )
        )
      order by j.priority desc, j.run_at, j.id
      limit v_remaining
      for update skip locked
    ),
    claimed as (
      -- Count the attempt at fetch time, so a worker that dies mid-job still uses up a try.
      update skiplock.jobs as j
      set
        state = 'doing',
        worker_id = claim_jobs.worker_id,
        attempts = j.attempts + 1,
        started_at = claim_jobs.now
      from claimable as c
      where j.id = c.id
      returning j.*
    )
    select c.*
    from claimed as c
    order by c.priority desc, c.run_at, c.id;
end;
$$;

comment on function skiplock.claim_jobs is 'Claims up to batch_size runnable jobs of the given queues (null: all but the excluded) whose attributes contain one of attribute_documents (null: any), looking at run_ats from run_at_floor on; internal to fetch_jobs, which applies the queues'' limits.';
