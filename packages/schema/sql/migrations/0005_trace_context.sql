-- Jobs keep the W3C traceparent of the span that deferred them, so each attempt's span can link back to it.

alter table skiplock.jobs add column trace_context text;
alter table skiplock.finished_jobs add column trace_context text;

comment on column skiplock.jobs.trace_context is 'W3C traceparent of the span that deferred the job, when one was recording; null otherwise.';
comment on column skiplock.finished_jobs.trace_context is 'W3C traceparent of the span that deferred the job, when one was recording; null otherwise.';

-- A replaced view may only gain columns at its end.
create or replace view skiplock.all_jobs as
  select
    j.id, j.queue_name, j.task_name, j.payload, j.priority, j.run_at, j.state, j.attempts, j.max_attempts,
    j.lock, j.queueing_lock, j.worker_id, j.errors, null::jsonb as result, j.created_at, j.started_at,
    null::timestamptz as finished_at, j.cancel_requested_at, j.trace_context
  from skiplock.jobs as j
  union all
  select
    f.id, f.queue_name, f.task_name, f.payload, f.priority, f.run_at, f.state, f.attempts, f.max_attempts,
    f.lock, f.queueing_lock, f.worker_id, f.errors, f.result, f.created_at, f.started_at,
    f.finished_at, null::timestamptz as cancel_requested_at, f.trace_context
  from skiplock.finished_jobs as f;

-- defer_jobs and new_jobs take trace_contexts as a last argument (functions/defer_jobs.sql, new_jobs.sql):
-- the old signatures go, or a call naming only the old arguments would be ambiguous.
drop function if exists skiplock.defer_jobs(text[], text[], text[], integer[], timestamptz[], integer[], text[], text[], text, integer);
drop function if exists skiplock.new_jobs(text[], text[], text[], integer[], timestamptz[], integer[], text[], text[], integer);
