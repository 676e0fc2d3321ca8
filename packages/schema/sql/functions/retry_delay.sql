create or replace function skiplock.retry_delay(
  attempts integer
) returns interval
  language sql
  volatile
as $$
  -- Exponential backoff (2 s, 4 s, 8 s ... capped at one hour) with jitter: a random 50-100% of it,
  -- so jobs that failed together do not retry together.
  select make_interval(secs => least(3600, power(2, least(retry_delay.attempts, 12))) * (0.5 + random() / 2))
$$;

comment on function skiplock.retry_delay is 'Returns the wait before the next try of a job that failed its attempts-th attempt: 2^attempts seconds capped at an hour, jittered to 50-100%.';
