//! The scrape listener (ASVS V13.4.5, V16.3.1): Prometheus text on its own port, never on the
//! public one; families with bounded labels; counters that move with what happened.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Every sample of an exposition, by series (`name{labels}`); checks each has a TYPE line.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut types = BTreeMap::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no TYPE for {name}");
        out.insert(series.to_owned(), value.parse().expect("a number"));
    }
    out
}

pub async fn scrape(app: &TestApp) -> BTreeMap<String, f64> {
    let res = app
        .client
        .get(format!("http://{}/metrics", app.metrics_addr.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    parse(&res.text().await.unwrap())
}

pub fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_live_on_their_own_listener_only_v13_4_5() {
    let app = TestApp::spawn().await;
    let res = app.get_anon("/metrics").await;
    problem(res, StatusCode::NOT_FOUND).await;
    let m = scrape(&app).await;
    assert_eq!(
        value(
            &m,
            &format!(
                "imangor_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    // The scrape port serves nothing else.
    let res = app
        .client
        .get(format!(
            "http://{}/api/v1/users/me",
            app.metrics_addr.unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn authentication_attempts_are_counted_by_outcome_v16_3_1() {
    let app = TestApp::spawn_with(&[("IMANGOR_LOGIN_LOCK_AFTER", "2")]).await;
    let a = app.register("m@example.com").await;
    let before = scrape(&app).await;
    let wrong = [
        ("grant_type", "password"),
        ("username", a.email.as_str()),
        ("password", "not the password"),
    ];
    assert_eq!(app.token(&wrong).await.status(), StatusCode::BAD_REQUEST);
    app.login(&a).await;
    let m = scrape(&app).await;
    let delta = |s: &str| value(&m, s) - value(&before, s);
    assert_eq!(delta("auth_attempts_total{status=\"failure\"}"), 1.0);
    assert_eq!(delta("auth_attempts_total{status=\"success\"}"), 1.0);
    for _ in 0..2 {
        app.token(&wrong).await;
    }
    assert_eq!(
        app.token(&wrong).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let m = scrape(&app).await;
    assert!(value(&m, "auth_attempts_total{status=\"locked\"}") >= 1.0);
    assert!(
        value(&m, "active_sessions") >= 2.0,
        "the admin's and the user's logins"
    );
    assert!(value(&m, "password_hash_duration_seconds_count") >= 4.0);
    assert_eq!(value(&m, "password_hash_queue_depth"), 0.0);
}

#[tokio::test]
async fn request_durations_are_a_histogram_by_route_template_with_bounded_labels() {
    let app = TestApp::spawn().await;
    let (_, t) = app.user_with_role("h@example.com", "user").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let res = app
            .post_json(
                "/api/v1/resources",
                Some(&t.access),
                &json!({"title": format!("t{i}"), "content": "", "is_public": false}),
            )
            .await;
        ids.push(
            res.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        assert_eq!(
            app.get(&format!("/api/v1/resources/{id}"), &t.access)
                .await
                .status(),
            StatusCode::OK
        );
    }
    for i in 0..50 {
        app.get_anon(&format!("/probe/{i}/x{i}")).await;
    }
    let m = scrape(&app).await;
    let labels = r#"endpoint="/api/v1/resources/{id}",method="GET",status="200""#;
    assert_eq!(
        value(&m, &format!("request_duration_seconds_count{{{labels}}}")),
        3.0
    );
    assert_eq!(
        value(
            &m,
            &format!("request_duration_seconds_bucket{{{labels},le=\"+Inf\"}}")
        ),
        3.0
    );
    assert_eq!(value(&m, &format!("http_requests_total{{{labels}}}")), 3.0);
    assert!(
        m.keys().any(
            |k| k.starts_with("request_duration_seconds_bucket{") && k.contains("le=\"0.005\"")
        )
    );
    assert_eq!(
        value(
            &m,
            r#"http_requests_total{endpoint="unmatched",method="GET",status="404"}"#
        ),
        50.0
    );
    for k in m.keys() {
        assert!(
            !ids.iter().any(|id| k.contains(id.as_str())),
            "a raw id became a label: {k}"
        );
        assert!(!k.contains("/probe/"), "a raw path became a label: {k}");
    }
}

#[tokio::test]
async fn throttled_requests_are_counted_by_limit() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_REGISTER", "1/60")]).await;
    for i in 0..3 {
        app.post_json(
            "/api/v1/users",
            None,
            &json!({"email": format!("t{i}@example.com"), "password": PASSWORD, "full_name": "T"}),
        )
        .await;
    }
    let m = scrape(&app).await;
    assert_eq!(
        value(&m, r#"throttled_requests_total{limit="register"}"#),
        2.0
    );
}
