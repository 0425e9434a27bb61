-- Rows brought over from a deployment of the guide's Python stack (`imangor import
-- python-stack`): each source row's integer id (as text) and the imangor id it became. A re-run
-- skips what is listed here, so an import is idempotent and resumes where it stopped; a row and
-- its entry are written in one transaction. `source_table` is users, resources or secrets.
create table legacy_ids (
    source_table text not null,
    source_id text not null,
    target_id text not null,
    imported_at bigint not null,
    primary key (source_table, source_id)
);
