//! The OAuth 2.1 authorization server (issue 18, API.md "Clients and OAuth flows"): the client
//! registry, the authorization code with PKCE through the sign-in and consent pages, client
//! credentials, refresh tokens bound to their client, scopes, introspection and the metadata.
//! Every refusal of RFC 6749 §4.1.2.1 and §5.2 that applies is asserted with its code.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const SPA: &str = "https://spa.example.com/callback";

/// A PKCE pair: a verifier of 43 characters and its S256 challenge.
pub(crate) fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

/// Registers a client as the admin; panics unless 201.
async fn client(app: &TestApp, admin: &str, body: Value) -> Value {
    let res = app.post_json("/api/v1/clients", Some(admin), &body).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{body}");
    res.json().await.unwrap()
}

/// A server, its admin's token, a public client and a user "ann": where most flows start.
async fn flow(first_party: bool) -> (TestApp, String, String, Account) {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await.access;
    let id = public_client(&app, &admin, first_party).await;
    let ann = app.register("ann@example.com").await;
    (app, admin, id, ann)
}

pub(crate) async fn public_client(app: &TestApp, admin: &str, first_party: bool) -> String {
    let c = client(
        app,
        admin,
        json!({"name": "Sample SPA", "type": "public", "redirect_uris": [SPA], "first_party": first_party}),
    )
    .await;
    c["client_id"].as_str().unwrap().to_owned()
}

/// A browser: its binding cookie, kept between the page and the form.
#[derive(Default)]
pub(crate) struct Browser {
    cookie: Option<String>,
}

impl Browser {
    /// Its binding cookie (`name=value`), once a page set one.
    pub(crate) fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    pub(crate) async fn get(&mut self, app: &TestApp, path_and_query: &str) -> Response {
        let mut r = app.client.get(app.url(path_and_query));
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        let res = r.send().await.unwrap();
        if let Some(sc) = res.headers().get("set-cookie") {
            let sc = sc.to_str().unwrap();
            self.cookie = Some(sc.split(';').next().unwrap().to_owned());
        }
        res
    }

    pub(crate) async fn post(&self, app: &TestApp, form: &[(&str, &str)]) -> Response {
        let mut r = app.client.post(app.url("/oauth/authorize")).form(form);
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        r.send().await.unwrap()
    }
}

/// The value of the hidden input `name` of a page.
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no input {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].replace("&amp;", "&")
}

pub(crate) fn authorize_query(client_id: &str, challenge: &str, scope: Option<&str>) -> String {
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", SPA),
        ("state", "xyz-state"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    if let Some(s) = scope {
        q.push(("scope", s));
    }
    format!(
        "/oauth/authorize?{}",
        serde_urlencoded::to_string(q).unwrap()
    )
}

/// The sign-in form of the page, posted with `account`'s credentials.
pub(crate) async fn sign_in(
    app: &TestApp,
    b: &mut Browser,
    query: &str,
    account: &Account,
) -> Response {
    let page = b.get(app, query).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let fields: Vec<(String, String)> = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "csrf",
    ]
    .iter()
    .map(|n| (n.to_string(), hidden(&html, n)))
    .chain([
        ("username".to_string(), account.email.clone()),
        ("password".to_string(), account.password.clone()),
    ])
    .collect();
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.post(app, &form).await
}

/// The query parameters of a 303's `Location`.
pub(crate) fn location(res: &Response) -> (String, Vec<(String, String)>) {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    let (base, query) = loc.split_once('?').unwrap_or((&loc, ""));
    (base.to_owned(), serde_urlencoded::from_str(query).unwrap())
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A code for `account` through a first-party client's sign-in page.
async fn code(app: &TestApp, client_id: &str, challenge: &str, account: &Account) -> String {
    let mut b = Browser::default();
    let res = sign_in(
        app,
        &mut b,
        &authorize_query(client_id, challenge, None),
        account,
    )
    .await;
    let (base, params) = location(&res);
    assert_eq!(base, SPA);
    param(&params, "code").unwrap().to_owned()
}

pub(crate) async fn redeem(app: &TestApp, client_id: &str, code: &str, verifier: &str) -> Response {
    app.token(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", SPA),
        ("code_verifier", verifier),
        ("client_id", client_id),
    ])
    .await
}

/// Runs one statement on the app's database (to age a code, say).
pub(crate) async fn exec(app: &TestApp, sql: &str) {
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
        imangor::db::Db::Postgres(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
    }
}

pub(crate) fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn admins_register_clients_and_the_secret_is_shown_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await.access;
    let public = client(
        &app,
        &admin,
        json!({"name": "SPA", "type": "public", "redirect_uris": [SPA]}),
    )
    .await;
    assert!(public.get("client_secret").is_none());
    assert_eq!(
        public["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    let conf = client(
        &app,
        &admin,
        json!({"name": "Batch", "type": "confidential", "grant_types": ["client_credentials"], "scopes": ["resources:read"]}),
    )
    .await;
    let secret = conf["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43);
    let list: Value = app
        .get("/api/v1/clients", &admin)
        .await
        .json()
        .await
        .unwrap();
    // The two, after the console's built-in client (console_oauth.rs).
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(
        !list.to_string().contains(secret),
        "a listing never shows a secret"
    );
    // The registry is the admins' alone (API4 / V8.2.1).
    let (_, user) = app.user_with_role("mallory@example.com", "manager").await;
    problem(
        app.get("/api/v1/clients", &user.access).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.post_json(
            "/api/v1/clients",
            Some(&user.access),
            &json!({"name": "x", "type": "public", "redirect_uris": [SPA]}),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // Rotation: the new secret works, the old one no longer does.
    let id = conf["client_id"].as_str().unwrap();
    let rotated: Value = app
        .post_json(
            &format!("/api/v1/clients/{id}/secret"),
            Some(&admin),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let old = app
        .client
        .post(app.url("/api/v1/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    oauth_error(old, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let new = app
        .client
        .post(app.url("/api/v1/token"))
        .basic_auth(id, Some(new_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), StatusCode::OK, "{:?}", new.text().await);
    let e = events(&app).await;
    assert!(
        e.iter()
            .any(|e| e.action == "client.create" && e.outcome == "success")
    );
    assert!(e.iter().any(|e| e.action == "client.rotate_secret"));
}

#[tokio::test]
async fn a_registration_is_checked_field_by_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await.access;
    for (body, fields) in [
        (
            json!({"name": "x", "type": "public", "redirect_uris": ["http://spa.example.com/cb"]}),
            vec!["redirect_uris[0]"],
        ),
        (
            json!({"name": "x", "type": "public", "redirect_uris": ["https://spa.example.com/cb#f"]}),
            vec!["redirect_uris[0]"],
        ),
        (
            json!({"name": "x", "type": "public", "grant_types": ["client_credentials"]}),
            vec!["grant_types"],
        ),
        (
            json!({"name": "x", "type": "public", "redirect_uris": [SPA], "scopes": ["root"]}),
            vec!["scopes"],
        ),
        (
            json!({"name": "x", "type": "secret", "redirect_uris": [SPA]}),
            vec!["type"],
        ),
        (
            json!({"name": "", "type": "public", "redirect_uris": [SPA]}),
            vec!["name"],
        ),
        (
            json!({"name": "x", "type": "public"}),
            vec!["redirect_uris"],
        ),
    ] {
        invalid_fields(
            app.post_json("/api/v1/clients", Some(&admin), &body).await,
            &fields,
        )
        .await;
    }
}

#[tokio::test]
async fn the_code_flow_with_pkce_signs_in_without_the_client_seeing_the_password_v10_4_4() {
    let (app, _, id, ann) = flow(true).await;
    let (verifier, challenge) = pkce();

    let mut b = Browser::default();
    let page = b.get(&app, &authorize_query(&id, &challenge, None)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let h = page.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    // One script, this server's (passkeys), and fetches only here.
    assert!(
        csp.contains("script-src 'self';") && csp.contains("connect-src 'self';"),
        "the page runs only its own script: {csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    let cookie = h["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));

    let res = sign_in(&app, &mut b, &authorize_query(&id, &challenge, None), &ann).await;
    let (base, params) = location(&res);
    assert_eq!(base, SPA);
    assert_eq!(param(&params, "state"), Some("xyz-state"));
    // RFC 9207: the issuer rides on the answer, the same as the tokens' and the metadata's.
    let meta: Value = app
        .get_anon("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(param(&params, "iss"), meta["issuer"].as_str());
    let code = param(&params, "code").unwrap();

    let res = redeem(&app, &id, code, &verifier).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        v["scope"],
        "resources:read resources:write secrets:read secrets:write profile"
    );
    let access = v["access_token"].as_str().unwrap();
    let c = claims(access);
    assert_eq!(c["client_id"], id.as_str());
    assert_eq!(c["sub"], ann.id.as_str());
    assert_eq!(c["iss"], meta["issuer"]);
    let me: Value = app
        .get("/api/v1/users/me", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], ann.id.as_str());
    // The refresh token works for its own client, and answers the same scope.
    let r = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", v["refresh_token"].as_str().unwrap()),
            ("client_id", &id),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["scope"], v["scope"]);
    assert_eq!(
        claims(r["access_token"].as_str().unwrap())["client_id"],
        id.as_str()
    );
    let e = events(&app).await;
    assert!(
        e.iter()
            .any(|e| e.action == "oauth.authorize" && e.outcome == "success")
    );
    assert!(
        e.iter()
            .any(|e| e.action == "oauth.token" && e.outcome == "success")
    );
    assert_eq!(
        app.metric(r#"oauth_grants_total{grant_type="authorization_code",outcome="issued"}"#),
        1
    );
}

#[tokio::test]
async fn a_client_that_is_not_first_party_asks_for_consent() {
    let (app, _, id, ann) = flow(false).await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::default();
    let query = authorize_query(&id, &challenge, Some("resources:read"));
    let res = sign_in(&app, &mut b, &query, &ann).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("name=\"decision\" value=\"approve\""),
        "{html}"
    );
    assert!(html.contains("resources:read") && !html.contains("secrets:read"));
    let ticket = hidden(&html, "ticket");
    let csrf = hidden(&html, "csrf");
    let approve = [
        ("ticket", ticket.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
    ];
    let res = b.post(&app, &approve).await;
    let (_, params) = location(&res);
    let code = param(&params, "code").unwrap();
    assert_eq!(param(&params, "state"), Some("xyz-state"));
    let v: Value = redeem(&app, &id, code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["scope"], "resources:read");
    // A ticket is single use.
    let again = b.post(&app, &approve).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);

    // Denied: access_denied goes back to the client with the state.
    let mut b = Browser::default();
    let html = sign_in(&app, &mut b, &query, &ann)
        .await
        .text()
        .await
        .unwrap();
    let res = b
        .post(
            &app,
            &[
                ("ticket", &hidden(&html, "ticket")),
                ("csrf", &hidden(&html, "csrf")),
                ("decision", "deny"),
            ],
        )
        .await;
    let (_, params) = location(&res);
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("xyz-state"));
    assert!(param(&params, "code").is_none());
}

#[tokio::test]
async fn a_form_not_served_to_this_browser_is_refused_login_csrf() {
    let (app, _, id, ann) = flow(true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let html = b
        .get(&app, &authorize_query(&id, &challenge, None))
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    let form = [
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("redirect_uri", SPA),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("username", ann.email.as_str()),
        ("password", ann.password.as_str()),
    ];
    // No cookie (another site posting the form), and a cookie with another value.
    let mut with_csrf = form.to_vec();
    with_csrf.push(("csrf", &csrf));
    let no_cookie = Browser::default().post(&app, &with_csrf).await;
    assert_eq!(no_cookie.status(), StatusCode::FORBIDDEN);
    assert!(no_cookie.headers().get("location").is_none());
    let mut wrong = form.to_vec();
    wrong.push(("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_eq!(b.post(&app, &wrong).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_unknown_client_or_unregistered_redirect_uri_gets_a_page_never_a_redirect() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await.access;
    let id = public_client(&app, &admin, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let queries = [
        authorize_query(&uuid::Uuid::now_v7().to_string(), &challenge, None),
        authorize_query("not-a-client", &challenge, None),
        authorize_query(&id, &challenge, None).replace("callback", "elsewhere"),
        format!("{}&client_id={id}", authorize_query(&id, &challenge, None)),
        // The redirect URI is required (OAuth 2.1), even with one registered.
        authorize_query(&id, &challenge, None)
            .replace(&format!("&redirect_uri={}", urlencode(SPA)), ""),
    ];
    for query in &queries {
        let res = b.get(&app, query).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(res.headers().get("location").is_none(), "{query}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // Each is recorded: refused pages are how phishing and redirect probing look.
    let refused = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "oauth.authorize" && e.outcome == "failure")
        .count();
    assert_eq!(refused, queries.len());
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned()
}

#[tokio::test]
async fn other_authorization_errors_go_back_to_the_client_with_state_and_iss() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await.access;
    let id = public_client(&app, &admin, true).await;
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let base = authorize_query(&id, &challenge, None);
    for (query, error) in [
        (base.replace("S256", "plain"), "invalid_request"),
        (
            base.replace(&format!("&code_challenge={challenge}"), ""),
            "invalid_request",
        ),
        (
            base.replace("&code_challenge_method=S256", ""),
            "invalid_request",
        ),
        (
            base.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (format!("{base}&scope=admin"), "invalid_scope"),
        (format!("{base}&scope=nonsense"), "invalid_scope"),
    ] {
        let res = b.get(&app, &query).await;
        let (to, params) = location(&res);
        assert_eq!(to, SPA, "{query}");
        assert_eq!(param(&params, "error"), Some(error), "{query}");
        assert_eq!(param(&params, "state"), Some("xyz-state"), "{query}");
        assert!(param(&params, "iss").is_some(), "{query}");
    }
}

#[tokio::test]
async fn a_code_is_bound_to_its_verifier_redirect_uri_and_client_rfc7636() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await.access;
    let id = public_client(&app, &admin, true).await;
    let other = public_client(&app, &admin, true).await;
    let ann = app.register("ann@example.com").await;
    let (verifier, challenge) = pkce();
    let (wrong_verifier, _) = pkce();

    // No verifier: invalid_request, and the code stays usable.
    let c = code(&app, &id, &challenge, &ann).await;
    let res = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", SPA),
            ("client_id", &id),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(
        redeem(&app, &id, &c, &verifier).await.status(),
        StatusCode::OK
    );

    // Each mismatch: invalid_grant.
    let c = code(&app, &id, &challenge, &ann).await;
    oauth_error(
        redeem(&app, &id, &c, &wrong_verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let c = code(&app, &id, &challenge, &ann).await;
    oauth_error(
        redeem(&app, &other, &c, &verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let c = code(&app, &id, &challenge, &ann).await;
    let res = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", "https://spa.example.com/other"),
            ("code_verifier", &verifier),
            ("client_id", &id),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Expired (60 s): aged in the database.
    let c = code(&app, &id, &challenge, &ann).await;
    exec(
        &app,
        "update oauth_codes set expires_at = 0 where used_at is null",
    )
    .await;
    oauth_error(
        redeem(&app, &id, &c, &verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // Unknown client: invalid_client, 401.
    let res = redeem(&app, &uuid::Uuid::now_v7().to_string(), &c, &verifier).await;
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Basic realm="imangor", charset="UTF-8""#
    );
    oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // A disabled account's code.
    let c = code(&app, &id, &challenge, &ann).await;
    let res = app
        .patch_json(
            &format!("/api/v1/users/{}", ann.id),
            &admin,
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    oauth_error(
        redeem(&app, &id, &c, &verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let e = events(&app).await;
    assert!(e.iter().any(|e| e.action == "oauth.token"
        && e.outcome == "failure"
        && e.detail.as_deref().is_some_and(|d| d.contains("verifier"))));
    assert!(
        app.metric(r#"oauth_grants_total{grant_type="authorization_code",outcome="refused"}"#) >= 5
    );
}

#[tokio::test]
async fn a_reused_code_revokes_what_its_first_use_issued_and_raises_a_high_incident() {
    let (app, admin, id, ann) = flow(true).await;
    let (verifier, challenge) = pkce();
    let c = code(&app, &id, &challenge, &ann).await;
    let first: Value = redeem(&app, &id, &c, &verifier).await.json().await.unwrap();
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/users/me", access).await.status(),
        StatusCode::OK
    );
    oauth_error(
        redeem(&app, &id, &c, &verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    invalid_token(app.get("/api/v1/users/me", access).await).await;
    let r = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("client_id", &id),
        ])
        .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Further replays are refused and only counted: one event, one incident.
    for _ in 0..3 {
        oauth_error(
            redeem(&app, &id, &c, &verifier).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    assert_eq!(
        app.metric(r#"security_events_skipped_total{action="oauth.code_reuse"}"#),
        3
    );
    let e = events(&app).await;
    assert_eq!(
        e.iter().filter(|e| e.action == "oauth.code_reuse").count(),
        1
    );
    assert!(e.iter().any(|e| e.action == "oauth.code_reuse"
        && e.outcome == "session_revoked"
        && e.target.as_deref() == Some(ann.id.as_str())));
    let admin_tokens = Tokens {
        access: admin.clone(),
        refresh: String::new(),
    };
    let found =
        crate::incidents::incidents_of(&app, &admin_tokens, "authorization_code_reuse").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let found = &found[0];
    assert_eq!(found["subject"], ann.id.as_str());
    assert_eq!(found["level"], "high");
}

#[tokio::test]
async fn client_credentials_issue_a_scoped_token_for_the_client_and_no_refresh_token() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await.access;
    let c = client(
        &app,
        &admin,
        json!({"name": "Reporter", "type": "confidential", "grant_types": ["client_credentials"], "scopes": ["resources:read", "resources:write"]}),
    )
    .await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    );
    let post = |form: Vec<(&'static str, &'static str)>, auth: Option<(&str, &str)>| {
        let mut r = app.client.post(app.url("/api/v1/token")).form(&form);
        if let Some((i, s)) = auth {
            r = r.basic_auth(i, Some(s));
        }
        r.send()
    };
    let res = post(
        vec![
            ("grant_type", "client_credentials"),
            ("scope", "resources:read"),
        ],
        Some((id, secret)),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert!(v.get("refresh_token").is_none(), "{v}");
    assert_eq!(v["scope"], "resources:read");
    let access = v["access_token"].as_str().unwrap();
    let cl = claims(access);
    assert_eq!(cl["sub"], id);
    assert_eq!(cl["client_id"], id);
    assert_eq!(
        app.get("/api/v1/resources", access).await.status(),
        StatusCode::OK
    );
    // Narrowed to resources:read: writing needs resources:write (RFC 6750 §3.1).
    let res = app
        .post_json(
            "/api/v1/resources",
            Some(access),
            &json!({"title": "t", "content": "c", "is_public": false}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="resources:write""#
    );
    problem(res, StatusCode::FORBIDDEN).await;
    // A scope beyond the client's, a wrong secret, no authentication.
    let res = post(
        vec![
            ("grant_type", "client_credentials"),
            ("scope", "secrets:read"),
        ],
        Some((id, secret)),
    )
    .await
    .unwrap();
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let res = post(
        vec![("grant_type", "client_credentials")],
        Some((id, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
    )
    .await
    .unwrap();
    oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = post(vec![("grant_type", "client_credentials")], None)
        .await
        .unwrap();
    oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(
        events(&app)
            .await
            .iter()
            .any(|e| e.action == "oauth.client_auth" && e.outcome == "failure")
    );
    // A public client may not.
    let public = public_client(&app, &admin, true).await;
    let res = app
        .token(&[("grant_type", "client_credentials"), ("client_id", &public)])
        .await;
    oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // Its service account changes only through the client: no role widened, no status broken.
    for change in [json!({"role": "admin"}), json!({"disabled": true})] {
        let res = app
            .patch_json(&format!("/api/v1/users/{id}"), &admin, &change)
            .await;
        problem(res, StatusCode::CONFLICT).await;
    }
    // Deleting the client ends its tokens at once.
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/clients/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    invalid_token(app.get("/api/v1/resources", access).await).await;
    let res = post(
        vec![("grant_type", "client_credentials")],
        Some((id, secret)),
    )
    .await
    .unwrap();
    oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn a_refresh_token_is_refused_for_any_other_client() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await.access;
    let id = public_client(&app, &admin, true).await;
    let other = public_client(&app, &admin, true).await;
    let ann = app.register("ann@example.com").await;
    let (verifier, challenge) = pkce();
    let c = code(&app, &id, &challenge, &ann).await;
    let v: Value = redeem(&app, &id, &c, &verifier).await.json().await.unwrap();
    let refresh = v["refresh_token"].as_str().unwrap();
    for form in [
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", other.as_str()),
        ],
        vec![("grant_type", "refresh_token"), ("refresh_token", refresh)],
    ] {
        oauth_error(
            app.token(&form).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    // Refused, not spent: its own client still refreshes with it.
    let res = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &id),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // And a password-grant refresh token is not a client's.
    let t = app.login(&ann).await;
    let res = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &t.refresh),
            ("client_id", &id),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(app.refresh(&t.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_scope_narrows_a_role_and_never_widens_it() {
    let app = TestApp::spawn().await;
    let admin_token = app.admin_tokens().await.access;
    let c = client(
        &app,
        &admin_token,
        json!({"name": "Admin tool", "type": "public", "redirect_uris": [SPA], "first_party": true, "scopes": ["profile", "admin", "resources:read"]}),
    )
    .await;
    let id = c["client_id"].as_str().unwrap();
    let (verifier, challenge) = pkce();
    // An admin through a client without `admin` in the request: profile only.
    let mut b = Browser::default();
    let res = sign_in(
        &app,
        &mut b,
        &authorize_query(id, &challenge, Some("profile")),
        &app.admin.clone(),
    )
    .await;
    let (_, params) = location(&res);
    let v: Value = redeem(&app, id, param(&params, "code").unwrap(), &verifier)
        .await
        .json()
        .await
        .unwrap();
    let token = v["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/users/me", token).await.status(),
        StatusCode::OK
    );
    let res = app.get("/api/v1/users", token).await;
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="admin""#
    );
    let p = problem(res, StatusCode::FORBIDDEN).await;
    assert_eq!(p["type"], "urn:imangor:problem:insufficient_scope");
    // A plain user whose token holds `admin`: the role still refuses (403 forbidden, no scope named).
    let ann = app.register("ann@example.com").await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::default();
    let res = sign_in(
        &app,
        &mut b,
        &authorize_query(id, &challenge, Some("admin profile")),
        &ann,
    )
    .await;
    let (_, params) = location(&res);
    let v: Value = redeem(&app, id, param(&params, "code").unwrap(), &verifier)
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .get("/api/v1/users", v["access_token"].as_str().unwrap())
        .await;
    assert!(res.headers().get("www-authenticate").is_none());
    let p = problem(res, StatusCode::FORBIDDEN).await;
    assert_eq!(p["type"], "urn:imangor:problem:forbidden");
    // A password-grant token keeps the whole role.
    assert_eq!(
        app.get("/api/v1/users", &admin_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn confidential_clients_introspect_tokens_rfc7662() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let c = client(
        &app,
        &admin.access,
        json!({"name": "Gateway", "type": "confidential", "grant_types": ["client_credentials"], "scopes": ["resources:read"]}),
    )
    .await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    );
    let introspect = |token: String, auth: Option<(String, String)>| {
        let mut r = app
            .client
            .post(app.url("/api/v1/token/introspect"))
            .form(&[("token", token)]);
        if let Some((i, s)) = auth {
            r = r.basic_auth(i, Some(s));
        }
        r.send()
    };
    let auth = Some((id.to_owned(), secret.to_owned()));
    let own: Value = app
        .client
        .post(app.url("/api/v1/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let own = own["access_token"].as_str().unwrap().to_owned();
    let body =
        |res: reqwest::Result<Response>| async move { res.unwrap().json::<Value>().await.unwrap() };
    let v = body(introspect(own.clone(), auth.clone()).await).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], id);
    assert_eq!(v["client_id"], id);
    assert_eq!(v["scope"], "resources:read");
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["exp"].is_i64() && v["iat"].is_i64() && v["iss"].is_string());
    // Another's token, even a live admin's, is not this client's to learn about.
    let v = body(introspect(admin.access.clone(), auth.clone()).await).await;
    assert_eq!(v, json!({"active": false}));
    app.revoke(&own).await;
    let v = body(introspect(own.clone(), auth.clone()).await).await;
    assert_eq!(v, json!({"active": false}));
    let v = body(introspect("garbage".into(), auth).await).await;
    assert_eq!(v, json!({"active": false}));
    let res = introspect(admin.refresh.clone(), None).await.unwrap();
    oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn the_metadata_documents_name_the_endpoints_and_s256_only() {
    let app = TestApp::spawn_with(&[("IMANGOR_PUBLIC_URL", "https://id.example.com/")]).await;
    // Over https the binding cookie is a __Host- cookie: Secure, path /, no Domain.
    let admin = app.admin_tokens().await.access;
    let id = public_client(&app, &admin, true).await;
    let (_, challenge) = pkce();
    let page = Browser::default()
        .get(&app, &authorize_query(&id, &challenge, None))
        .await;
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-imangor_oauth="), "{cookie}");
    assert!(
        cookie.contains("; Path=/;") && cookie.contains("Secure") && !cookie.contains("Domain"),
        "{cookie}"
    );
    let m: Value = app
        .get_anon("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["issuer"], "https://id.example.com");
    assert_eq!(
        m["authorization_endpoint"],
        "https://id.example.com/oauth/authorize"
    );
    assert_eq!(m["token_endpoint"], "https://id.example.com/api/v1/token");
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert!(
        m["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("client_credentials"))
    );
    // The tokens name the same issuer (RFC 9068 §4).
    let t = app.admin_tokens().await;
    assert_eq!(claims(&t.access)["iss"], "https://id.example.com");
    let r: Value = app
        .get_anon("/.well-known/oauth-protected-resource")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["authorization_servers"],
        json!(["https://id.example.com"])
    );
    assert_eq!(r["resource"], "https://id.example.com/api/v1");
}

#[tokio::test]
async fn the_password_grant_can_be_switched_off() {
    let app = TestApp::spawn_with(&[("IMANGOR_PASSWORD_GRANT", "off")]).await;
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
        ])
        .await;
    let v = oauth_error(res, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("IMANGOR_PASSWORD_GRANT")
    );
    // Its second half too.
    let res = app
        .token(&[
            ("grant_type", "urn:imangor:grant-type:mfa"),
            ("mfa_token", "x"),
            ("otp", "123456"),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    let m: Value = app
        .get_anon("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !m["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("password"))
    );
}

#[tokio::test]
async fn the_operator_manages_clients_from_the_command_line() {
    use crate::process::{base_env, command};
    let dir = tempfile::tempdir().unwrap();
    let envs = base_env(dir.path()).await;
    let run = |args: &'static [&'static str]| {
        let mut c = command(&envs);
        c.args(args);
        async move {
            let out = c.output().await.unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{args:?}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            text
        }
    };
    let out = run(&[
        "client",
        "create",
        "--name",
        "Nightly batch",
        "--type",
        "confidential",
        "--grant",
        "client_credentials",
        "--scope",
        "resources:read",
    ])
    .await;
    // Log lines go to the same stream: the client's line is the one naming its type.
    let id = out
        .lines()
        .find(|l| l.contains(" type=confidential"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret (shown once): "))
        .unwrap()
        .to_owned();
    let db = envs
        .iter()
        .find(|(k, _)| *k == "IMANGOR_DATABASE_URL")
        .unwrap()
        .1
        .clone();
    let app = TestApp::spawn_with(&[("IMANGOR_DATABASE_URL", &db)]).await;
    let grant = |secret: String| {
        app.client
            .post(app.url("/api/v1/token"))
            .basic_auth(id.clone(), Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(
        grant(secret.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    let listed = run(&["client", "list", "--format", "json"]).await;
    let list: Value = listed
        .lines()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_array)
        })
        .unwrap();
    assert_eq!(list[0]["client_id"], id.as_str());
    assert!(!list.to_string().contains(&secret));
    // The command line's changes are the operator's in the audit trail.
    assert!(
        events(&app)
            .await
            .iter()
            .any(|e| e.action == "client.create" && e.actor_id.as_deref() == Some("operator"))
    );
    let mut c = command(&envs);
    let out = c.args(["client", "delete", &id]).output().await.unwrap();
    assert!(out.status.success());
    // The console's built-in client (registered when the server above started) stays.
    let mut c = command(&envs);
    let out = c
        .args(["client", "delete", crate::console_oauth::CONSOLE])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("built in"),
        "{out:?}"
    );
    oauth_error(
        grant(secret).await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let mut c = command(&envs);
    let out = c
        .args([
            "client",
            "create",
            "--name",
            "x",
            "--type",
            "public",
            "--redirect-uri",
            "http://evil.example.com/cb",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("redirect_uris[0]"));
}

#[tokio::test]
async fn the_sign_in_page_feeds_the_login_guard_like_the_password_grant_v6_3_1() {
    let app = TestApp::spawn_with(&[("IMANGOR_LOGIN_LOCK_AFTER", "3")]).await;
    let admin = app.admin_tokens().await.access;
    let id = public_client(&app, &admin, true).await;
    let ann = app.register("ann@example.com").await;
    let (_, challenge) = pkce();
    let wrong = Account {
        password: "not the password at all".into(),
        ..ann.clone()
    };
    let mut b = Browser::default();
    let query = authorize_query(&id, &challenge, None);
    for _ in 0..3 {
        let res = sign_in(&app, &mut b, &query, &wrong).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.text().await.unwrap().contains("not correct"));
    }
    // Locked for this address like the password grant: even the right password is refused.
    let res = sign_in(&app, &mut b, &query, &ann).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    let e = events(&app).await;
    assert_eq!(
        e.iter()
            .filter(|e| e.action == "auth.login" && e.outcome == "failure")
            .count(),
        3
    );
    assert!(
        e.iter()
            .any(|e| e.action == "auth.login" && e.outcome == "throttled")
    );
}

#[tokio::test]
async fn the_sign_in_form_spends_the_token_endpoints_budget() {
    let app = TestApp::spawn_with(&[("IMANGOR_RATE_LIMIT_TOKEN", "3/60")]).await;
    let mut limited = None;
    for i in 0..6 {
        let res = Browser::default()
            .post(&app, &[("username", "x@example.com")])
            .await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, res.headers().get("retry-after").is_some()));
            break;
        }
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "no binding cookie");
    }
    // The fixture's own login spent one of the three.
    assert_eq!(limited, Some((2, true)));
}
