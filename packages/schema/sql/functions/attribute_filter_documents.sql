create or replace function skiplock.attribute_filter_documents(
  attribute_filter jsonb
) returns jsonb[]
  language plpgsql
  immutable
as $$
declare
  v_documents jsonb[] := array['{}'::jsonb];
  v_key text;
  v_value jsonb;
  v_values jsonb[];
begin
  if attribute_filter_documents.attribute_filter is null then
    return null;
  end if;
  if jsonb_typeof(attribute_filter_documents.attribute_filter) <> 'object' or attribute_filter_documents.attribute_filter = '{}' then
    raise exception 'attribute filter % is not an object with at least one attribute', attribute_filter_documents.attribute_filter
      using errcode = 'SK005', detail = json_build_object('argument', 'attribute_filter')::text;
  end if;

  -- {"region": "eu", "tier": ["gold", "silver"]} becomes the documents a matching job contains one of:
  -- {"region": "eu", "tier": "gold"} and {"region": "eu", "tier": "silver"}. Containment (@>) uses the index.
  for v_key, v_value in select e.key, e.value from jsonb_each(attribute_filter_documents.attribute_filter) as e loop
    v_values := case when jsonb_typeof(v_value) = 'array' then array(select jsonb_array_elements(v_value)) else array[v_value] end;
    if cardinality(v_values) = 0 or exists (
      select from unnest(v_values) as v(value) where jsonb_typeof(v.value) not in ('string', 'number', 'boolean')
    ) then
      raise exception 'attribute filter on % is %, expected a string, number or boolean, or a non-empty array of them', quote_literal(v_key), v_value
        using errcode = 'SK005', detail = json_build_object('argument', 'attribute_filter', 'attribute', v_key)::text;
    end if;
    v_documents := array(
      select d.document || jsonb_build_object(v_key, v.value)
      from unnest(v_documents) as d(document), unnest(v_values) as v(value)
    );
    if cardinality(v_documents) > 100 then
      raise exception 'attribute filter % matches more than 100 combinations of values', attribute_filter_documents.attribute_filter
        using errcode = 'SK005', detail = json_build_object('argument', 'attribute_filter')::text;
    end if;
  end loop;
  return v_documents;
end;
$$;

comment on function skiplock.attribute_filter_documents is 'Turns a worker''s attribute filter (values or arrays of values per attribute) into the documents a matching job''s attributes contain one of; rejects anything but strings, numbers and booleans.';
