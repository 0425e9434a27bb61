//! The token endpoints: password and refresh grants, rotation, reuse, revocation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn password_grant_answers_a_bearer_pair_that_is_not_cached() {
    let app = TestApp::spawn().await;
    let a = app.register("ann@example.com").await;
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", "ANN@example.com"),
            ("password", PASSWORD),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 900);
    let me: Value = app
        .get("/api/v1/users/me", v["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], a.id.as_str());
}

#[tokio::test]
async fn wrong_password_and_unknown_account_get_the_same_answer_v6_3_8() {
    let app = TestApp::spawn().await;
    app.register("bea@example.com").await;
    let wrong = app
        .token(&[
            ("grant_type", "password"),
            ("username", "bea@example.com"),
            ("password", "not the password"),
        ])
        .await;
    let unknown = app
        .token(&[
            ("grant_type", "password"),
            ("username", "nobody@example.com"),
            ("password", "not the password"),
        ])
        .await;
    let invalid = app
        .token(&[
            ("grant_type", "password"),
            ("username", "not an email"),
            ("password", "not the password"),
        ])
        .await;
    let w = oauth_error(wrong, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let u = oauth_error(unknown, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let i = oauth_error(invalid, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(w, u);
    assert_eq!(w, i);
}

/// V6.3.8: an unknown account, a wrong password and a disabled account take the same time to
/// refuse: a password hash runs in each case (a dummy hash for an unknown account), so timing
/// does not reveal which accounts exist or are disabled. In each round the three kinds are sent
/// at the same moment, each hashed on its own thread (`IMANGOR_HASH_CONCURRENCY=3`), so that
/// whatever else loads the machine loads all three alike; over 25 rounds the medians of each
/// kind's time relative to its round are within 20% of each other.
#[tokio::test]
async fn login_failures_take_the_same_time_whatever_the_reason_v6_3_8() {
    use std::time::{Duration, Instant};
    let app = TestApp::spawn_with(&[("IMANGOR_HASH_CONCURRENCY", "3")]).await;
    app.register("wrong@example.com").await;
    let disabled = app.register("disabled@example.com").await;
    let admin = app.admin_tokens().await;
    let res = app
        .patch_json(
            &format!("/api/v1/users/{}", disabled.id),
            &admin.access,
            &serde_json::json!({"disabled": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let attempt = |user: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            let res = app
                .token(&[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", password),
                ])
                .await;
            let took = started.elapsed();
            oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
            took
        }
    };
    // Enough rounds that one slow round moves no median far (each account stays well below the
    // lock threshold of the login guard).
    const ROUNDS: usize = 35;
    let mut times: [Vec<Duration>; 3] = Default::default();
    // One warm-up round, not counted (first connections, first statements).
    for round in 0..=ROUNDS {
        let unknown = attempt("nobody-here@example.com", PASSWORD);
        let wrong = attempt("wrong@example.com", "not the password at all");
        // The right password of a disabled account: the one case that would otherwise differ.
        let off = attempt("disabled@example.com", PASSWORD);
        // Which request goes out first turns each round, so that being first (to the hashing
        // pool, to the database) favours no case.
        let (unknown, wrong, off) = match round % 3 {
            0 => tokio::join!(unknown, wrong, off),
            1 => {
                let (w, o, u) = tokio::join!(wrong, off, unknown);
                (u, w, o)
            }
            _ => {
                let (o, u, w) = tokio::join!(off, unknown, wrong);
                (u, w, o)
            }
        };
        if round > 0 {
            for (i, t) in [unknown, wrong, off].into_iter().enumerate() {
                times[i].push(t);
            }
        }
    }
    // Each time as a fraction of its round's mean: the three of a round ran side by side, so
    // a burst of load on the machine (which moves raw times by a third from one second to the
    // next on shared cores) divides out.
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut relative: [Vec<f64>; 3] = Default::default();
    for r in 0..ROUNDS {
        let mean = times.iter().map(|t| t[r].as_secs_f64()).sum::<f64>() / 3.0;
        for (k, t) in times.iter().enumerate() {
            relative[k].push(t[r].as_secs_f64() / mean);
        }
    }
    let relative: Vec<f64> = relative.iter_mut().map(median).collect();
    let raw: Vec<Duration> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    println!(
        "login failure medians ({ROUNDS} rounds; unknown, wrong password, disabled): {raw:?}; \
         relative to their round: {relative:.3?}"
    );
    let (lo, hi) = (
        relative.iter().copied().fold(f64::MAX, f64::min),
        relative.iter().copied().fold(f64::MIN, f64::max),
    );
    assert!(
        hi <= lo * 1.2,
        "medians within 20% (unknown, wrong password, disabled): relative {relative:.3?}, raw {raw:?}"
    );
}

#[tokio::test]
async fn passwords_are_verified_whole_and_exactly_v6_2_8() {
    let app = TestApp::spawn().await;
    let pw = "Correct-Horse-Battery-Staple-".repeat(3) + "0123456789abc"; // 100 characters
    assert_eq!(pw.chars().count(), 100);
    let res = app
        .post_json(
            "/api/v1/users",
            None,
            &serde_json::json!({"email": "long@example.com", "password": pw, "full_name": "Long"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    for attempt in [&pw[..72], &pw.to_lowercase(), &pw.to_uppercase(), &pw[..99]] {
        let res = app
            .token(&[
                ("grant_type", "password"),
                ("username", "long@example.com"),
                ("password", attempt),
            ])
            .await;
        oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", "long@example.com"),
            ("password", &pw),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn there_are_no_default_accounts_v6_3_2() {
    let app = TestApp::spawn().await;
    for (u, p) in [
        ("admin", "admin"),
        ("admin@example.com", "admin"),
        ("root", "root"),
        ("admin@imangor.local", "admin"),
    ] {
        let res = app
            .token(&[("grant_type", "password"), ("username", u), ("password", p)])
            .await;
        oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
}

#[tokio::test]
async fn only_the_grants_of_the_contract_exist_v10_4_4() {
    let app = TestApp::spawn().await;
    for g in [
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "x",
    ] {
        oauth_error(
            app.token(&[("grant_type", g)]).await,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        )
        .await;
    }
    // The grants of OAuth clients exist, and want a client (tests/api/oauth.rs).
    for g in ["authorization_code", "client_credentials"] {
        oauth_error(
            app.token(&[("grant_type", g)]).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        )
        .await;
    }
    oauth_error(
        app.token(&[("username", "a@example.com")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    oauth_error(
        app.token(&[("grant_type", "password"), ("username", "a@example.com")])
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn repeated_parameters_are_an_invalid_request_v15_3_7() {
    let app = TestApp::spawn().await;
    let a = app.register("dup@example.com").await;
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", PASSWORD),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", "x"),
            ("password", PASSWORD),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn credentials_in_the_url_or_a_get_are_refused_v14_2_1_v3_5_3() {
    let app = TestApp::spawn().await;
    let a = app.register("url@example.com").await;
    let q = format!(
        "/api/v1/token?grant_type=password&username={}&password={}",
        a.email,
        PASSWORD.replace(' ', "%20")
    );
    let res = app
        .client
        .post(app.url(&q))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    for path in [q.as_str(), "/api/v1/token/revoke"] {
        let res = app.get_anon(path).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(res.headers()["allow"].to_str().unwrap().contains("POST"));
    }
    // A JSON body is not a form.
    let res = app
        .client
        .post(app.url("/api/v1/token"))
        .json(&serde_json::json!({"grant_type": "password"}))
        .send()
        .await
        .unwrap();
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn each_login_issues_new_unique_tokens_from_a_csprng_v7_2_2_v7_2_3() {
    let app = TestApp::spawn().await;
    let a = app.register("fresh@example.com").await;
    let t1 = app.login(&a).await;
    let t2 = app.login(&a).await;
    assert_ne!(t1.access, t2.access);
    assert_ne!(t1.refresh, t2.refresh);
    let claims = |t: &str| -> Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_ne!(claims(&t1.access)["jti"], claims(&t2.access)["jti"]);
    // Opaque refresh tokens of 256 random bits.
    assert_eq!(URL_SAFE_NO_PAD.decode(&t1.refresh).unwrap().len(), 32);
}

#[tokio::test]
async fn access_tokens_carry_the_contract_claims_and_header() {
    let app = TestApp::spawn().await;
    let a = app.register("claims@example.com").await;
    let t = app.login(&a).await;
    let part = |i: usize| -> Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.access.split('.').nth(i).unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let (h, c) = (part(0), part(1));
    assert_eq!(h["alg"], "HS256");
    assert_eq!(h["typ"], "at+jwt");
    assert!(h["kid"].is_string());
    assert_eq!(c["sub"], a.id.as_str());
    assert_eq!(c["role"], "user");
    assert_eq!(c["iss"], "imangor");
    assert_eq!(c["aud"], "imangor-api");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);
    assert!(c["jti"].is_string());
    // The signature verifies with the configured secret, used as given (another service can check it).
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["imangor-api"]);
    jsonwebtoken::decode::<Value>(
        &t.access,
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &v,
    )
    .unwrap();
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family_v10_4_5() {
    let app = TestApp::spawn().await;
    let a = app.register("rot@example.com").await;
    let t1 = app.login(&a).await;
    // A second session of the same account, logged in before the reuse: it must survive it.
    let other = app.login(&a).await;
    let res = app.refresh(&t1.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let t2 = tokens(res).await;
    assert_ne!(t2.refresh, t1.refresh);
    assert_eq!(
        app.get("/api/v1/users/me", &t2.access).await.status(),
        StatusCode::OK
    );

    // The spent token again: refused, and the family dies with it.
    oauth_error(
        app.refresh(&t1.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    oauth_error(
        app.refresh(&t2.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    invalid_token(app.get("/api/v1/users/me", &t2.access).await).await;
    invalid_token(app.get("/api/v1/users/me", &t1.access).await).await;
    // The session from before the reuse is untouched: its access token still works and its
    // refresh token still rotates.
    assert_eq!(
        app.get("/api/v1/users/me", &other.access).await.status(),
        StatusCode::OK
    );
    let res = app.refresh(&other.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated = tokens(res).await;
    assert_eq!(
        app.get("/api/v1/users/me", &rotated.access).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn parallel_refreshes_of_one_token_succeed_exactly_once_v2_3_4() {
    let app = TestApp::spawn().await;
    let a = app.register("par@example.com").await;
    let t = app.login(&a).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (c, url, r) = (
            app.client.clone(),
            app.url("/api/v1/token"),
            t.refresh.clone(),
        );
        set.spawn(async move {
            c.post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", r.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let statuses = set.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn tokens_are_not_interchangeable_v9_2_2() {
    let app = TestApp::spawn().await;
    let a = app.register("kinds@example.com").await;
    let t = app.login(&a).await;
    invalid_token(app.get("/api/v1/users/me", &t.refresh).await).await;
    oauth_error(
        app.refresh(&t.access).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    oauth_error(
        app.refresh("garbage").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    oauth_error(
        app.refresh(&URL_SAFE_NO_PAD.encode([7u8; 32])).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session_v7_4_1_v10_4_9() {
    let app = TestApp::spawn().await;
    let a = app.register("rev@example.com").await;
    let t = app.login(&a).await;
    let res = app.revoke(&t.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    oauth_error(
        app.refresh(&t.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    invalid_token(app.get("/api/v1/users/me", &t.access).await).await;
}

#[tokio::test]
async fn revoking_an_access_token_denies_it_until_it_expires_v7_4_1() {
    let app = TestApp::spawn().await;
    let a = app.register("deny@example.com").await;
    let t = app.login(&a).await;
    assert_eq!(app.revoke(&t.access).await.status(), StatusCode::OK);
    invalid_token(app.get("/api/v1/users/me", &t.access).await).await;
    // The session itself lives on: its refresh token still works and gives a fresh access token.
    let t2 = tokens(app.refresh(&t.refresh).await).await;
    assert_eq!(
        app.get("/api/v1/users/me", &t2.access).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn revocation_answers_200_for_unknown_tokens_and_400_without_one_v10_4_9() {
    let app = TestApp::spawn().await;
    for t in ["garbage", "a.b.c", &URL_SAFE_NO_PAD.encode([1u8; 32])] {
        assert_eq!(app.revoke(t).await.status(), StatusCode::OK);
    }
    let res = app
        .client
        .post(app.url("/api/v1/token/revoke"))
        .form(&[("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn refresh_tokens_expire_when_idle_and_sessions_absolutely_v7_3_1_v7_3_2() {
    use std::time::{Duration, Instant};
    const IDLE: Duration = Duration::from_secs(2);
    const ABSOLUTE: Duration = Duration::from_secs(5);
    let app = TestApp::spawn_with(&[
        ("IMANGOR_REFRESH_TOKEN_TTL", "2"),
        ("IMANGOR_SESSION_MAX_AGE", "5"),
    ])
    .await;
    let a = app.register("idle@example.com").await;

    // Idle: a refresh token unused for longer than its lifetime is refused.
    let t = app.login(&a).await;
    tokio::time::sleep(IDLE + Duration::from_millis(300)).await;
    oauth_error(
        app.refresh(&t.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    // Absolute: rotating every 300 ms keeps the session alive well past the idle lifetime, every
    // refresh answered before the absolute lifetime succeeds, and every one sent after it fails.
    // The session's end lies between `login_sent + ABSOLUTE` and `login_done + ABSOLUTE`.
    let login_sent = Instant::now();
    let mut r = app.login(&a).await.refresh;
    let login_done = Instant::now();
    let mut successes_past_idle = 0;
    let mut refusals_past_end = 0;
    while login_sent.elapsed() < ABSOLUTE + Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = Instant::now();
        let res = app.refresh(&r).await;
        let done = Instant::now();
        let status = res.status();
        if status == StatusCode::OK {
            r = tokens(res).await.refresh;
            assert!(
                sent < login_done + ABSOLUTE,
                "a refresh sent {:?} after the login succeeded past the absolute lifetime",
                sent - login_done
            );
            if sent > login_done + IDLE {
                successes_past_idle += 1;
            }
        } else {
            oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
            assert!(
                done >= login_sent + ABSOLUTE,
                "a refresh answered {:?} after the login failed before the absolute lifetime",
                done - login_sent
            );
            refusals_past_end += 1;
        }
    }
    assert!(
        successes_past_idle >= 3,
        "rotation kept the session alive past one refresh token's lifetime ({successes_past_idle} successes)"
    );
    assert!(refusals_past_end >= 2, "refreshes after the end were tried");
}

#[tokio::test]
async fn disabled_accounts_lose_login_tokens_and_refresh_at_once_v7_4_2() {
    let app = TestApp::spawn().await;
    let a = app.register("dis@example.com").await;
    let t = app.login(&a).await;
    let admin = app.admin_tokens().await;
    let res = app
        .patch_json(
            &format!("/api/v1/users/{}", a.id),
            &admin.access,
            &serde_json::json!({"disabled": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    invalid_token(app.get("/api/v1/users/me", &t.access).await).await;
    oauth_error(
        app.refresh(&t.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", PASSWORD),
        ])
        .await;
    let body = oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let unknown = app
        .token(&[
            ("grant_type", "password"),
            ("username", "ghost@example.com"),
            ("password", PASSWORD),
        ])
        .await;
    assert_eq!(
        body,
        unknown.json::<Value>().await.unwrap(),
        "a disabled account is not revealed"
    );
    // Enabled again: login works, the old tokens stay dead.
    app.patch_json(
        &format!("/api/v1/users/{}", a.id),
        &admin.access,
        &serde_json::json!({"disabled": false}),
    )
    .await;
    app.login(&a).await;
    invalid_token(app.get("/api/v1/users/me", &t.access).await).await;
}

#[tokio::test]
async fn imported_bcrypt_hashes_log_in_and_are_replaced_by_argon2id_v11_4_2() {
    let app = TestApp::spawn().await;
    // A passlib-style hash, as the guide's Python stack stored it.
    let hash = bcrypt::hash("imported user password", 10).unwrap();
    let email = "imported@example.com";
    let mut tx = app.state.store.db.begin().await.unwrap();
    imangor::db::users::insert(
        &mut tx,
        &imangor::db::users::NewUser {
            id: imangor::domain::UserId::new(),
            email,
            full_name: "Imported",
            password_hash: &hash,
            role: imangor::domain::Role::User,
            now: imangor::domain::Timestamp::now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.quiet().unwrap();
    let a = Account {
        id: String::new(),
        email: email.into(),
        password: "imported user password".into(),
    };
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", "imported user passworD"),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    app.login(&a).await;
    let (_, stored) = imangor::db::users::find_credentials(&app.state.store.db, email)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    app.login(&a).await;
}

#[tokio::test]
async fn stored_hashes_are_salted_argon2id_with_owasp_parameters_v11_4_2() {
    let app = TestApp::spawn().await;
    app.register("h1@example.com").await;
    app.register("h2@example.com").await;
    let (_, h1) = imangor::db::users::find_credentials(&app.state.store.db, "h1@example.com")
        .await
        .unwrap()
        .unwrap();
    let (_, h2) = imangor::db::users::find_credentials(&app.state.store.db, "h2@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(h1.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h1}");
    assert_ne!(h1, h2);
}

#[tokio::test]
async fn logins_refreshes_and_reuse_are_recorded_with_who_where_and_when_v16_2_1_v16_3_1() {
    let app = TestApp::spawn().await;
    let a = app.register("events@example.com").await;
    let before = events(&app).await.len();
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", "not it at all"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let t = app.login(&a).await;
    let t2 = tokens(app.refresh(&t.refresh).await).await;
    app.refresh(&t.refresh).await;
    let _ = t2;
    let all = events(&app).await;
    let new: Vec<(&str, &str)> = all[before..]
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        new,
        [
            ("auth.login", "failure"),
            ("auth.login", "success"),
            ("auth.refresh", "success"),
            ("auth.refresh_reuse", "session_revoked")
        ]
    );
    for e in &all[before..] {
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"), "{e:?}");
        assert!(
            e.request_id
                .as_deref()
                .is_some_and(|r| uuid::Uuid::parse_str(r).is_ok()),
            "{e:?}"
        );
        assert!(
            e.at > 1_700_000_000_000_000,
            "microseconds since the epoch, UTC: {e:?}"
        );
    }
    assert_eq!(
        all[before].actor_id.as_deref(),
        Some(a.id.as_str()),
        "a failure names the account it was against"
    );
    assert!(all.iter().any(|e| e.action == "user.register"));
}

#[tokio::test]
async fn a_login_flood_gets_quick_503s_from_the_bounded_hashing_queue_and_the_server_keeps_answering_v15_2_2()
 {
    let app = TestApp::spawn_with(&[
        ("IMANGOR_HASH_CONCURRENCY", "1"),
        ("IMANGOR_HASH_QUEUE", "2"),
    ])
    .await;
    app.register("flood@example.com").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (c, url) = (app.client.clone(), app.url("/api/v1/token"));
        set.spawn(async move {
            let pw = format!("wrong password {i}");
            let res = c
                .post(url)
                .form(&[
                    ("grant_type", "password"),
                    ("username", "flood@example.com"),
                    ("password", pw.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let retry = res.headers().get("retry-after").is_some();
            let status = res.status();
            let body: Value = res.json().await.unwrap();
            (
                status,
                retry,
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        });
    }
    // While the flood is queued, other requests are still served.
    assert_eq!(app.get_anon("/healthz").await.status(), StatusCode::OK);
    let answers = set.join_all().await;
    let busy: Vec<_> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "the queue bound was reached: {answers:?}");
    assert!(
        busy.iter()
            .all(|(_, retry, e)| *retry && e == "temporarily_unavailable"),
        "{busy:?}"
    );
    assert!(answers.iter().all(|(s, _, _)| *s == StatusCode::BAD_REQUEST || *s == StatusCode::SERVICE_UNAVAILABLE), "{answers:?}");
}
