create or replace function skiplock.raise_payload_too_large(
  "position" bigint,
  size_bytes integer,
  max_payload_bytes integer
) returns boolean
  language plpgsql
as $$
begin
  raise exception 'defer_jobs: payload at position % is % bytes, over the limit of % bytes', raise_payload_too_large.position, raise_payload_too_large.size_bytes, raise_payload_too_large.max_payload_bytes
    using errcode = 'SK002',
      detail = json_build_object(
        'position', raise_payload_too_large.position,
        'size_bytes', raise_payload_too_large.size_bytes,
        'max_payload_bytes', raise_payload_too_large.max_payload_bytes
      )::text,
      hint = 'Store large data elsewhere and pass a reference in the payload';
end;
$$;

comment on function skiplock.raise_payload_too_large is 'Raises SK002 for an oversized payload; internal to defer_jobs.';
