//! The console as a first-party public OAuth client (issue 18 item 7): a built-in client with a
//! fixed id, registered on every start with the redirect URI `{IMANGOR_PUBLIC_URL}/console`,
//! that signs in through the code flow with PKCE (the page never handles a password, ASVS 5.0
//! V10.4.4) and cannot be deleted. The browser test (tests/browser) runs the same flow in Chromium.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::oauth::{Browser, claims, location, param, pkce, sign_in};

/// `service::oauth::CONSOLE_CLIENT_ID`, as documented (README, console/console.js).
pub(crate) const CONSOLE: &str = "c0a5c01e-0000-4000-8000-000000000001";

/// The console's entry in the client list, if there is one.
async fn console_client(app: &TestApp, admin: &str) -> Option<Value> {
    let res = app.get("/api/v1/clients", admin).await;
    let status = res.status();
    let www = res.headers().get("www-authenticate").cloned();
    let body = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{www:?} {body}");
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    let mut found = list.into_iter().filter(|c| c["client_id"] == CONSOLE);
    let first = found.next();
    assert!(found.next().is_none(), "one console client at most");
    first
}

fn authorize_query(redirect_uri: &str, challenge: &str, state: &str) -> String {
    let q = [
        ("response_type", "code"),
        ("client_id", CONSOLE),
        ("redirect_uri", redirect_uri),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    format!(
        "/oauth/authorize?{}",
        serde_urlencoded::to_string(q).unwrap()
    )
}

/// The console's code exchange, as console.js sends it.
async fn exchange(app: &TestApp, redirect: &str, code: &str, verifier: &str) -> Value {
    let res = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
            ("client_id", CONSOLE),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test]
async fn the_console_is_a_built_in_first_party_public_client_registered_at_start() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await.access;
    let c = console_client(&app, &admin)
        .await
        .expect("the console's client is listed");
    assert_eq!(c["name"], "imangor security console");
    assert_eq!(c["type"], "public");
    assert_eq!(c["first_party"], true);
    assert!(c.get("client_secret").is_none());
    let public_url = &app.state.config.public_url;
    assert_eq!(
        c["redirect_uris"],
        serde_json::json!([format!("{public_url}/console")])
    );
    assert_eq!(
        c["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    // Every scope: the role decides what the console's user may do.
    assert_eq!(
        c["scopes"],
        serde_json::json!([
            "resources:read",
            "resources:write",
            "secrets:read",
            "secrets:write",
            "profile",
            "incidents",
            "admin"
        ])
    );
}

/// Every replica upserts the same row at start: a second server on the same database with
/// another public URL leaves one console client, with that URL; a public URL that gives no
/// acceptable redirect URI (plain http on a name) leaves none, and the authorization endpoint
/// then answers the console's id with an error page, never a redirect.
#[tokio::test]
async fn each_start_brings_the_console_client_to_the_public_url_or_removes_it() {
    let app = TestApp::spawn_with(&[("IMANGOR_DATA_KEYS", DATA_KEYS)]).await;
    let admin = app.admin_tokens().await.access;
    assert!(console_client(&app, &admin).await.is_some());
    let db = app.database_url.clone();
    let again = TestApp::spawn_with(&[
        ("IMANGOR_DATABASE_URL", &db),
        ("IMANGOR_DATA_KEYS", DATA_KEYS),
        ("IMANGOR_PUBLIC_URL", "https://imangor.example.com"),
    ])
    .await;
    let c = console_client(&app, &admin).await.unwrap();
    assert_eq!(
        c["redirect_uris"],
        serde_json::json!(["https://imangor.example.com/console"])
    );
    // The same settings again: still one row, unchanged.
    let third = TestApp::spawn_with(&[
        ("IMANGOR_DATABASE_URL", &db),
        ("IMANGOR_DATA_KEYS", DATA_KEYS),
        ("IMANGOR_PUBLIC_URL", "https://imangor.example.com"),
    ])
    .await;
    let same = console_client(&app, &admin).await.unwrap();
    assert_eq!(same, c);
    drop((again, third));
    let plain = TestApp::spawn_with(&[
        ("IMANGOR_DATABASE_URL", &db),
        ("IMANGOR_DATA_KEYS", DATA_KEYS),
        ("IMANGOR_PUBLIC_URL", "http://imangor.example.com"),
    ])
    .await;
    // Its tokens name its own issuer (the public URL): its admin signs in there.
    let plain_admin = plain.admin_tokens().await.access;
    assert!(
        console_client(&plain, &plain_admin).await.is_none(),
        "no console client on a plain-http public URL"
    );
    let (_, challenge) = pkce();
    let res = plain
        .get_anon(&authorize_query(
            "http://imangor.example.com/console",
            &challenge,
            "s",
        ))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.unwrap().contains("the client is unknown"));
}

#[tokio::test]
async fn the_console_client_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await.access;
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/clients/{CONSOLE}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let body = problem(res, StatusCode::CONFLICT).await;
    assert!(
        body["detail"].as_str().unwrap().contains("built in"),
        "{body}"
    );
    assert!(console_client(&app, &admin).await.is_some());
    assert!(
        !events(&app)
            .await
            .iter()
            .any(|e| e.action == "client.delete"),
        "nothing was deleted"
    );
}

/// ASVS 5.0 V10.4.4: the console's sign-in is the code flow with PKCE; the page that asks for
/// the password is the server's, the console gets a code (no consent page: first party), and
/// its refresh token works only with its client id.
#[tokio::test]
async fn the_console_signs_in_through_the_code_flow_with_pkce_v10_4_4() {
    let app = TestApp::spawn().await;
    let admin = app.admin.clone();
    // What the page sends: its own origin (a loopback address matches on any port, RFC 8252 §7.3).
    let redirect = app.url("/console");
    let (verifier, challenge) = pkce();
    let mut b = Browser::default();
    let page = b
        .get(&app, &authorize_query(&redirect, &challenge, "st-1"))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<strong>imangor security console</strong>")
    );
    let res = sign_in(
        &app,
        &mut b,
        &authorize_query(&redirect, &challenge, "st-1"),
        &admin,
    )
    .await;
    let (base, params) = location(&res);
    assert_eq!(base, redirect, "straight back to the console, no consent");
    assert_eq!(param(&params, "state"), Some("st-1"));
    let meta: Value = app
        .get_anon("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(param(&params, "iss"), meta["issuer"].as_str());
    let code = param(&params, "code").unwrap();
    let tokens = exchange(&app, &redirect, code, &verifier).await;
    assert_eq!(
        tokens["scope"],
        "resources:read resources:write secrets:read secrets:write profile incidents admin"
    );
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["client_id"], CONSOLE);
    // The role decides: the admin reads the audit trail with it.
    let me: Value = app
        .get("/api/v1/users/me", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], admin.email);
    assert_eq!(
        app.get("/api/v1/audit?limit=1", access).await.status(),
        StatusCode::OK
    );
    // Its refresh token is the console's: refused without the client id, taken with it.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let without = app
        .token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    oauth_error(without, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let with = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", CONSOLE),
        ])
        .await;
    assert_eq!(with.status(), StatusCode::OK);
    // A manager signs in the same way; the role still narrows what the token does.
    let (manager, _) = app.user_with_role("max@example.com", "manager").await;
    let (verifier, challenge) = pkce();
    let res = sign_in(
        &app,
        &mut Browser::default(),
        &authorize_query(&redirect, &challenge, "st-2"),
        &manager,
    )
    .await;
    let (_, params) = location(&res);
    let tokens = exchange(&app, &redirect, param(&params, "code").unwrap(), &verifier).await;
    let access = tokens["access_token"].as_str().unwrap();
    problem(
        app.get("/api/v1/audit?limit=1", access).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

/// A public URL on `localhost` (the development origin passkeys need: browsers refuse an IP
/// address as WebAuthn relying party id) registers the console with that redirect URI, exactly,
/// and its sign-in page opens; a registered client still may not use plain http on a name.
#[tokio::test]
async fn a_public_url_on_localhost_keeps_the_console_signing_in() {
    let app = TestApp::spawn_with(&[("IMANGOR_PUBLIC_URL", "http://localhost:8000")]).await;
    let admin = app.admin_tokens().await.access;
    let c = console_client(&app, &admin)
        .await
        .expect("the console client");
    assert_eq!(
        c["redirect_uris"],
        serde_json::json!(["http://localhost:8000/console"])
    );
    let (_, challenge) = pkce();
    let page = app
        .get_anon(&authorize_query(
            "http://localhost:8000/console",
            &challenge,
            "s",
        ))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    // Another port is another redirect URI: an error page, never a redirect.
    let other = app
        .get_anon(&authorize_query(
            "http://localhost:8001/console",
            &challenge,
            "s",
        ))
        .await;
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    assert!(other.headers().get("location").is_none());
    let reg = app
        .post_json(
            "/api/v1/clients",
            Some(&admin),
            &serde_json::json!({"name": "dev", "type": "public",
                "redirect_uris": ["http://localhost:5000/cb"], "scopes": ["profile"]}),
        )
        .await;
    assert_eq!(reg.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
