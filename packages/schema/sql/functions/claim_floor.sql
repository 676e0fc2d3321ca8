create or replace function skiplock.claim_floor() returns timestamptz
  language plpgsql
  stable
  -- With its owner's rights, as every function that touches the floor: other roles need no privilege on it.
  security definer
  set search_path = pg_catalog, pg_temp
as $$
begin
  return least(skiplock.raised_claim_floor(), (select min(l.run_at) from skiplock.claim_floor_lowerings as l));
end;
$$;

comment on function skiplock.claim_floor is 'No waiting job has a run_at before this: claims look at jobs from here on.';
