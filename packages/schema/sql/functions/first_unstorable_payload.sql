create or replace function skiplock.first_unstorable_payload(
  payloads text[]
) returns bigint
  language plpgsql
  stable
as $$
declare
  v_payload text;
  v_position bigint := 0;
begin
  -- Only called after a batch failed to parse, so a subtransaction per payload is affordable here.
  foreach v_payload in array first_unstorable_payload.payloads loop
    v_position := v_position + 1;
    begin
      perform v_payload::jsonb;
    exception
      when others then
        return v_position;
    end;
  end loop;
  return null;
end;
$$;

comment on function skiplock.first_unstorable_payload is 'Returns the 1-based position of the first payload that is not storable JSON; internal to defer_jobs.';
