-- The claim floor: no waiting job has a run_at before it, so a claim starts its walk of the claim index
-- there. A claimed job's entry stays in the index until vacuum removes it, and while any snapshot older
-- than the claim is open (a long transaction, a replica's query under hot_standby_feedback) vacuum cannot:
-- every claim then walks every entry claimed since: 58 ms per claim after 5 minutes at 250 jobs/s in the
-- chaos suite's R11. Below the floor lie only such entries.

-- The floor as raised last, in microseconds since 1970; its minimum means none yet. A sequence, not a row:
-- a producer in a REPEATABLE READ transaction still reads the latest value, and raising it leaves no dead
-- tuple behind.
create sequence skiplock.raised_claim_floor
  as bigint
  minvalue -9223372036854775808
  start with -9223372036854775808;

-- Jobs made waiting below the raised floor since, by their run_at: each lowers the floor until the next raise.
create table skiplock.claim_floor_lowerings (
  run_at timestamptz not null
);

comment on table skiplock.claim_floor_lowerings is 'Run_ats of jobs made waiting below the raised claim floor; raise_claim_floor folds them in.';

-- Every statement that makes jobs waiting keeps the floor at or below them, whatever wrote it. The lock is
-- shared by producers and taken alone by a raise, so either the raise sees this transaction's jobs
-- committed, or this transaction sees the raised floor. With its owner's rights: roles that defer need no
-- privilege on the floor, and cannot move it.
create function skiplock.tg_jobs__keep_claim_floor() returns trigger
  language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp
as $$
declare
  v_run_at timestamptz;
begin
  select min(c.run_at)
  into v_run_at
  from changed as c
  where c.state = 'todo';
  if v_run_at is null then
    return null;
  end if;
  perform pg_advisory_xact_lock_shared(hashtext('skiplock.claim_floor'), 0);
  if v_run_at < skiplock.raised_claim_floor() then
    insert into skiplock.claim_floor_lowerings (run_at) values (v_run_at);
  end if;
  return null;
end;
$$;

create trigger tg_jobs__keep_claim_floor_on_insert
  after insert on skiplock.jobs
  referencing new table as changed
  for each statement
  execute function skiplock.tg_jobs__keep_claim_floor();

create trigger tg_jobs__keep_claim_floor_on_update
  after update on skiplock.jobs
  referencing new table as changed
  for each statement
  execute function skiplock.tg_jobs__keep_claim_floor();

-- claim_jobs takes the floor from fetch_jobs: the old signature goes.
drop function if exists skiplock.claim_jobs(bigint, text[], text[], integer, timestamptz, jsonb[]);
