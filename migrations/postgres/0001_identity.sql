-- Identity: users, login sessions (refresh-token families), refresh tokens, denied access tokens,
-- and the security event log. Ids are UUID text, times are microseconds since the epoch (UTC).
-- Ids compare bytewise (collate "C") whatever the cluster's locale: pages are ordered by id.
create table users (
    id text collate "C" primary key,
    email text not null unique,
    full_name text not null,
    password_hash text not null,
    role text not null check (role in ('admin', 'manager', 'user')),
    disabled boolean not null default false,
    created_at bigint not null,
    updated_at bigint not null
);
create index users_role on users (role, disabled);

create table sessions (
    id text collate "C" primary key,
    user_id text not null references users (id) on delete cascade,
    created_at bigint not null,
    expires_at bigint not null,
    revoked_at bigint,
    revoked_reason text
);
create index sessions_user on sessions (user_id);

create table refresh_tokens (
    token_hash text primary key,
    session_id text not null references sessions (id) on delete cascade,
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint
);
create index refresh_tokens_session on refresh_tokens (session_id);

create table denied_tokens (
    jti text primary key,
    expires_at bigint not null
);

create table security_events (
    id text primary key,
    at bigint not null,
    action text not null,
    outcome text not null,
    actor_id text,
    target text,
    ip text,
    request_id text,
    detail text
);
create index security_events_at on security_events (at);
