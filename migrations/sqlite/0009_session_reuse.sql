-- Refresh-token reuse is recorded in its own column, once per session, instead of overwriting the
-- session's revocation reason: a session revoked before the reuse (signed out by a thief who
-- refreshed first) keeps its first reason. Sessions ended for a reuse before this column existed
-- count as recorded.
alter table sessions add column reuse_at bigint;
update sessions set reuse_at = revoked_at where revoked_reason = 'refresh token reuse';
