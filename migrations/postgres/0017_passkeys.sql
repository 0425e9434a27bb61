-- Passkeys (WebAuthn Level 2, issue 19). The public key is the COSE_Key as the authenticator
-- sent it; `credential_id` is what browsers name the credential by (unique across accounts);
-- `sign_count` only moves forward (a clone is refused); `backup_eligible` is fixed at
-- registration (an assertion that changes it is refused).
create table passkeys (
    id text collate "C" primary key,
    user_id text collate "C" not null references users (id) on delete cascade,
    credential_id bytea not null unique,
    public_key bytea not null,
    alg integer not null,
    sign_count bigint not null,
    backup_eligible boolean not null,
    backed_up boolean not null,
    name text not null,
    created_at bigint not null,
    last_used_at bigint
);
create index passkeys_user on passkeys (user_id);

-- WebAuthn challenges: single use, five minutes, stored as SHA-256 hashes. `purpose` says what
-- the answer may do: `register` (a passkey for `user_id`), `sign_in` (a passkey alone, on the
-- sign-in page of the browser whose binding cookie hashes to `binding`) or `second_factor`
-- (after `user_id`'s right password, on that browser's page).
create table webauthn_challenges (
    challenge_hash text primary key,
    purpose text not null check (purpose in ('register', 'sign_in', 'second_factor')),
    user_id text collate "C" references users (id) on delete cascade,
    binding text,
    expires_at bigint not null
);
create index webauthn_challenges_expiry on webauthn_challenges (expires_at);

-- How a session's user signed in, as its tokens' `amr` says it (RFC 8176), where it was more
-- than a password and a code: `passkey` (a passkey with user verification alone) or
-- `pwd+passkey`; null keeps what `mfa` says. Codes and consent tickets carry it to the session.
alter table sessions add column amr text;
alter table oauth_codes add column amr text;
alter table oauth_consents add column amr text;
