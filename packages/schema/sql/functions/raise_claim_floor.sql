create or replace function skiplock.raise_claim_floor() returns timestamptz
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
  -- Index scans in claim order stop at each priority's first waiting job.
  set enable_seqscan = off
  set enable_bitmapscan = off
  -- Which makes any sequential scan look costly enough to compile: 70 ms for nothing.
  set jit = off
as $$
declare
  v_from timestamptz;
  v_first_waiting timestamptz;
  v_floor timestamptz;
begin
  -- The reads below must see every transaction that ended before the lock was taken: a snapshot per statement.
  if current_setting('transaction_isolation') <> 'read committed' then
    return null;
  end if;
  -- A producer still holds the lock shared: its jobs are not visible yet. The next raise will see them.
  if not pg_try_advisory_xact_lock(hashtext('skiplock.claim_floor'), 0) then
    return null;
  end if;

  v_from := skiplock.claim_floor();
  -- The earliest waiting job at or after the floor. The claim index holds each priority's jobs by run_at,
  -- so it is the earliest of each priority's first one, found one priority after another.
  with recursive first_waiting as (
    (
      select j.priority, j.run_at
      from skiplock.jobs as j
      where j.state = 'todo'
        and j.run_at >= v_from
      order by j.priority desc, j.run_at
      limit 1
    )
    union all
    select n.priority, n.run_at
    from first_waiting as f
    cross join lateral (
      select j.priority, j.run_at
      from skiplock.jobs as j
      where j.state = 'todo'
        and j.run_at >= v_from
        and j.priority < f.priority
      order by j.priority desc, j.run_at
      limit 1
    ) as n
  )
  select min(f.run_at)
  into v_first_waiting
  from first_waiting as f;

  -- With nothing waiting, now: a job deferred later that runs earlier lowers it again.
  v_floor := least(v_first_waiting, statement_timestamp());
  perform setval(
    'skiplock.raised_claim_floor',
    case when v_floor = '-infinity' then -9223372036854775808 else (extract(epoch from v_floor) * 1000000)::bigint end
  );
  delete from skiplock.claim_floor_lowerings;
  return v_floor;
end;
$$;

comment on function skiplock.raise_claim_floor is 'Raises the claim floor to the earliest waiting job (or now), so claims skip the index entries of jobs claimed before it; returns the floor, or null when a producer in flight or an isolation level above READ COMMITTED made it wait for the next call. Call it about once a second.';
