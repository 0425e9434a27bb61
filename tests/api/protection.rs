//! API protection: rate limits, the login's brute-force defence, the client address behind
//! proxies, and CORS (ASVS V2.4.1, V4.1.3, V6.3.1, V3.4.2; API4, API6).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::metrics::{scrape, value};

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A registration, its headers still to add.
fn registration(app: &TestApp, email: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/api/v1/users"))
        .json(&json!({"email": email, "password": PASSWORD, "full_name": "R"}))
}

/// A registration from behind the proxy (when there is one), with these extra headers.
async fn register_with(app: &TestApp, email: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = registration(app, email);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

async fn register_from(
    app: &TestApp,
    email: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let xff = forwarded_for.map(|x| ("x-forwarded-for", x));
    register_with(app, email, xff.as_slice()).await
}

async fn login_from(
    app: &TestApp,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut r = app.client.post(app.url("/api/v1/token")).form(&[
        ("grant_type", "password"),
        ("username", email),
        ("password", password),
    ]);
    if let Some(x) = forwarded_for {
        r = r.header("x-forwarded-for", x);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn past_its_quota_a_client_gets_429_with_retry_after_and_ratelimit_headers_v2_4_1() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_REGISTER", "3/60")]).await;
    let started = std::time::Instant::now();
    for i in 0..3 {
        let res = register_from(&app, &format!("q{i}@example.com"), None).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(header(&res, "ratelimit-limit"), "3");
        assert_eq!(header(&res, "ratelimit-remaining"), (2 - i).to_string());
        assert!(header(&res, "ratelimit-reset").parse::<u64>().unwrap() <= 60);
    }
    let res = register_from(&app, "q3@example.com", None).await;
    // 3 per 60 s: one more registration each 20 s (GCRA). The wait is 20 s from the first
    // registration, less the time the three took (hashing under load can take seconds):
    // never more than 20, never less than 20 minus the seconds elapsed.
    let elapsed = started.elapsed().as_secs();
    let retry_after: u64 = header(&res, "retry-after").parse().unwrap();
    assert!(
        retry_after <= 20 && retry_after + elapsed >= 20,
        "Retry-After {retry_after} after {elapsed} s"
    );
    assert_eq!(header(&res, "ratelimit-remaining"), "0");
    assert_eq!(
        header(&res, "x-content-type-options"),
        "nosniff",
        "security headers on a 429 too"
    );
    problem(res, StatusCode::TOO_MANY_REQUESTS).await;
    // Probes have a bucket of their own: the exhausted registration budget does not touch them.
    assert_eq!(app.get_anon("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn authenticated_calls_are_limited_per_user_not_per_address() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_API", "4/60")]).await;
    let (_, a) = app.user_with_role("per-a@example.com", "user").await;
    let (_, b) = app.user_with_role("per-b@example.com", "user").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.get("/api/v1/users/me", &a.access).await.status());
    }
    assert_eq!(statuses[..4], [StatusCode::OK; 4]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.get("/api/v1/users/me", &b.access).await.status(),
        StatusCode::OK,
        "another user from the same address"
    );
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored_v4_1_3() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_REGISTER", "2/60")]).await;
    let mut last = StatusCode::OK;
    for i in 0..3 {
        last = register_from(
            &app,
            &format!("spoof{i}@example.com"),
            Some(&format!("203.0.113.{i}")),
        )
        .await
        .status();
    }
    assert_eq!(
        last,
        StatusCode::TOO_MANY_REQUESTS,
        "rotating X-Forwarded-For does not buy new buckets"
    );
    let e = events(&app)
        .await
        .into_iter()
        .rfind(|e| e.action == "user.register")
        .unwrap();
    assert_eq!(
        e.ip.as_deref(),
        Some("127.0.0.1"),
        "the recorded address is the real peer"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_RATE_LIMIT_REGISTER", "1/60"),
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.0/8, ::1"),
    ])
    .await;
    for i in 0..3 {
        // The left part is whatever the client wrote; the proxy appended the real address.
        let res = register_from(
            &app,
            &format!("proxied{i}@example.com"),
            Some(&format!("6.6.6.6, 198.51.100.{i}")),
        )
        .await;
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "one bucket per real client"
        );
    }
    let res = register_from(&app, "proxied9@example.com", Some("7.7.7.7, 198.51.100.0")).await;
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the same client with another spoofed left part"
    );
    let e = events(&app)
        .await
        .into_iter()
        .rfind(|e| e.action == "user.register")
        .unwrap();
    assert_eq!(e.ip.as_deref(), Some("198.51.100.2"));
}

/// A registration through the proxy with these raw bytes as its `X-Forwarded-For` line.
async fn register_with_raw_xff(app: &TestApp, email: &str, line: &[u8]) -> reqwest::Response {
    let line = reqwest::header::HeaderValue::from_bytes(line).unwrap();
    registration(app, email)
        .header("x-forwarded-for", line)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_byte_outside_ascii_in_the_forwarding_header_never_makes_the_client_the_proxy_v4_1_3() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_RATE_LIMIT_REGISTER", "1/60"),
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    // nginx's `$proxy_add_x_forwarded_for` appends the real address to the client's own line,
    // `\x80` and all: each client is still itself, with a bucket of its own.
    for i in 0..2 {
        let mut line = format!("?, 198.51.100.{i}").into_bytes();
        line[0] = 0x80;
        let res = register_with_raw_xff(&app, &format!("obs{i}@example.com"), &line).await;
        assert_eq!(res.status(), StatusCode::CREATED, "client {i}");
    }
    let e = events(&app)
        .await
        .into_iter()
        .rfind(|e| e.action == "user.register")
        .unwrap();
    assert_eq!(e.ip.as_deref(), Some("198.51.100.1"));
    // A line whose rightmost hop itself cannot be read names no client: refused, never counted
    // as the proxy's own request.
    for line in [&b"\x80"[..], b"198.51.100.7, \x80", b"unknown"] {
        let res = register_with_raw_xff(&app, "obs-bad@example.com", line).await;
        assert_eq!(
            header(&res, "x-content-type-options"),
            "nosniff",
            "security headers on the refusal too"
        );
        let body = problem(res, StatusCode::BAD_REQUEST).await;
        assert_eq!(
            body["type"], "urn:imangor:problem:invalid_forwarding_header",
            "{line:?}"
        );
        assert_eq!(
            body["detail"],
            "the client address cannot be read from the forwarding header"
        );
    }
    assert_eq!(
        register_from(&app, "obs-bad@example.com", Some("198.51.100.7"))
            .await
            .status(),
        StatusCode::CREATED,
        "the refused ones took nothing from the client's budget"
    );
}

#[tokio::test]
async fn with_trusted_hops_only_the_nth_address_from_the_right_is_believed_v4_1_3() {
    // The proxy's whole network trusted (as a pod CIDR with the node's bridge in it) and one hop.
    let app = TestApp::spawn_with(&[
        ("IMANGOR_RATE_LIMIT_REGISTER", "1/60"),
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.0/8"),
        ("IMANGOR_TRUSTED_HOPS", "1"),
    ])
    .await;
    // The proxy saw a trusted address (the node's, after SNAT) and appended it: the walk would
    // skip it and believe whatever the client wrote left of it. One hop: the address the proxy saw.
    let res = register_from(&app, "hops0@example.com", Some("198.51.100.20, 127.0.0.5")).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = register_from(&app, "hops1@example.com", Some("198.51.100.21, 127.0.0.5")).await;
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the same peer of the proxy, whatever it wrote left of it"
    );
    let res = register_from(&app, "hops2@example.com", Some("127.0.0.9, 198.51.100.22")).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let e = events(&app)
        .await
        .into_iter()
        .rfind(|e| e.action == "user.register")
        .unwrap();
    assert_eq!(e.ip.as_deref(), Some("198.51.100.22"));
    // Two hops: the second from the right, behind an inner proxy that is itself trusted; a line
    // with fewer hops, or whose nearer hop is not a trusted proxy (a client that reached the
    // inner proxy directly and wrote the "client" hop itself), is refused.
    let two = TestApp::spawn_with(&[
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1,10.0.0.0/8"),
        ("IMANGOR_TRUSTED_HOPS", "2"),
    ])
    .await;
    let res = register_from(
        &two,
        "two@example.com",
        Some("6.6.6.6, 198.51.100.30, 10.0.0.5"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let e = events(&two)
        .await
        .into_iter()
        .rfind(|e| e.action == "user.register")
        .unwrap();
    assert_eq!(e.ip.as_deref(), Some("198.51.100.30"));
    for line in ["198.51.100.31", "6.6.6.6, 198.51.100.31"] {
        let res = register_from(&two, "two-short@example.com", Some(line)).await;
        let body = problem(res, StatusCode::BAD_REQUEST).await;
        assert_eq!(
            body["type"], "urn:imangor:problem:invalid_forwarding_header",
            "{line}"
        );
    }
}

#[tokio::test]
async fn repeated_failures_lock_the_pair_but_never_the_victim_elsewhere_v6_3_1() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_LOGIN_LOCK_AFTER", "3"),
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let victim = app.register("victim@example.com").await;
    let attacker = Some("198.51.100.66");
    for _ in 0..3 {
        let res = login_from(&app, "Victim@Example.com", "guess guess guess", attacker).await;
        oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    // Locked for this address, even with the right password, and however the email is spelled.
    let res = login_from(&app, "VICTIM@example.com", PASSWORD, attacker).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "retry-after"), "30");
    // The owner, from their own address, is not locked out.
    let res = login_from(&app, &victim.email, PASSWORD, Some("192.0.2.10")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let throttled = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "auth.login" && e.outcome == "throttled")
        .count();
    assert_eq!(throttled, 1, "the refusal is a security event");
}

#[tokio::test]
async fn parallel_guesses_cannot_slip_past_the_threshold() {
    let app = TestApp::spawn_with(&[("IMANGOR_LOGIN_LOCK_AFTER", "3")]).await;
    app.register("par-victim@example.com").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (c, url) = (app.client.clone(), app.url("/api/v1/token"));
        set.spawn(async move {
            let pw = format!("parallel guess {i}");
            let form = [
                ("grant_type", "password"),
                ("username", "par-victim@example.com"),
                ("password", pw.as_str()),
            ];
            c.post(url).form(&form).send().await.unwrap().status()
        });
    }
    let statuses = set.join_all().await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::BAD_REQUEST)
            .count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        9,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn an_account_under_attack_from_many_addresses_is_slowed_and_a_success_resets_it() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_LOGIN_SLOW_AFTER", "2"),
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let a = app.register("spread@example.com").await;
    for i in 0..4 {
        let res = login_from(
            &app,
            &a.email,
            "not the password",
            Some(&format!("198.51.100.{i}")),
        )
        .await;
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "slowed, never refused"
        );
    }
    let failures: Vec<String> = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "auth.login" && e.outcome == "failure")
        .map(|e| e.detail.unwrap_or_default())
        .collect();
    assert_eq!(failures.len(), 4);
    assert!(
        !failures[1].contains("slowed")
            && failures[2].contains("slowed by 250 ms")
            && failures[3].contains("slowed by 500 ms"),
        "{failures:?}"
    );
    let res = login_from(&app, &a.email, PASSWORD, Some("192.0.2.1")).await;
    assert_eq!(res.status(), StatusCode::OK);
    login_from(&app, &a.email, "not the password", Some("198.51.100.9")).await;
    let last = events(&app)
        .await
        .into_iter()
        .rfind(|e| e.outcome == "failure")
        .unwrap();
    assert!(
        !last.detail.unwrap_or_default().contains("slowed"),
        "a success forgot the failures"
    );
}

#[tokio::test]
async fn cors_answers_listed_origins_exactly_and_nobody_else_v3_4_2() {
    let app = TestApp::spawn_with(&[("IMANGOR_CORS_ORIGINS", "https://app.example.com")]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/users/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header(&ok, "access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(!header(&ok, "access-control-allow-methods").contains('*'));
    assert!(header(&ok, "access-control-allow-headers").contains("authorization"));
    assert!(header(&ok, "vary").contains("Origin"));
    assert!(
        ok.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    for evil in [
        "https://evil.example",
        "null",
        "https://app.example.com.evil.example",
        "http://app.example.com",
    ] {
        let res = preflight(evil).await.unwrap();
        assert!(
            res.headers()
                .keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{evil}: {:?}",
            res.headers()
        );
        let res = app
            .client
            .get(app.url("/healthz"))
            .header("origin", evil)
            .send()
            .await
            .unwrap();
        assert!(
            res.headers().get("access-control-allow-origin").is_none(),
            "{evil}"
        );
    }
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&res, "access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(header(&res, "access-control-expose-headers").contains("retry-after"));
    // A browser client reads why its token was refused (insufficient_scope, RFC 6750 §3.1).
    assert!(header(&res, "access-control-expose-headers").contains("www-authenticate"));
    let _: Value = res.json().await.unwrap();
}

/// Sends raw bytes on a new connection and returns what the server answered before closing
/// (or within `wait`).
async fn raw_exchange(app: &TestApp, bytes: &[u8], wait: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_client_that_sends_its_headers_too_slowly_is_cut_off_slowloris() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(&[("IMANGOR_HEADER_TIMEOUT", "1")]).await;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server closed the connection");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let answer = String::from_utf8_lossy(&buf);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[tokio::test]
async fn oversized_heads_are_431_and_ambiguous_framing_is_400_v4_2_1() {
    let app = TestApp::spawn().await;
    let wait = std::time::Duration::from_secs(5);
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let answer = raw_exchange(&app, big.as_bytes(), wait).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw_exchange(
        &app,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        wait,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let body = r#"{"email":"s@example.com"}"#;
    for head in [
        format!(
            "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
            body.len()
        ),
        format!(
            "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nContent-Length: 3\r\n\r\n",
            body.len()
        ),
    ] {
        let answer = raw_exchange(&app, format!("{head}{body}").as_bytes(), wait).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert_eq!(
            answer.matches("HTTP/1.1").count(),
            1,
            "no second, smuggled request was answered: {answer}"
        );
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_capacity_returns() {
    let app = TestApp::spawn_with(&[("IMANGOR_MAX_CONNECTIONS", "2")]).await;
    let hold1 = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let hold2 = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let answer = raw_exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(
        answer.is_empty(),
        "the third connection gets nothing: {answer}"
    );
    drop((hold1, hold2));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let answer = raw_exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn deeply_nested_json_is_refused_without_harm() {
    let app = TestApp::spawn().await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let res = app
        .client
        .post(app.url("/api/v1/users"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.get_anon("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_bearer_token_does_not_buy_a_second_login_budget() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_TOKEN", "3/60")]).await;
    let a = app.register("budget@example.com").await;
    // The fixture's own login used one attempt of this address's budget.
    let t = app
        .token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", PASSWORD),
        ])
        .await;
    let t = tokens(t).await;
    let mut last = StatusCode::OK;
    for _ in 0..2 {
        last = app
            .client
            .post(app.url("/api/v1/token"))
            .bearer_auth(&t.access)
            .form(&[
                ("grant_type", "password"),
                ("username", a.email.as_str()),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(
        last,
        StatusCode::TOO_MANY_REQUESTS,
        "token endpoint limits count the address, not the bearer"
    );
}

#[tokio::test]
async fn guessing_the_current_password_with_a_stolen_token_is_throttled() {
    let app = TestApp::spawn_with(&[("IMANGOR_LOGIN_LOCK_AFTER", "3")]).await;
    let a = app.register("stolen@example.com").await;
    let t = app.login(&a).await;
    let guess = |n: u32| json!({"current_password": format!("guess number {n}"), "new_password": "a brand new passphrase"});
    for n in 0..3 {
        problem(
            app.patch_json("/api/v1/users/me", &t.access, &guess(n))
                .await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let res = app
        .patch_json("/api/v1/users/me", &t.access, &guess(3))
        .await;
    assert!(res.headers().contains_key("retry-after"));
    problem(res, StatusCode::TOO_MANY_REQUESTS).await;
}

#[tokio::test]
async fn a_wildcard_cors_origin_never_admits_null() {
    let app = TestApp::spawn_with(&[("IMANGOR_CORS_ORIGINS", "*")]).await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "null")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://any.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&res, "access-control-allow-origin"),
        "https://any.example"
    );
}

#[tokio::test]
async fn a_plain_user_cannot_probe_which_account_ids_exist() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("prober@example.com", "user").await;
    for id in [
        app.admin.id.clone(),
        "01234567-89ab-7def-8123-456789abcdef".to_owned(),
    ] {
        let res = app
            .patch_json(
                &format!("/api/v1/users/{id}"),
                &t.access,
                &json!({"disabled": true}),
            )
            .await;
        problem(res, StatusCode::FORBIDDEN).await;
    }
}

#[tokio::test]
async fn a_request_that_runs_past_the_timeout_gets_a_408_problem() {
    // The account slow-down makes a login wait: 250 ms, 500 ms, 1 s, 2 s. The fourth outlasts 1 s.
    let app = TestApp::spawn_with(&[
        ("IMANGOR_REQUEST_TIMEOUT", "1"),
        ("IMANGOR_LOGIN_SLOW_AFTER", "1"),
    ])
    .await;
    let a = app.register("slow@example.com").await;
    let mut last = None;
    for _ in 0..5 {
        last = Some(
            app.token(&[
                ("grant_type", "password"),
                ("username", &a.email),
                ("password", "not the password"),
            ])
            .await,
        );
    }
    problem(last.unwrap(), StatusCode::REQUEST_TIMEOUT).await;
    assert_eq!(app.get_anon("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_forwarded_header_of_a_trusted_proxy_names_the_client_when_it_is_the_chosen_one() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
        ("IMANGOR_CLIENT_IP_HEADER", "forwarded"),
    ])
    .await;
    let res = app
        .client
        .post(app.url("/api/v1/users"))
        .header(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::42]:4711\";proto=https",
        )
        // Not the chosen header: ignored.
        .header("x-forwarded-for", "198.51.100.99")
        .json(&json!({"email": "fwd@example.com", "password": PASSWORD, "full_name": "F"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let e = events(&app)
        .await
        .into_iter()
        .rfind(|e| e.action == "user.register")
        .unwrap();
    assert_eq!(e.ip.as_deref(), Some("2001:db8::42"));
}

/// Past its lock every guess aimed at an account is refused without hashing, so an attacker
/// spreading over many addresses (an IPv6 /48 holds 65 536 /64s) could write one audit row, and
/// look the account up, per refusal. At most 10 refusals per account per 10 minutes are written
/// (what the brute-force detector needs), the rest are counted in
/// `security_events_skipped_total`, and a name that is not an email address aims at no account
/// and writes none (ASVS V16.3.1, V6.3.1; issue 16 review F1).
#[tokio::test]
async fn refused_logins_write_at_most_ten_events_per_account_however_many_addresses_v16_3_1() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_LOGIN_LOCK_AFTER", "1"),
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
        ("IMANGOR_RATE_LIMIT_TOKEN", "1000/60"),
    ])
    .await;
    let victim = app.register("flood@example.com").await;
    let locked = r#"auth_attempts_total{status="locked"}"#;
    let skipped = r#"security_events_skipped_total{action="auth.login"}"#;
    let before = scrape(&app).await;
    let mut refused = Vec::new();
    for i in 0..10 {
        let from = format!("198.51.100.{i}");
        let res = login_from(&app, &victim.email, "guess guess guess", Some(&from)).await;
        oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
        for _ in 0..20 {
            refused.push(
                login_from(&app, &victim.email, "guess guess guess", Some(&from))
                    .await
                    .status(),
            );
        }
    }
    assert_eq!(refused, [StatusCode::TOO_MANY_REQUESTS; 200]);
    // A name that is not an email address: locked like any other, recorded never.
    let from = Some("192.0.2.77");
    let res = login_from(&app, "not-an-email", "guess guess guess", from).await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    for _ in 0..5 {
        let res = login_from(&app, "not-an-email", "guess guess guess", from).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let throttled: Vec<EventRow> = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "auth.login" && e.outcome == "throttled")
        .collect();
    assert_eq!(throttled.len(), 10, "one row per refusal up to the cap");
    assert!(
        throttled.iter().all(|e| {
            e.actor_id.as_deref() == Some(victim.id.as_str())
                && e.target.as_deref() == Some(victim.id.as_str())
        }),
        "{throttled:?}"
    );
    let last = throttled[9].detail.as_deref().unwrap_or_default();
    assert!(last.ends_with("later ones are only counted"), "{last}");
    let after = scrape(&app).await;
    assert_eq!(value(&after, locked) - value(&before, locked), 205.0);
    assert_eq!(value(&after, skipped) - value(&before, skipped), 195.0);
}

/// `IMANGOR_CORS_CREDENTIALS=true` (V3.4.2): an allowlisted origin gets
/// `Access-Control-Allow-Credentials: true` with its own origin echoed exactly (never `*`), on
/// preflights and on answers; an unlisted origin gets no `Access-Control-*` header at all.
#[tokio::test]
async fn cors_with_credentials_echoes_listed_origins_exactly_and_no_one_else_v3_4_2() {
    let app = TestApp::spawn_with(&[
        (
            "IMANGOR_CORS_ORIGINS",
            "https://app.example.com,https://ops.example.com",
        ),
        ("IMANGOR_CORS_CREDENTIALS", "true"),
    ])
    .await;
    let t = app.admin_tokens().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/users/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let answer = |origin: &'static str| {
        app.client
            .get(app.url("/api/v1/users/me"))
            .bearer_auth(&t.access)
            .header("origin", origin)
            .send()
    };
    for origin in ["https://app.example.com", "https://ops.example.com"] {
        let res = preflight(origin).await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{origin}");
        assert_eq!(header(&res, "access-control-allow-origin"), origin);
        assert_eq!(header(&res, "access-control-allow-credentials"), "true");
        assert!(header(&res, "vary").contains("Origin"));
        let res = answer(origin).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{origin}");
        assert_eq!(header(&res, "access-control-allow-origin"), origin);
        assert_eq!(header(&res, "access-control-allow-credentials"), "true");
        assert_eq!(
            res.headers()
                .get_all("access-control-allow-origin")
                .iter()
                .count(),
            1,
            "one origin, echoed"
        );
    }
    for evil in [
        "https://evil.example",
        "null",
        "https://app.example.com.evil.example",
        "http://app.example.com",
    ] {
        let res = preflight(evil).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{evil}");
        let res2 = answer(evil).await.unwrap();
        assert_eq!(
            res2.status(),
            StatusCode::OK,
            "{evil}: the request itself is served"
        );
        for r in [&res, &res2] {
            assert!(
                r.headers()
                    .keys()
                    .all(|k| !k.as_str().starts_with("access-control-")),
                "{evil}: {:?}",
                r.headers()
            );
        }
    }
}

#[tokio::test]
async fn a_client_supplied_forwarded_header_never_beats_the_proxys_x_forwarded_for_v4_1_3_v15_3_4()
{
    // The default header is X-Forwarded-For; the proxy (127.0.0.1) appended 198.51.100.5 and
    // passed the client's own `Forwarded` through untouched, as ingress-nginx does.
    let app = TestApp::spawn_with(&[
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
        ("IMANGOR_RATE_LIMIT_REGISTER", "2/60"),
    ])
    .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let forwarded = format!("for=203.0.113.{i}");
        let res = register_with(
            &app,
            &format!("rotate{i}@example.com"),
            &[
                ("forwarded", forwarded.as_str()),
                ("x-real-ip", "192.0.2.77"),
                ("x-forwarded-for", "198.51.100.5"),
            ],
        )
        .await;
        statuses.push(res.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "rotating Forwarded values buy no new buckets"
    );
    let ips: Vec<Option<String>> = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "user.register")
        .map(|e| e.ip)
        .collect();
    assert_eq!(
        ips,
        [Some("198.51.100.5".into()), Some("198.51.100.5".into())]
    );
}

#[tokio::test]
async fn x_real_ip_names_the_client_when_it_is_the_chosen_header_v4_1_3() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
        ("IMANGOR_CLIENT_IP_HEADER", "x-real-ip"),
        ("IMANGOR_RATE_LIMIT_REGISTER", "1/60"),
    ])
    .await;
    let res = register_with(
        &app,
        "real1@example.com",
        &[
            ("x-real-ip", "192.0.2.10"),
            ("x-forwarded-for", "198.51.100.1"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    // Another X-Forwarded-For, the same X-Real-IP: the same client, past its quota.
    let res = register_with(
        &app,
        "real2@example.com",
        &[
            ("x-real-ip", "192.0.2.10"),
            ("x-forwarded-for", "198.51.100.2"),
        ],
    )
    .await;
    problem(res, StatusCode::TOO_MANY_REQUESTS).await;
    // Another X-Real-IP: another client.
    let res = register_with(&app, "real3@example.com", &[("x-real-ip", "192.0.2.11")]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let ips: Vec<Option<String>> = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "user.register")
        .map(|e| e.ip)
        .collect();
    assert_eq!(ips, [Some("192.0.2.10".into()), Some("192.0.2.11".into())]);
}
