-- `imangor import python-stack`: what each row of the source became here, so that a re-run is
-- idempotent and can be resumed, and so that the old stack's access tokens (whose `sub` is the
-- old integer user id) find their account (`source_table` 'users', `source_id` the old id as text).
create table legacy_ids (
    source_table text not null,
    source_id text not null,
    target_id text not null,
    imported_at bigint not null,
    primary key (source_table, source_id)
);
