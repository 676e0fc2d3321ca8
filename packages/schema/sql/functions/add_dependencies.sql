create or replace function skiplock.add_dependencies(
  ids bigint[],
  child_positions integer[],
  parent_positions integer[],
  parent_ids bigint[],
  on_parent_failures text[]
) returns table (
  is_blocked boolean[],
  failed_parent_ids bigint[]
)
  language plpgsql
as $$
declare
  v_count integer := cardinality(add_dependencies.ids);
  v_bad record;
begin
  if coalesce(cardinality(add_dependencies.parent_positions), -1) <> cardinality(add_dependencies.child_positions)
    or coalesce(cardinality(add_dependencies.parent_ids), -1) <> cardinality(add_dependencies.child_positions)
  then
    raise exception 'defer_jobs: dependency_child_positions, dependency_parent_positions and dependency_parent_ids must have one element per edge'
      using errcode = 'SK005', detail = json_build_object('argument', 'dependency_child_positions')::text;
  end if;

  -- A parent is either a job of this call, earlier in it, or a job that exists: parents listed before
  -- their children cannot form a cycle.
  select e.position, e.child_position, e.parent_position, e.parent_id
  into v_bad
  from unnest(add_dependencies.child_positions, add_dependencies.parent_positions, add_dependencies.parent_ids)
    with ordinality as e(child_position, parent_position, parent_id, position)
  where e.child_position is null
    or e.child_position not between 1 and v_count
    or num_nulls(e.parent_position, e.parent_id) <> 1
    or e.parent_position not between 1 and e.child_position - 1
  limit 1;
  if found then
    raise exception 'defer_jobs: dependency % (child position %, parent position %, parent id %) is invalid',
        v_bad.position, coalesce(v_bad.child_position::text, 'null'), coalesce(v_bad.parent_position::text, 'null'), coalesce(v_bad.parent_id::text, 'null')
      using errcode = 'SK005',
        detail = json_build_object('argument', 'dependency_parent_positions', 'position', v_bad.position)::text,
        hint = 'Each edge names a job of this call by an earlier position, or an existing job by id: parents come before their children';
  end if;

  select f.position, f.on_parent_failure
  into v_bad
  from unnest(add_dependencies.on_parent_failures) with ordinality as f(on_parent_failure, position)
  where f.on_parent_failure not in ('fail', 'cancel')
  limit 1;
  if found then
    raise exception 'defer_jobs: on_parent_failure % at position % is invalid, expected ''fail'' or ''cancel''', quote_literal(v_bad.on_parent_failure), v_bad.position
      using errcode = 'SK005', detail = json_build_object('argument', 'on_parent_failures', 'position', v_bad.position)::text;
  end if;

  -- A parent that is waiting or running cannot finish until this transaction ends: its completion would
  -- otherwise miss the edge written here and leave the child blocked for good.
  perform
  from skiplock.jobs as j
  where j.id = any(add_dependencies.parent_ids)
  order by j.id
  for key share;

  -- New statements: a parent that finished while we waited for its lock is in finished_jobs now.
  select p.id
  into v_bad
  from unnest(add_dependencies.parent_ids) as p(id)
  where p.id is not null
    and not exists (select from skiplock.jobs as j where j.id = p.id)
    and not exists (select from skiplock.finished_jobs as f where f.id = p.id)
  limit 1;
  if found then
    raise exception 'defer_jobs: job %, which a job depends on, does not exist', v_bad.id
      using errcode = 'SK007', detail = json_build_object('job_id', v_bad.id::text)::text;
  end if;

  -- A parent that already succeeded holds nothing up.
  insert into skiplock.job_dependencies (parent_id, child_id, on_parent_failure)
  select
    coalesce(e.parent_id, add_dependencies.ids[e.parent_position]),
    add_dependencies.ids[e.child_position],
    coalesce(add_dependencies.on_parent_failures[e.child_position], 'fail')
  from unnest(add_dependencies.child_positions, add_dependencies.parent_positions, add_dependencies.parent_ids)
    as e(child_position, parent_position, parent_id)
  where not exists (
    select
    from skiplock.finished_jobs as f
    where f.id = e.parent_id
      and f.state = 'succeeded'
  )
  on conflict do nothing;

  return query
    select
      -- Per position, whether the job waits for a parent (a join, not a search per position: graphs can be large).
      array(
        select b.child_position is not null
        from generate_series(1, v_count) as p(position)
        left join (
          select distinct e.child_position
          from unnest(add_dependencies.child_positions, add_dependencies.parent_ids) as e(child_position, parent_id)
          where not exists (
            select
            from skiplock.finished_jobs as f
            where f.id = e.parent_id
              and f.state = 'succeeded'
          )
        ) as b on b.child_position = p.position
        order by p.position
      ),
      array(
        select distinct f.id
        from skiplock.finished_jobs as f
        where f.id = any(add_dependencies.parent_ids)
          and f.state <> 'succeeded'
      );
end;
$$;

comment on function skiplock.add_dependencies is 'Checks and writes the dependency edges of jobs defer_jobs is about to insert, returning which positions must wait and the parents that already failed; internal to defer_jobs.';
