-- A job waiting for other jobs to succeed is 'blocked'. A new enum value can be used only once the
-- transaction adding it has committed, so it comes in a migration of its own, before 0007 uses it.

alter type skiplock.job_state add value if not exists 'blocked' before 'todo';
