//! imangor: an API server that implements the security guide in one binary.
// One exception, `auth::password::lower_priority` (a libc call with no memory-safety precondition).
#![deny(unsafe_code)]

pub mod auth;
pub mod authz;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod http;
pub mod infra;
pub mod limits;
pub mod service;
pub mod startup;
pub mod state;
pub mod telemetry;
