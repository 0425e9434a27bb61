-- Recurrence: an incident a detector opens for the (kind, subject) of an incident resolved within
-- IMANGOR_INCIDENT_RECURRENCE_DAYS links to it (`recurrence_of`, the most recently resolved one)
-- and is raised one level. `resolved_at` is when an incident was resolved: the window counts from
-- it. Incidents resolved before this migration take their last change as that time (a resolved
-- incident is never changed again).
alter table incidents add column resolved_at bigint;
alter table incidents add column recurrence_of text collate "C";
update incidents set resolved_at = updated_at where status = 'resolved';
-- The detectors look up the newest resolved incident of a (kind, subject) at each opening.
create index incidents_resolved_subject on incidents (kind, subject, resolved_at) where status = 'resolved';
-- A chain of recurrences is read both ways.
create index incidents_recurrence_of on incidents (recurrence_of) where recurrence_of is not null;
