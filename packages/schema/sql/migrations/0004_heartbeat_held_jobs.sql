-- heartbeat() takes the ids of the jobs the worker holds (functions/heartbeat.sql): the new signature is
-- created with the functions, so the old one goes, or a call with two arguments would be ambiguous.
drop function if exists skiplock.heartbeat(bigint, timestamptz);
