//! The server's edge: each address's share of the connections, the deadlines that stop a slow
//! client from holding one (headers, idle keep-alive, body, response), and the probes
//! (ASVS V15.2.2, V16.5.2; API4).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// A raw connection to `to` from the loopback address `from` (all of 127.0.0.0/8 is local on Linux).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    s.connect(to).await.unwrap()
}

/// Whether the server closed `s` (end of stream or reset) within `wait`; bytes it sent are dropped.
async fn closed(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads until the server closes the connection (or `wait` passes): what it sent, and whether it closed.
async fn read_all(s: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// One series of the scrape listener's metrics, which must be there.
async fn scrape(app: &TestApp, series: &str) -> f64 {
    crate::metrics::scrape(app)
        .await
        .get(series)
        .copied()
        .unwrap_or_else(|| panic!("no {series} in the scrape"))
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection_v15_2_2() {
    // A server of 100 connections; one address opens 200 and sends half a request on each.
    let app = TestApp::spawn_with(&[("IMANGOR_MAX_CONNECTIONS", "100")]).await;
    let attacker = [127, 0, 0, 3];
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = connect_from(attacker, app.addr).await;
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
            .await;
        held.push(s);
    }
    let mut open = Vec::new();
    for (i, s) in held.iter_mut().enumerate() {
        if !closed(s, Duration::from_millis(20)).await {
            open.push(i);
        }
    }
    assert_eq!(
        open,
        (0..64).collect::<Vec<_>>(),
        "the first 64 stay open, the 65th and every later one is closed"
    );
    assert_eq!(
        scrape(&app, r#"connections_refused_total{reason="per_address"}"#).await,
        136.0
    );
    // Another client still gets answers, quickly.
    let other = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    for path in ["/healthz", "/readyz", "/api/v1/users/me"] {
        let started = Instant::now();
        let res = other.get(app.url(path)).send().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{path} took {:?}",
            started.elapsed()
        );
        let want = if path.starts_with("/api") {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(res.status(), want, "{path}");
    }
    // The share comes back when the connections end.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s = connect_from(attacker, app.addr).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_counted_not_the_proxy() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
        ("IMANGOR_MAX_CONNECTIONS_PER_ADDRESS", "3"),
    ])
    .await;
    // The proxy holds five connections (more than a share), each with a request of the same
    // client in flight (its body still coming).
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = connect_from([127, 0, 0, 1], app.addr).await;
        s.write_all(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.9\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\"")
            .await
            .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut answers = Vec::new();
    for s in held.iter_mut() {
        let (bytes, _) = read_all(s, Duration::from_millis(100)).await;
        answers.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    let refused = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 429"))
        .count();
    assert_eq!(
        refused, 2,
        "three requests of the client are in flight, two are refused: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|a| a.is_empty() || a.starts_with("HTTP/1.1 429")),
        "{answers:?}"
    );
    let through = |xff: &'static str| {
        app.client
            .get(app.url("/healthz"))
            .header("x-forwarded-for", xff)
            .send()
    };
    let res = through("198.51.100.9").await.unwrap();
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(
        res.headers()["x-content-type-options"],
        "nosniff",
        "security headers on the refusal too"
    );
    let body = problem(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["type"], "urn:imangor:problem:too_many_connections");
    assert_eq!(
        through("198.51.100.10").await.unwrap().status(),
        StatusCode::OK,
        "another client through the same proxy"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        through("198.51.100.9").await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_off_with_408() {
    let app = TestApp::spawn_with(&[("IMANGOR_BODY_TIMEOUT", "1")]).await;
    let s = TcpStream::connect(app.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n")
        .await
        .unwrap();
    let dribble = tokio::spawn(async move {
        for _ in 0..60 {
            if wr.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), rd.read_to_end(&mut out)).await;
    dribble.abort();
    let answer = String::from_utf8_lossy(&out);
    assert!(read.is_ok(), "the connection was closed: {answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(
        answer.contains(r#""type":"urn:imangor:problem:body_timeout""#),
        "{answer}"
    );
    // A body that arrives in time is untouched.
    let res = app
        .client
        .post(app.url("/api/v1/users"))
        .json(&serde_json::json!({"email": "on-time@example.com", "password": PASSWORD, "full_name": "T"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_by_the_write_timeout() {
    let app = TestApp::spawn_with(&[("IMANGOR_WRITE_TIMEOUT", "1")]).await;
    let one = app
        .get_anon("/openapi.json")
        .await
        .bytes()
        .await
        .unwrap()
        .len();
    // 2000 pipelined requests for the OpenAPI document, never read: the socket buffers fill.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let requests = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let mut w = requests.as_bytes();
    // The server stops reading once its answers are stuck: write what it takes.
    while !w.is_empty() {
        match tokio::time::timeout(Duration::from_millis(500), s.write(w)).await {
            Ok(Ok(n)) if n > 0 => w = &w[n..],
            _ => break,
        }
    }
    // Wait until the server is stuck (it answers pipelined requests one after the other, so
    // its count of answered requests stops), then past the write timeout.
    let answered = || async {
        crate::metrics::scrape(&app)
            .await
            .iter()
            .filter(|(series, _)| series.starts_with("http_requests_total{"))
            .map(|(_, n)| n)
            .sum::<f64>()
    };
    let (mut last, mut since) = (answered().await, Instant::now());
    while since.elapsed() < Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = answered().await;
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let (got, ended) = read_all(&mut s, Duration::from_secs(20)).await;
    assert!(ended, "the server closed the connection");
    assert!(
        got.len() < 2000 * one,
        "it stopped writing: {} of {} bytes",
        got.len(),
        2000 * one
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(app.get_anon("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn idle_and_silent_connections_are_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(&[("IMANGOR_HEADER_TIMEOUT", "1")]).await;
    // Kept alive after one answer, then idle.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, ended) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    assert!(ended, "the idle keep-alive connection was closed");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Never a byte.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    assert!(closed(&mut s, Duration::from_secs(5)).await);
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// The only connection of the server's pool, held by the test: nothing else reaches the database.
#[allow(dead_code)]
enum Held {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

async fn hold_the_pool(app: &TestApp) -> Held {
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => Held::Sqlite(p.acquire().await.unwrap()),
        imangor::db::Db::Postgres(p) => Held::Postgres(p.acquire().await.unwrap()),
    }
}

/// A 503 from the public `/readyz`: one fixed text, whatever the cause; the metrics listener's
/// copy names the cause, and neither says anything of the database's software or its errors.
async fn not_ready(app: &TestApp, res: reqwest::Response) -> Value {
    let body = problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["type"], "urn:imangor:problem:not_ready");
    assert_eq!(body["detail"], "the service is not ready", "{body}");
    let inside = problem(
        app.get_internal("/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(inside["type"], "urn:imangor:problem:not_ready");
    assert!(
        [
            "the database is not reachable",
            "the database did not answer in time"
        ]
        .contains(&inside["detail"].as_str().unwrap()),
        "{inside}"
    );
    for answer in [&body, &inside] {
        let text = answer.to_string().to_lowercase();
        for leak in [
            "sql",
            "postgres",
            "pool",
            "select",
            "os error",
            "refused",
            "reset",
            "timed out",
            "driver",
        ] {
            assert!(!text.contains(leak), "{leak:?} in {answer}");
        }
    }
    body
}

#[tokio::test]
async fn readyz_answers_the_probes_last_result_and_does_no_database_work_per_call() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_DB_MAX_CONNECTIONS", "1"),
        ("IMANGOR_DB_ACQUIRE_TIMEOUT", "1"),
    ])
    .await;
    let checks = || scrape(&app, "readiness_checks_total");
    let before = checks().await;
    let started = Instant::now();
    for _ in 0..300 {
        assert_eq!(app.get_anon("/readyz").await.status(), StatusCode::OK);
    }
    let took = started.elapsed().as_secs_f64();
    let made = checks().await - before;
    assert!(
        made <= took.ceil() + 1.0,
        "300 calls in {took:.2} s made {made} database checks: one a second, not one a call"
    );
    // With the pool's only connection taken (a saturated pool: an overloaded replica, not a dead
    // database), a call that touched the pool would wait for it (1 s), and a probe that pinged
    // from the pool would make every replica unready at once. Each call answers at once, and the
    // probe, on a connection of its own, keeps answering: ready throughout.
    let held = hold_the_pool(&app).await;
    let checked = checks().await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        let t = Instant::now();
        let res = app.get_anon("/readyz").await;
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(res.status(), StatusCode::OK, "a busy pool is still ready");
        assert_eq!(app.get_internal("/readyz").await.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        checks().await >= checked + 2.0,
        "the probe went on checking while the pool was held"
    );
    drop(held);
}

#[tokio::test]
async fn probes_are_limited_per_address_in_a_bucket_of_their_own() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_API", "3/60")]).await;
    let statuses = [
        app.get_anon("/readyz").await.status(),
        app.get_anon("/healthz").await.status(),
        app.get_anon("/readyz").await.status(),
    ];
    assert_eq!(statuses, [StatusCode::OK; 3]);
    let res = app.get_anon("/healthz").await;
    assert_eq!(res.headers()["ratelimit-limit"], "3");
    assert!(res.headers().contains_key("retry-after"));
    problem(res, StatusCode::TOO_MANY_REQUESTS).await;
    // The API budget of the address is its own.
    let res = app.get_anon("/api/v1/users/me").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["ratelimit-remaining"], "2");
}

/// The scrape listener serves the kubelet's probes: slow connections from one address there
/// (a pod of the monitoring network) are cut at their share and by the header deadline, and
/// the probes from another address are still answered (issue 16, review of item 3).
#[tokio::test]
async fn slow_connections_to_the_scrape_listener_cannot_starve_the_probes_v15_2_2() {
    let app = TestApp::spawn_with(&[("IMANGOR_HEADER_TIMEOUT", "2")]).await;
    let scrape_addr = app.metrics_addr.expect("a scrape listener");
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut s = connect_from([127, 0, 0, 3], scrape_addr).await;
        let _ = s
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
            .await;
        held.push(s);
    }
    let mut open = 0;
    for s in held.iter_mut() {
        if !closed(s, Duration::from_millis(20)).await {
            open += 1;
        }
    }
    assert_eq!(
        open, 8,
        "an address holds at most 8 of the scrape listener's connections"
    );
    let prober = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    for path in ["/healthz", "/readyz"] {
        let res = prober
            .get(format!("http://{scrape_addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    // The half-sent requests are cut by the header deadline.
    for s in held.iter_mut() {
        assert!(
            closed(s, Duration::from_secs(5)).await,
            "a slow connection outlived the deadline"
        );
    }
}

#[tokio::test]
async fn the_metrics_listener_answers_the_probes_when_the_public_health_bucket_is_exhausted() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_API", "2/60")]).await;
    for _ in 0..2 {
        assert_eq!(app.get_anon("/healthz").await.status(), StatusCode::OK);
    }
    // Whoever shares the kubelet's address has spent the public probes' budget.
    for path in ["/healthz", "/readyz"] {
        problem(app.get_anon(path).await, StatusCode::TOO_MANY_REQUESTS).await;
    }
    // The kubelet's probes go to the metrics listener: unlimited, and the details are there.
    for _ in 0..20 {
        let res = app.get_internal("/healthz").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(!res.headers().contains_key("ratelimit-limit"));
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
        let res = app.get_internal("/readyz").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({
                "status": "ready",
                "database": if on_postgres() { "postgres" } else { "sqlite" },
                "shared_state": "off",
            })
        );
    }
}

/// A TCP relay to PostgreSQL that the test can cut (every connection dropped, the port closed)
/// and restore on the same port.
struct Relay {
    port: u16,
    upstream: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(upstream: String, port: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let to = upstream.clone();
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((mut a, _)) = listener.accept().await {
                let to = to.clone();
                pipes.spawn(async move {
                    if let Ok(mut b) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                    }
                });
            }
        });
        Relay {
            port,
            upstream,
            task: Some(task),
        }
    }

    /// PostgreSQL is gone: open connections end, new ones are refused.
    async fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

#[tokio::test]
async fn readyz_is_a_503_problem_without_sql_or_driver_text_while_the_database_is_down_v16_5_2() {
    if !on_postgres() {
        // SQLite has no server to stop, and the probe's connection of its own does not wait for
        // the pool (`readyz_answers_the_probes_last_result...`): the PostgreSQL run cuts the link.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let direct = reqwest::Url::parse(&database_url(dir.path()).await).unwrap();
    let upstream = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    );
    let mut relay = Relay::start(upstream, 0).await;
    let mut url = direct.clone();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(relay.port)).unwrap();
    let app = TestApp::spawn_with(&[
        ("IMANGOR_DATABASE_URL", url.as_str()),
        ("IMANGOR_DB_ACQUIRE_TIMEOUT", "1"),
    ])
    .await;
    assert_eq!(app.get_anon("/readyz").await.status(), StatusCode::OK);
    relay.cut().await;
    let started = Instant::now();
    let res = loop {
        let res = app.get_anon("/readyz").await;
        if res.status() != StatusCode::OK {
            break res;
        }
        assert!(started.elapsed() < Duration::from_secs(6), "never unready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    not_ready(&app, res).await;
    assert_eq!(
        app.get_anon("/healthz").await.status(),
        StatusCode::OK,
        "alive all the same"
    );
    // PostgreSQL back on the same address: ready again, without a restart.
    let _relay = Relay::start(relay.upstream.clone(), relay.port).await;
    let started = Instant::now();
    while app.get_anon("/readyz").await.status() != StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(10), "ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
