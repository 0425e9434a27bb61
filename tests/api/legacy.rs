//! No one is logged out at cut-over (issue 20): with `IMANGOR_LEGACY_JWT_SECRET` set, the access
//! tokens the replaced Python stack signed (python-jose HS256, `sub` the old integer id, `exp`)
//! are accepted for the accounts imported from it, with the account's current role and status;
//! every other old token is refused exactly like an invalid token (RFC 8725 §2.1, §3.1, §3.11;
//! ASVS V9.1.1, V9.1.2, V9.2.1, V9.2.2). `imangor doctor` says when the setting has stayed too long.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{base_env, command};

/// The old stack's `SECRET_KEY` (the guide's deployments use `openssl rand -hex 32`).
const OLD_SECRET: &str = "9d4f1c7a2b6e8f0d3c5a7b9e1f2d4c6a8b0e2f4d6c8a0b2e4f6d8c0a2b4e6f8d";
/// What python-jose writes as the header.
const JOSE: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn sign(header: &str, claims: &Value, key: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(header);
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let input = format!("{h}.{p}");
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An access token as the old stack's `create_access_token` made it for user `sub`.
fn old_token(sub: Value) -> String {
    sign(JOSE, &json!({"sub": sub, "exp": now() + 900}), OLD_SECRET)
}

async fn exec(app: &TestApp, sql: &str) {
    match &app.state.store.db {
        imangor::db::Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
        imangor::db::Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
    }
    .unwrap();
}

/// What the import leaves behind for one account: old user `old_id` became `account`.
async fn imported(app: &TestApp, old_id: u32, account: &Account) {
    exec(
        app,
        &format!(
            "insert into legacy_ids (source_table, source_id, target_id, imported_at) values ('users', '{old_id}', '{}', {})",
            account.id,
            now() * 1_000_000
        ),
    )
    .await;
}

async fn with_legacy() -> TestApp {
    TestApp::spawn_with(&[("IMANGOR_LEGACY_JWT_SECRET", OLD_SECRET)]).await
}

/// Asserts the answer every refused token gets, the same as for a token that is not one at all.
async fn refused_like_any_invalid_token(app: &TestApp, token: &str, what: &str) {
    let reference = app.get("/api/v1/users/me", "not-a-token").await;
    let reference: Value = reference.json().await.unwrap();
    let res = app.get("/api/v1/users/me", token).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#,
        "{what}"
    );
    let v: Value = res.json().await.unwrap();
    for member in ["type", "title", "status", "detail"] {
        assert_eq!(v[member], reference[member], "{what}: {member}");
    }
}

#[tokio::test]
async fn an_old_stack_token_reads_me_as_the_imported_account_with_its_current_role_v9_1_1() {
    let app = with_legacy().await;
    let a = app.register("moved@example.com").await;
    imported(&app, 17, &a).await;
    // The old token's `role` is never read: the account's role is the database's.
    let token = sign(
        JOSE,
        &json!({"sub": "17", "exp": now() + 900, "role": "admin"}),
        OLD_SECRET,
    );
    let res = app.get("/api/v1/users/me", &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!((&me["id"], &me["role"]), (&json!(a.id), &json!("user")));
    // A number as `sub`, and a `type: access` claim, are accepted too.
    let numeric = sign(
        JOSE,
        &json!({"sub": 17, "exp": now() + 900, "type": "access"}),
        OLD_SECRET,
    );
    assert_eq!(
        app.get("/api/v1/users/me", &numeric).await.status(),
        StatusCode::OK
    );
    // The admin-only list stays closed to it.
    assert_eq!(
        app.get("/api/v1/users", &token).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.metric("legacy_tokens_accepted_total"), 3);
    // On SQLite the imported account was read on the request's thread (`db::inline`).
    if let Some(inline) = app.state.store.readers.inline() {
        let c = inline.counts();
        assert_eq!(c.failed, 0, "{c:?}: no read failed there");
        assert!(c.served >= 2, "{c:?}");
    }
    // One audit event per account per hour, written off the request path.
    let all = events(&app).await;
    let start = all.iter().find(|e| e.action == "server.start").unwrap();
    assert!(
        start
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("old stack's tokens hs-")),
        "the start names the old key by its id: {start:?}"
    );
    let used: Vec<EventRow> = all
        .into_iter()
        .filter(|e| e.action == "auth.legacy_token")
        .collect();
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(
        (
            used[0].outcome.as_str(),
            used[0].actor_id.as_deref(),
            used[0].target.as_deref()
        ),
        ("success", Some(a.id.as_str()), Some(a.id.as_str()))
    );
    assert!(used[0].ip.is_some(), "{used:?}");
    // Changing the role in imangor changes what the old token may do.
    app.set_role(&a.id, "manager").await;
    let me: Value = app
        .get("/api/v1/users/me", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "manager");
}

#[tokio::test]
async fn every_other_old_token_is_refused_like_an_invalid_token_rfc8725_2_1_3_11_v9_1_2_v9_2_1_v9_2_2()
 {
    let app = with_legacy().await;
    let a = app.register("moved@example.com").await;
    imported(&app, 17, &a).await;
    let t = now();
    let cases: Vec<(&str, String)> = vec![
        (
            "expired beyond the leeway",
            sign(JOSE, &json!({"sub": "17", "exp": t - 120}), OLD_SECRET),
        ),
        ("without exp", sign(JOSE, &json!({"sub": "17"}), OLD_SECRET)),
        (
            "another key",
            sign(
                JOSE,
                &json!({"sub": "17", "exp": t + 900}),
                "another-deployment-secret-0123456789abcdef",
            ),
        ),
        ("an unknown sub", old_token(json!("18"))),
        (
            "a sub that is not an id",
            old_token(json!("moved@example.com")),
        ),
        (
            "a refresh token",
            sign(
                JOSE,
                &json!({"sub": "17", "exp": t + 900, "type": "refresh"}),
                OLD_SECRET,
            ),
        ),
        (
            "alg none",
            sign(
                r#"{"alg":"none","typ":"JWT"}"#,
                &json!({"sub": "17", "exp": t + 900}),
                OLD_SECRET,
            ),
        ),
        (
            "alg RS256",
            sign(
                r#"{"alg":"RS256","typ":"JWT"}"#,
                &json!({"sub": "17", "exp": t + 900}),
                OLD_SECRET,
            ),
        ),
        (
            "signed with imangor's key instead",
            sign(JOSE, &json!({"sub": "17", "exp": t + 900}), JWT_SECRET),
        ),
    ];
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(json!({"sub": "17", "exp": t + 900}).to_string())
    );
    for (what, token) in cases.iter().chain([("unsigned", unsigned)].iter()) {
        refused_like_any_invalid_token(&app, token, what).await;
    }
    // A disabled account is refused, whatever its old token says.
    exec(
        &app,
        &format!("update users set disabled = true where id = '{}'", a.id),
    )
    .await;
    refused_like_any_invalid_token(&app, &old_token(json!("17")), "a disabled account").await;
    assert_eq!(app.metric("legacy_tokens_accepted_total"), 0);
}

#[tokio::test]
async fn with_the_setting_off_old_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let a = app.register("moved@example.com").await;
    imported(&app, 17, &a).await;
    refused_like_any_invalid_token(&app, &old_token(json!("17")), "setting off").await;
    assert_eq!(app.metric("legacy_tokens_accepted_total"), 0);
}

/// Trying the old key does not hide forgeries: a token that fails both verifications counts for
/// the forged-token watch as it does without the setting.
#[tokio::test]
async fn tokens_failing_both_keys_still_count_as_forged() {
    let app = with_legacy().await;
    let forged = sign(
        JOSE,
        &json!({"sub": "1", "exp": now() + 900}),
        "a-guess-at-the-old-secret-0123456789abcdef",
    );
    for _ in 0..imangor::limits::blocks::FORGED_TOKENS {
        invalid_token(app.get("/api/v1/users/me", &forged).await).await;
    }
    let seen = events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "auth.token_invalid")
        .count();
    assert_eq!(seen, 1);
}

fn env_of<'a>(envs: &'a [(&str, String)], key: &str) -> &'a str {
    &envs.iter().find(|(k, _)| *k == key).unwrap().1
}

async fn imangor(envs: &[(&str, String)], args: &[&str]) -> (bool, String) {
    let out = command(envs).args(args).output().await.unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn doctor_flags_the_setting_after_seven_days_and_counts_bcrypt_accounts_v11_2_3() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("legacy-secret");
    std::fs::write(&secret_file, format!("{OLD_SECRET}\n")).unwrap();
    let mut envs = base_env(dir.path()).await;
    envs.extend([
        ("IMANGOR_ENV", "production".to_owned()),
        ("IMANGOR_JWT_SECRET", JWT_SECRET.to_owned()),
        ("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()),
        ("IMANGOR_PASSWORD_MIN_LENGTH", "15".to_owned()),
        ("IMANGOR_MFA_REQUIRED_ROLES", "admin".to_owned()),
        (
            "IMANGOR_LEGACY_JWT_SECRET_FILE",
            secret_file.display().to_string(),
        ),
    ]);
    let (ok, out) = imangor(&envs, &["migrate"]).await;
    assert!(ok, "{out}");
    let (ok, out) = imangor(&envs, &["doctor"]).await;
    assert!(ok, "{out}");
    assert!(!out.contains("IMANGOR_LEGACY_JWT_SECRET"), "{out}");
    let url = env_of(&envs, "IMANGOR_DATABASE_URL").to_owned();
    // An imported account still on its bcrypt hash, and the setting first seen 8 days ago.
    crate::keys::sql(
        &url,
        "insert into users (id, email, full_name, password_hash, role, disabled, created_at, updated_at) values ('0190a0c4-0000-7000-8000-000000000001', 'old@example.com', 'Old', '$2b$12$KIXQJ2vRlL0p1Qe3x9aYuO5nqkVj7yZk1m2n3o4p5q6r7s8t9u0v1', 'user', false, 0, 0)",
    )
    .await;
    let eight_days_ago = (now() - 8 * 86_400) * 1_000_000;
    crate::keys::sql(
        &url,
        &format!("update key_log set first_seen = {eight_days_ago} where ring = 'legacy-jwt'"),
    )
    .await;
    let (_, out) = imangor(&envs, &["doctor"]).await;
    assert!(
        out.contains("IMANGOR_LEGACY_JWT_SECRET has been set since")
            && out.contains("more than 7 days"),
        "{out}"
    );
    assert!(
        out.contains("1 account(s) still hold the bcrypt hashes"),
        "{out}"
    );
    // Production refuses a weak old key, and the doctor names it.
    std::fs::write(&secret_file, "changeme").unwrap();
    let (ok, out) = imangor(&envs, &["doctor"]).await;
    assert!(
        !ok && out.contains("IMANGOR_LEGACY_JWT_SECRET must be at least 32 bytes"),
        "{out}"
    );
    let out = command(&envs).arg("serve").output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("IMANGOR_LEGACY_JWT_SECRET"));
}

/// Issue 20 review: an old token belongs to no session, yet what ends an account's sessions ends
/// its old tokens too (a password change, containment, refresh-token reuse), and RFC 7009
/// revocation of one old token refuses every old token of the account from then on; new
/// sign-ins are untouched (ASVS V7.4.1, V7.4.3).
#[tokio::test]
async fn ending_the_sessions_or_revoking_an_old_token_ends_the_accounts_old_tokens_v7_4_1_v7_4_3() {
    let app = with_legacy().await;
    let a = app.register("changes-password@example.com").await;
    let b = app.register("revokes-old-token@example.com").await;
    imported(&app, 21, &a).await;
    imported(&app, 22, &b).await;
    let (old_a, old_b) = (old_token(json!("21")), old_token(json!("22")));
    assert_eq!(
        app.get("/api/v1/users/me", &old_a).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/users/me", &old_b).await.status(),
        StatusCode::OK
    );
    // A password change ends every session, and the old stack's tokens with them.
    let t = app.login(&a).await;
    let res = app
        .patch_json(
            "/api/v1/users/me",
            &t.access,
            &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    refused_like_any_invalid_token(&app, &old_a, "after a password change").await;
    // RFC 7009: 200, and from then on the account's old tokens are refused; a fresh old token
    // of the same account too (they carry no issue time), a new sign-in is not.
    assert_eq!(app.revoke(&old_b).await.status(), StatusCode::OK);
    refused_like_any_invalid_token(&app, &old_b, "after its revocation").await;
    refused_like_any_invalid_token(&app, &old_token(json!(22)), "another old token").await;
    let fresh = app.login(&b).await;
    assert_eq!(
        app.get("/api/v1/users/me", &fresh.access).await.status(),
        StatusCode::OK
    );
    assert!(
        events(&app).await.iter().any(|e| e.action == "auth.revoke"
            && e.outcome == "access_token_denied"
            && e.actor_id.as_deref() == Some(b.id.as_str())),
        "the revocation is in the audit trail"
    );
}

/// Issue 20 review: an old user merged onto an account that already existed (`import --merge`,
/// matched by email alone) never signs in with the old stack's tokens: the email match proves no
/// common owner, and the old stack let anyone register any address.
#[tokio::test]
async fn an_account_merged_by_email_accepts_no_old_token() {
    let app = with_legacy().await;
    let a = app.register("merged@example.com").await;
    exec(
        &app,
        &format!(
            "insert into legacy_ids (source_table, source_id, target_id, imported_at, merged) values ('users', '31', '{}', {}, true)",
            a.id,
            now() * 1_000_000
        ),
    )
    .await;
    refused_like_any_invalid_token(&app, &old_token(json!("31")), "a merged account").await;
}
