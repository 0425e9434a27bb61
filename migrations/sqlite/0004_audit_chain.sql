-- The security events become a tamper-evident audit trail: a sealer gives each event, in the
-- order it meets them, the next sequence number and a hash chained to the previous event's.
-- Rows are sealed within a second of their commit; `imangor audit verify` walks the chain.
alter table security_events add column seq bigint;
alter table security_events add column prev_hash text;
alter table security_events add column hash text;
create unique index security_events_seq on security_events (seq);
create index security_events_unsealed on security_events (at, id) where seq is null;

-- The chain head signed (Ed25519) at checkpoints: a rewrite of the whole table after a
-- checkpoint does not match its signed hash. The signing key is derived from the data key
-- named by key_id, which the database does not hold.
create table audit_checkpoints (
    seq bigint primary key,
    hash text not null,
    key_id text not null,
    signature text not null,
    at bigint not null
);
