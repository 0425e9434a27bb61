-- Incidents: new columns.
-- A plain user's report above `medium` is stored as `medium`; the level the reporter asked for is
-- kept here for triage (null when the stored level is the one asked for).
alter table incidents add column requested_level text;
-- The systems an incident touches: a JSON array of short names (`["auth","sessions"]`), each
-- `[a-z0-9_-]{1,32}`, at most 16. A filter matches a name with its quotes (`%"auth"%`), so
-- `auth` never matches `oauth`.
alter table incidents add column affected_systems text not null default '[]';
