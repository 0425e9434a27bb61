-- Resources: owned by a user, public or private. Pages are read newest first by id (UUIDv7);
-- the two indexes serve "my rows" and "public rows" pages without scanning others' rows.
create table resources (
    id text collate "C" primary key,
    owner_id text collate "C" not null references users (id) on delete cascade,
    title text not null,
    content text not null,
    is_public boolean not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index resources_owner on resources (owner_id, id);
create index resources_public on resources (id) where is_public;
