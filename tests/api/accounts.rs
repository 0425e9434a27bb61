//! Accounts: the caller's profile, password change, listing and administration of accounts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn the_profile_can_be_read_and_renamed_but_not_promoted_v8_2_3() {
    let app = TestApp::spawn().await;
    let a = app.register("me@example.com").await;
    let t = app.login(&a).await;
    let res = app.get("/api/v1/users/me", &t.access).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["email"], "me@example.com");
    let v: Value = app
        .patch_json(
            "/api/v1/users/me",
            &t.access,
            &json!({"full_name": "  New Name "}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["full_name"], "New Name");
    invalid_fields(
        app.patch_json("/api/v1/users/me", &t.access, &json!({"role": "admin"}))
            .await,
        &["role"],
    )
    .await;
    invalid_fields(
        app.patch_json(
            "/api/v1/users/me",
            &t.access,
            &json!({"email": "x@example.com"}),
        )
        .await,
        &["email"],
    )
    .await;
    invalid_fields(
        app.patch_json("/api/v1/users/me", &t.access, &json!({"full_name": ""}))
            .await,
        &["full_name"],
    )
    .await;
    invalid_fields(
        app.patch_json("/api/v1/users/me", &t.access, &json!({}))
            .await,
        &["body"],
    )
    .await;
    let v: Value = app
        .get("/api/v1/users/me", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["role"], "user");
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_v6_2_2_v6_2_3() {
    let app = TestApp::spawn().await;
    let a = app.register("pw@example.com").await;
    let t = app.login(&a).await;
    let new = "a brand new passphrase";
    invalid_fields(
        app.patch_json("/api/v1/users/me", &t.access, &json!({"new_password": new}))
            .await,
        &["current_password"],
    )
    .await;
    invalid_fields(
        app.patch_json(
            "/api/v1/users/me",
            &t.access,
            &json!({"current_password": PASSWORD, "new_password": "password1"}),
        )
        .await,
        &["new_password"],
    )
    .await;
    let res = app
        .patch_json(
            "/api/v1/users/me",
            &t.access,
            &json!({"current_password": "wrong one!", "new_password": new}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN).await;
    // Nothing changed after the refusals.
    app.login(&a).await;
}

/// A profile change is checked whole against its documented shapes before anything else: a new
/// password that breaks the rules is named even when `current_password` is missing too (ASVS
/// V2.2.1; issue 16 item 15).
#[tokio::test]
async fn a_profile_change_names_every_invalid_field_whatever_its_shape_v2_2_1() {
    let app = TestApp::spawn().await;
    let a = app.register("whole@example.com").await;
    let t = app.login(&a).await;
    let cases: [(Value, &[&str]); 4] = [
        (
            json!({"new_password": "short"}),
            &["current_password", "new_password"],
        ),
        (
            json!({"new_password": "whole@example.com"}),
            &["current_password", "new_password"],
        ),
        (
            json!({"full_name": "", "new_password": "password1"}),
            &["full_name", "current_password", "new_password"],
        ),
        (
            json!({"full_name": "", "current_password": "x"}),
            &["full_name", "new_password"],
        ),
    ];
    for (body, fields) in cases {
        let res = app.patch_json("/api/v1/users/me", &t.access, &body).await;
        let p = invalid_fields(res, fields).await;
        assert_eq!(p["type"], "urn:imangor:problem:invalid", "{body}");
    }
    // Nothing changed.
    app.login(&a).await;
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_v7_4_3() {
    let app = TestApp::spawn().await;
    let a = app.register("sessions@example.com").await;
    let mine = app.login(&a).await;
    let other = app.login(&a).await;
    let new = "a brand new passphrase";
    let res = app
        .patch_json(
            "/api/v1/users/me",
            &mine.access,
            &json!({"current_password": PASSWORD, "new_password": new}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    invalid_token(app.get("/api/v1/users/me", &other.access).await).await;
    oauth_error(
        app.refresh(&other.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // The session that made the change keeps working.
    assert_eq!(
        app.get("/api/v1/users/me", &mine.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.refresh(&mine.refresh).await.status(), StatusCode::OK);
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", &a.email),
            ("password", PASSWORD),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    app.login(&Account {
        password: new.into(),
        ..a
    })
    .await;
}

#[tokio::test]
async fn only_admins_and_managers_list_accounts_v8_2_1() {
    let app = TestApp::spawn().await;
    let (_, user) = app.user_with_role("plain@example.com", "user").await;
    let (_, manager) = app.user_with_role("mgr@example.com", "manager").await;
    let admin = app.admin_tokens().await;
    let res = app.get_anon("/api/v1/users").await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    problem(res, StatusCode::UNAUTHORIZED).await;
    problem(
        app.get("/api/v1/users", &user.access).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    for t in [&manager.access, &admin.access] {
        let v: Value = app.get("/api/v1/users", t).await.json().await.unwrap();
        assert_eq!(v["items"].as_array().unwrap().len(), 3);
        assert!(v["items"][0].get("password_hash").is_none());
        assert!(v["next_cursor"].is_null());
    }
}

#[tokio::test]
async fn the_account_list_pages_with_an_opaque_cursor_and_checks_its_parameters_v1_4_2() {
    let app = TestApp::spawn().await;
    for i in 0..4 {
        app.register(&format!("page{i}@example.com")).await;
    }
    let admin = app.admin_tokens().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/api/v1/users?limit=2".to_owned(),
            Some(c) => format!("/api/v1/users?limit=2&cursor={c}"),
        };
        let v: Value = app.get(&path, &admin.access).await.json().await.unwrap();
        seen.extend(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[0], ADMIN_EMAIL);
    for q in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=1e309",
        "limit=9223372036854775808",
        "limit=1&limit=100",
        "cursor=!!!",
        "cursor=bm90LWFuLWlk",
        "sort=email",
    ] {
        let res = app.get(&format!("/api/v1/users?{q}"), &admin.access).await;
        problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

#[tokio::test]
async fn admins_change_roles_and_the_change_applies_at_once() {
    let app = TestApp::spawn().await;
    let (a, t) = app.user_with_role("promote@example.com", "user").await;
    let admin = app.admin_tokens().await;
    problem(
        app.get("/api/v1/users", &t.access).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let v: Value = app
        .patch_json(
            &format!("/api/v1/users/{}", a.id),
            &admin.access,
            &json!({"role": "manager"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["role"], "manager");
    assert_eq!(
        app.get("/api/v1/users", &t.access).await.status(),
        StatusCode::OK,
        "same token, new role"
    );
}

#[tokio::test]
async fn managers_disable_plain_users_only_and_never_change_roles_v8_2_3() {
    let app = TestApp::spawn().await;
    let (_, m) = app.user_with_role("m1@example.com", "manager").await;
    let (u, ut) = app.user_with_role("u1@example.com", "user").await;
    let (m2, _) = app.user_with_role("m2@example.com", "manager").await;
    let patch = |id: &str, body: Value| {
        let (app, m) = (&app, &m);
        let path = format!("/api/v1/users/{id}");
        async move { app.patch_json(&path, &m.access, &body).await }
    };
    problem(
        patch(&u.id, json!({"role": "manager"})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        patch(&app.admin.id, json!({"disabled": true})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        patch(&m2.id, json!({"disabled": true})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let res = patch(&u.id, json!({"disabled": true})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["disabled"], true);
    invalid_token(app.get("/api/v1/users/me", &ut.access).await).await;
    // A plain user administers nobody.
    let (_, other) = app.user_with_role("u2@example.com", "user").await;
    let res = app
        .patch_json(
            &format!("/api/v1/users/{}", u.id),
            &other.access,
            &json!({"disabled": false}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn nobody_demotes_or_disables_themselves_and_the_last_admin_stays() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    let me = format!("/api/v1/users/{}", app.admin.id);
    problem(
        app.patch_json(&me, &admin.access, &json!({"role": "user"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    problem(
        app.patch_json(&me, &admin.access, &json!({"disabled": true}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    // A second admin may not remove the first while the first is the only other one... unless two remain.
    let (b, bt) = app.user_with_role("admin2@example.com", "admin").await;
    let res = app
        .patch_json(&me, &bt.access, &json!({"role": "user"}))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "two admins: one may be demoted"
    );
    // Now b is the last admin; the demoted root cannot act, and b cannot demote itself.
    problem(
        app.patch_json(
            &format!("/api/v1/users/{}", b.id),
            &bt.access,
            &json!({"role": "manager"}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    let v: Value = app
        .get("/api/v1/users/me", &bt.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["role"], "admin");
}

#[tokio::test]
async fn account_paths_that_are_not_ids_or_bodies_that_are_wrong_never_5xx() {
    let app = TestApp::spawn().await;
    let admin = app.admin_tokens().await;
    for id in [
        "not-an-id",
        "1",
        "-1",
        "99999999999999999999",
        "%252e%252e",
        "01234567-89ab-cdef-0123-456789abcdef",
    ] {
        let res = app
            .patch_json(
                &format!("/api/v1/users/{id}"),
                &admin.access,
                &json!({"disabled": true}),
            )
            .await;
        problem(res, StatusCode::NOT_FOUND).await;
    }
    let a = app.register("target@example.com").await;
    let path = format!("/api/v1/users/{}", a.id);
    invalid_fields(
        app.patch_json(&path, &admin.access, &json!({"role": "root"}))
            .await,
        &["role"],
    )
    .await;
    invalid_fields(
        app.patch_json(&path, &admin.access, &json!({"disabled": "true"}))
            .await,
        &["disabled"],
    )
    .await;
    invalid_fields(
        app.patch_json(&path, &admin.access, &json!({"email": "x@example.com"}))
            .await,
        &["email"],
    )
    .await;
    invalid_fields(
        app.patch_json(&path, &admin.access, &json!({})).await,
        &["body"],
    )
    .await;
    // Found by Schemathesis: `null` is not "left out".
    invalid_fields(
        app.patch_json(
            &path,
            &admin.access,
            &json!({"role": "user", "disabled": null}),
        )
        .await,
        &["disabled"],
    )
    .await;
}

/// Guessing the current password with a stolen access token is throttled like a login, and a
/// guess the guard refuses is still a guess: a `user.password_change` `throttled` event against
/// the account, at most 10 per account per 10 minutes, the rest counted (ASVS V16.3.1, V6.3.1;
/// issue 16 review F3).
#[tokio::test]
async fn refused_guesses_of_the_current_password_are_recorded_at_most_ten_times_v16_3_1() {
    let app = TestApp::spawn_with(&[("IMANGOR_LOGIN_LOCK_AFTER", "1")]).await;
    let a = app.register("guessed@example.com").await;
    let t = app.login(&a).await;
    let skipped = r#"security_events_skipped_total{action="user.password_change"}"#;
    let skipped_before = app.metric(skipped);
    let guess = json!({"current_password": "wrong one!", "new_password": "a brand new passphrase"});
    let res = app.patch_json("/api/v1/users/me", &t.access, &guess).await;
    problem(res, StatusCode::FORBIDDEN).await;
    for _ in 0..15 {
        let res = app.patch_json("/api/v1/users/me", &t.access, &guess).await;
        assert!(res.headers().contains_key("retry-after"));
        problem(res, StatusCode::TOO_MANY_REQUESTS).await;
    }
    let throttled: Vec<EventRow> = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "user.password_change" && e.outcome == "throttled")
        .collect();
    assert_eq!(throttled.len(), 10, "one row per refusal up to the cap");
    assert!(
        throttled.iter().all(|e| {
            e.actor_id.as_deref() == Some(a.id.as_str())
                && e.target.as_deref() == Some(a.id.as_str())
        }),
        "{throttled:?}"
    );
    assert_eq!(app.metric(skipped) - skipped_before, 5);
}

/// Two admins, each demoting the other at the same moment: the last active admin rule holds
/// under concurrency (the account changes are serialized in one write transaction, with the
/// admins' rows locked on PostgreSQL). Exactly one demotion succeeds; the other is refused,
/// with 409 when it was authenticated before the first committed (the rule), or 403 when its
/// token already carried the demoted role; exactly one active admin is left. Repeated so that
/// both orders of arrival are likely to occur.
#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_exactly_one_admin() {
    let app = TestApp::spawn().await;
    let root = app.admin_tokens().await;
    // Whoever is the admin now: promotes the next pair (the bootstrap admin at first).
    let mut boss = root.clone();
    let mut conflicts = 0;
    for round in 0..6 {
        let mut pair = Vec::new();
        for who in ["a", "b"] {
            let acc = app
                .register(&format!("race-{who}{round}@example.com"))
                .await;
            let res = app
                .patch_json(
                    &format!("/api/v1/users/{}", acc.id),
                    &boss.access,
                    &json!({"role": "admin"}),
                )
                .await;
            assert_eq!(res.status(), StatusCode::OK);
            let t = app.login(&acc).await;
            pair.push((acc, t));
        }
        let ((a, at), (b, bt)) = (pair[0].clone(), pair[1].clone());
        // Only these two are admins: every other steps down to manager.
        let others: Vec<Value> = app
            .get("/api/v1/users?limit=100", &at.access)
            .await
            .json::<Value>()
            .await
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| {
                u["role"] == "admin" && u["id"] != a.id.as_str() && u["id"] != b.id.as_str()
            })
            .cloned()
            .collect();
        for o in others {
            let res = app
                .patch_json(
                    &format!("/api/v1/users/{}", o["id"].as_str().unwrap()),
                    &at.access,
                    &json!({"role": "manager"}),
                )
                .await;
            assert_eq!(res.status(), StatusCode::OK);
        }
        let (path_a, path_b) = (
            format!("/api/v1/users/{}", a.id),
            format!("/api/v1/users/{}", b.id),
        );
        let demote = json!({"role": "user"});
        let (ra, rb) = tokio::join!(
            app.patch_json(&path_b, &at.access, &demote),
            app.patch_json(&path_a, &bt.access, &demote),
        );
        let (sa, sb) = (ra.status(), rb.status());
        let mut statuses = [sa, sb];
        statuses.sort();
        assert!(
            statuses == [StatusCode::OK, StatusCode::CONFLICT]
                || statuses == [StatusCode::OK, StatusCode::FORBIDDEN],
            "round {round}: exactly one demotion succeeds: {statuses:?}"
        );
        let loser = if sa == StatusCode::OK { rb } else { ra };
        if statuses[1] == StatusCode::CONFLICT {
            conflicts += 1;
            let v = problem(loser, StatusCode::CONFLICT).await;
            assert_eq!(
                v["detail"],
                "the last active admin cannot be demoted or disabled"
            );
        } else {
            problem(loser, StatusCode::FORBIDDEN).await;
        }
        // Exactly one active admin is left, and it is one of the two.
        let list: Value = app
            .get("/api/v1/users?limit=100", &root.access)
            .await
            .json()
            .await
            .unwrap();
        let admins: Vec<&Value> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["role"] == "admin" && u["disabled"] == false)
            .collect();
        assert_eq!(admins.len(), 1, "round {round}: {list}");
        boss = if admins[0]["id"] == a.id.as_str() {
            at
        } else {
            assert_eq!(admins[0]["id"], b.id.as_str(), "{list}");
            bt
        };
    }
    println!("refused with 409 in {conflicts} of 6 rounds (else 403)");
}
