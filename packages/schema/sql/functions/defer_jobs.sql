create or replace function skiplock.defer_jobs(
  task_names text[],
  payloads text[] default null,
  queue_names text[] default null,
  priorities integer[] default null,
  run_ats timestamptz[] default null,
  max_attempts integer[] default null,
  locks text[] default null,
  queueing_locks text[] default null,
  on_queueing_lock_conflict text default 'error',
  max_payload_bytes integer default 1048576,
  trace_contexts text[] default null,
  attributes jsonb[] default null,
  dependency_child_positions integer[] default null,
  dependency_parent_positions integer[] default null,
  dependency_parent_ids bigint[] default null,
  on_parent_failures text[] default null
) returns setof skiplock.jobs
  language plpgsql
as $$
declare
  v_count integer := coalesce(cardinality(defer_jobs.task_names), 0);
  v_has_queueing_locks boolean;
  v_constraint text;
  v_detail text;
  v_inserted_ids bigint[];
  v_position bigint;
  v_queueing_lock text;
  v_ids bigint[];
  v_is_blocked boolean[];
  v_limited_queue_names text[] := array(select q.name from skiplock.queues as q);
  v_failed_parent_ids bigint[];
begin
  perform skiplock.check_defer_arguments(
    defer_jobs.task_names,
    defer_jobs.payloads,
    defer_jobs.queue_names,
    defer_jobs.priorities,
    defer_jobs.run_ats,
    defer_jobs.max_attempts,
    defer_jobs.locks,
    defer_jobs.queueing_locks,
    defer_jobs.on_queueing_lock_conflict,
    defer_jobs.max_payload_bytes
  );
  if coalesce(cardinality(defer_jobs.trace_contexts), v_count) <> v_count
    or coalesce(cardinality(defer_jobs.attributes), v_count) <> v_count
    or coalesce(cardinality(defer_jobs.on_parent_failures), v_count) <> v_count
  then
    raise exception 'defer_jobs: every array must have as many elements as task_names (%)', v_count
      using errcode = 'SK005';
  end if;
  perform skiplock.check_attributes(defer_jobs.attributes);
  if v_count = 0 then
    return;
  end if;

  if defer_jobs.dependency_child_positions is not null then
    if defer_jobs.on_queueing_lock_conflict = 'existing' then
      raise exception 'defer_jobs: dependencies cannot be combined with on_queueing_lock_conflict ''existing'''
        using errcode = 'SK005', detail = json_build_object('argument', 'on_queueing_lock_conflict')::text;
    end if;
    -- The ids are taken first: the edges name them, and a job is blocked if any of its parents has not finished.
    v_ids := array(select nextval('skiplock.jobs_id_seq') from generate_series(1, v_count));
    select s.is_blocked, s.failed_parent_ids
    into v_is_blocked, v_failed_parent_ids
    from skiplock.add_dependencies(
      v_ids,
      defer_jobs.dependency_child_positions,
      defer_jobs.dependency_parent_positions,
      defer_jobs.dependency_parent_ids,
      defer_jobs.on_parent_failures
    ) as s;
  end if;

  perform skiplock.check_queue_room(defer_jobs.queue_names, v_count);

  v_has_queueing_locks := exists (
    select
    from unnest(defer_jobs.queueing_locks) as q(queueing_lock)
    where q.queueing_lock is not null
  );

  -- Payloads arrive as JSON text so that text jsonb cannot store (\u0000, lone surrogates) gets a
  -- project error naming the job. One exception block per call, not per job: it costs a subtransaction.
  begin
    if not v_has_queueing_locks or defer_jobs.on_queueing_lock_conflict = 'error' then
      -- A queueing lock already held by a waiting job violates jobs_queueing_lock_todo_idx: see below.
      return query
        insert into skiplock.jobs as j (id, state, task_name, payload, queue_name, priority, run_at, max_attempts, lock, queueing_lock, trace_context, attributes, in_limited_queue)
        overriding system value
        select coalesce(v_ids[n.position], nextval('skiplock.jobs_id_seq')), n.state, n.task_name, n.payload, n.queue_name, n.priority, n.run_at, n.max_attempts, n.lock, n.queueing_lock, n.trace_context, n.attributes, n.queue_name = any(v_limited_queue_names)
        from skiplock.new_jobs(
          defer_jobs.task_names,
          defer_jobs.payloads,
          defer_jobs.queue_names,
          defer_jobs.priorities,
          defer_jobs.run_ats,
          defer_jobs.max_attempts,
          defer_jobs.locks,
          defer_jobs.queueing_locks,
          defer_jobs.max_payload_bytes,
          defer_jobs.trace_contexts,
          defer_jobs.attributes,
          v_is_blocked
        ) as n
        order by n.position
        returning j.*;
      -- Children of a parent that already failed or was cancelled end at once, as they would have later.
      perform skiplock.end_dependents(v_failed_parent_ids);
      perform skiplock.notify_queues(defer_jobs.queue_names);
      return;
    end if;

    -- 'existing': skip jobs whose queueing lock is taken and return the waiting job that holds it.
    with inserted as (
      insert into skiplock.jobs as j (id, state, task_name, payload, queue_name, priority, run_at, max_attempts, lock, queueing_lock, trace_context, attributes, in_limited_queue)
      overriding system value
      select coalesce(v_ids[n.position], nextval('skiplock.jobs_id_seq')), n.state, n.task_name, n.payload, n.queue_name, n.priority, n.run_at, n.max_attempts, n.lock, n.queueing_lock, n.trace_context, n.attributes, n.queue_name = any(v_limited_queue_names)
      from skiplock.new_jobs(
        defer_jobs.task_names,
        defer_jobs.payloads,
        defer_jobs.queue_names,
        defer_jobs.priorities,
        defer_jobs.run_ats,
        defer_jobs.max_attempts,
        defer_jobs.locks,
        defer_jobs.queueing_locks,
        defer_jobs.max_payload_bytes,
        defer_jobs.trace_contexts,
        defer_jobs.attributes
      ) as n
      order by n.position
      on conflict (queueing_lock) where state = 'todo' and queueing_lock is not null
      do nothing
      returning j.id
    )
    select array_agg(i.id)
    into v_inserted_ids
    from inserted as i;
    perform skiplock.notify_queues(defer_jobs.queue_names);
  exception
    when untranslatable_character or invalid_text_representation or character_not_in_repertoire then
      v_position := skiplock.first_unstorable_payload(defer_jobs.payloads);
      raise exception 'defer_jobs: payload at position % is not JSON that PostgreSQL can store (%)', v_position, sqlerrm
        using errcode = 'SK003',
          detail = json_build_object('position', v_position, 'reason', sqlerrm)::text,
          hint = 'jsonb rejects \u0000 and unpaired UTF-16 surrogates';
    when unique_violation then
      get stacked diagnostics v_constraint = constraint_name, v_detail = pg_exception_detail;
      if v_constraint <> 'jobs_queueing_lock_todo_idx' then
        raise;
      end if;
      v_queueing_lock := substring(v_detail from '^Key \(queueing_lock\)=\((.*)\) already exists');
      raise exception 'defer_jobs: a waiting job already holds the queueing lock %', quote_literal(v_queueing_lock)
        using errcode = 'SK004',
          detail = json_build_object('queueing_lock', v_queueing_lock)::text,
          hint = 'Pass on_queueing_lock_conflict => ''existing'' to get that job instead';
  end;

  -- A new statement: it sees a conflicting job that a concurrent transaction committed meanwhile.
  return query
    select j.*
    from skiplock.jobs as j
    where j.id = any(v_inserted_ids)
      or (
        j.state = 'todo'
        and j.queueing_lock = any(defer_jobs.queueing_locks)
        and not j.id = any(coalesce(v_inserted_ids, '{}'))
      )
    order by j.id;
end;
$$;

comment on function skiplock.defer_jobs is 'Enqueues many jobs in one statement; arrays are columns (null means the default for every job) and the result holds the jobs created, plus with on_queueing_lock_conflict => ''existing'' the waiting jobs that already held a queueing lock.';
