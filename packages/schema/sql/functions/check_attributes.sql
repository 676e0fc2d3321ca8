create or replace function skiplock.check_attributes(
  attributes jsonb[]
) returns void
  language plpgsql
  immutable
as $$
declare
  v_bad record;
begin
  -- Attributes are labels to filter claims on, not data: a flat object of short keys and scalar values.
  select a.position, a.attributes
  into v_bad
  from unnest(check_attributes.attributes) with ordinality as a(attributes, position)
  where a.attributes is not null
    and (
      jsonb_typeof(a.attributes) <> 'object'
      or octet_length(a.attributes::text) > 1024
      or exists (
        select
        from jsonb_each(a.attributes) as e
        where length(e.key) not between 1 and 64
          or jsonb_typeof(e.value) not in ('string', 'number', 'boolean')
      )
    )
  limit 1;
  if found then
    raise exception 'defer_jobs: attributes at position % are invalid', v_bad.position
      using errcode = 'SK005',
        detail = json_build_object('argument', 'attributes', 'position', v_bad.position)::text,
        hint = 'Attributes are an object of at most 1024 bytes whose keys are 1 to 64 characters and whose values are strings, numbers or booleans';
  end if;
end;
$$;

comment on function skiplock.check_attributes is 'Rejects job attributes that are not a small flat object of string, number or boolean values; internal to defer_jobs.';
