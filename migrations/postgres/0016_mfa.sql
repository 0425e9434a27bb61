-- Multi-factor authentication (issue 19). A TOTP secret is sealed under the data keyring, bound
-- to its account (rotated and counted with the secrets); `confirmed_at` is null while an
-- enrolment waits for its first code; `last_step` is the last time step accepted (a code works
-- once). Recovery codes and mfa tokens carry at least 50 and 256 random bits and are stored as
-- SHA-256 hashes only.
create table mfa_totp (
    user_id text collate "C" primary key references users (id) on delete cascade,
    key_id text collate "C" not null,
    secret bytea not null,
    confirmed_at bigint,
    last_step bigint not null default 0,
    created_at bigint not null
);
create index mfa_totp_key on mfa_totp (key_id);

create table mfa_recovery_codes (
    user_id text collate "C" not null references users (id) on delete cascade,
    code_hash text not null,
    used_at bigint,
    primary key (user_id, code_hash)
);

-- Between a right password and the second factor: single purpose, five minutes, at most five
-- codes judged (each attempt is reserved before it is judged, so parallel guesses cannot pass
-- the limit).
create table mfa_tokens (
    token_hash text primary key,
    user_id text collate "C" not null references users (id) on delete cascade,
    expires_at bigint not null,
    failures integer not null default 0,
    used_at bigint,
    -- where it may be redeemed: `grant` (the MFA grant) or `page` (the sign-in page, by the
    -- browser whose binding cookie hashes to `binding`)
    purpose text not null check (purpose in ('grant', 'page')),
    binding text
);
create index mfa_tokens_expiry on mfa_tokens (expires_at);

-- How a session's user signed in: with a second factor or not, and when (the tokens' `amr` and
-- `auth_time`, RFC 8176 and RFC 9470; a refresh keeps them).
alter table sessions add column mfa boolean not null default false;
alter table sessions add column auth_time bigint;
