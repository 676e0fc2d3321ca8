-- Adds the result store: one row per succeeded job, written in the transaction that completes it.

-- The primary key is the effectively-once guarantee made concrete: the database itself refuses a
-- second result for a job, so a broken fence fails loudly instead of counting a job twice.
-- No foreign key to finished_jobs: results outlive the job history, which prune_jobs deletes.
create table skiplock.job_results (
  job_id bigint primary key,
  queue_name text not null,
  task_name text not null,
  worker_name text not null,
  attempt integer not null,
  output jsonb,
  enqueued_at timestamptz not null,
  started_at timestamptz not null,
  finished_at timestamptz not null
);

comment on table skiplock.job_results is 'One result per succeeded job, written by skiplock.store_results in the transaction that completed the job.';
comment on column skiplock.job_results.worker_name is 'The name of the worker that completed the job (not its id: ids change when a worker registers again).';
comment on column skiplock.job_results.attempt is 'The attempt that succeeded; above 1 when earlier attempts failed or their worker died.';
comment on column skiplock.job_results.output is 'The handler''s return value, as stored in finished_jobs.result.';

-- Results per worker: the "completed jobs per worker" report.
create index job_results_worker_name_idx
  on skiplock.job_results (worker_name);

-- Results of one queue over time: throughput and first/last job times of a run.
create index job_results_queue_name_finished_at_idx
  on skiplock.job_results (queue_name, finished_at);
