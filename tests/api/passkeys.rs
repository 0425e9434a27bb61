//! Passkeys (issue 19 item 3, API.md "Multi-factor authentication"): registration over the API,
//! sign-in on the OAuth pages with a passkey alone or as the second factor after a password,
//! single-use challenges bound to their ceremony, counters, and step-up for changes (ASVS
//! V6.3.3 multi-factor and phishing resistant, V6.7.2 single-use challenges). The authenticator is software: a P-256 key of aws-lc and CBOR
//! written by hand, as a browser's platform authenticator would answer.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::oauth::{
    Browser, authorize_query, claims, hidden, location, param, pkce, public_client, redeem,
};

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// CBOR (RFC 8949), the few shapes WebAuthn uses.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(&'static str),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((n as u16).to_be_bytes());
            }
            _ => {
                out.push(m | 26);
                out.extend((n as u32).to_be_bytes());
            }
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(i) if *i >= 0 => Self::head(out, 0, *i as u64),
            Cbor::Int(i) => Self::head(out, 1, (-1 - *i) as u64),
            Cbor::Bytes(b) => {
                Self::head(out, 2, b.len() as u64);
                out.extend(b);
            }
            Cbor::Text(t) => {
                Self::head(out, 3, t.len() as u64);
                out.extend(t.as_bytes());
            }
            Cbor::Map(m) => {
                Self::head(out, 5, m.len() as u64);
                for (k, v) in m {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

/// A software authenticator holding one discoverable credential.
struct Authenticator {
    key: EcdsaKeyPair,
    id: Vec<u8>,
    counter: u32,
    /// Its user handle, once registered.
    user: Vec<u8>,
    /// The origin it reports (a browser's: the page's).
    origin: String,
}

impl Authenticator {
    fn new(app: &TestApp) -> Self {
        let mut id = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut id).unwrap();
        Self {
            key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap(),
            id,
            counter: 0,
            user: Vec::new(),
            // What a browser on the public URL reports.
            origin: imangor::config::public_origin(&app.state.config.public_url),
        }
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.public_key().as_ref();
        Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(3), Cbor::Int(-7)),
            (Cbor::Int(-1), Cbor::Int(1)),
            (Cbor::Int(-2), Cbor::Bytes(point[1..33].to_vec())),
            (Cbor::Int(-3), Cbor::Bytes(point[33..65].to_vec())),
        ])
        .bytes()
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// `navigator.credentials.create` for these options, as `PublicKeyCredential.toJSON()`.
    fn create(&mut self, options: &Value) -> Value {
        let rp_id = options["rp"]["id"].as_str().unwrap();
        self.user = unb64(options["user"]["id"].as_str().unwrap());
        let mut auth_data = sha256(rp_id.as_bytes());
        auth_data.push(UP | UV | AT);
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]);
        auth_data.extend((self.id.len() as u16).to_be_bytes());
        auth_data.extend(&self.id);
        auth_data.extend(self.cose_key());
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(vec![])),
            (Cbor::Text("authData"), Cbor::Bytes(auth_data)),
        ])
        .bytes();
        let cdj = self.client_data("webauthn.create", options["challenge"].as_str().unwrap());
        json!({
            "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
            "response": {"clientDataJSON": b64(&cdj), "attestationObject": b64(&attestation),
                "transports": ["internal"]},
            "authenticatorAttachment": "platform", "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get` for these options with these flags: the form fields the
    /// sign-in page's script posts.
    fn get(&mut self, options: &Value, flags: u8) -> Vec<(String, String)> {
        self.counter += 1;
        let rp_id = options["rpId"].as_str().unwrap();
        let mut auth_data = sha256(rp_id.as_bytes());
        auth_data.push(flags);
        auth_data.extend(self.counter.to_be_bytes());
        let cdj = self.client_data("webauthn.get", options["challenge"].as_str().unwrap());
        let mut signed = auth_data.clone();
        signed.extend(sha256(&cdj));
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self.key.sign(&rng, &signed).unwrap();
        vec![
            ("passkey_id".into(), b64(&self.id)),
            ("passkey_client_data".into(), b64(&cdj)),
            ("passkey_authenticator_data".into(), b64(&auth_data)),
            ("passkey_signature".into(), b64(sig.as_ref())),
            ("passkey_user_handle".into(), b64(&self.user)),
        ]
    }
}

/// Registers a passkey for the account behind `token`; the authenticator holds it.
async fn register(app: &TestApp, a: &Account, token: &str) -> Authenticator {
    let mut auth = Authenticator::new(app);
    let options = options(app, a, token).await;
    let res = app
        .post_json(
            "/api/v1/users/me/passkeys",
            Some(token),
            &json!({"name": "laptop", "credential": auth.create(&options)}),
        )
        .await;
    let status = res.status();
    assert_eq!(status, StatusCode::CREATED, "{}", res.text().await.unwrap());
    auth
}

async fn options(app: &TestApp, a: &Account, token: &str) -> Value {
    let res = app
        .post_json(
            "/api/v1/users/me/passkeys/options",
            Some(token),
            &json!({"current_password": a.password}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// A sign-in page of a first-party client, opened by a browser: the browser, its form's fields
/// and the PKCE verifier.
struct Page {
    browser: Browser,
    fields: Vec<(String, String)>,
    verifier: String,
    client: String,
}

impl Page {
    async fn open(app: &TestApp) -> Page {
        let admin = app.admin_tokens().await.access;
        let client = public_client(app, &admin, true).await;
        let (verifier, challenge) = pkce();
        let mut browser = Browser::default();
        let res = browser
            .get(app, &authorize_query(&client, &challenge, None))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        let html = res.text().await.unwrap();
        assert!(
            html.contains("<script src=\"/console/passkey.js\""),
            "{html}"
        );
        assert!(html.contains("id=\"passkey-form\""), "{html}");
        let fields = [
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
        .collect();
        Page {
            browser,
            fields,
            verifier,
            client,
        }
    }

    fn csrf(&self) -> String {
        self.fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .unwrap()
            .1
            .clone()
    }

    /// What the page's script fetches: request options bound to this browser.
    async fn options(&self, app: &TestApp, mfa_token: Option<&str>) -> Response {
        let mut form = vec![("csrf".to_owned(), self.csrf())];
        if let Some(t) = mfa_token {
            form.push(("mfa_token".into(), t.to_owned()));
        }
        let mut r = app.client.post(app.url("/oauth/passkey")).form(&form);
        if let Some(c) = self.browser.cookie() {
            r = r.header("cookie", c);
        }
        r.send().await.unwrap()
    }

    async fn post(&self, app: &TestApp, extra: Vec<(String, String)>) -> Response {
        let all: Vec<(String, String)> = self.fields.iter().cloned().chain(extra).collect();
        let form: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.browser.post(app, &form).await
    }

    /// The access token of a code the page's sign-in gave.
    async fn tokens(&self, app: &TestApp, res: &Response) -> Value {
        let (_, params) = location(res);
        let code = param(&params, "code").unwrap();
        let res = redeem(app, &self.client, code, &self.verifier).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }
}

#[tokio::test]
async fn a_passkey_is_registered_with_the_current_password_and_listed_v6_3_3() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let token = app.login(&a).await.access;
    // The options: a discoverable credential with user verification, no attestation, the
    // account's id (no personal data) as user handle, this server as relying party.
    let o = options(&app, &a, &token).await;
    assert_eq!(o["rp"]["id"], "127.0.0.1");
    assert_eq!(o["attestation"], "none");
    assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(unb64(o["user"]["id"].as_str().unwrap()).len(), 16);
    assert_eq!(o["user"]["name"], "ann@example.com");
    assert_eq!(unb64(o["challenge"].as_str().unwrap()).len(), 32);
    let algs: Vec<i64> = o["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alg"].as_i64().unwrap())
        .collect();
    assert_eq!(algs, [-7, -8, -257]);
    // A wrong current password gets no options.
    let res = app
        .post_json(
            "/api/v1/users/me/passkeys/options",
            Some(&token),
            &json!({"current_password": "not the password at all"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let mut auth = Authenticator::new(&app);
    let credential = auth.create(&o);
    // An answer from another origin (a phishing page) is refused, and it spent the challenge.
    let mut phished = Authenticator::new(&app);
    phished.origin = "https://imangor.example.net".into();
    let o2 = options(&app, &a, &token).await;
    let res = app
        .post_json(
            "/api/v1/users/me/passkeys",
            Some(&token),
            &json!({"name": "phished", "credential": phished.create(&o2)}),
        )
        .await;
    invalid_fields(res, &["credential"]).await;
    let res = app
        .post_json(
            "/api/v1/users/me/passkeys",
            Some(&token),
            &json!({"name": "laptop", "credential": auth.create(&o2)}),
        )
        .await;
    invalid_fields(res, &["credential"]).await;
    // The right answer to the first challenge is taken once.
    let body = json!({"name": "  laptop  ", "credential": credential});
    let res = app
        .post_json("/api/v1/users/me/passkeys", Some(&token), &body)
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["name"], "laptop");
    assert!(created["last_used_at"].is_null());
    let res = app
        .post_json("/api/v1/users/me/passkeys", Some(&token), &body)
        .await;
    invalid_fields(res, &["credential"]).await;

    let mfa: Value = app
        .get("/api/v1/users/me/mfa", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mfa["totp"], false);
    let list = mfa["passkeys"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], created["id"]);
    assert_eq!(list[0]["name"], "laptop");
    let events = events(&app).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "mfa.passkey_register" && e.outcome == "success")
    );
    // A bad name is named.
    let res = app
        .post_json(
            "/api/v1/users/me/passkeys",
            Some(&token),
            &json!({"name": "", "credential": Authenticator::new(&app).create(&o)}),
        )
        .await;
    invalid_fields(res, &["name"]).await;
}

#[tokio::test]
async fn a_passkey_is_a_second_factor_the_password_alone_no_longer_signs_in_v6_3_3() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let token = app.login(&a).await.access;
    let _auth = register(&app, &a, &token).await;
    // The password grant now asks for a second factor.
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", &a.password),
        ])
        .await;
    let body = oauth_error(res, StatusCode::BAD_REQUEST, "mfa_required").await;
    assert!(body["mfa_token"].is_string());
    // Adding or removing a factor now needs a recent second factor (RFC 9470): this token
    // was issued for the password alone.
    let res = app
        .post_json(
            "/api/v1/users/me/passkeys/options",
            Some(&token),
            &json!({"current_password": a.password}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let www = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(www.contains("insufficient_user_authentication"), "{www}");
    let id = app
        .get("/api/v1/users/me/mfa", &token)
        .await
        .json::<Value>()
        .await
        .unwrap()["passkeys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/users/me/passkeys/{id}")))
        .bearer_auth(&token)
        .json(&json!({"current_password": a.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .post_json(
            "/api/v1/users/me/mfa/totp",
            Some(&token),
            &json!({"current_password": a.password}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_passkey_alone_signs_in_on_the_page_once_per_challenge_v6_7_2() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let token = app.login(&a).await.access;
    let mut auth = register(&app, &a, &token).await;
    let page = Page::open(&app).await;
    let res = page.options(&app, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let o: Value = res.json().await.unwrap();
    assert_eq!(o["userVerification"], "required");
    assert_eq!(o["rpId"], "127.0.0.1");
    assert_eq!(o["allowCredentials"], json!([]));

    // Without user verification a passkey alone is one factor: refused (and the challenge is
    // spent).
    let res = page.post(&app, auth.get(&o, UP)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("passkey was not accepted")
    );
    let o: Value = page.options(&app, None).await.json().await.unwrap();
    let answer = auth.get(&o, UP | UV);
    let res = page.post(&app, answer.clone()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let t = page.tokens(&app, &res).await;
    let c = claims(t["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], a.id.as_str());
    assert_eq!(c["amr"], json!(["hwk", "mfa"]));
    // The sign-in is strong enough for a change of factors.
    let access = t["access_token"].as_str().unwrap();
    let o2 = options(&app, &a, access).await;
    assert!(o2["excludeCredentials"][0]["id"].is_string());
    // The same answer again: its challenge is spent.
    let res = page.post(&app, answer).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A challenge of another browser's page is not this one's.
    let other = Page::open(&app).await;
    let o: Value = other.options(&app, None).await.json().await.unwrap();
    let res = page.post(&app, auth.get(&o, UP | UV)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A counter that goes back is a cloned authenticator.
    let o: Value = page.options(&app, None).await.json().await.unwrap();
    auth.counter = 0;
    let res = page.post(&app, auth.get(&o, UP | UV)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Options need the page's binding (login CSRF).
    let res = app
        .client
        .post(app.url("/oauth/passkey"))
        .form(&[("csrf", page.csrf())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let refused = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "auth.login" && e.outcome == "failure")
        .count();
    assert!(refused >= 4, "{refused}");
}

#[tokio::test]
async fn a_passkey_answers_the_second_step_after_the_password_and_can_be_removed() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let token = app.login(&a).await.access;
    let mut auth = register(&app, &a, &token).await;
    let page = Page::open(&app).await;
    let res = page
        .post(
            &app,
            vec![
                ("username".into(), a.email.clone()),
                ("password".into(), a.password.clone()),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let mfa_token = hidden(&html, "mfa_token");
    assert!(html.contains("id=\"passkey-form\""), "{html}");
    // Options for this account's passkeys, this browser only.
    let res = page.options(&app, Some(&mfa_token)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let o: Value = res.json().await.unwrap();
    assert_eq!(
        o["allowCredentials"],
        json!([]),
        "discoverable: no ids handed out"
    );
    assert_eq!(o["userVerification"], "preferred");
    let res = page.options(&app, Some("x".repeat(43).as_str())).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // The answer of another passkey (another account's) does not pass.
    let b = app.register("bob@example.com").await;
    let bob_token = app.login(&b).await.access;
    let mut bobs = register(&app, &b, &bob_token).await;
    let mut wrong = bobs.get(&o, UP);
    wrong.push(("mfa_token".into(), mfa_token.clone()));
    let res = page.post(&app, wrong).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // This account's passkey (user presence is enough after the password).
    let o: Value = page
        .options(&app, Some(&mfa_token))
        .await
        .json()
        .await
        .unwrap();
    let mut answer = auth.get(&o, UP);
    answer.push(("mfa_token".into(), mfa_token.clone()));
    let res = page.post(&app, answer).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let t = page.tokens(&app, &res).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["amr"], json!(["pwd", "hwk", "mfa"]));
    let mfa: Value = app
        .get("/api/v1/users/me/mfa", access)
        .await
        .json()
        .await
        .unwrap();
    assert!(mfa["passkeys"][0]["last_used_at"].is_string());
    // Another sign-in with the passkey (a thief's, say): its session ends when the owner
    // removes the passkey.
    let other = Page::open(&app).await;
    let res = other
        .post(
            &app,
            vec![
                ("username".into(), a.email.clone()),
                ("password".into(), a.password.clone()),
            ],
        )
        .await;
    let token2 = hidden(&res.text().await.unwrap(), "mfa_token");
    let o2: Value = other
        .options(&app, Some(&token2))
        .await
        .json()
        .await
        .unwrap();
    let mut answer = auth.get(&o2, UP);
    answer.push(("mfa_token".into(), token2));
    let res = other.post(&app, answer).await;
    let thief = other.tokens(&app, &res).await;
    let thief = thief["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/v1/users/me", &thief).await.status(),
        StatusCode::OK
    );

    // Removed with the current password and the recent second factor; then the password alone
    // signs in again, and the other session is over.
    let id = mfa["passkeys"][0]["id"].as_str().unwrap();
    let del = |id: String, password: String| {
        app.client
            .delete(app.url(&format!("/api/v1/users/me/passkeys/{id}")))
            .bearer_auth(access)
            .json(&json!({"current_password": password}))
            .send()
    };
    let unknown = "0e0e0e0e-0000-4000-8000-000000000000";
    let res = del(unknown.into(), a.password.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = del(id.to_owned(), "not the password at all".into())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = del(id.to_owned(), a.password.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get("/api/v1/users/me", &thief).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/users/me", access).await.status(),
        StatusCode::OK
    );
    app.login(&a).await;
    let _ = bobs.get(&o, UP);
}

#[tokio::test]
async fn a_third_party_clients_token_changes_no_second_factor() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    // A client that is not first-party, granted `profile` by the user on the consent page.
    let admin = app.admin_tokens().await.access;
    let client = public_client(&app, &admin, false).await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::default();
    let q = authorize_query(&client, &challenge, Some("profile"));
    let res = crate::oauth::sign_in(&app, &mut b, &q, &a).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let (ticket, csrf) = (hidden(&html, "ticket"), hidden(&html, "csrf"));
    let res = b
        .post(
            &app,
            &[
                ("ticket", &ticket),
                ("csrf", &csrf),
                ("decision", "approve"),
            ],
        )
        .await;
    let (_, params) = location(&res);
    let res = redeem(&app, &client, param(&params, "code").unwrap(), &verifier).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    let token = t["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/users/me", token).await.status(),
        StatusCode::OK
    );
    for path in [
        "/api/v1/users/me/passkeys/options",
        "/api/v1/users/me/mfa/totp",
    ] {
        let res = app
            .post_json(path, Some(token), &json!({"current_password": a.password}))
            .await;
        let p = problem(res, StatusCode::CONFLICT).await;
        assert!(p["detail"].as_str().unwrap().contains("client"), "{p}");
    }
}

/// Past the lock-out an account whose only second factor is a passkey goes on to the second step
/// from a new address, as one with TOTP does (issue 19 item 6).
#[tokio::test]
async fn past_the_lock_out_a_passkey_only_account_goes_on_to_its_second_factor_v6_3_1() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
        ("IMANGOR_LOGIN_HARD_CAP", "3"),
        ("IMANGOR_LOGIN_LOCK_AFTER", "10"),
        ("IMANGOR_LOGIN_SLOW_AFTER", "100"),
        ("IMANGOR_RATE_LIMIT_TOKEN", "1000/60"),
    ])
    .await;
    let a = app.register("ann@example.com").await;
    let token = app.login(&a).await.access;
    let _auth = register(&app, &a, &token).await;
    let from = |ip: &'static str, pw: String| {
        app.client
            .post(app.url("/api/v1/token"))
            .header("x-forwarded-for", ip)
            .form(&[
                ("grant_type", "password".to_owned()),
                ("username", a.email.clone()),
                ("password", pw),
            ])
            .send()
    };
    for _ in 0..3 {
        let res = from("198.51.100.66", "guess guess guess".into())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let res = from("203.0.113.7", a.password.clone()).await.unwrap();
    oauth_error(res, StatusCode::BAD_REQUEST, "mfa_required").await;
}

/// Past the cap the (blind) mfa_token of a wrong password gets request options like any token,
/// and no token lists the account's credential ids: the passkeys are discoverable.
#[tokio::test]
async fn no_mfa_token_lists_the_accounts_passkey_ids() {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_TRUSTED_PROXIES", "127.0.0.1"),
        ("IMANGOR_LOGIN_HARD_CAP", "3"),
        ("IMANGOR_LOGIN_LOCK_AFTER", "10"),
        ("IMANGOR_LOGIN_SLOW_AFTER", "100"),
        ("IMANGOR_RATE_LIMIT_TOKEN", "1000/60"),
    ])
    .await;
    let a = app.register("ann@example.com").await;
    let (mut totp, _) = crate::mfa::enrol(&app, &a).await;
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", &a.password),
        ])
        .await;
    let body = oauth_error(res, StatusCode::BAD_REQUEST, "mfa_required").await;
    let mt = body["mfa_token"].as_str().unwrap().to_owned();
    let code = totp.code();
    let res = app
        .token(&[
            ("grant_type", "urn:imangor:grant-type:mfa"),
            ("mfa_token", &mt),
            ("otp", &code),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    let access = v["access_token"].as_str().unwrap().to_owned();
    let auth = register(&app, &a, &access).await;
    for _ in 0..3 {
        let res = app
            .client
            .post(app.url("/api/v1/token"))
            .header("x-forwarded-for", "198.51.100.66")
            .form(&[
                ("grant_type", "password"),
                ("username", a.email.as_str()),
                ("password", "guess guess guess"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let page = Page::open(&app).await;
    let mut form = page.fields.clone();
    form.push(("username".into(), a.email.clone()));
    form.push(("password".into(), "not the password at all".into()));
    let mut r = app
        .client
        .post(app.url("/oauth/authorize"))
        .header("x-forwarded-for", "198.51.100.77")
        .form(&form);
    if let Some(c) = page.browser.cookie() {
        r = r.header("cookie", c);
    }
    let res = r.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let blind = hidden(&html, "mfa_token");
    let res = page.options(&app, Some(&blind)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let o: Value = res.json().await.unwrap();
    assert_eq!(
        o["allowCredentials"],
        json!([]),
        "no credential id for a wrong password"
    );
    assert!(!o.to_string().contains(&b64(&auth.id)));
}

/// `imangor user reset-factors` (the operator's use case): an account's TOTP, recovery codes
/// and passkeys go, its sessions end, the password alone signs in again (a passkey an attacker
/// added with a stolen password does not outlive it).
#[tokio::test]
async fn the_operator_resets_an_accounts_second_factors() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let token = app.login(&a).await.access;
    let _auth = register(&app, &a, &token).await;
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", &a.password),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "mfa_required").await;
    let email = imangor::domain::Email::parse(&a.email).unwrap();
    let (user, removed) =
        imangor::service::users::operator::reset_second_factors(&app.state.store, &email)
            .await
            .unwrap();
    assert_eq!((user.id.to_string(), removed), (a.id.clone(), 1));
    assert_eq!(
        app.get("/api/v1/users/me", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let fresh = app.login(&a).await.access;
    let mfa: Value = app
        .get("/api/v1/users/me/mfa", &fresh)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mfa["passkeys"], json!([]));
    assert_eq!(mfa["totp"], false);
    let resets = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "mfa.passkey_remove" && e.severity == "warning")
        .count();
    assert_eq!(resets, 1);
}
