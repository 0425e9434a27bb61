-- Drills: an incident a detector opened for traffic marked by `imangor drill` (a request signed
-- with IMANGOR_DRILL_KEY, given an address of the drill range) is labelled `drill`. A drill
-- incident is never the previous incident of a recurrence (`last_resolved` skips it), so a drill
-- neither raises a real incident's level nor a later drill's.
alter table incidents add column drill boolean not null default false;
