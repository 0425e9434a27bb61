-- OAuth 2.1 (issue 18): registered clients, authorization codes, consent tickets, and the client
-- each session was issued to. Secrets, codes and tickets are stored as SHA-256 hashes only (each
-- carries 256 random bits). A confidential client allowed the client-credentials grant acts
-- through a service account: the user whose id is the client's id.
create table oauth_clients (
    id text primary key,
    name text not null,
    kind text not null check (kind in ('public', 'confidential')),
    secret_hash text,
    -- newline-separated, each checked by domain::client::RedirectUri
    redirect_uris text not null,
    -- space-separated names (domain::client::GrantType, Scope)
    grant_types text not null,
    scopes text not null,
    first_party boolean not null default false,
    created_at bigint not null,
    updated_at bigint not null
);

-- The client a session's tokens were issued to (none: the password grant) and the scopes they
-- were narrowed to (none: the whole role). A refresh token is refused for any other client;
-- deleting a client ends its sessions.
alter table sessions add column client_id text;
alter table sessions add column scope text;
create index sessions_client on sessions (client_id);

-- An authorization code (RFC 6749 4.1, RFC 7636): single use, bound to its client, redirect URI,
-- PKCE challenge, user and scope. `session_id` is the session its redemption started: a second
-- redemption ends it; `reuse_at` records the first such replay (later ones are only counted).
create table oauth_codes (
    code_hash text primary key,
    client_id text not null,
    user_id text not null references users (id) on delete cascade,
    redirect_uri text not null,
    challenge text not null,
    scope text not null,
    auth_time bigint not null,
    mfa boolean not null default false,
    expires_at bigint not null,
    used_at bigint,
    session_id text,
    reuse_at bigint
);
create index oauth_codes_expiry on oauth_codes (expires_at);

-- Between sign-in and consent: what the user is asked to approve, bound to the browser that
-- signed in (the hash of its cookie), single use, short lived.
create table oauth_consents (
    ticket_hash text primary key,
    binding text not null,
    user_id text not null references users (id) on delete cascade,
    client_id text not null,
    redirect_uri text not null,
    challenge text not null,
    scope text not null,
    state text,
    auth_time bigint not null,
    mfa boolean not null default false,
    expires_at bigint not null
);
create index oauth_consents_expiry on oauth_consents (expires_at);
