//! The HTTP surface: probes, the OpenAPI document and docs page, headers, limits, unknown routes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get_anon("/healthz").await.status(), StatusCode::OK);
    // The public answer says ready and nothing more (no backend, no shared-state outage that
    // tells an attacker the limits are per replica); the metrics listener's copy has the details.
    let v: Value = app.get_anon("/readyz").await.json().await.unwrap();
    assert_eq!(v, json!({"status": "ready"}));
    let v: Value = app.get_internal("/readyz").await.json().await.unwrap();
    assert_eq!(v["status"], "ready");
    assert_eq!(
        v["database"],
        if on_postgres() { "postgres" } else { "sqlite" }
    );
    assert_eq!(v["shared_state"], "off");
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_every_operation_in_it_is_routed_api9() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get_anon("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/users",
        "/api/v1/users/me",
        "/api/v1/users/{id}",
        "/api/v1/token",
        "/api/v1/token/revoke",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(p), "{p} documented");
    }
    // Parameters are where the server reads them (a query parameter documented "in: path" once
    // made every fuzzed page request a plain one).
    for p in doc["paths"]["/api/v1/resources"]["get"]["parameters"]
        .as_array()
        .unwrap()
    {
        assert_eq!(p["in"], "query", "{p}");
        assert_eq!(p["required"], false, "{p}");
    }
    for (path, ops) in paths {
        let concrete = path.replace("{id}", "01234567-89ab-cdef-0123-456789abcdef");
        for method in ops.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app
                .client
                .request(m.clone(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            assert_ne!(
                res.status(),
                StatusCode::NOT_FOUND,
                "{method} {path} is routed"
            );
            assert_ne!(
                res.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is routed"
            );
            // Operations that declare bearer security refuse anonymous calls (V6.3.4).
            if ops[method].get("security").is_some() {
                assert_eq!(
                    res.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} needs a token"
                );
            }
        }
    }
}

#[tokio::test]
async fn undocumented_paths_do_not_exist_v6_3_4_v13_4_5() {
    let app = TestApp::spawn().await;
    for p in [
        "/debug",
        "/admin",
        "/api/v2/users",
        "/api/v0/users",
        "/metrics",
        "/.env",
    ] {
        problem(app.get_anon(p).await, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn the_docs_page_is_served_by_the_binary_with_no_outside_resource() {
    let app = TestApp::spawn().await;
    let res = app.get_anon("/docs/").await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger"), "a Swagger UI page");
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        assert!(html.contains(asset), "{asset} referenced");
        let res = app.get_anon(&format!("/docs/{asset}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{asset} served locally");
    }
    let init = app
        .get_anon("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"));
    assert!(
        !init.contains("petstore") && !init.contains("validator.swagger.io"),
        "no online resource: {init}"
    );
    for needle in ["src=\"http", "href=\"http", "//cdn", "unpkg"] {
        assert!(!html.contains(needle), "{needle} in the docs page");
    }
}

#[tokio::test]
async fn security_headers_are_on_every_answer_v3_4_1_to_v3_4_5() {
    let app = TestApp::spawn().await;
    let a = app.register("hdr@example.com").await;
    let t = app.login(&a).await;
    let answers = vec![
        app.get_anon("/healthz").await,
        app.get("/api/v1/users/me", &t.access).await,
        app.get_anon("/api/v1/users/me").await,
        app.get("/api/v1/users", &t.access).await,
        app.get_anon("/nope").await,
        app.get_anon("/api/v1/token").await,
        app.post_json("/api/v1/users", None, &json!({})).await,
        app.token(&[("grant_type", "password")]).await,
    ];
    for res in answers {
        let h = res.headers();
        let what = format!("{} {}", res.url().path(), res.status());
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .contains("max-age=31536000; includeSubDomains"),
            "{what}"
        );
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{what}"
        );
        assert!(h.get("server").is_none(), "{what}");
        assert!(h.contains_key("x-request-id"), "{what}");
        // V4.1.1: every body has a content type.
        assert!(
            h["content-type"].to_str().unwrap().contains("json"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn trace_and_unlisted_methods_are_405_with_allow_v13_4_4() {
    let app = TestApp::spawn().await;
    for (m, p) in [
        ("TRACE", "/api/v1/users"),
        ("DELETE", "/api/v1/users/me"),
        ("PUT", "/api/v1/token"),
    ] {
        let res = app
            .client
            .request(Method::from_bytes(m.as_bytes()).unwrap(), app.url(p))
            .send()
            .await
            .unwrap();
        assert!(res.headers().contains_key("allow"), "{m} {p}");
        problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
    }
}

#[tokio::test]
async fn bodies_over_128_kib_are_413_api4() {
    let app = TestApp::spawn().await;
    for n in [129 * 1024, 2 * 1024 * 1024] {
        let body =
            json!({"email": "big@example.com", "password": PASSWORD, "full_name": "x".repeat(n)});
        problem(
            app.post_json("/api/v1/users", None, &body).await,
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    }
}

#[tokio::test]
async fn a_client_request_id_is_replaced_by_the_servers_own() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "forged-id-123")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn error_bodies_never_carry_internals_v13_4_2() {
    let app = TestApp::spawn().await;
    let bodies = vec![
        app.post_json("/api/v1/users", None, &json!({"email": 1}))
            .await
            .text()
            .await
            .unwrap(),
        app.client
            .post(app.url("/api/v1/users"))
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        app.get("/api/v1/users/me", "x.y.z")
            .await
            .text()
            .await
            .unwrap(),
    ];
    for b in bodies {
        for needle in [
            "sqlx",
            "select ",
            "panicked",
            "src/",
            "serde",
            "line 1 column",
        ] {
            assert!(!b.to_lowercase().contains(needle), "{needle} in {b}");
        }
    }
}
