//! Evidence bundles (issue 22, item 2; ASVS V16.4.2: logs protected from modification, and the
//! proof carried out of the deployment): an incident's bundle exported through the API and the
//! command line, checked offline by `imangor evidence verify` with nothing but the file, and each
//! kind of change to it (an event, a checkpoint's signature or signed hash, the manifest) named.
//! The public checkpoint keys at `/.well-known/imangor-audit-keys`; the export for admins alone.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::process::command;

/// A server whose checkpoints come every 3 rows, so an incident's events span several.
async fn app() -> TestApp {
    TestApp::spawn_with(&[
        ("IMANGOR_DATA_KEYS", DATA_KEYS),
        ("IMANGOR_AUDIT_CHECKPOINT_EVENTS", "3"),
    ])
    .await
}

async fn seal(app: &TestApp) {
    imangor::service::audit::seal::seal_and_detect(&app.state.trail)
        .await
        .unwrap();
}

/// A brute-force incident on a fresh account, sealed and signed; its id.
async fn brute_force(app: &TestApp, admin: &Tokens) -> String {
    let victim = app.register("evidence-victim@example.com").await;
    for _ in 0..10 {
        assert_eq!(
            crate::incidents::wrong_login(app, &victim.email).await,
            StatusCode::BAD_REQUEST
        );
        seal(app).await;
    }
    imangor::service::audit::seal::seal_and_sign(&app.state.trail)
        .await
        .unwrap();
    let found = crate::incidents::listed_of(app, admin, "brute_force").await;
    assert_eq!(found.len(), 1, "{found:?}");
    found[0]["id"].as_str().unwrap().to_owned()
}

/// `imangor ARGS` with nothing in its environment but `envs`: (succeeded, stdout + stderr).
async fn imangor(envs: &[(&str, String)], args: &[&str]) -> (bool, String) {
    let out = command(envs).args(args).output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `imangor evidence verify` of `bundle` written to a file, with an empty environment: it reads
/// nothing but the file (and `keys`, when given).
async fn verify(dir: &Path, name: &str, bundle: &Value, keys: Option<&Path>) -> (bool, String) {
    let file = dir.join(name);
    std::fs::write(&file, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
    let mut args = vec!["evidence".to_owned(), "verify".into(), path(&file)];
    if let Some(k) = keys {
        args.extend(["--keys".into(), path(k)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    imangor(&[], &args).await
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Asserts that `verify` refuses the bundle and that its answer names each of `named`.
async fn refused(dir: &Path, name: &str, bundle: &Value, named: &[&str]) {
    let (ok, text) = verify(dir, name, bundle, None).await;
    assert!(!ok, "a changed bundle ({name}) must fail: {text}");
    assert!(text.contains("CHANGED: "), "{text}");
    for n in named {
        assert!(text.contains(n), "{name}: {n:?} not named in:\n{text}");
    }
}

/// The index of the first checkpoint (not the head) among the bundle's signed points.
fn a_checkpoint(bundle: &Value) -> (usize, i64) {
    let signed = bundle["chain"]["signed"].as_array().unwrap();
    let i = signed
        .iter()
        .position(|s| s["kind"] == "checkpoint")
        .expect("a checkpoint within the segment");
    (i, signed[i]["seq"].as_i64().unwrap())
}

#[tokio::test]
async fn an_incidents_evidence_bundle_verifies_offline_and_names_each_change_v16_4_2() {
    let app = app().await;
    let admin = app.admin_tokens().await;
    let id = brute_force(&app, &admin).await;
    let dir = tempfile::tempdir().unwrap();

    // Through the API: a JSON attachment.
    let res = app
        .get(&format!("/api/v1/incidents/{id}/evidence"), &admin.access)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        res.headers()["content-disposition"],
        format!("attachment; filename=\"incident-{id}-evidence.json\"").as_str()
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let bundle: Value = res.json().await.unwrap();
    assert_eq!(bundle["format"], "imangor-evidence-bundle/1");
    assert_eq!(bundle["incident"]["id"], id.as_str());
    assert_eq!(bundle["incident"]["kind"], "brute_force");
    assert_eq!(bundle["export"]["by"], app.admin.id.as_str());
    let events = bundle["events"].as_array().unwrap();
    let failures = events
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["outcome"] == "failure")
        .count();
    assert_eq!(failures, 10, "every failure that raised it");
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "incident.open" && e["target"] == format!("incident:{id}"))
    );
    assert!(
        bundle["chain"]["signed"].as_array().unwrap().len() >= 2,
        "{}",
        bundle["chain"]["signed"]
    );
    // The configuration summary names keys by id, never their bytes or any secret.
    let deployment = bundle["deployment"].to_string();
    assert_eq!(bundle["deployment"]["data_keys"], serde_json::json!(["t1"]));
    assert!(!deployment.contains(JWT_SECRET) && !deployment.contains(&DATA_KEYS[3..]));
    assert!(!bundle.to_string().contains(&DATA_KEYS[3..]));
    let (ok, text) = verify(dir.path(), "api.json", &bundle, None).await;
    assert!(ok, "{text}");
    assert!(text.contains("the evidence bundle is intact"), "{text}");

    // The published keys pin the verification.
    let res = app.get_anon("/.well-known/imangor-audit-keys").await;
    assert_eq!(res.status(), StatusCode::OK);
    let keys_file = dir.path().join("audit-keys.json");
    std::fs::write(&keys_file, res.bytes().await.unwrap()).unwrap();
    let (ok, text) = verify(dir.path(), "pinned.json", &bundle, Some(&keys_file)).await;
    assert!(ok, "{text}");
    assert!(text.contains("pinned keys"), "{text}");

    // Through the command line, beside the running server: the same incident, verified.
    let out: PathBuf = dir.path().join("cli.json");
    let envs = [
        ("IMANGOR_DATA_DIR", path(&dir.path().join("data"))),
        ("IMANGOR_DATABASE_URL", app.database_url.clone()),
        ("IMANGOR_DATA_KEYS", DATA_KEYS.to_owned()),
    ];
    imangor::service::audit::seal::seal_and_sign(&app.state.trail)
        .await
        .unwrap();
    let (ok, text) = imangor(&envs, &["incident", "evidence", &id, "--out", &path(&out)]).await;
    assert!(ok, "{text}");
    let cli: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(cli["incident"]["id"], id.as_str());
    assert_eq!(cli["export"]["by"], "operator");
    assert!(
        cli["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "incident.evidence"),
        "the API's export is itself an event of the incident"
    );
    let (ok, text) = imangor(&[], &["evidence", "verify", &path(&out)]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "incident {id} (brute_force, high, open), exported"
        )) && text.contains("by operator"),
        "{text}"
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    let none = path(&dir.path().join("none.json"));
    let (ok, text) = imangor(&envs, &["incident", "evidence", &unknown, "--out", &none]).await;
    assert!(
        !ok && text.contains(&format!("no incident has the id {unknown}")),
        "{text}"
    );
    assert!(!dir.path().join("none.json").exists());
    // Each export is in the trail, with who asked.
    let exports: Vec<_> = crate::helpers::events(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "incident.evidence")
        .collect();
    assert_eq!(exports.len(), 2);
    assert_eq!(exports[0].actor_id.as_deref(), Some(app.admin.id.as_str()));
    assert_eq!(exports[1].actor_id, None);

    // An event changed: named by its seq.
    let open = events
        .iter()
        .position(|e| e["action"] == "incident.open")
        .unwrap();
    let seq = events[open]["seq"].as_i64().unwrap();
    let mut b = bundle.clone();
    b["events"][open]["detail"] = "user_report (low)".into();
    refused(
        dir.path(),
        "event.json",
        &b,
        &[&format!("event seq {seq}"), "manifest entry \"events\""],
    )
    .await;

    // A chain row rewritten by someone who knows the algorithm: its hash and the manifest
    // recomputed. The next row's link, the checkpoint over it and the manifest's signature say so.
    let mut b = bundle.clone();
    let rows = b["chain"]["rows"].as_array_mut().unwrap();
    let first = rows[0]["seq"].as_i64().unwrap();
    rows[0]["detail"] = "rewritten".into();
    let row: imangor::db::audit::AuditRow = serde_json::from_value(rows[0].clone()).unwrap();
    rows[0]["hash"] =
        imangor::crypto::chain::chain_hash(row.prev_hash.as_deref().unwrap(), first, &row).into();
    use imangor::service::audit::evidence::digest;
    let chain_digest = digest(&b["chain"]);
    b["manifest"]["parts"]["chain"] = chain_digest.into();
    refused(
        dir.path(),
        "rewritten.json",
        &b,
        &[
            &format!("event seq {} does not follow seq {first}", first + 1),
            "the manifest's signature",
        ],
    )
    .await;

    // A checkpoint's signature changed.
    let (i, cp) = a_checkpoint(&bundle);
    let mut b = bundle.clone();
    let sig = b["chain"]["signed"][i]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    b["chain"]["signed"][i]["signature"] = format!("{flipped}{}", &sig[1..]).into();
    refused(
        dir.path(),
        "signature.json",
        &b,
        &[&format!("checkpoint {cp} was changed: its signature")],
    )
    .await;

    // A checkpoint's covered hash changed.
    let mut b = bundle.clone();
    b["chain"]["signed"][i]["hash"] = "0".repeat(64).into();
    refused(
        dir.path(),
        "covered.json",
        &b,
        &[&format!("checkpoint {cp} was changed: the hash it signs")],
    )
    .await;

    // The manifest changed.
    let mut b = bundle.clone();
    b["manifest"]["parts"]["deployment"] = "0".repeat(64).into();
    refused(
        dir.path(),
        "manifest.json",
        &b,
        &["manifest entry \"deployment\"", "the manifest's signature"],
    )
    .await;

    // A key the deployment does not publish: refused against the pinned set.
    let mut b = bundle.clone();
    b["keys"]["keys"][0]["x"] = "A".repeat(43).into();
    let (ok, text) = verify(dir.path(), "key.json", &b, Some(&keys_file)).await;
    assert!(!ok, "{text}");
    assert!(text.contains("key t1 in the bundle differs"), "{text}");
}

#[tokio::test]
async fn the_audit_keys_are_published_as_a_key_set_without_secrets() {
    let app = app().await;
    let res = app.get_anon("/.well-known/imangor-audit-keys").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    let set: Value = res.json().await.unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{set}");
    let k = &keys[0];
    assert_eq!(
        (&k["kty"], &k["crv"], &k["kid"], &k["use"], &k["alg"]),
        (
            &"OKP".into(),
            &"Ed25519".into(),
            &"t1".into(),
            &"sig".into(),
            &"EdDSA".into()
        )
    );
    assert_eq!(k["x"].as_str().unwrap().len(), 43, "32 bytes, base64url");
    assert!(k.get("d").is_none(), "never a private key");
    // The key verifies the chain's checkpoints: the one the sealer signed with it.
    imangor::service::audit::seal::seal_and_sign(&app.state.trail)
        .await
        .unwrap();
    let public = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        k["x"].as_str().unwrap(),
    )
    .unwrap();
    let head = imangor::db::audit::signed_head(&app.state.store.db)
        .await
        .unwrap()
        .expect("a signed head");
    let message = imangor::crypto::chain::head_message(head.seq, &head.hash, head.at);
    assert_eq!(
        imangor::crypto::chain::verdict_with(&public, &head.signature, &[&message]),
        imangor::crypto::chain::Verdict::Holds(0)
    );
}

#[tokio::test]
async fn only_admins_export_evidence_v8_2_1() {
    let app = app().await;
    let admin = app.admin_tokens().await;
    let id = brute_force(&app, &admin).await;
    let url = format!("/api/v1/incidents/{id}/evidence");
    let (_, manager) = app
        .user_with_role("ev-manager@example.com", "manager")
        .await;
    let (_, user) = app.user_with_role("ev-user@example.com", "user").await;
    for t in [&manager, &user] {
        let p = problem(app.get(&url, &t.access).await, StatusCode::FORBIDDEN).await;
        assert_eq!(p["type"], "urn:imangor:problem:forbidden", "{p}");
    }
    let res = app.get_anon(&url).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
    // An unknown incident, or an id that is not one.
    for other in [uuid::Uuid::now_v7().to_string(), "nope".to_owned()] {
        let res = app
            .get(
                &format!("/api/v1/incidents/{other}/evidence"),
                &admin.access,
            )
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    // A file that is not a bundle, or none: exit 1, said.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.json");
    std::fs::write(&f, b"{\"format\": \"something else\"}").unwrap();
    let (ok, text) = imangor(&[], &["evidence", "verify", &path(&f)]).await;
    assert!(
        !ok && text.contains("not a bundle this version reads"),
        "{text}"
    );
    let (ok, text) = imangor(
        &[],
        &["evidence", "verify", &path(&dir.path().join("none"))],
    )
    .await;
    assert!(!ok && text.contains("reading"), "{text}");
}
