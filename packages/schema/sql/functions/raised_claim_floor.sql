create or replace function skiplock.raised_claim_floor() returns timestamptz
  -- PL/pgSQL keeps its plans for the session; a SQL function that is not inlined is planned again in
  -- every transaction, and claim_floor runs in every claim.
  language plpgsql
  stable
as $$
begin
  return (
    select case
      when s.last_value = -9223372036854775808 then '-infinity'::timestamptz
      else to_timestamp(0) + s.last_value * interval '1 microsecond'
    end
    from skiplock.raised_claim_floor as s
  );
end;
$$;

comment on function skiplock.raised_claim_floor is 'The claim floor as raise_claim_floor last set it (-infinity before the first raise); read without a snapshot, so always the latest. Internal: its callers run with the owner''s rights.';
