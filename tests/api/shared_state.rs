//! Replicas that share state through Redis: one rate limit and one login budget for all of
//! them, revocations applied everywhere within a second, and the documented fallback while
//! Redis is down (each replica on its own, a high incident), then recovery without a restart.
//! Redis: `IMANGOR_TEST_REDIS_URL` (default redis://127.0.0.1:6379); each test has its own key
//! prefix. The outage test runs a private `redis-server` on a free loopback port.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{Server, base_env};

fn redis_url() -> String {
    std::env::var("IMANGOR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix() -> String {
    format!("t{}:", uuid::Uuid::new_v4().simple())
}

/// Two replicas on one database and one Redis prefix, with `extra` settings.
async fn pair(redis: &str, extra: &[(&str, &str)]) -> (TestApp, TestApp) {
    let prefix = prefix();
    let mut vars: Vec<(&str, &str)> = vec![
        ("IMANGOR_REDIS_URL", redis),
        ("IMANGOR_REDIS_PREFIX", &prefix),
        ("IMANGOR_DATA_KEYS", DATA_KEYS),
    ];
    vars.extend_from_slice(extra);
    let a = TestApp::spawn_with(&vars).await;
    let db = a.database_url.clone();
    vars.push(("IMANGOR_DATABASE_URL", &db));
    let b = TestApp::spawn_with(&vars).await;
    (a, b)
}

/// A private Redis on a free loopback port, killed on drop.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start_on(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (Debian package redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis {
            port,
            child: Some(child),
        }
    }

    fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn status_of(app: &TestApp, token: &str) -> StatusCode {
    app.get("/api/v1/users/me", token).await.status()
}

/// ASVS 5.0 V2.4.1 / API4:2023: the limit is the limit of the service, not of one replica.
#[tokio::test]
async fn a_rate_limit_holds_across_replicas_api4() {
    let (a, b) = pair(&redis_url(), &[("IMANGOR_RATE_LIMIT_API", "6/60")]).await;
    let u = a.register("shared-limit@example.com").await;
    let t = a.login(&u).await;
    let mut passed = 0;
    for i in 0..12 {
        let app = if i % 2 == 0 { &a } else { &b };
        let res = app.get("/api/v1/users/me", &t.access).await;
        match res.status() {
            StatusCode::OK => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(res.headers().contains_key("retry-after"));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(passed, 6, "six in all, not six per replica");
}

/// ASVS 5.0 V6.3.1: the failures of one (account, address) pair are counted by every replica.
#[tokio::test]
async fn login_failures_lock_a_pair_across_replicas_v6_3_1() {
    let (a, b) = pair(&redis_url(), &[("IMANGOR_LOGIN_LOCK_AFTER", "4")]).await;
    let u = a.register("shared-lock@example.com").await;
    let wrong = |app: &TestApp| {
        let email = u.email.clone();
        let client = app.client.clone();
        let url = app.url("/api/v1/token");
        async move {
            client
                .post(url)
                .form(&[
                    ("grant_type", "password"),
                    ("username", email.as_str()),
                    ("password", "not the password at all"),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for app in [&a, &b, &a, &b] {
        assert_eq!(wrong(app).await, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    // The fifth attempt is refused on either replica: four failures were counted in one place.
    let res = a
        .token(&[
            ("grant_type", "password"),
            ("username", &u.email),
            ("password", &u.password),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(wrong(&b).await, StatusCode::TOO_MANY_REQUESTS);
}

/// While Redis is down each replica limits on its own, no request fails because of it, and a
/// high incident is opened; when Redis returns, the limits are shared again without a restart.
#[tokio::test]
async fn a_redis_outage_falls_back_per_replica_opens_an_incident_and_recovers() {
    let mut redis = PrivateRedis::start();
    let (a, b) = pair(&redis.url(), &[("IMANGOR_RATE_LIMIT_API", "4/60")]).await;
    let admin = a.admin_tokens().await;
    let shared_limit = |user: &'static str| {
        let (a, b) = (&a, &b);
        async move {
            let u = a.register(user).await;
            let t = a.login(&u).await;
            let mut passed = 0;
            for i in 0..8 {
                let app = if i % 2 == 0 { a } else { b };
                match status_of(app, &t.access).await {
                    StatusCode::OK => passed += 1,
                    StatusCode::TOO_MANY_REQUESTS => {}
                    other => panic!("unexpected {other} (a fallback must not fail requests)"),
                }
            }
            passed
        }
    };
    assert_eq!(shared_limit("before@example.com").await, 4);

    let port = redis.port;
    let t = a.login(&a.register("timed@example.com").await).await;
    redis.kill();
    // No request fails for a Redis that is down, and after the first failed call each replica
    // stops asking it (the `up` flag): later requests do not wait for Redis at all, which is the
    // mechanism, asserted instead of a wall-clock limit.
    for app in [&a, &b, &a, &b, &a, &b] {
        assert_eq!(status_of(app, &t.access).await, StatusCode::OK);
        assert!(
            !app.state.shared.as_ref().unwrap().is_up(),
            "a failed call marks Redis down at once"
        );
    }
    // Each replica now allows the limit on its own: 4 + 4.
    assert_eq!(shared_limit("during@example.com").await, 8);
    let ready: Value = a.get_anon("/readyz").await.json().await.unwrap();
    assert_eq!(
        ready,
        json!({"status": "ready"}),
        "a replica without Redis still serves, and the public answer does not say it limits alone"
    );
    let ready: Value = a.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(ready["shared_state"], "down");
    imangor::service::audit::seal::seal_and_detect(&a.state.trail)
        .await
        .unwrap();
    let page: Value = a
        .get("/api/v1/incidents?limit=100", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let found: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "shared_state_unavailable")
        .collect();
    assert_eq!(found.len(), 1, "one incident for the outage: {page}");
    assert_eq!(found[0]["level"], "high");

    let _redis = PrivateRedis::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.state.shared.as_ref().unwrap().is_up() && b.state.shared.as_ref().unwrap().is_up()) {
        assert!(
            Instant::now() < deadline,
            "the replicas use Redis again by themselves"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shared_limit("after@example.com").await, 4);
    let ready: Value = b.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(ready["shared_state"], "up");
    let restored = events(&a)
        .await
        .into_iter()
        .filter(|e| e.action == "shared_state.restored")
        .count();
    assert!(restored >= 1, "the recovery is recorded");
}

/// Subscribers of the announcement channel of `prefix` (`PUBSUB NUMSUB`).
async fn subscribers(prefix: &str) -> i64 {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("{prefix}changes"))
        .query_async(&mut c)
        .await
        .unwrap();
    n
}

/// A token revoked on one replica (another process) is refused by the others through the
/// announcement on Redis, not by the cache expiring: every replica caches a token's state for a
/// minute here (`IMANGOR_AUTH_CACHE_TTL=60`), so within the test only the announcement can make
/// the second replica refuse. Two controls show the long cache is in force: a revocation that is
/// not announced to it leaves the second replica serving the old state, and a third replica on
/// another Redis prefix (no announcements reach it) still serves the revoked token afterwards.
#[tokio::test]
async fn a_revocation_on_one_replica_applies_on_another_through_the_announcement() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path()).await;
    env.extend([
        ("IMANGOR_REDIS_URL", redis_url()),
        ("IMANGOR_AUTH_CACHE_TTL", "60".to_owned()),
        ("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()),
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
        ("IMANGOR_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
        (
            "IMANGOR_BOOTSTRAP_ADMIN_PASSWORD",
            ADMIN_PASSWORD.to_owned(),
        ),
    ]);
    let (p, q) = (prefix(), prefix());
    let mut announced = env.clone();
    announced.push(("IMANGOR_REDIS_PREFIX", p.clone()));
    let mut deaf = env;
    deaf.push(("IMANGOR_REDIS_PREFIX", q.clone()));
    let a = Server::start(&announced).await;
    let b = Server::start(&announced).await;
    let c = Server::start(&deaf).await;
    // A replica drops its cache when its subscription starts: wait until all three listen.
    let deadline = Instant::now() + Duration::from_secs(20);
    while subscribers(&p).await != 2 || subscribers(&q).await != 1 {
        assert!(Instant::now() < deadline, "the replicas subscribe");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::new();
    let login = || async {
        let res = client
            .post(a.url("/api/v1/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        tokens(res).await
    };
    let (t, canary) = (login().await, login().await);
    let me = |s: &Server, t: &Tokens| {
        client
            .get(s.url("/api/v1/users/me"))
            .bearer_auth(&t.access)
            .send()
    };
    let revoke = |s: &Server, t: &Tokens| {
        client
            .post(s.url("/api/v1/token/revoke"))
            .form(&[("token", t.refresh.clone())])
            .send()
    };
    // B caches both tokens' state, for a minute.
    assert_eq!(me(&b, &t).await.unwrap().status(), StatusCode::OK);
    assert_eq!(me(&b, &canary).await.unwrap().status(), StatusCode::OK);
    // The canary's session ends on C, whose announcement goes to the other prefix: B is not
    // told, and serves the state it cached.
    assert_eq!(revoke(&c, &canary).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        me(&b, &canary).await.unwrap().status(),
        StatusCode::OK,
        "a change nobody announced is not seen while the cached state lives"
    );
    // C caches the main token's state (after its own change dropped its cache).
    assert_eq!(me(&c, &t).await.unwrap().status(), StatusCode::OK);

    assert_eq!(revoke(&a, &t).await.unwrap().status(), StatusCode::OK);
    let revoked = Instant::now();
    // A generous deadline, far under the cache's minute: no timing is asserted, only that the
    // refusal comes while the cached state would still be served.
    loop {
        let s = me(&b, &t).await.unwrap().status();
        if s == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(s, StatusCode::OK);
        assert!(
            revoked.elapsed() < Duration::from_secs(20),
            "the announcement reached the other replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "cross-replica revocation applied after {:?}",
        revoked.elapsed()
    );
    // The announcement dropped B's whole cache: the canary is refused now too.
    assert_eq!(
        me(&b, &canary).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // The replica that heard nothing still serves the state it cached: the cache alone would
    // have kept the token working on B too.
    assert_eq!(
        me(&c, &t).await.unwrap().status(),
        StatusCode::OK,
        "without the announcement the cached state is served for the cache's lifetime"
    );
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

/// The login defence on Redis (Lua) decides exactly as the one in memory (`LoginGuard`), step by
/// step: pair lock-outs, the account's slow-down, the hard cap and the addresses it knows.
#[tokio::test]
async fn the_shared_login_defence_decides_as_the_one_in_memory_v6_3_1() {
    use imangor::domain::LoginPolicy;
    use imangor::limits::login::{Gate, LoginGuard, Logins};
    let policy = LoginPolicy {
        lock_after: 3,
        slow_after: 4,
        hard_cap: 8,
        ..LoginPolicy::default()
    };
    let shared = imangor::infra::shared::Shared::connect(&redis_url(), &prefix())
        .await
        .unwrap();
    assert!(shared.is_up(), "Redis answers at {}", redis_url());
    let redis = Logins::new(policy, Some(shared), &[7u8; 32]);
    let memory = LoginGuard::new(policy);
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let same = |a: Gate, b: Gate| match (a, b) {
        (Gate::Open { delay: x }, Gate::Open { delay: y }) => x == y,
        (
            Gate::Locked {
                retry_after_s: x,
                first: f,
            },
            Gate::Locked {
                retry_after_s: y,
                first: g,
            },
        )
        | (
            Gate::Capped {
                retry_after_s: x,
                first: f,
            },
            Gate::Capped {
                retry_after_s: y,
                first: g,
            },
        ) => x.abs_diff(y) <= 1 && f == g,
        _ => false,
    };
    let account = "victim@example.com";
    // The pair locks after 3, reported once; other addresses keep trying, slowed after 4
    // failures of the account, refused past the hard cap unless known.
    let mut steps: Vec<&str> = vec!["10.0.0.1"; 5];
    steps.extend([
        "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8",
    ]);
    for (i, addr) in steps.iter().enumerate() {
        let (r, m) = (
            redis.begin(account, ip(addr)).await,
            memory.begin(account, ip(addr)),
        );
        assert!(
            same(r, m),
            "step {i} from {addr}: Redis {r:?}, memory {m:?}"
        );
    }
    // Past the cap, a sign-in that a second factor decides goes on from a new address (the
    // pair's lock still applies), with a budget of codes (issue 19 item 6).
    for addr in ["10.0.0.20", "10.0.0.20", "10.0.0.20", "10.0.0.20"] {
        let (r, m) = (
            redis.begin_past_cap(account, ip(addr)).await,
            memory.begin_past_cap(account, ip(addr)),
        );
        assert!(
            same(r, m),
            "past the cap from {addr}: Redis {r:?}, memory {m:?}"
        );
    }
    for i in 0..=imangor::limits::login::CODES_PAST_CAP {
        let (r, m) = (
            redis.code_past_cap(account).await,
            memory.code_past_cap(account),
        );
        assert_eq!(r, m, "code {i} past the cap");
    }
    assert!(!redis.knows(account, ip("10.0.0.9")).await);
    // A success from an address forgets the failures and makes the address known.
    redis.succeeded(account, ip("10.0.0.9")).await;
    memory.succeeded(account, ip("10.0.0.9"));
    assert!(redis.knows(account, ip("10.0.0.9")).await);
    assert!(
        redis.code_past_cap(account).await,
        "a success gives the budget back"
    );
    assert!(memory.code_past_cap(account));
    memory.succeeded(account, ip("10.0.0.9"));
    for addr in ["10.0.0.9", "10.0.0.10", "10.0.0.10", "10.0.0.10"] {
        let (r, m) = (
            redis.begin(account, ip(addr)).await,
            memory.begin(account, ip(addr)),
        );
        assert!(
            same(r, m),
            "after a success, from {addr}: Redis {r:?}, memory {m:?}"
        );
    }
    // An attempt taken back does not count.
    let before = memory.begin("other@example.com", ip("10.0.1.1"));
    let r = redis.begin("other@example.com", ip("10.0.1.1")).await;
    assert!(same(r, before));
    for _ in 0..5 {
        redis.not_attempted("other@example.com", ip("10.0.1.1"));
        memory.not_attempted("other@example.com", ip("10.0.1.1"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let (r, m) = (
            redis.begin("other@example.com", ip("10.0.1.1")).await,
            memory.begin("other@example.com", ip("10.0.1.1")),
        );
        assert!(same(r, m), "after taking back: Redis {r:?}, memory {m:?}");
    }
}
