//! Multi-factor authentication (issue 19, API.md "Multi-factor authentication"): TOTP enrolment,
//! signing in with a second factor through the password grant and the sign-in page, recovery
//! codes, replay and guessing refused (ASVS V6.3.3, V6.5.1, V6.5.2, V6.6.x).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// RFC 4648 base32 (no padding) back to bytes.
fn unbase32(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

/// An authenticator app: the secret, and the last step it gave a code for.
pub(crate) struct App {
    pub(crate) secret: Vec<u8>,
    last: i64,
}

impl App {
    fn now_step() -> i64 {
        imangor::auth::totp::step_of(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        )
    }

    /// A code the server has not accepted yet and still accepts (within one step of now).
    pub(crate) fn code(&mut self) -> String {
        let step = (Self::now_step() - 1).max(self.last + 1);
        assert!(
            step <= Self::now_step() + 1,
            "no fresh code left in this window"
        );
        self.last = step;
        format!("{:06}", imangor::auth::totp::code_at(&self.secret, step))
    }

    /// The code `code` would give next, without taking it (for a request that will be refused).
    pub(crate) fn peek(&self) -> String {
        let step = (Self::now_step() - 1).max(self.last + 1);
        format!("{:06}", imangor::auth::totp::code_at(&self.secret, step))
    }

    /// Six digits that are no code of this window.
    pub(crate) fn wrong(&self, n: u32) -> Vec<String> {
        let valid: Vec<String> = (-1..=1)
            .map(|d| {
                format!(
                    "{:06}",
                    imangor::auth::totp::code_at(&self.secret, Self::now_step() + d)
                )
            })
            .collect();
        (0u32..)
            .map(|i| format!("{:06}", (i * 111_111 + 7) % 1_000_000))
            .filter(|c| !valid.contains(c))
            .take(n as usize)
            .collect()
    }

    /// A code that was already used.
    fn replayed(&self) -> String {
        format!(
            "{:06}",
            imangor::auth::totp::code_at(&self.secret, self.last)
        )
    }
}

/// Enrols `a` in TOTP; returns its authenticator and the recovery codes.
pub(crate) async fn enrol(app: &TestApp, a: &Account) -> (App, Vec<String>) {
    let (auth, codes, _) = enrol_with_token(app, a).await;
    (auth, codes)
}

/// Starts an enrolment with `a`'s token; the answer, whose URI holds the secret.
async fn begin(app: &TestApp, a: &Account, access: &str) -> Value {
    let res = app
        .post_json(
            "/api/v1/users/me/mfa/totp",
            Some(access),
            &json!({"current_password": a.password}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    let (secret, uri) = (
        v["secret"].as_str().unwrap(),
        v["otpauth_uri"].as_str().unwrap(),
    );
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("?secret={secret}&")), "{uri}");
    v
}

/// `enrol`, with the password-only access token that enrolled (its session is the one kept).
async fn enrol_with_token(app: &TestApp, a: &Account) -> (App, Vec<String>, String) {
    let t = app.login(a).await;
    let v = begin(app, a, &t.access).await;
    let secret = v["secret"].as_str().unwrap();
    let mut auth = App {
        secret: unbase32(secret),
        last: 0,
    };
    assert_eq!(auth.secret.len(), 20);
    let res = app
        .post_json(
            "/api/v1/users/me/mfa/totp/confirm",
            Some(&t.access),
            &json!({"code": auth.code()}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    let codes: Vec<String> = v["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (auth, codes, t.access)
}

async fn password_grant(app: &TestApp, a: &Account) -> reqwest::Response {
    app.token(&[
        ("grant_type", "password"),
        ("username", &a.email),
        ("password", &a.password),
    ])
    .await
}

/// The password grant's answer for an account with a second factor: its `mfa_token`.
async fn mfa_token(app: &TestApp, a: &Account) -> String {
    let res = password_grant(app, a).await;
    let v = oauth_error(res, StatusCode::BAD_REQUEST, "mfa_required").await;
    assert!(v.get("access_token").is_none());
    v["mfa_token"].as_str().unwrap().to_owned()
}

async fn mfa_grant(app: &TestApp, token: &str, field: &str, code: &str) -> reqwest::Response {
    app.token(&[
        ("grant_type", "urn:imangor:grant-type:mfa"),
        ("mfa_token", token),
        (field, code),
    ])
    .await
}

pub(crate) fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn an_enrolled_account_signs_in_only_with_its_second_factor_v6_3_3() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let before = app.login(&a).await;
    assert_eq!(claims(&before.access)["amr"], json!(["pwd"]));
    let (mut auth, codes) = enrol(&app, &a).await;
    assert_eq!(codes.len(), 10);
    // Sessions opened with the password alone ended with the enrolment (V6.3.3): a thief's
    // token from before does not outlive it, nor its refresh token.
    invalid_token(app.get("/api/v1/users/me", &before.access).await).await;
    oauth_error(
        app.refresh(&before.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    // The password alone gets no tokens, only the mfa_token.
    let token = mfa_token(&app, &a).await;
    let res = mfa_grant(&app, &token, "otp", &auth.code()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    let c = claims(v["access_token"].as_str().unwrap());
    assert_eq!(c["amr"], json!(["pwd", "mfa"]));
    let status: Value = app
        .get("/api/v1/users/me/mfa", v["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"totp": true, "passkeys": [], "recovery_codes_left": 10})
    );
    assert!(c["auth_time"].is_i64());
    // The refresh keeps how the user signed in.
    let r: Value = app
        .refresh(v["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims(r["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "mfa"])
    );

    // An mfa_token is single use; a code works once (V6.5.1).
    oauth_error(
        mfa_grant(&app, &token, "otp", &auth.replayed()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let token = mfa_token(&app, &a).await;
    oauth_error(
        mfa_grant(&app, &token, "otp", &auth.replayed()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let e = events(&app).await;
    assert!(e.iter().any(|e| {
        e.action == "mfa.totp_enroll"
            && e.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("confirmed"))
    }));
    assert!(
        e.iter()
            .any(|e| e.action == "auth.login" && e.detail.as_deref() == Some("password + TOTP"))
    );
    assert!(
        e.iter()
            .any(|e| e.action == "mfa.verify" && e.outcome == "failure")
    );
}

#[tokio::test]
async fn a_recovery_code_signs_in_once_and_is_recorded_v6_5_2() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let (_, codes) = enrol(&app, &a).await;
    // About 119 bits each (24 of 31 symbols), distinct.
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    assert!(
        codes
            .iter()
            .all(|c| c.len() == 27 && c.split('-').all(|g| g.len() == 6)),
        "{codes:?}"
    );
    let token = mfa_token(&app, &a).await;
    let res = mfa_grant(&app, &token, "recovery_code", &codes[3].to_uppercase()).await;
    assert_eq!(res.status(), StatusCode::OK, "any case");
    let token = mfa_token(&app, &a).await;
    oauth_error(
        mfa_grant(&app, &token, "recovery_code", &codes[3]).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let t: Value = mfa_grant(&app, &token, "recovery_code", &codes[4])
        .await
        .json()
        .await
        .unwrap();
    let status: Value = app
        .get("/api/v1/users/me/mfa", t["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["recovery_codes_left"], 8);
    let e = events(&app).await;
    let used: Vec<_> = e
        .iter()
        .filter(|e| e.action == "mfa.recovery_use")
        .collect();
    assert_eq!(used.len(), 2);
    assert_eq!(used[0].severity, "warning");
}

#[tokio::test]
async fn five_wrong_codes_end_an_mfa_token_and_an_old_one_expires() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let (auth, _) = enrol(&app, &a).await;
    let token = mfa_token(&app, &a).await;
    for wrong in auth.wrong(5) {
        oauth_error(
            mfa_grant(&app, &token, "otp", &wrong).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    // Ended by the fifth: even the right code is refused now.
    oauth_error(
        mfa_grant(&app, &token, "otp", &auth.peek()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // An mfa_token past its five minutes (aged in the database).
    let token = mfa_token(&app, &a).await;
    crate::keys::sql(&app.database_url, "update mfa_tokens set expires_at = 0").await;
    oauth_error(
        mfa_grant(&app, &token, "otp", &auth.peek()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let wrong = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "mfa.verify" && e.outcome == "failure")
        .count();
    assert_eq!(wrong, 5);
}

#[tokio::test]
async fn enrolment_and_removal_need_the_current_password_and_a_code() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let t = app.login(&a).await;
    let res = app
        .post_json(
            "/api/v1/users/me/mfa/totp",
            Some(&t.access),
            &json!({"current_password": "wrong password here"}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN).await;
    let res = app
        .post_json(
            "/api/v1/users/me/mfa/totp/confirm",
            Some(&t.access),
            &json!({"code": "123456"}),
        )
        .await;
    problem(res, StatusCode::CONFLICT).await;
    let (mut auth, codes, enrolled) = enrol_with_token(&app, &a).await;
    // The password-only session of before ended with the enrolment.
    invalid_token(app.get("/api/v1/users/me", &t.access).await).await;
    let t = Tokens {
        access: enrolled,
        refresh: String::new(),
    };
    // A second enrolment while one is confirmed is refused.
    let res = app
        .post_json(
            "/api/v1/users/me/mfa/totp",
            Some(&t.access),
            &json!({"current_password": a.password}),
        )
        .await;
    problem(res, StatusCode::CONFLICT).await;
    // Changing the second factor needs a token whose user passed it: the password-only
    // token that enrolled is refused (RFC 9470), a fresh one with the code is not.
    let res = app
        .post_json(
            "/api/v1/users/me/mfa/recovery-codes",
            Some(&t.access),
            &json!({"current_password": a.password, "code": auth.peek()}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // (Signed in with a recovery code: the window holds only three TOTP codes.)
    let token = mfa_token(&app, &a).await;
    let v: Value = mfa_grant(&app, &token, "recovery_code", &codes[0])
        .await
        .json()
        .await
        .unwrap();
    let strong = v["access_token"].as_str().unwrap().to_owned();
    // New recovery codes: the old ones stop working.
    let res = app
        .post_json(
            "/api/v1/users/me/mfa/recovery-codes",
            Some(&strong),
            &json!({"current_password": a.password, "code": auth.code()}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let remove = |body: Value| {
        app.client
            .delete(app.url("/api/v1/users/me/mfa/totp"))
            .bearer_auth(&strong)
            .json(&body)
            .send()
    };
    let res = remove(json!({"current_password": a.password, "code": auth.replayed()}))
        .await
        .unwrap();
    invalid_fields(res, &["code"]).await;
    assert!(
        events(&app)
            .await
            .iter()
            .any(|e| e.action == "mfa.verify" && e.outcome == "failure"),
        "a wrong code on removal is recorded"
    );
    let res = remove(json!({"current_password": a.password, "code": auth.code()}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Back to the password alone.
    app.login(&a).await;
}

#[tokio::test]
async fn the_sign_in_page_asks_for_the_second_factor() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let (mut auth, _) = enrol(&app, &a).await;
    let admin = app.admin_tokens().await.access;
    let c: Value = app
        .post_json("/api/v1/clients", Some(&admin), &json!({"name": "SPA", "type": "public", "redirect_uris": ["https://spa.example.com/cb"], "first_party": true}))
        .await
        .json()
        .await
        .unwrap();
    let id = c["client_id"].as_str().unwrap();
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let q = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", id),
        ("redirect_uri", "https://spa.example.com/cb"),
        ("code_challenge", challenge),
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
    let csrf = field(&html, "csrf");
    let mut form: Vec<(String, String)> = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .map(|n| (n.to_string(), field(&html, n)))
    .collect();
    form.push(("csrf".into(), csrf));
    let post = |extra: Vec<(String, String)>| {
        let mut f = form.clone();
        f.extend(extra);
        app.client
            .post(app.url("/oauth/authorize"))
            .header("cookie", cookie.clone())
            .form(&f)
            .send()
    };
    let res = post(vec![
        ("username".into(), a.email.clone()),
        ("password".into(), a.password.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "no code for the password alone"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"otp\""), "{html}");
    let token = field(&html, "mfa_token");
    // The page's token is the page's, for this browser: the MFA grant refuses it.
    oauth_error(
        mfa_grant(&app, &token, "otp", &auth.peek()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let wrong = auth.wrong(1).remove(0);
    let res = post(vec![
        ("mfa_token".into(), token.clone()),
        ("otp".into(), wrong),
    ])
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = post(vec![
        ("mfa_token".into(), token),
        ("otp".into(), auth.code()),
    ])
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let loc = res.headers()["location"].to_str().unwrap();
    assert!(loc.starts_with("https://spa.example.com/cb?code="), "{loc}");
}

#[tokio::test]
async fn expired_mfa_tokens_are_pruned() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    enrol(&app, &a).await;
    let _old = mfa_token(&app, &a).await;
    let _live = mfa_token(&app, &a).await;
    crate::keys::sql(
        &app.database_url,
        "update mfa_tokens set expires_at = 1 where failures = 0 and token_hash = (select min(token_hash) from mfa_tokens)",
    )
    .await;
    let pruned =
        imangor::db::sessions::prune(&app.state.store.db, imangor::domain::Timestamp::now())
            .await
            .unwrap();
    assert!(pruned >= 1);
    let left: i64 = match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => sqlx::query_scalar("select count(*) from mfa_tokens")
            .fetch_one(p)
            .await
            .unwrap(),
        imangor::db::Db::Postgres(p) => sqlx::query_scalar("select count(*) from mfa_tokens")
            .fetch_one(p)
            .await
            .unwrap(),
    };
    assert_eq!(left, 1, "the live one stays");
}

/// Signs `a` in with its second factor; returns the access token.
async fn with_second_factor(app: &TestApp, a: &Account, auth: &mut App) -> String {
    let token = mfa_token(app, a).await;
    let v: Value = mfa_grant(app, &token, "otp", &auth.code())
        .await
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sensitive_operations_need_a_recent_second_factor_rfc9470() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann@example.com").await;
    let admin = app.admin.clone();
    let (mut auth, _) = enrol(&app, &admin).await;
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", &admin.email),
            ("password", &admin.password),
        ])
        .await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "the admin now needs the second factor"
    );
    let token = with_second_factor(&app, &admin, &mut auth).await;
    let res = app
        .patch_json(
            &format!("/api/v1/users/{}", ann.id),
            &token,
            &json!({"role": "manager"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK, "a fresh second factor");
    // The same token once its second factor is old (auth_time beyond 15 minutes): a token
    // re-signed by the server's own keys with an old auth_time stands for it.
    let stale = {
        let keys = &app.state.identity.tokens;
        let v = keys
            .verify(&token, imangor::domain::Timestamp::now())
            .unwrap();
        let subject = imangor::auth::token::Subject {
            user: v.user,
            role: imangor::domain::Role::Admin,
            session: v.session,
            client: None,
            scopes: None,
            signed_in: Some(imangor::auth::token::SignedInWith {
                method: imangor::domain::SignInMethod::PasswordAndCode,
                at: imangor::domain::Timestamp::from_micros(
                    imangor::domain::Timestamp::now().micros() - 16 * 60 * 1_000_000,
                ),
            }),
        };
        keys.issue(&subject, imangor::domain::Timestamp::now())
            .unwrap()
            .0
    };
    let res = app
        .patch_json(
            &format!("/api/v1/users/{}", ann.id),
            &stale,
            &json!({"role": "user"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer error="insufficient_user_authentication", error_description="a recent second factor is required", max_age=900"#
    );
    let p = problem(res, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        p["type"],
        "urn:imangor:problem:insufficient_user_authentication"
    );
    // Not sensitive: reading goes on with the old second factor.
    assert_eq!(
        app.get("/api/v1/users", &stale).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_role_that_must_have_a_second_factor_signs_in_only_to_enrol_one() {
    let app = TestApp::spawn_with(&[("IMANGOR_MFA_REQUIRED_ROLES", "manager")]).await;
    let (m, _) = app.user_with_role("mia@example.com", "manager").await;
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", &m.email),
            ("password", &m.password),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["scope"], "profile", "enrolment only");
    let t = v["access_token"].as_str().unwrap();
    let res = app.get("/api/v1/incidents", t).await;
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="incidents""#
    );
    // It can enrol; then its sign-ins need the second factor and reach the role's actions.
    let (mut auth, _) = enrol(&app, &m).await;
    let full = with_second_factor(&app, &m, &mut auth).await;
    assert_eq!(
        app.get("/api/v1/incidents", &full).await.status(),
        StatusCode::OK
    );
    // A plain user is not asked.
    let u = app.register("ulla@example.com").await;
    let t = app.login(&u).await;
    assert_eq!(claims(&t.access)["scope"], Value::Null);
}

#[tokio::test]
async fn a_right_password_does_not_wipe_the_count_of_wrong_codes_v6_3_1() {
    let app = TestApp::spawn_with(&[("IMANGOR_LOGIN_LOCK_AFTER", "4")]).await;
    let a = app.register("ann@example.com").await;
    let (auth, _) = enrol(&app, &a).await;
    let mut locked = false;
    // New mfa_tokens from the right password do not reset the guard: guessing locks.
    for w in auth.wrong(10) {
        let res = password_grant(&app, &a).await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            locked = true;
            break;
        }
        let token = res.json::<Value>().await.unwrap()["mfa_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = mfa_grant(&app, &token, "otp", &w).await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            locked = true;
            break;
        }
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    assert!(
        locked,
        "ten rounds of the right password and a wrong code never locked"
    );
}

#[tokio::test]
async fn parallel_guesses_on_one_mfa_token_are_at_most_five() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let (auth, _) = enrol(&app, &a).await;
    let token = mfa_token(&app, &a).await;
    let mut all = tokio::task::JoinSet::new();
    for g in auth.wrong(20) {
        let (client, url, token) = (app.client.clone(), app.url("/api/v1/token"), token.clone());
        all.spawn(async move {
            let form = [
                ("grant_type", "urn:imangor:grant-type:mfa"),
                ("mfa_token", token.as_str()),
                ("otp", g.as_str()),
            ];
            client.post(url).form(&form).send().await.unwrap().status()
        });
    }
    let answers = all.join_all().await;
    assert!(
        answers.iter().all(|s| *s == StatusCode::BAD_REQUEST),
        "{answers:?}"
    );
    let judged = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "mfa.verify" && e.outcome == "failure")
        .count();
    assert!(judged <= 5, "{judged} codes judged on one token");
}

#[tokio::test]
async fn guessing_second_factor_codes_raises_a_high_incident() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let a = app.register("ann@example.com").await;
    let (auth, _) = enrol(&app, &a).await;
    for chunk in auth.wrong(10).chunks(5) {
        let token = mfa_token(&app, &a).await;
        for w in chunk {
            let res = mfa_grant(&app, &token, "otp", w).await;
            oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
        }
    }
    let found = crate::incidents::incidents_of(&app, &admin, "totp_guessing").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["level"], "high");
    assert_eq!(found[0]["subject"], a.id.as_str());
}

#[tokio::test]
async fn the_access_review_names_privileged_accounts_without_a_second_factor() {
    let app = TestApp::spawn().await;
    let (m, _) = app.user_with_role("mia@example.com", "manager").await;
    let flags_of = |review: &Value, email: &str| {
        review["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["email"] == email)
            .map(|i| i["flags"].clone())
            .unwrap()
    };
    let admin = app.admin_tokens().await.access;
    let before: Value = app
        .get("/api/v1/access-review", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        flags_of(&before, &m.email),
        json!(["manager", "no_second_factor"])
    );
    enrol(&app, &m).await;
    let after: Value = app
        .get("/api/v1/access-review", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(flags_of(&after, &m.email), json!(["manager"]));
}

/// The console shows the enrolment as a QR code the server drew (issue 19 item 8): a complete,
/// inert `<svg>` beside the secret and the `otpauth://` URI that holds it.
#[tokio::test]
async fn the_enrolment_answer_holds_the_otpauth_uri_as_an_inert_svg_qr_code() {
    let app = TestApp::spawn().await;
    let a = app.register("qr@example.com").await;
    let t = app.login(&a).await;
    // The secret is in the otpauth URI (checked by `begin`).
    let v = begin(&app, &a, &t.access).await;
    let secret = v["secret"].as_str().unwrap();
    let uri = v["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.contains("qr%40example.com"),
        "the account in the label: {uri}"
    );
    let svg = v["qr_svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 "));
    assert!(svg.ends_with("</svg>"));
    // One unit per module: a version 1 to 40 symbol (21 to 177 modules) and a 4-module margin.
    let side: i32 = svg
        .split("viewBox=\"0 0 ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        (21 + 8..=177 + 8).contains(&side) && (side - 8 - 17) % 4 == 0,
        "{side}"
    );
    // The top row of the first finder pattern, right after the quiet zone.
    assert!(svg.contains("<rect ") && svg.contains("<path d=\"M4,4h7v1h-7z"));
    let lower = svg.to_ascii_lowercase();
    for needle in ["<script", "style", "href", " on", "javascript:"] {
        assert!(!lower.contains(needle), "{needle} in qr_svg");
    }
    // The secret itself is not written into the picture as text.
    assert!(!svg.contains(secret));
}

/// Admins see in the users list which accounts have a second factor (issue 19 item 8, V6.3.3).
#[tokio::test]
async fn the_users_list_says_which_accounts_have_a_second_factor() {
    let app = TestApp::spawn().await;
    let (m, _) = app.user_with_role("max@example.com", "manager").await;
    let admin = app.admin_tokens().await.access;
    let second_factor = |list: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["email"] == m.email.as_str())
            .map(|i| i["second_factor"].clone())
            .unwrap()
    };
    let before: Value = app.get("/api/v1/users", &admin).await.json().await.unwrap();
    assert_eq!(second_factor(&before), json!(false));
    enrol(&app, &m).await;
    let after: Value = app.get("/api/v1/users", &admin).await.json().await.unwrap();
    assert_eq!(second_factor(&after), json!(true));
    // The search answers the same shape.
    let found: Value = app
        .get("/api/v1/users?q=max%40", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second_factor(&found), json!(true));
}
