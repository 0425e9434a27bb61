-- Incidents: opened by detectors reading the audit trail, or reported by users. An incident that
-- is not resolved is raised again (count + 1) rather than opened twice for one (kind, subject).
create table incidents (
    id text primary key,
    kind text not null,
    level text not null,
    status text not null,
    subject text,
    description text not null,
    reported_by text,
    count bigint not null,
    first_seen bigint not null,
    last_seen bigint not null,
    updated_at bigint not null
);
create unique index incidents_open_subject on incidents (kind, subject) where status <> 'resolved' and subject is not null;
create index incidents_by_status on incidents (status, id);

-- Who changed an incident's status, when, and why.
create table incident_notes (
    id text primary key,
    incident_id text not null references incidents (id) on delete cascade,
    at bigint not null,
    author_id text,
    status text not null,
    note text not null
);
create index incident_notes_incident on incident_notes (incident_id, at);

-- Addresses refused at the door until they expire (containment).
create table blocked_addresses (
    cidr text primary key,
    reason text not null,
    created_by text,
    created_at bigint not null,
    expires_at bigint not null
);

-- The detectors count recent events by account, by address and by actor.
create index security_events_actor on security_events (action, actor_id, at);
create index security_events_ip on security_events (action, ip, at);
