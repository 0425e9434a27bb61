-- Secrets: a name and a value sealed by the data keyring (the value is never stored in the clear).
-- `key_id` repeats the key named inside the ciphertext, so that rotation finds the rows of a key
-- through an index, and `imangor keys status` counts them.
create table secrets (
    id text primary key,
    owner_id text not null references users (id) on delete cascade,
    name text not null,
    key_id text not null,
    ciphertext blob not null,
    created_at bigint not null
);
create unique index secrets_owner_name on secrets (owner_id, name);
create index secrets_owner on secrets (owner_id, id);
create index secrets_key on secrets (key_id, id);

-- When each key of a keyring was first seen and when it stopped signing or encrypting: key age
-- for `imangor doctor`, and the overlap before a signing key may be retired.
create table key_log (
    ring text not null,
    key_id text not null,
    first_seen bigint not null,
    superseded_at bigint,
    retired_at bigint,
    primary key (ring, key_id)
);

-- How serious an event is: info, warning, high, critical.
alter table security_events add column severity text not null default 'info';
