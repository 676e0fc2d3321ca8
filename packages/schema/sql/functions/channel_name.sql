create or replace function skiplock.channel_name(
  topic text
) returns text
  language sql
  stable
as $$
  -- "<schema>_<topic>": the schema is configurable, so the channel is read from where the jobs table lives.
  select n.nspname || '_' || channel_name.topic
  from pg_catalog.pg_class as c
  join pg_catalog.pg_namespace as n
    on n.oid = c.relnamespace
  where c.oid = 'skiplock.jobs'::regclass
$$;

comment on function skiplock.channel_name is 'Returns the NOTIFY channel of a topic for this schema: <schema>_jobs (payload: queue name) or <schema>_cancel (payload: job id).';
