-- Indexes finished jobs by finish time with BRIN instead of a btree: rows arrive in finish order, so
-- block-range summaries serve prune_jobs as well, and a completion no longer writes a btree entry per
-- job (about 64 bytes of WAL and one index insert each; perf/results/README.md, WAL per job).
drop index skiplock.finished_jobs_finished_at_idx;

create index finished_jobs_finished_at_idx
  on skiplock.finished_jobs using brin (finished_at)
  with (autosummarize = on);
