//! Registration: `POST /api/v1/users`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn body(email: &str, password: &str, full_name: &str) -> Value {
    json!({"email": email, "password": password, "full_name": full_name})
}

#[tokio::test]
async fn registration_returns_201_with_the_contract_fields_and_role_user() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json(
            "/api/v1/users",
            None,
            &body("  Ada.Lovelace@Example.COM ", PASSWORD, "  Ada Lovelace "),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    // V15.3.1: only the contract's fields; never a hash.
    assert_eq!(keys, ["created_at", "email", "full_name", "id", "role"]);
    assert_eq!(v["email"], "ada.lovelace@example.com");
    assert_eq!(v["full_name"], "Ada Lovelace");
    assert_eq!(v["role"], "user");
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn a_taken_email_is_409_whatever_its_case() {
    let app = TestApp::spawn().await;
    app.register("grace@example.com").await;
    let res = app
        .post_json(
            "/api/v1/users",
            None,
            &body("GRACE@example.com", PASSWORD, "Grace"),
        )
        .await;
    problem(res, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn every_invalid_field_is_listed_in_one_422_v2_2_1() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json("/api/v1/users", None, &body("not-an-email", "short", ""))
        .await;
    invalid_fields(res, &["email", "full_name", "password"]).await;
}

#[tokio::test]
async fn password_length_boundaries_count_characters_v2_2_1_v6_2_1_v6_2_9() {
    let app = TestApp::spawn().await;
    let cases: &[(String, StatusCode)] = &[
        ("zqxwvuy".into(), StatusCode::UNPROCESSABLE_ENTITY), // 7
        ("zqxwvuyt".into(), StatusCode::CREATED),             // 8
        ("ñøß∂ƒ©˙∆".into(), StatusCode::CREATED),             // 8 characters, 19 bytes
        ("ñøß∂ƒ©˙".into(), StatusCode::UNPROCESSABLE_ENTITY), // 7 characters, 17 bytes
        ("k".repeat(63) + "q", StatusCode::CREATED),          // 64
        ("é".repeat(50) + &"k".repeat(50), StatusCode::CREATED), // 100 characters, 150 bytes
        ("k".repeat(100) + "q", StatusCode::UNPROCESSABLE_ENTITY), // 101
    ];
    for (i, (pw, want)) in cases.iter().enumerate() {
        let res = app
            .post_json(
                "/api/v1/users",
                None,
                &body(&format!("len{i}@example.com"), pw, "Len"),
            )
            .await;
        assert_eq!(
            res.status(),
            *want,
            "password of {} characters",
            pw.chars().count()
        );
        if *want == StatusCode::CREATED {
            // V6.2.9: long and multibyte passwords log in as typed.
            app.login(&Account {
                id: String::new(),
                email: format!("len{i}@example.com"),
                password: pw.clone(),
            })
            .await;
        } else {
            invalid_fields(res, &["password"]).await;
        }
    }
}

#[tokio::test]
async fn common_and_contextual_passwords_are_refused_with_a_reason_v6_2_4_v6_2_11() {
    let app = TestApp::spawn().await;
    for pw in [
        "password",
        "12345678",
        "qwerty123",
        "iloveyou1",
        "imangor2025",
        "walter.white",
        "walter.white@example.com",
    ] {
        let res = app
            .post_json(
                "/api/v1/users",
                None,
                &body("walter.white@example.com", pw, "Walter"),
            )
            .await;
        let v = invalid_fields(res, &["password"]).await;
        assert!(
            v["errors"][0]["message"].as_str().unwrap().len() > 10,
            "a reason is given: {v}"
        );
    }
}

#[tokio::test]
async fn there_are_no_composition_rules_v6_2_5() {
    let app = TestApp::spawn().await;
    for (i, pw) in [
        "abcdefghijklmnop",
        "purple monkey dishwasher",
        "🦀🦀🦀🦀🦀🦀🦀🦀",
    ]
    .iter()
    .enumerate()
    {
        let res = app
            .post_json(
                "/api/v1/users",
                None,
                &body(&format!("nc{i}@example.com"), pw, "No Rules"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "{pw}");
    }
}

#[tokio::test]
async fn full_name_is_trimmed_bounded_and_free_of_control_characters() {
    let app = TestApp::spawn().await;
    let long = "ü".repeat(100);
    let ok = ["A", long.as_str()];
    for (i, n) in ok.iter().enumerate() {
        let res = app
            .post_json(
                "/api/v1/users",
                None,
                &body(&format!("fn{i}@example.com"), PASSWORD, n),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let too_long = "ü".repeat(101);
    for n in [
        "",
        "   ",
        too_long.as_str(),
        "Eve\r\nSet-Cookie: x=1",
        "x\n{\"level\":\"ERROR\",\"msg\":\"forged\"}",
    ] {
        let res = app
            .post_json(
                "/api/v1/users",
                None,
                &body("fn-bad@example.com", PASSWORD, n),
            )
            .await;
        invalid_fields(res, &["full_name"]).await;
    }
}

#[tokio::test]
async fn malformed_email_addresses_are_refused() {
    let app = TestApp::spawn().await;
    for e in [
        "",
        "plain",
        "a@b",
        "a@@example.com",
        "a b@example.com",
        "' OR '1'='1",
        "1;DROP TABLE users--@x.com",
        "a\u{0}@example.com",
        "ada@example.com\r\nBcc: x@example.com",
    ] {
        let res = app
            .post_json("/api/v1/users", None, &body(e, PASSWORD, "X"))
            .await;
        invalid_fields(res, &["email"]).await;
    }
}

#[tokio::test]
async fn mass_assignment_of_role_or_id_is_refused_v15_3_3_v8_2_3() {
    let app = TestApp::spawn().await;
    for extra in [
        json!({"role": "admin"}),
        json!({"id": "x"}),
        json!({"disabled": false}),
        json!({"created_at": "2020-01-01"}),
    ] {
        let mut b = body("mallory@example.com", PASSWORD, "Mallory");
        let field = extra.as_object().unwrap().keys().next().unwrap().clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let res = app.post_json("/api/v1/users", None, &b).await;
        invalid_fields(res, &[&field]).await;
    }
    // And nothing was created by those attempts.
    let res = app
        .post_json(
            "/api/v1/users",
            None,
            &body("mallory@example.com", PASSWORD, "Mallory"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn strict_types_no_juggling_v15_3_5() {
    let app = TestApp::spawn().await;
    for b in [
        json!({"email": 123, "password": PASSWORD, "full_name": "X"}),
        json!({"email": "t@example.com", "password": PASSWORD, "full_name": ["X"]}),
        json!({"email": "t@example.com", "password": PASSWORD}),
        json!(null),
        json!([]),
    ] {
        let res = app.post_json("/api/v1/users", None, &b).await;
        problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

#[tokio::test]
async fn malformed_json_is_400_and_a_wrong_content_type_is_415() {
    let app = TestApp::spawn().await;
    let raw = |ct: &'static str, b: &'static str| {
        app.client
            .post(app.url("/api/v1/users"))
            .header("content-type", ct)
            .body(b)
            .send()
    };
    problem(
        raw("application/json", "{\"email\": ").await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        raw("application/json", "{} {}").await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        raw("text/plain", "{}").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    problem(
        raw("application/x-www-form-urlencoded", "email=a")
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
}

#[tokio::test]
async fn json_output_round_trips_awkward_text_v1_2_3() {
    let app = TestApp::spawn().await;
    let name = "Zoë \"Q\" O'Neil \\ </script> \u{2603}";
    let res = app
        .post_json(
            "/api/v1/users",
            None,
            &body("zoe@example.com", PASSWORD, name),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["full_name"], name);
}

#[tokio::test]
async fn sql_metacharacters_are_data_not_code_v1_2_4() {
    let app = TestApp::spawn().await;
    let name = "Robert'); DROP TABLE users;--";
    let res = app
        .post_json(
            "/api/v1/users",
            None,
            &body("bobby@example.com", PASSWORD, name),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let a = Account {
        id: String::new(),
        email: "bobby@example.com".into(),
        password: PASSWORD.into(),
    };
    let t = app.login(&a).await;
    let v: Value = app
        .get("/api/v1/users/me", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["full_name"], name);
    let res = app
        .token(&[
            ("grant_type", "password"),
            ("username", "' OR '1'='1"),
            ("password", "' OR '1'='1"),
        ])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn parallel_registrations_of_one_email_create_exactly_one_account_v2_3_4() {
    let app = TestApp::spawn().await;
    let b = body("race@example.com", PASSWORD, "Race");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (c, url, b) = (app.client.clone(), app.url("/api/v1/users"), b.clone());
        set.spawn(async move { c.post(url).json(&b).send().await.unwrap().status() });
    }
    let statuses = set.join_all().await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn admin_only_registration_refuses_anonymous_and_users_api6() {
    let app = TestApp::spawn_with(&[("IMANGOR_REGISTRATION", "admin")]).await;
    let res = app
        .post_json(
            "/api/v1/users",
            None,
            &body("anon@example.com", PASSWORD, "Anon"),
        )
        .await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    problem(res, StatusCode::UNAUTHORIZED).await;
    let admin = app.admin_tokens().await;
    let res = app
        .post_json(
            "/api/v1/users",
            Some(&admin.access),
            &body("made@example.com", PASSWORD, "Made"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let made = app
        .login(&Account {
            id: String::new(),
            email: "made@example.com".into(),
            password: PASSWORD.into(),
        })
        .await;
    let res = app
        .post_json(
            "/api/v1/users",
            Some(&made.access),
            &body("other@example.com", PASSWORD, "Other"),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN).await;
}

/// `IMANGOR_PASSWORD_MIN_LENGTH` above the default 8 (V6.2.1): with 15, 14 characters are
/// refused with a 422 naming `password`, 15 are accepted (multibyte characters count as one).
#[tokio::test]
async fn a_higher_password_minimum_is_enforced_exactly_v6_2_1() {
    let app = TestApp::spawn_with(&[("IMANGOR_PASSWORD_MIN_LENGTH", "15")]).await;
    let cases: &[(&str, &str, StatusCode)] = &[
        ("min14", "zqxwvuytsrpkjh", StatusCode::UNPROCESSABLE_ENTITY),
        ("min15", "zqxwvuytsrpkjhg", StatusCode::CREATED),
        ("mb14", "ñøß∂ƒ©˙∆zqxwvu", StatusCode::UNPROCESSABLE_ENTITY),
        ("mb15", "ñøß∂ƒ©˙∆zqxwvuy", StatusCode::CREATED),
    ];
    for (name, pw, want) in cases {
        let email = format!("{name}@example.com");
        let res = app
            .post_json("/api/v1/users", None, &body(&email, pw, "Min"))
            .await;
        assert_eq!(res.status(), *want, "{} characters", pw.chars().count());
        if *want == StatusCode::CREATED {
            app.login(&Account {
                id: String::new(),
                email,
                password: pw.to_string(),
            })
            .await;
        } else {
            let v = invalid_fields(res, &["password"]).await;
            assert!(
                v["errors"][0]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("15"),
                "the message names the minimum: {v}"
            );
        }
    }
    // A password change is held to the same minimum.
    let (a, t) = app.user_with_role("changer@example.com", "user").await;
    let res = app
        .patch_json(
            "/api/v1/users/me",
            &t.access,
            &json!({"current_password": a.password, "new_password": "zqxwvuytsrpkjh"}),
        )
        .await;
    invalid_fields(res, &["new_password"]).await;
}
