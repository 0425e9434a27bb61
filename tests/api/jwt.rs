//! Access-token verification against the attack vectors of SECURITY-REQUIREMENTS.md section 3
//! (RFC 8725; ASVS V9.1.1, V9.1.2, V9.1.3, V9.2.1, V9.2.2, V9.2.3). Every refused token gets 401
//! with `WWW-Authenticate: Bearer error="invalid_token"` and a body that does not say which check failed.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn mac(alg: hmac::Algorithm, key: &[u8], input: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac::sign(&hmac::Key::new(alg, key), input.as_bytes()).as_ref())
}

/// A token with this header and these claims, HMAC-SHA256-signed with `key`.
fn forge(header: &Value, claims: &Value, key: &[u8]) -> String {
    forge_raw(&b64(header), &b64(claims), key)
}

fn forge_raw(h: &str, c: &str, key: &[u8]) -> String {
    let input = format!("{h}.{c}");
    let sig = mac(hmac::HMAC_SHA256, key, &input);
    format!("{input}.{sig}")
}

fn part(token: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A running app, a user's real token, and its header and claims to derive forgeries from.
struct Fixture {
    app: TestApp,
    token: String,
    header: Value,
    claims: Value,
}

impl Fixture {
    async fn new() -> Fixture {
        let app = TestApp::spawn().await;
        let a = app.register("victim@example.com").await;
        let token = app.login(&a).await.access;
        let (header, claims) = (part(&token, 0), part(&token, 1));
        Fixture {
            app,
            token,
            header,
            claims,
        }
    }

    async fn status(&self, token: &str) -> StatusCode {
        self.app.get("/api/v1/users/me", token).await.status()
    }

    async fn refused(&self, token: &str, what: &str) {
        let res = self.app.get("/api/v1/users/me", token).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#,
            "{what}"
        );
        let v: Value = res.json().await.unwrap();
        assert_eq!(
            v["detail"], "authentication required",
            "{what}: the body does not say which check failed"
        );
    }

    /// Signed with the server's own key: only the claim or header defect can make it fail.
    fn with_claims(&self, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut c = self.claims.clone();
        f(c.as_object_mut().unwrap());
        forge(&self.header, &c, JWT_SECRET.as_bytes())
    }

    fn with_header(&self, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut h = self.header.clone();
        f(h.as_object_mut().unwrap());
        forge(&h, &self.claims, JWT_SECRET.as_bytes())
    }
}

#[tokio::test]
async fn the_fixture_forges_a_token_the_server_accepts() {
    // Guards the other tests: a forgery with no defect passes, so each refusal below is due to its defect.
    let f = Fixture::new().await;
    assert_eq!(f.status(&f.token).await, StatusCode::OK);
    assert_eq!(f.status(&f.with_claims(|_| {})).await, StatusCode::OK);
    assert_eq!(f.status(&f.with_header(|_| {})).await, StatusCode::OK);
}

#[tokio::test]
async fn vector_1_2_missing_or_wrong_scheme_is_401() {
    let f = Fixture::new().await;
    let res = f.app.get_anon("/api/v1/users/me").await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    problem(res, StatusCode::UNAUTHORIZED).await;
    for h in [
        "Basic YTpi",
        "Token abc",
        "Bearer",
        "Bearer  ",
        &format!("Bearer{}", f.token),
    ] {
        let res = f
            .app
            .client
            .get(f.app.url("/api/v1/users/me"))
            .header("authorization", h)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{h}");
    }
    let res = f
        .app
        .client
        .get(f.app.url("/api/v1/users/me"))
        .header("authorization", format!("Bearer {}", f.token))
        .header("authorization", format!("Bearer {}", f.token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "two Authorization headers"
    );
    // Auth schemes are case-insensitive (RFC 9110 section 11.1).
    let res = f
        .app
        .client
        .get(f.app.url("/api/v1/users/me"))
        .header("authorization", format!("bearer {}", f.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn vector_3_malformed_structure_is_401() {
    let f = Fixture::new().await;
    let segs: Vec<&str> = f.token.split('.').collect();
    for t in [
        segs[0].to_string(),
        format!("{}.{}", segs[0], segs[1]),
        format!("{}.x", f.token),
        format!("{}.x.y", f.token),
        format!("{}=.{}.{}", segs[0], segs[1], segs[2]),
        format!("{}.{}=.{}", segs[0], segs[1], segs[2]),
        format!("{}.{}.{}*", segs[0], segs[1], segs[2]),
        format!("{}.{} .{}", segs[0], segs[1], segs[2]),
    ] {
        f.refused(&t, &t).await;
    }
}

#[tokio::test]
async fn vector_4_alg_none_in_any_spelling_is_401() {
    let f = Fixture::new().await;
    let sig = f.token.split('.').nth(2).unwrap();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let mut h = f.header.clone();
        h["alg"] = json!(alg);
        let unsigned = format!("{}.{}.", b64(&h), b64(&f.claims));
        f.refused(&unsigned, alg).await;
        f.refused(
            &format!("{}.{}.{sig}", b64(&h), b64(&f.claims)),
            "none with the original signature",
        )
        .await;
    }
}

#[tokio::test]
async fn vector_6_algorithms_off_the_allowlist_are_401_even_with_the_right_key() {
    let f = Fixture::new().await;
    for (alg, m) in [("HS384", hmac::HMAC_SHA384), ("HS512", hmac::HMAC_SHA512)] {
        let mut h = f.header.clone();
        h["alg"] = json!(alg);
        let input = format!("{}.{}", b64(&h), b64(&f.claims));
        f.refused(
            &format!("{input}.{}", mac(m, JWT_SECRET.as_bytes(), &input)),
            alg,
        )
        .await;
    }
    for alg in ["RS256", "ES256", "EdDSA", "PS256"] {
        f.refused(
            &f.with_header(|h| {
                h.insert("alg".into(), json!(alg));
            }),
            alg,
        )
        .await;
    }
}

#[tokio::test]
async fn vectors_7_to_10_stripped_spliced_and_tampered_signatures_are_401() {
    let f = Fixture::new().await;
    let segs: Vec<&str> = f.token.split('.').collect();
    f.refused(&format!("{}.{}.", segs[0], segs[1]), "stripped")
        .await;
    let other = f.app.login(&f.app.admin.clone()).await.access;
    let other_sig = other.split('.').nth(2).unwrap();
    f.refused(&format!("{}.{}.{other_sig}", segs[0], segs[1]), "spliced")
        .await;
    for (k, v) in [
        ("exp", json!(now() + 86_400)),
        ("role", json!("admin")),
        ("sub", part(&other, 1)["sub"].clone()),
    ] {
        let mut c = f.claims.clone();
        c[k] = v;
        f.refused(&format!("{}.{}.{}", segs[0], b64(&c), segs[2]), k)
            .await;
    }
}

#[tokio::test]
async fn vector_11_weak_or_foreign_keys_are_401() {
    let f = Fixture::new().await;
    for key in [
        "secret",
        "",
        "changeme",
        "test-only-hs256-key-7f3a9c2e5b8d1f4a6c0f",
    ] {
        f.refused(&forge(&f.header, &f.claims, key.as_bytes()), key)
            .await;
    }
}

#[tokio::test]
async fn vector_12_kid_injection_is_401_without_a_lookup() {
    let f = Fixture::new().await;
    let big = "k".repeat(10_000);
    for kid in [
        json!("unknown"),
        json!("../../../../dev/null"),
        json!("x' UNION SELECT 'k'--"),
        json!(big),
        json!(7),
        json!({"a": 1}),
    ] {
        let mut h = f.header.clone();
        h["kid"] = kid.clone();
        f.refused(&forge(&h, &f.claims, JWT_SECRET.as_bytes()), "kid")
            .await;
        f.refused(&forge(&h, &f.claims, b""), "kid with an empty key")
            .await;
    }
    f.refused(
        &f.with_header(|h| {
            h.remove("kid");
        }),
        "no kid",
    )
    .await;
}

#[tokio::test]
async fn vectors_13_to_15_jku_x5u_and_embedded_jwk_are_never_used_v9_1_3() {
    let f = Fixture::new().await;
    // An attacker's key server on loopback: it must receive no request.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let attacker_key = b"attacker-controlled-key-0123456789abcdef";
    let jwk = json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(attacker_key)});
    for (name, value) in [
        ("jku", json!(format!("http://127.0.0.1:{port}/jwks.json"))),
        ("x5u", json!(format!("http://127.0.0.1:{port}/cert.pem"))),
        ("jwk", jwk),
        ("x5c", json!(["MIIBszCCAVmgAwIBAgIUY"])),
    ] {
        let mut h = f.header.clone();
        h[name] = value;
        h["kid"] = json!("attacker");
        f.refused(&forge(&h, &f.claims, attacker_key), name).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no outbound request (API7)"
    );
}

#[tokio::test]
async fn vector_16_unknown_critical_headers_are_401() {
    let f = Fixture::new().await;
    f.refused(
        &f.with_header(|h| {
            h.insert("crit".into(), json!(["foo"]));
            h.insert("foo".into(), json!(true));
        }),
        "crit",
    )
    .await;
}

#[tokio::test]
async fn vectors_17_to_19_time_claims_are_enforced_v9_2_1() {
    let f = Fixture::new().await;
    let t = now();
    type Change = Box<dyn Fn(&mut serde_json::Map<String, Value>)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "expired",
            Box::new(move |c| {
                c.insert("iat".into(), json!(t - 2000));
                c.insert("exp".into(), json!(t - 61));
            }),
        ),
        (
            "exp missing",
            Box::new(|c| {
                c.remove("exp");
            }),
        ),
        (
            "exp as a string",
            Box::new(move |c| {
                c.insert("exp".into(), json!((t + 600).to_string()));
            }),
        ),
        (
            "not yet valid",
            Box::new(move |c| {
                c.insert("nbf".into(), json!(t + 120));
            }),
        ),
        (
            "iat in the future",
            Box::new(move |c| {
                c.insert("iat".into(), json!(t + 3600));
                c.insert("exp".into(), json!(t + 4500));
            }),
        ),
        (
            "iat missing",
            Box::new(|c| {
                c.remove("iat");
            }),
        ),
    ];
    for (what, change) in cases {
        f.refused(&f.with_claims(|c| change(c)), what).await;
    }
}

#[tokio::test]
async fn vector_35_clock_skew_is_at_most_sixty_seconds() {
    let f = Fixture::new().await;
    let t = now();
    let at = |exp: i64| {
        f.with_claims(move |c| {
            c.insert("iat".into(), json!(t - 900));
            c.insert("exp".into(), json!(exp));
        })
    };
    assert_eq!(
        f.status(&at(t - 45)).await,
        StatusCode::OK,
        "within the leeway"
    );
    f.refused(&at(t - 75), "beyond the leeway").await;
}

#[tokio::test]
async fn vectors_20_21_issuer_and_audience_are_required_v9_2_3() {
    let f = Fixture::new().await;
    for (k, v) in [
        ("iss", None),
        ("iss", Some(json!("evil"))),
        ("aud", None),
        ("aud", Some(json!("other-api"))),
        ("aud", Some(json!(["other-api"]))),
    ] {
        let token = f.with_claims(|c| match &v {
            None => {
                c.remove(k);
            }
            Some(v) => {
                c.insert(k.into(), v.clone());
            }
        });
        f.refused(&token, &format!("{k}={v:?}")).await;
    }
    let listed = f.with_claims(|c| {
        c.insert("aud".into(), json!(["other-api", "imangor-api"]));
    });
    assert_eq!(
        f.status(&listed).await,
        StatusCode::OK,
        "an audience array containing ours is accepted"
    );
}

#[tokio::test]
async fn vectors_22_23_type_and_identity_claims_are_required() {
    let f = Fixture::new().await;
    for typ in [Some("JWT"), Some("rt+jwt"), None] {
        f.refused(
            &f.with_header(|h| match typ {
                Some(t) => {
                    h.insert("typ".into(), json!(t));
                }
                None => {
                    h.remove("typ");
                }
            }),
            &format!("typ {typ:?}"),
        )
        .await;
    }
    for claim in ["jti", "sub", "sid", "role"] {
        f.refused(
            &f.with_claims(|c| {
                c.remove(claim);
            }),
            claim,
        )
        .await;
    }
    f.refused(
        &f.with_claims(|c| {
            c.insert("sub".into(), json!(uuid::Uuid::now_v7().to_string()));
        }),
        "sub of no user",
    )
    .await;
    f.refused(
        &f.with_claims(|c| {
            c.insert("sub".into(), json!("victim@example.com"));
        }),
        "sub as an email",
    )
    .await;
}

#[tokio::test]
async fn vector_24_duplicate_members_and_bad_utf8_are_401() {
    let f = Fixture::new().await;
    let kid = f.header["kid"].as_str().unwrap();
    let h = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}","alg":"none"}}"#
    ));
    f.refused(
        &forge_raw(&h, &b64(&f.claims), JWT_SECRET.as_bytes()),
        "duplicate alg",
    )
    .await;
    let c = serde_json::to_string(&f.claims).unwrap();
    let dup_claims = format!(r#"{{"role":"admin",{}"#, &c[1..]);
    f.refused(
        &forge_raw(
            &b64(&f.header),
            &URL_SAFE_NO_PAD.encode(dup_claims),
            JWT_SECRET.as_bytes(),
        ),
        "duplicate role",
    )
    .await;
    let mut bad = serde_json::to_vec(&f.header).unwrap();
    bad.insert(bad.len() - 1, b' ');
    bad.insert(bad.len() - 1, 0xff);
    f.refused(
        &forge_raw(
            &URL_SAFE_NO_PAD.encode(bad),
            &b64(&f.claims),
            JWT_SECRET.as_bytes(),
        ),
        "non-UTF-8 header",
    )
    .await;
}

/// Sends `Authorization: Bearer <token>` on a raw connection, writing and reading at once (a
/// server that answers before reading everything must not deadlock the test), and gives back the
/// bytes answered before the server closed, and how the connection ended.
async fn raw_bearer(app: &TestApp, token: &str) -> (String, &'static str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let request = format!(
        "GET /api/v1/users/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        // The server may close before it read everything: a failed write is expected then.
        let _ = wr.write_all(request.as_bytes()).await;
        let _ = wr.shutdown().await;
    });
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let ended = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), rd.read(&mut buf)).await {
            Err(_) => break "timeout",
            Ok(Ok(0)) => break "closed",
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => break "reset",
            Ok(Err(e)) => panic!("reading the answer: {e}"),
        }
    };
    writer.await.unwrap();
    (String::from_utf8_lossy(&out).into_owned(), ended)
}

/// Every size has one answer: a token over the verifier's 4096 bytes whose request head fits
/// in 16 KiB is an invalid token (401 with the Bearer challenge, like any refused token); a head
/// over 16 KiB is refused by the HTTP layer with 431 before any token check, and the connection
/// closed; a megabyte gets the same 431 and close, whatever of it was not read (V4.2.1).
#[tokio::test]
async fn vector_25_huge_tokens_are_refused_without_a_5xx() {
    let f = Fixture::new().await;
    // Just over the verifier's limit, 8 KB, and 15 KiB (the head still fits in 16 KiB).
    for n in [4097, 8 * 1024, 15 * 1024] {
        f.refused(&"a".repeat(n), &format!("a {n}-byte token"))
            .await;
        // A well-formed, correctly signed token of about that size is refused the same way
        // (base64url makes 3 bytes of claims 4 of token).
        let padded = f.with_claims(|c| {
            c.insert("pad".into(), json!("p".repeat(n * 3 / 4)));
        });
        assert!((n..n + 512).contains(&padded.len()), "{}", padded.len());
        f.refused(&padded, &format!("a signed token padded by {n} bytes"))
            .await;
    }
    // Over the 16 KiB head limit: hyper's own 431, nothing from the application (no Bearer
    // challenge, no body), and the connection closed by the server right after it (end of
    // stream, not a timeout), for a megabyte too: the rest of it is never read.
    for n in [16 * 1024, 64 * 1024, 1024 * 1024] {
        let (answer, ended) = raw_bearer(&f.app, &"a".repeat(n)).await;
        let head = "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: ";
        assert!(
            answer.starts_with(head) && answer.ends_with(" GMT\r\n\r\n"),
            "{n}: {answer:?}"
        );
        assert_eq!(
            answer.len(),
            head.len() + "Fri, 04 Dec 2026 19:21:27 GMT\r\n\r\n".len(),
            "{n}: nothing but the date follows: {answer:?}"
        );
        assert_eq!(ended, "closed", "{n}: {answer:?}");
    }
    // The server is unharmed.
    assert_eq!(f.status(&f.token).await, StatusCode::OK);
}

#[tokio::test]
async fn vector_33_tokens_in_the_url_or_a_cookie_are_not_accepted_v14_2_1() {
    let f = Fixture::new().await;
    let res = f
        .app
        .get_anon(&format!("/api/v1/users/me?access_token={}", f.token))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = f
        .app
        .client
        .get(f.app.url("/api/v1/users/me"))
        .header("cookie", format!("access_token={}", f.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// The state behind a token is cached for a second under everything it was read for: a token
/// that shares the `jti` of a token just accepted, but names another user or session, is judged
/// on its own claims (issue 16 item 6; ASVS V9.2.1, V7.2.1).
#[tokio::test]
async fn a_token_sharing_a_cached_jti_with_another_sub_or_sid_is_401() {
    let f = Fixture::new().await;
    let other = f.app.register("other@example.com").await;
    let other_token = f.app.login(&other).await.access;
    let other_sid = part(&other_token, 1)["sid"].clone();
    let nobody = json!(uuid::Uuid::now_v7().to_string());
    let forged = [
        (
            "sub of no user",
            f.with_claims(|c| {
                c.insert("sub".into(), nobody.clone());
            }),
        ),
        (
            "sid of no session",
            f.with_claims(|c| {
                c.insert("sid".into(), nobody.clone());
            }),
        ),
        (
            "another user's sub",
            f.with_claims(|c| {
                c.insert("sub".into(), json!(other.id));
            }),
        ),
        (
            "another user's sid",
            f.with_claims(|c| {
                c.insert("sid".into(), other_sid.clone());
            }),
        ),
    ];
    for (what, token) in &forged {
        // The real token first, so that its state is cached under the shared jti.
        assert_eq!(f.status(&f.token).await, StatusCode::OK, "{what}");
        f.refused(token, what).await;
        let res = f.app.get("/api/v1/users/me", &f.token).await;
        assert_eq!(res.status(), StatusCode::OK, "the real token after {what}");
        let me: Value = res.json().await.unwrap();
        assert_eq!(me["email"], "victim@example.com");
    }
    // Both users' real tokens under another user's jti: each still answers for its own user.
    let mixed = {
        let mut c = part(&other_token, 1);
        c["jti"] = f.claims["jti"].clone();
        forge(&f.header, &c, JWT_SECRET.as_bytes())
    };
    assert_eq!(f.status(&f.token).await, StatusCode::OK);
    let res = f.app.get("/api/v1/users/me", &mixed).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["email"], "other@example.com");
}

#[tokio::test]
async fn vector_10_a_demoted_admin_loses_admin_rights_at_once() {
    let app = TestApp::spawn().await;
    let (a, t) = app.user_with_role("boss@example.com", "admin").await;
    assert_eq!(part(&t.access, 1)["role"], "admin");
    assert_eq!(
        app.get("/api/v1/users", &t.access).await.status(),
        StatusCode::OK
    );
    let root = app.admin_tokens().await;
    let res = app
        .patch_json(
            &format!("/api/v1/users/{}", a.id),
            &root.access,
            &json!({"role": "user"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // The token still says admin; the database says user, and the database wins.
    problem(
        app.get("/api/v1/users", &t.access).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

/// A server whose signing keyring is one EdDSA key; returns it with the key (PKCS#8).
async fn eddsa_app() -> (TestApp, Vec<u8>) {
    let pkcs8 = imangor::auth::token::generate_ed25519().unwrap();
    let ring = format!(
        "ed-test:EdDSA:{}",
        base64::engine::general_purpose::STANDARD.encode(&pkcs8[..])
    );
    let app = TestApp::spawn_with(&[("IMANGOR_JWT_KEYS", &ring)]).await;
    (app, pkcs8.to_vec())
}

#[tokio::test]
async fn jwks_publishes_the_eddsa_key_in_use_and_its_tokens_verify_with_it_v9_1_1() {
    use aws_lc_rs::signature::{self, KeyPair};
    let (app, pkcs8) = eddsa_app().await;
    let res = app.get_anon("/.well-known/jwks.json").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = res.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let k = &keys[0];
    assert_eq!(
        (&k["kty"], &k["crv"], &k["alg"], &k["use"], &k["kid"]),
        (
            &json!("OKP"),
            &json!("Ed25519"),
            &json!("EdDSA"),
            &json!("sig"),
            &json!("ed-test")
        )
    );
    assert!(k.get("d").is_none(), "never the private part");
    let public = signature::Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
    let x = URL_SAFE_NO_PAD.decode(k["x"].as_str().unwrap()).unwrap();
    assert_eq!(
        x,
        public.public_key().as_ref(),
        "JWKS matches the key in use"
    );

    // A token issued by the server verifies with the published key alone.
    let a = app.register("ed@example.com").await;
    let token = app.login(&a).await.access;
    let h = part(&token, 0);
    assert_eq!((&h["alg"], &h["kid"]), (&json!("EdDSA"), &json!("ed-test")));
    let (input, sig) = token.rsplit_once('.').unwrap();
    signature::UnparsedPublicKey::new(&signature::ED25519, &x)
        .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
        .expect("verifies with the JWKS key");
    assert_eq!(
        app.get("/api/v1/users/me", &token).await.status(),
        StatusCode::OK
    );

    // An HS256 server publishes nothing: its key is a secret.
    let hs = TestApp::spawn().await;
    let jwks: Value = hs
        .get_anon("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks, json!({"keys": []}));
}

#[tokio::test]
async fn vector_5_hs256_macced_with_the_public_key_is_401() {
    let (app, _) = eddsa_app().await;
    let a = app.register("conf@example.com").await;
    let token = app.login(&a).await.access;
    let claims = part(&token, 1);
    let jwks: Value = app
        .get_anon("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let raw = URL_SAFE_NO_PAD.decode(x).unwrap();
    // The public key as raw bytes, as its JWK text, as the JWK JSON, and as SPKI DER.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(&raw);
    let jwk = jwks["keys"][0].to_string();
    for key in [raw.clone(), x.as_bytes().to_vec(), jwk.into_bytes(), spki] {
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "ed-test"});
        invalid_token(
            app.get("/api/v1/users/me", &forge(&header, &claims, &key))
                .await,
        )
        .await;
    }
    // The real key signs, with the right algorithm: accepted (so the refusals above are about the algorithm).
    assert_eq!(
        app.get("/api/v1/users/me", &token).await.status(),
        StatusCode::OK
    );
}
