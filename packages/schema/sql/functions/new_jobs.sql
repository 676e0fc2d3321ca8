create or replace function skiplock.new_jobs(
  task_names text[],
  payloads text[],
  queue_names text[],
  priorities integer[],
  run_ats timestamptz[],
  max_attempts integer[],
  locks text[],
  queueing_locks text[],
  max_payload_bytes integer,
  trace_contexts text[] default null,
  attributes jsonb[] default null,
  is_blocked boolean[] default null
) returns table (
  state skiplock.job_state,
  "position" bigint,
  task_name text,
  payload jsonb,
  queue_name text,
  priority integer,
  run_at timestamptz,
  max_attempts integer,
  lock text,
  queueing_lock text,
  trace_context text,
  attributes jsonb
)
  language sql
  stable
as $$
  select
    case when new_jobs.is_blocked[j.position] then 'blocked' else 'todo' end::skiplock.job_state,
    j.position,
    j.task_name,
    coalesce(j.payload, '{}')::jsonb,
    coalesce(j.queue_name, 'default'),
    coalesce(j.priority, 0),
    coalesce(j.run_at, now()),
    coalesce(j.max_attempts, 5),
    j.lock,
    j.queueing_lock,
    j.trace_context,
    coalesce(j.attributes, '{}')
  from unnest(task_names, payloads, queue_names, priorities, run_ats, max_attempts, locks, queueing_locks, trace_contexts, attributes)
    with ordinality as j(task_name, payload, queue_name, priority, run_at, max_attempts, lock, queueing_lock, trace_context, attributes, position)
  -- The raise runs only for an oversized payload: CASE evaluates it lazily.
  where case
    when octet_length(j.payload) > new_jobs.max_payload_bytes then skiplock.raise_payload_too_large(j.position, octet_length(j.payload), new_jobs.max_payload_bytes)
    else true
  end
$$;

comment on function skiplock.new_jobs is 'Turns defer_jobs'' column arrays into rows with their defaults, parsing payloads and rejecting any over max_payload_bytes; internal to defer_jobs.';
