//! Lock-out without victims (issue 19 items 6 and 7, docs/mfa.md "Past the lock-out"): past an
//! account's cap of consecutive failures (`IMANGOR_LOGIN_HARD_CAP`, NIST SP 800-63B: at most
//! 100) a new address still signs in with the right password AND a valid second factor, through
//! the password grant and the sign-in page, while the password alone stays refused and the
//! lock-out answers a right and a wrong password alike (ASVS V6.3.1, V6.3.3, V6.3.8, V2.4.1).
//! A recovery code from a new address raises a `medium` incident (V6.5.x, V16.3.1).

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::mfa::{claims, enrol};

/// The account locks for new addresses after 3 failures; a pair only after 10, and nothing is
/// slowed: what is tested is the account's cap alone.
async fn spawn() -> TestApp {
    TestApp::spawn_with(&[
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
        ("IMANGOR_LOGIN_HARD_CAP", "3"),
        ("IMANGOR_LOGIN_LOCK_AFTER", "10"),
        ("IMANGOR_LOGIN_SLOW_AFTER", "100"),
        ("IMANGOR_RATE_LIMIT_TOKEN", "1000/60"),
    ])
    .await
}

/// The address the test's accounts enrol from (the proxy's own, no `X-Forwarded-For`).
const HOME: &str = "";

/// A token-endpoint request from `from` (`X-Forwarded-For` through the trusted proxy; `HOME`:
/// none).
async fn token_from(app: &TestApp, from: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let mut r = app.client.post(app.url("/api/v1/token")).form(form);
    if !from.is_empty() {
        r = r.header("x-forwarded-for", from);
    }
    r.send().await.unwrap()
}

async fn password_from(
    app: &TestApp,
    from: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    token_from(
        app,
        from,
        &[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
        ],
    )
    .await
}

async fn mfa_from(
    app: &TestApp,
    from: &str,
    token: &str,
    field: &str,
    code: &str,
) -> reqwest::Response {
    token_from(
        app,
        from,
        &[
            ("grant_type", "urn:imangor:grant-type:mfa"),
            ("mfa_token", token),
            (field, code),
        ],
    )
    .await
}

/// The `mfa_token` of an `mfa_required` answer.
async fn mfa_token_of(res: reqwest::Response) -> String {
    let v = oauth_error(res, StatusCode::BAD_REQUEST, "mfa_required").await;
    assert!(v.get("access_token").is_none());
    v["mfa_token"].as_str().unwrap().to_owned()
}

/// Locks `email` for new addresses: `IMANGOR_LOGIN_HARD_CAP` (3) wrong passwords from one
/// attacker address, each refused as a wrong password.
async fn lock(app: &TestApp, email: &str) {
    for _ in 0..3 {
        let res = password_from(app, "198.51.100.66", email, "guess guess guess").await;
        oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
}

/// An answer reduced to what a client can compare: status, the headers that do not name the
/// request (date, request id) or the moment (retry-after, compared apart), and the body.
async fn seen(res: reqwest::Response) -> (StatusCode, Vec<(String, String)>, u64, String) {
    let status = res.status();
    let retry = res
        .headers()
        .get("retry-after")
        .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
    let mut headers: Vec<(String, String)> = res
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id" | "retry-after"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, retry, res.text().await.unwrap())
}

/// Item 6: past the cap a new address gets in with the right password and a valid TOTP code;
/// the attacker's wrong password there gets an `mfa_token` too, but no code completes it (not
/// even a valid one, which stays unspent for its owner) (V6.3.1, V6.3.3).
#[tokio::test]
async fn past_the_lock_out_a_valid_second_factor_still_signs_in_from_a_new_address_v6_3_1() {
    let app = spawn().await;
    let a = app.register("ann@example.com").await;
    let (mut auth, _) = enrol(&app, &a).await;
    lock(&app, &a.email).await;
    // The attacker, past the cap: a wrong password is answered like a right one...
    let blind =
        mfa_token_of(password_from(&app, "198.51.100.67", &a.email, "guess guess guess").await)
            .await;
    // ...and its token fails whatever the code, a valid one included (not spent by it).
    let res = mfa_from(&app, "198.51.100.67", &blind, "otp", &auth.peek()).await;
    let refused = oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // The owner, from an address the account never signed in from.
    let token = mfa_token_of(password_from(&app, "203.0.113.7", &a.email, &a.password).await).await;
    let wrong = auth.wrong(1).remove(0);
    let res = mfa_from(&app, "203.0.113.7", &token, "otp", &wrong).await;
    let wrong_code = oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(
        refused, wrong_code,
        "a withheld password fails like a wrong code"
    );
    let res = mfa_from(&app, "203.0.113.7", &token, "otp", &auth.code()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t = tokens(res).await;
    assert_eq!(claims(&t.access)["amr"], serde_json::json!(["pwd", "mfa"]));
    // The success reset the account: the password alone works again from anywhere (for a second factor).
    mfa_token_of(password_from(&app, "203.0.113.99", &a.email, &a.password).await).await;
    let detail: Vec<String> = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "auth.login" && e.outcome == "failure")
        .filter_map(|e| e.detail)
        .collect();
    assert!(
        detail.iter().any(|d| d.contains("no code completes")),
        "the withheld wrong password is recorded as one: {detail:?}"
    );
}

/// Item 6, no oracle: past the cap an account without a second factor refuses a right and a
/// wrong password identically (status, headers, body; neither is hashed), as before; an
/// account with one answers both with `mfa_required` (V6.3.1, V6.3.8).
#[tokio::test]
async fn past_the_lock_out_a_right_password_answers_exactly_as_a_wrong_one_v6_3_8() {
    let app = spawn().await;
    let b = app.register("bob@example.com").await;
    app.login(&b).await;
    lock(&app, &b.email).await;
    // Each from an address of its own (the per-address rate limit's headers then match).
    let right = seen(password_from(&app, "203.0.113.10", &b.email, &b.password).await).await;
    let wrong =
        seen(password_from(&app, "203.0.113.11", &b.email, "guess guess guess").await).await;
    assert_eq!(right.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        (&right.0, &right.1, &right.3),
        (&wrong.0, &wrong.1, &wrong.3)
    );
    assert!(
        right.2 > 0 && right.2.abs_diff(wrong.2) <= 1,
        "{} {}",
        right.2,
        wrong.2
    );
    // The owner's own address (it signed in from there before) still gets in.
    app.login(&b).await;

    let c = app.register("cat@example.com").await;
    let (_auth, _) = enrol(&app, &c).await;
    lock(&app, &c.email).await;
    let right = seen(password_from(&app, "203.0.113.12", &c.email, &c.password).await).await;
    let wrong =
        seen(password_from(&app, "203.0.113.13", &c.email, "guess guess guess").await).await;
    assert_eq!(right.0, StatusCode::BAD_REQUEST);
    assert_eq!((&right.0, &right.1), (&wrong.0, &wrong.1));
    let shape = |body: &str| {
        let v: Value = serde_json::from_str(body).unwrap();
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        (
            keys,
            v["error"].clone(),
            v["mfa_token"].as_str().unwrap().len(),
        )
    };
    assert_eq!(shape(&right.3), shape(&wrong.3));
}

/// Past the cap, the codes of a right password have a budget (10 per hour) from new addresses:
/// once it is spent even a valid code fails like a wrong one there, and the owner's own
/// address still signs in (V6.3.1, V2.4.1).
#[tokio::test]
async fn past_the_lock_out_codes_from_new_addresses_are_bounded_v2_4_1() {
    let app = spawn().await;
    let a = app.register("ann@example.com").await;
    let (mut auth, _) = enrol(&app, &a).await;
    lock(&app, &a.email).await;
    // Someone holding the password guesses codes from ever new addresses.
    for (i, chunk) in auth.wrong(10).chunks(5).enumerate() {
        let from = format!("198.51.100.{}", 100 + i);
        let token = mfa_token_of(password_from(&app, &from, &a.email, &a.password).await).await;
        for w in chunk {
            let res = mfa_from(&app, &from, &token, "otp", w).await;
            oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
        }
    }
    let token =
        mfa_token_of(password_from(&app, "198.51.100.120", &a.email, &a.password).await).await;
    let res = mfa_from(&app, "198.51.100.120", &token, "otp", &auth.peek()).await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let skipped = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "mfa.verify" && e.outcome == "failure")
        .filter(|e| e.detail.as_deref().unwrap_or("").contains("not checked"))
        .count();
    assert_eq!(skipped, 1);
    // The owner's address (it enrolled from there) is not held by the budget.
    let token = mfa_token_of(
        app.token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", &a.password),
        ])
        .await,
    )
    .await;
    let res = mfa_from(&app, HOME, &token, "otp", &auth.code()).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// A code the guard refuses (its pair locked) is a `throttled` `mfa.verify` event, as a refused
/// password is an `auth.login` one; the TOTP-guessing detector counts both (V16.3.1).
#[tokio::test]
async fn a_code_refused_by_the_login_guard_is_recorded_v16_3_1() {
    let app = TestApp::spawn_with(&[("IMANGOR_LOGIN_LOCK_AFTER", "2")]).await;
    let a = app.register("ann@example.com").await;
    let (auth, _) = enrol(&app, &a).await;
    let token = mfa_token_of(
        app.token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", &a.password),
        ])
        .await,
    )
    .await;
    let wrong = auth.wrong(2);
    let res = mfa_from(&app, HOME, &token, "otp", &wrong[0]).await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let res = mfa_from(&app, HOME, &token, "otp", &wrong[1]).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    let throttled: Vec<EventRow> = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "mfa.verify" && e.outcome == "throttled")
        .collect();
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0].actor_id.as_deref(), Some(a.id.as_str()));
}

/// Item 7: a recovery code signing in from an address the account never signed in from raises
/// a `medium` `recovery_code_new_address` incident about the account; from a known address,
/// none (V6.5.x, V16.3.1).
#[tokio::test]
async fn a_recovery_code_from_a_new_address_raises_a_medium_incident() {
    let app = spawn().await;
    let admin = app.admin_tokens().await;
    let a = app.register("ann@example.com").await;
    let (_auth, codes) = enrol(&app, &a).await;
    // From the address it enrolled from: tokens, no incident.
    let token = mfa_token_of(password_from(&app, HOME, &a.email, &a.password).await).await;
    let res = mfa_from(&app, HOME, &token, "recovery_code", &codes[0]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let found = crate::incidents::incidents_of(&app, &admin, "recovery_code_new_address").await;
    assert!(found.is_empty(), "{found:?}");
    // From a new address: tokens, and the incident.
    let token =
        mfa_token_of(password_from(&app, "203.0.113.50", &a.email, &a.password).await).await;
    let res = mfa_from(&app, "203.0.113.50", &token, "recovery_code", &codes[1]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let found = crate::incidents::incidents_of(&app, &admin, "recovery_code_new_address").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["level"], "medium");
    assert_eq!(found[0]["subject"], a.id.as_str());
    // That address is known now: its next recovery code raises nothing more.
    let token =
        mfa_token_of(password_from(&app, "203.0.113.50", &a.email, &a.password).await).await;
    let res = mfa_from(&app, "203.0.113.50", &token, "recovery_code", &codes[2]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let found = crate::incidents::incidents_of(&app, &admin, "recovery_code_new_address").await;
    assert_eq!(found[0]["count"], 1, "{found:?}");
}

/// Item 6 on the sign-in page (POST /oauth/authorize): past the cap a new address signs in with
/// the password and then a valid code; a wrong password there is asked for a code too, which
/// fails (V6.3.1, V6.3.3).
#[tokio::test]
async fn past_the_lock_out_the_sign_in_page_takes_the_second_factor_v6_3_1() {
    let app = spawn().await;
    let a = app.register("ann@example.com").await;
    let (mut auth, _) = enrol(&app, &a).await;
    let admin = app.admin_tokens().await.access;
    let c: Value = app
        .post_json(
            "/api/v1/clients",
            Some(&admin),
            &serde_json::json!({"name": "SPA", "type": "public", "redirect_uris": ["https://spa.example.com/cb"], "first_party": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = c["client_id"].as_str().unwrap();
    lock(&app, &a.email).await;
    let q = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", id),
        ("redirect_uri", "https://spa.example.com/cb"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
    ])
    .unwrap();
    let page = app
        .client
        .get(app.url(&format!("/oauth/authorize?{q}")))
        .send()
        .await
        .unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let field = |html: &str, name: &str| {
        let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
        html[at..at + html[at..].find('"').unwrap()].to_owned()
    };
    let mut form: Vec<(String, String)> = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "code_challenge",
        "code_challenge_method",
        "csrf",
    ]
    .iter()
    .map(|n| (n.to_string(), field(&html, n)))
    .collect();
    form.push(("username".into(), a.email.clone()));
    let post = |extra: Vec<(&str, String)>| {
        let mut f = form.clone();
        f.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        app.client
            .post(app.url("/oauth/authorize"))
            .header("cookie", cookie.clone())
            .header("x-forwarded-for", "203.0.113.7")
            .form(&f)
            .send()
    };
    // A wrong password: asked for a code like a right one; the valid code then fails.
    let res = post(vec![("password", "guess guess guess".into())])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"otp\""), "{html}");
    let blind = field(&html, "mfa_token");
    let res = post(vec![("mfa_token", blind), ("otp", auth.peek())])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The right password, then the code: the authorization code.
    let res = post(vec![("password", a.password.clone())]).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let token = field(&html, "mfa_token");
    let res = post(vec![("mfa_token", token), ("otp", auth.code())])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let loc = res.headers()["location"].to_str().unwrap();
    assert!(loc.starts_with("https://spa.example.com/cb?code="), "{loc}");
}

/// Past the cap a right and a wrong password leave the same event: the credential-stuffing
/// detector (10 distinct accounts failing from one address) blocks the address either way, so
/// 9 filler failures, a guess and a probe tell nothing (an attacker review found this oracle).
#[tokio::test]
async fn past_the_lock_out_a_right_password_leaves_the_same_traces_as_a_wrong_one_v6_3_8() {
    let app = spawn().await;
    let a = app.register("ann@example.com").await;
    let _ = enrol(&app, &a).await;
    lock(&app, &a.email).await;
    let mut probes = Vec::new();
    for (n, (from, candidate)) in [
        ("198.51.100.10", "guess guess guess 2"),
        ("198.51.100.11", a.password.as_str()),
    ]
    .into_iter()
    .enumerate()
    {
        for i in 0..9 {
            let res = password_from(
                &app,
                from,
                &format!("f{n}x{i}@example.com"),
                "nope nope nope",
            )
            .await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        }
        // The guess itself is answered alike (mfa_required)...
        mfa_token_of(password_from(&app, from, &a.email, candidate).await).await;
        imangor::service::audit::seal::seal_and_detect(&app.state.trail)
            .await
            .unwrap();
        // ...but a probe from the same address (an already-counted filler) tells them apart.
        let probe =
            password_from(&app, from, &format!("f{n}x0@example.com"), "nope nope nope").await;
        probes.push(probe.status());
    }
    assert_eq!(
        probes,
        [StatusCode::FORBIDDEN, StatusCode::FORBIDDEN],
        "a wrong and a right guess both count as failures of their address"
    );
}

/// Past the cap a right password is not rehashed (a second argon2 for the right password alone
/// would be a timing oracle): an imported bcrypt hash stays until a sign-in completes.
#[tokio::test]
async fn past_the_lock_out_a_right_password_is_not_rehashed_v6_3_8() {
    let app = spawn().await;
    let a = app.register("ann@example.com").await;
    let (mut auth, _) = enrol(&app, &a).await;
    let h = bcrypt::hash(&a.password, 4).unwrap();
    let set = format!(
        "update users set password_hash = '{h}' where email = '{}'",
        a.email
    );
    crate::oauth::exec(&app, &set).await;
    lock(&app, &a.email).await;
    let stored = || async {
        let sql = format!(
            "select password_hash from users where email = '{}'",
            a.email
        );
        match &app.state.store.db {
            imangor::db::Db::Sqlite(p) => sqlx::query_scalar::<_, String>(&sql).fetch_one(p).await,
            imangor::db::Db::Postgres(p) => {
                sqlx::query_scalar::<_, String>(&sql).fetch_one(p).await
            }
        }
        .unwrap()
    };
    let token =
        mfa_token_of(password_from(&app, "198.51.100.30", &a.email, &a.password).await).await;
    assert!(stored().await.starts_with("$2"), "rehashed past the cap");
    // The sign-in completes with the code: the hash is upgraded at the next one.
    let res = app
        .token(&[
            ("grant_type", "urn:imangor:grant-type:mfa"),
            ("mfa_token", &token),
            ("otp", &auth.code()),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}
