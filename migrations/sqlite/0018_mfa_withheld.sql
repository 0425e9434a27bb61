-- An mfa token handed out past an account's lock-out for new addresses answers a wrong password
-- like a right one (the verdict is withheld until a code): `password_ok` is 0 for those, and no
-- code completes them (docs/mfa.md, "Past the lock-out").
alter table mfa_tokens add column password_ok integer not null default 1;
