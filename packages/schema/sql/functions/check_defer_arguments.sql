create or replace function skiplock.check_defer_arguments(
  task_names text[],
  payloads text[],
  queue_names text[],
  priorities integer[],
  run_ats timestamptz[],
  max_attempts integer[],
  locks text[],
  queueing_locks text[],
  on_queueing_lock_conflict text,
  max_payload_bytes integer
) returns void
  language plpgsql
  stable
as $$
declare
  v_count integer := coalesce(cardinality(check_defer_arguments.task_names), 0);
  v_bad record;
begin
  -- Every array given describes the same jobs; a null array means the default for every job.
  if coalesce(cardinality(check_defer_arguments.payloads), v_count) <> v_count
    or coalesce(cardinality(check_defer_arguments.queue_names), v_count) <> v_count
    or coalesce(cardinality(check_defer_arguments.priorities), v_count) <> v_count
    or coalesce(cardinality(check_defer_arguments.run_ats), v_count) <> v_count
    or coalesce(cardinality(check_defer_arguments.max_attempts), v_count) <> v_count
    or coalesce(cardinality(check_defer_arguments.locks), v_count) <> v_count
    or coalesce(cardinality(check_defer_arguments.queueing_locks), v_count) <> v_count
  then
    raise exception 'defer_jobs: every array must have as many elements as task_names (%)', v_count
      using errcode = 'SK005';
  end if;

  if check_defer_arguments.on_queueing_lock_conflict is null
    or check_defer_arguments.on_queueing_lock_conflict not in ('error', 'existing')
  then
    raise exception 'defer_jobs: on_queueing_lock_conflict is %, expected ''error'' or ''existing''',
        coalesce(quote_literal(check_defer_arguments.on_queueing_lock_conflict), 'null')
      using errcode = 'SK005';
  end if;

  if check_defer_arguments.max_payload_bytes is null or check_defer_arguments.max_payload_bytes < 2 then
    raise exception 'defer_jobs: max_payload_bytes is %, expected at least 2', coalesce(check_defer_arguments.max_payload_bytes::text, 'null')
      using errcode = 'SK005';
  end if;

  select t.position, t.task_name
  into v_bad
  from unnest(check_defer_arguments.task_names) with ordinality as t(task_name, position)
  -- A length test and a negated character class: many times cheaper per row than one anchored pattern.
  where t.task_name is null
    or length(t.task_name) not between 1 and 128
    or t.task_name ~ '[^A-Za-z0-9_.:/-]'
  limit 1;
  if found then
    raise exception 'defer_jobs: task name % at position % is invalid',
        coalesce(quote_literal(v_bad.task_name), 'null'), v_bad.position
      using errcode = 'SK005',
        detail = json_build_object('position', v_bad.position, 'argument', 'task_names')::text,
        hint = 'A task name is 1 to 128 characters of letters, digits and _ . : / -';
  end if;

  select q.position, q.queue_name
  into v_bad
  from unnest(check_defer_arguments.queue_names) with ordinality as q(queue_name, position)
  where length(q.queue_name) not between 1 and 128
    or q.queue_name ~ '[^A-Za-z0-9_.:/-]'
  limit 1;
  if found then
    raise exception 'defer_jobs: queue name % at position % is invalid', quote_literal(v_bad.queue_name), v_bad.position
      using errcode = 'SK001',
        detail = json_build_object('position', v_bad.position, 'queue_name', v_bad.queue_name)::text,
        hint = 'A queue name is 1 to 128 characters of letters, digits and _ . : / -';
  end if;

  -- Keys are indexed, and an index entry has a size limit: refuse a long key here with a clear error.
  select k.position, k.argument, octet_length(k.key) as size_bytes
  into v_bad
  from (
    select l.position, 'locks' as argument, l.key
    from unnest(check_defer_arguments.locks) with ordinality as l(key, position)
    union all
    select q.position, 'queueing_locks' as argument, q.key
    from unnest(check_defer_arguments.queueing_locks) with ordinality as q(key, position)
  ) as k
  where octet_length(k.key) > 1024
  limit 1;
  if found then
    raise exception 'defer_jobs: % at position % is % bytes, over the limit of 1024 bytes', v_bad.argument, v_bad.position, v_bad.size_bytes
      using errcode = 'SK005',
        detail = json_build_object('position', v_bad.position, 'argument', v_bad.argument)::text;
  end if;

  select m.position, m.max_attempts
  into v_bad
  from unnest(check_defer_arguments.max_attempts) with ordinality as m(max_attempts, position)
  where m.max_attempts < 1
  limit 1;
  if found then
    raise exception 'defer_jobs: max_attempts % at position % is invalid, expected at least 1', v_bad.max_attempts, v_bad.position
      using errcode = 'SK005';
  end if;
end;
$$;

comment on function skiplock.check_defer_arguments is 'Rejects defer_jobs arguments that do not describe valid jobs, naming the first bad one; internal to defer_jobs.';
