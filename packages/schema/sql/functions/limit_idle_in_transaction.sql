create or replace function skiplock.limit_idle_in_transaction(
  worker_id bigint
) returns void
  language sql
as $$
  -- A worker cut off from the server in the middle of a completing transaction would keep its jobs' row
  -- locks until the server noticed the dead socket, which can take hours, and rescue skips locked rows.
  -- So the server ends such a transaction once it has sat idle for the worker's lease.
  select set_config('idle_in_transaction_session_timeout', (w.lease_seconds * 1000)::text, true)
  from skiplock.workers as w
  where w.id = limit_idle_in_transaction.worker_id
$$;

comment on function skiplock.limit_idle_in_transaction is 'Makes the server end the current transaction if it idles longer than the worker''s lease, so the row locks of a worker cut off mid-completion cannot outlive its lease; called by the functions that complete, fail and release jobs.';
