//! Any bytes through every parser of client input: domain values, page queries and cursors,
//! rate-limit quotas, proxy lists and forwarded-for chains, JSON. None may panic.
#![no_main]

use std::sync::LazyLock;

use imangor::auth::cursor::Cursors;
use imangor::domain::net::{Hops, parse_list};
use imangor::domain::{Content, Email, FullName, Password, PasswordPolicy, Quota, Title, UserId};
use imangor::limits::address::client_ip;
use libfuzzer_sys::fuzz_target;

static CURSORS: LazyLock<Cursors> = LazyLock::new(|| Cursors::derive(b"fuzz"));

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = Email::parse(&s);
    let _ = FullName::parse(&s);
    let _ = Title::parse(&s);
    let _ = Content::parse(&s);
    let _ = Password::parse(&s, &PasswordPolicy::default(), "password", Some("a@example.com"));
    let _ = s.parse::<Quota>();
    let _ = s.parse::<UserId>();
    let viewer = UserId::new();
    let _ = CURSORS.decode("resources", viewer, &s);
    let _ = imangor::http::page::parse(Some(&s), &CURSORS, "resources", viewer);
    if let Ok(trusted) = parse_list("10.0.0.0/8, ::1") {
        let _ = client_ip("10.0.0.1".parse().unwrap(), &[&s], &trusted, Hops::Walk);
    }
    let _ = parse_list(&s);
    let _ = serde_json::from_slice::<serde_json::Value>(data);
});
