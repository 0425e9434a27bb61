//! The security console (`/console`) and the endpoints behind it: the page under its own strict
//! CSP (ASVS V3.4.3 / V3.4.6), cached only as code; the security summary and the access review,
//! each for the roles the policy names (V8.2.1); the last login in the account list; the events
//! of an incident for those who may read the audit trail. The browser scenarios are in
//! `tests/browser` (`scripts/browser-test`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn wrong_login(app: &TestApp, email: &str) {
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", "definitely not it"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_console_page_runs_under_a_strict_csp_and_cannot_be_framed_v3_4_3_v3_4_6() {
    let app = TestApp::spawn().await;
    let res = app.get_anon("/console").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&res, "content-security-policy"), CONSOLE_CSP);
    assert_eq!(header(&res, "x-frame-options"), "DENY");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(header(&res, "referrer-policy"), "no-referrer");
    assert!(header(&res, "strict-transport-security").contains("max-age=31536000"));
    // Code, not data: kept by the browser but revalidated on each use.
    assert_eq!(header(&res, "cache-control"), "no-cache");
    assert!(header(&res, "etag").starts_with('"'));
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/console.js"></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/console/console.css">"#));
    // Nothing inline that the CSP would have to allow, and nothing from elsewhere.
    assert_eq!(html.matches("<script").count(), 1, "one script, by src");
    for needle in [
        "<style",
        "style=",
        "onclick=",
        "onload=",
        "onerror=",
        "onsubmit=",
        "javascript:",
        "http://",
        "https://",
        "//cdn",
    ] {
        assert!(!html.contains(needle), "{needle} in the console page");
    }
}

#[tokio::test]
async fn console_assets_have_their_content_types_and_revalidate_with_etags() {
    let app = TestApp::spawn().await;
    for (path, ct) in [
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console", "text/html; charset=utf-8"),
    ] {
        let res = app.get_anon(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&res, "content-type"), ct, "{path}");
        assert_eq!(
            header(&res, "content-security-policy"),
            CONSOLE_CSP,
            "{path}"
        );
        assert_eq!(header(&res, "cache-control"), "no-cache", "{path}");
        let tag = header(&res, "etag");
        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(header(&again, "etag"), tag);
        assert!(again.bytes().await.unwrap().is_empty());
    }
    // The trailing slash leads to the page; other paths under /console are not served.
    let res = app.get_anon("/console/").await;
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&res, "location"), "/console");
    problem(app.get_anon("/console/app.js").await, StatusCode::NOT_FOUND).await;
}

/// ASVS 5.0 V3.2.2 (text rendered with safe functions) and V3.3 (no token in browser storage); the
/// browser test proves the same with an XSS payload in the data.
#[tokio::test]
async fn the_console_script_keeps_the_token_in_memory_and_never_writes_markup() {
    let app = TestApp::spawn().await;
    let js = app
        .get_anon("/console/console.js")
        .await
        .text()
        .await
        .unwrap();
    // Data goes into the page as text only; the token is never stored where a script reads it later.
    for needle in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "localStorage",
        "document.cookie",
        "indexedDB",
        "eval(",
        "new Function",
        // The QR code of a TOTP enrolment is the server's SVG shown as an image, never parsed.
        "DOMParser",
        "createContextualFragment",
    ] {
        assert!(!js.contains(needle), "{needle} in console.js");
    }
    assert!(js.contains("textContent") && js.contains("createElement"));
    assert!(js.contains("/api/v1/token") && js.contains("Authorization"));
    // sessionStorage holds one entry, the PKCE verifier and state of a sign-in under way
    // (FLOW_KEY): it is written in one place, and never with a token.
    let writes: Vec<&str> = js
        .lines()
        .filter(|l| l.contains("sessionStorage.") && !l.trim_start().starts_with("//"))
        .collect();
    assert_eq!(writes.len(), 3, "{writes:?}");
    for line in &writes {
        assert!(
            line.contains("sessionStorage.setItem(FLOW_KEY, JSON.stringify({ verifier, state, back: location.hash }))")
                || line.contains("sessionStorage.getItem(FLOW_KEY)")
                || line.contains("sessionStorage.removeItem(FLOW_KEY)"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn the_security_summary_counts_incidents_logins_and_sessions_for_admins_and_managers() {
    // Arrange: two failed and one good login, a manager's high report, a manager and a user.
    let app = TestApp::spawn().await;
    let (_, manager) = app
        .user_with_role("console-manager@example.com", "manager")
        .await;
    let (victim, user) = app.user_with_role("console-user@example.com", "user").await;
    for _ in 0..2 {
        wrong_login(&app, &victim.email).await;
    }
    let res = app
        .post_json(
            "/api/v1/incidents",
            Some(&manager.access),
            &json!({"description": "my laptop was stolen", "level": "high"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    app.state.sinks.events.flush().await;
    let admin = app.admin_tokens().await;

    // Act
    let res = app.get("/api/v1/security/summary", &admin.access).await;

    // Assert
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "cache-control"), "no-store");
    assert_eq!(header(&res, "content-type"), "application/json");
    let s: Value = res.json().await.unwrap();
    let levels: Vec<_> = s["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["level"].as_str().unwrap(), l["open"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        levels,
        [("low", 0), ("medium", 0), ("high", 1), ("critical", 0)]
    );
    let hours = s["logins"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    let total = |k: &str| hours.iter().map(|h| h[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!(total("failure"), 2);
    // The bootstrap admin three times (spawn, the manager's promotion, now), the manager, the user.
    assert_eq!(total("success"), 5);
    let now = chrono_free_now_hour(hours);
    assert!(now, "the last bar is the hour in progress: {hours:?}");
    assert!(s["active_sessions"].as_i64().unwrap() >= 5);
    let limits: Vec<_> = s["throttled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["limit"].as_str().unwrap())
        .collect();
    assert_eq!(limits, ["api", "token", "register", "report", "health"]);

    // Managers read it too; a plain user is refused (and the refusal is an audit event).
    let res = app.get("/api/v1/security/summary", &manager.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    problem(
        app.get("/api/v1/security/summary", &user.access).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(events(&app).await.iter().any(|e| e.action == "authz.denied"
        && e.detail.as_deref() == Some("security.summary")
        && e.actor_id.as_deref() == Some(victim.id.as_str())));
    let res = app.get_anon("/api/v1/security/summary").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&res, "www-authenticate"), "Bearer");
}

/// Whether the last hour of the chart started at most an hour ago (no clock library needed).
fn chrono_free_now_hour(hours: &[Value]) -> bool {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hour_start = secs - secs % 3600;
    let last = hours.last().unwrap()["start"].as_str().unwrap();
    let first = hours.first().unwrap()["start"].as_str().unwrap();
    // RFC 3339 hours compare as text; recompute the expected ones from epoch seconds.
    let fmt = |s: u64| {
        let days = s / 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        format!("{y:04}-{m:02}-{d:02}T{:02}:00:00", (s % 86_400) / 3600)
    };
    last.starts_with(&fmt(hour_start)) && first.starts_with(&fmt(hour_start - 23 * 3600))
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[tokio::test]
async fn the_access_review_lists_privileged_and_unused_accounts_for_admins_only() {
    let app = TestApp::spawn().await;
    let (manager, mt) = app
        .user_with_role("review-manager@example.com", "manager")
        .await;
    let (_, ut) = app
        .user_with_role("review-active@example.com", "user")
        .await;
    let unused = app.register("review-unused@example.com").await;
    let admin = app.admin_tokens().await;

    let res = app.get("/api/v1/access-review", &admin.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "cache-control"), "no-store");
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["dormant_days"], 90);
    let mut found: Vec<(String, Vec<String>, bool)> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["email"].as_str().unwrap().to_owned(),
                serde_json::from_value(i["flags"].clone()).unwrap(),
                i["last_login"].is_string(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (
                manager.email.clone(),
                vec!["manager".to_owned(), "no_second_factor".to_owned()],
                true
            ),
            (
                unused.email.clone(),
                vec!["never_logged_in".to_owned()],
                false
            ),
            (
                ADMIN_EMAIL.to_owned(),
                vec!["admin".to_owned(), "no_second_factor".to_owned()],
                true
            ),
        ]
    );

    // Only admins: the ones who can act on it.
    for t in [&mt.access, &ut.access] {
        problem(
            app.get("/api/v1/access-review", t).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    assert_eq!(
        app.get_anon("/api/v1/access-review").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Its one parameter is checked like every other query.
    for q in [
        "dormant_days=0",
        "dormant_days=x",
        "dormant_days=1&dormant_days=2",
        "days=3",
    ] {
        invalid_fields(
            app.get(&format!("/api/v1/access-review?{q}"), &admin.access)
                .await,
            &[if q.starts_with("days") {
                "days"
            } else {
                "dormant_days"
            }],
        )
        .await;
    }
    let res = app
        .get("/api/v1/access-review?dormant_days=1", &admin.access)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_account_list_shows_each_accounts_last_login() {
    let app = TestApp::spawn().await;
    let (active, _) = app.user_with_role("seen@example.com", "user").await;
    let unused = app.register("unseen@example.com").await;
    let admin = app.admin_tokens().await;
    let page: Value = app
        .get("/api/v1/users?limit=100", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let last = |id: &str| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()["last_login"]
            .clone()
    };
    assert!(last(&active.id).as_str().unwrap().ends_with('Z'));
    assert_eq!(last(&unused.id), Value::Null);
    // The documented fields, no more (the schema is closed: V15.3.1).
    let mut keys: Vec<_> = page["items"][0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "disabled",
            "email",
            "full_name",
            "id",
            "last_login",
            "role",
            "second_factor"
        ]
    );
}

#[tokio::test]
async fn an_incident_shows_its_events_to_admins_and_not_to_managers() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let (_, manager) = app
        .user_with_role("inc-manager@example.com", "manager")
        .await;
    let victim = app.register("inc-victim@example.com").await;
    for _ in 0..10 {
        wrong_login(&app, &victim.email).await;
    }
    imangor::service::audit::seal::seal_and_detect(&app.state.trail)
        .await
        .unwrap();
    let page: Value = app
        .get("/api/v1/incidents?status=open", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let id = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "brute_force")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/incidents/{id}");

    let seen: Value = app.get(&path, &admin.access).await.json().await.unwrap();
    let events = seen["events"].as_array().unwrap();
    let failures = events
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["outcome"] == "failure")
        .count();
    assert_eq!(failures, 10, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "incident.open" && e["target"] == format!("incident:{id}"))
    );

    // A manager handles the incident without reading the audit trail.
    let res = app
        .patch_json(
            &path,
            &manager.access,
            &json!({"status": "contained", "note": "watching"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["status"], "contained");
    assert!(seen.get("events").is_none(), "{seen}");
    let seen: Value = app.get(&path, &manager.access).await.json().await.unwrap();
    assert!(seen.get("events").is_none(), "{seen}");

    // The admin sees the change among the incident's events.
    let seen: Value = app.get(&path, &admin.access).await.json().await.unwrap();
    assert!(
        seen["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "incident.update" && e["detail"] == "open -> contained"),
        "{seen}"
    );
}

#[tokio::test]
async fn the_account_list_searches_emails_and_names_with_wildcards_taken_literally_v1_2_4() {
    let app = TestApp::spawn().await;
    for email in [
        "ann.search@example.com",
        "bob_search@example.com",
        "carl@example.com",
    ] {
        app.register(email).await;
    }
    let admin = app.admin_tokens().await;
    let emails = |q: &str| {
        let path = format!("/api/v1/users?limit=1&q={}", urlencode(q));
        let (app, token) = (&app, admin.access.clone());
        async move {
            let mut found = Vec::new();
            let mut cursor: Option<String> = None;
            // One account a page: the cursor walks the search's pages, not the whole list.
            loop {
                let url = match &cursor {
                    Some(c) => format!("{path}&cursor={c}"),
                    None => path.clone(),
                };
                let res = app.get(&url, &token).await;
                assert_eq!(res.status(), StatusCode::OK, "{url}");
                let page: Value = res.json().await.unwrap();
                for i in page["items"].as_array().unwrap() {
                    found.push(i["email"].as_str().unwrap().to_owned());
                }
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => return found,
                }
            }
        }
    };
    assert_eq!(
        emails("SEARCH").await,
        ["ann.search@example.com", "bob_search@example.com"]
    );
    // `_` and `%` are letters here, not LIKE wildcards.
    assert_eq!(emails("_search").await, ["bob_search@example.com"]);
    assert_eq!(emails("%").await, Vec::<String>::new());
    // The name is searched too (every fixture account is "Test Person").
    assert_eq!(emails("test person").await.len(), 3);
    assert_eq!(emails("' or '1'='1").await, Vec::<String>::new());

    for q in ["", "x&q=y"] {
        let q = if q.is_empty() {
            "q=".to_owned()
        } else {
            format!("q={q}")
        };
        invalid_fields(
            app.get(&format!("/api/v1/users?{q}"), &admin.access).await,
            &["q"],
        )
        .await;
    }
    // A plain user is refused before the query is looked at.
    let (_, user) = app.user_with_role("plain-search@example.com", "user").await;
    problem(
        app.get("/api/v1/users?q=", &user.access).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn the_summary_counts_requests_refused_by_the_rate_limits_v16_3_3() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_API", "4/60")]).await;
    let (_, manager) = app
        .user_with_role("limits-manager@example.com", "manager")
        .await;
    let (_, user) = app.user_with_role("limits-user@example.com", "user").await;
    let mut refused = 0;
    for _ in 0..6 {
        if app.get("/api/v1/users/me", &user.access).await.status() == StatusCode::TOO_MANY_REQUESTS
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 2);
    let s: Value = app
        .get("/api/v1/security/summary", &manager.access)
        .await
        .json()
        .await
        .unwrap();
    let api = s["throttled"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["limit"] == "api")
        .unwrap()["requests"]
        .clone();
    assert_eq!(api, 2, "{s}");
}

/// Issue 16 item 9 (ASVS V14.2.1, sensitive data never in URLs) and issue 18 item 7: the console
/// page has no password field and no form at all (it signs in on the server's sign-in page,
/// console_oauth.rs), so nothing can put a password in its URL; `POST /console` is gone (405)
/// and signs no one in.
#[tokio::test]
async fn the_console_page_has_no_password_field_and_takes_no_post_v14_2_1() {
    let app = TestApp::spawn().await;
    let page = app.get_anon("/console").await.text().await.unwrap();
    assert!(page.contains(r#"<button type="button" id="signin-start">Sign in</button>"#));
    for needle in ["<form", "type=\"password\"", "<input"] {
        assert!(!page.contains(needle), "{needle} in the console page");
    }
    let logins = |e: &Vec<EventRow>| e.iter().filter(|e| e.action == "auth.login").count();
    let before = logins(&events(&app).await);
    let res = app
        .client
        .post(app.url("/console"))
        .form(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(res.headers().get("set-cookie").is_none());
    let body = res.text().await.unwrap();
    assert!(
        !body.contains(ADMIN_PASSWORD),
        "nothing of the body comes back"
    );
    assert_eq!(
        logins(&events(&app).await),
        before,
        "no login was attempted"
    );
}
