-- The chain head signed (Ed25519, the audit signing key) by every sealing pass that sealed rows:
-- the rows after the newest checkpoint are covered by it, so a replica or a freshly started
-- server that never saw them refuses a rewritten tail (its last row does not match the signed
-- head) instead of signing it. One row; signed_at is covered by the signature.
create table audit_head (
    id integer primary key check (id = 1),
    seq bigint not null,
    hash text not null,
    key_id text not null,
    signature text not null,
    signed_at bigint not null
);
