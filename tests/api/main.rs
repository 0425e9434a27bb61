//! The black-box suite: every test starts a real server on 127.0.0.1 with a database of its own
//! (SQLite by default; `IMANGOR_TEST_DB=postgres` runs the same suite on PostgreSQL) and talks
//! HTTP to it. Requirement ids (ASVS 5.0, RFC 8725, NIST 800-63B) are cited where a test proves one.

mod accounts;
mod audit;
mod authz_matrix;
mod console;
mod console_oauth;
mod drill;
mod edge;
mod evidence;
mod helpers;
mod import;
mod incidents;
mod jwt;
mod keys;
mod legacy;
mod lockout;
mod metrics;
mod mfa;
mod oauth;
mod ocsf;
mod passkeys;
mod process;
mod protection;
mod recurrence;
mod resources;
mod secrets;
mod shared_state;
mod surface;
mod tokens;
mod users;
