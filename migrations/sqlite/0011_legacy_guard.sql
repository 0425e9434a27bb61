-- What stops an old stack's access token (issue 20 review): `merged` marks an entry that mapped
-- an old user onto an account that already existed (`imangor import --merge`): such an account
-- never accepts the old stack's tokens, since the email match proves no common owner.
-- `tokens_revoked_at`: when the account's sessions were all ended (a password change,
-- containment, a disabled account, refresh-token reuse) or one of its old tokens was revoked
-- (RFC 7009); the old tokens carry no issue time, so from then on none is accepted.
alter table legacy_ids add column merged boolean not null default false;
alter table legacy_ids add column tokens_revoked_at bigint;
