create or replace function skiplock.release_dependents(
  parent_ids bigint[]
) returns void
  language plpgsql
as $$
declare
  v_child_ids bigint[];
  v_child_id bigint;
  v_queue_names text[];
begin
  if coalesce(cardinality(release_dependents.parent_ids), 0) = 0 then
    return;
  end if;

  with deleted as (
    delete from skiplock.job_dependencies as d
    where d.parent_id = any(release_dependents.parent_ids)
    returning d.child_id
  )
  select array_agg(distinct d.child_id order by d.child_id)
  into v_child_ids
  from deleted as d;
  if v_child_ids is null then
    return;
  end if;

  -- Two parents finishing at once would each still see the other's edge and leave the child blocked.
  -- Serialised on the child, the later one looks again in a new statement and sees no edge left.
  -- An advisory lock rather than the child's row lock: a row lock writes the row, and fan-in must not.
  foreach v_child_id in array v_child_ids loop
    perform pg_advisory_xact_lock(hashtext('skiplock.job_dependencies'), hashtext(v_child_id::text));
  end loop;

  with released as (
    update skiplock.jobs as j
    set state = 'todo'
    where j.id = any(v_child_ids)
      and j.state = 'blocked'
      and not exists (
        select
        from skiplock.job_dependencies as d
        where d.child_id = j.id
      )
    returning j.queue_name
  )
  select array_agg(distinct r.queue_name)
  into v_queue_names
  from released as r;
  if v_queue_names is not null then
    perform skiplock.notify_queues(v_queue_names);
  end if;
end;
$$;

comment on function skiplock.release_dependents is 'Deletes the dependency edges of jobs that succeeded and makes runnable each child left without one; internal to the finished_jobs trigger.';
