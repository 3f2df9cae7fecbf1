//! The OpenAPI document against the running server: every documented
//! operation answers (with a status it documents), nothing undocumented
//! does, and the dashboard page is served with its security headers.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{self, Stage};

/// Whether an answer came from a handler rather than from the router
/// refusing the path or the method.
fn routed(status: u16, body: &Value) -> bool {
    status != 405 && !(status == 404 && body["reason"] == notifier::error::NO_ROUTE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_exists_and_nothing_else_does() {
    let stage = Stage::start().await;
    let (status, doc) = common::status_and_json(
        stage
            .http
            .get(stage.url("/api/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "the document needs no token");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    let a = stage.a.id;
    let cid = common::conversation(stage.pool(), a, "whatsapp:+966500000001", None, 2).await;
    let oid = common::order(
        stage.pool(),
        a,
        cid,
        1,
        "DELIVERED",
        &[("Tea", 1, 500)],
        Utc::now(),
        None,
    )
    .await;
    let token = stage.staff(a);
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (template, item) in paths {
        let path = template
            .replace("{id}", &a.to_string())
            .replace("{cid}", &cid.to_string())
            .replace("{oid}", &oid.to_string());
        assert!(!path.contains('{'), "every parameter is filled: {path}");
        let documented: Vec<String> = item.as_object().unwrap().keys().cloned().collect();
        for (method, operation) in item.as_object().unwrap() {
            let request = stage
                .http
                .request(method.to_uppercase().parse().unwrap(), stage.url(&path))
                .bearer_auth(&token)
                .timeout(Duration::from_secs(30));
            // A body the operation refuses is enough to show it is routed.
            let request = match operation.get("requestBody") {
                Some(_) => request.json(&json!({})),
                None => request,
            };
            let (status, body) = common::status_and_json(request.send().await.unwrap()).await;
            assert!(
                routed(status, &body),
                "{method} {template}: {status} {body}"
            );
            assert!(
                operation["responses"]
                    .as_object()
                    .unwrap()
                    .contains_key(&status.to_string()),
                "{method} {template} answered {status}, which it does not document: {body}"
            );
            operations += 1;
        }
        // Every other method on a documented path: 405 naming the documented ones.
        for other in ["get", "post", "patch", "put", "delete"] {
            if documented.iter().any(|m| m == other) {
                continue;
            }
            let response = stage
                .http
                .request(other.to_uppercase().parse().unwrap(), stage.url(&path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 405, "{other} {template}");
            let allow = response.headers()["allow"].to_str().unwrap().to_lowercase();
            let mut allowed: Vec<&str> = allow.split(", ").collect();
            allowed.sort();
            let mut expected: Vec<&str> = documented.iter().map(String::as_str).collect();
            expected.sort();
            assert_eq!(allowed, expected, "Allow of {template}");
        }
    }
    assert_eq!(operations, 9);

    // Paths the document does not have are not routed, with or without a token.
    for path in [
        format!("/api/restaurants/{a}/customers"),
        format!("/api/restaurants/{a}/conversations/{cid}"),
        format!("/api/restaurants/{a}/orders/{oid}/status/extra"),
        "/api/restaurants".to_string(),
        "/api/anything".to_string(),
    ] {
        let (status, body) = stage.get(&stage.url(&path), &token).await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (404, Some(notifier::error::NO_ROUTE)),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_16_kib_are_refused_even_when_chunked() {
    let stage = Stage::start().await;
    let a = stage.a.id;
    let cid = common::conversation(stage.pool(), a, "whatsapp:+966500000002", None, 0).await;
    let big = format!("{{\"message\": \"{}\"}}", "x".repeat(20 * 1024));
    // Chunked, so no Content-Length announces the size.
    let mut socket = tokio::net::TcpStream::connect(stage.running.addr)
        .await
        .unwrap();
    let head = format!(
        "POST /api/restaurants/{a}/conversations/{cid}/send HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        stage.staff(a)
    );
    let mut request = head.into_bytes();
    for part in [&big[..10_000], &big[10_000..]] {
        request.extend(format!("{:x}\r\n{part}\r\n", part.len()).into_bytes());
    }
    request.extend(b"0\r\n\r\n");
    socket.write_all(&request).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_string(&mut answer)).await;
    let status: u16 = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    // A control character is refused before anything is published.
    let (status, body) = stage
        .post(
            &stage.api(a, &format!("conversations/{cid}/send")),
            &stage.staff(a),
            Some(json!({"message": "hello\u{1b}[2J"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_with_a_strict_policy() {
    let stage = Stage::start().await;
    let page = stage.http.get(stage.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    let script = html
        .split('"')
        .find(|p| p.starts_with("/assets/") && p.ends_with(".js"))
        .expect("the page loads its script");
    let asset = stage.http.get(stage.url(script)).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(asset.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let etag = asset.headers()["etag"].clone();
    let again = stage
        .http
        .get(stage.url(script))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let head = stage.http.head(stage.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().contains_key("content-security-policy"));
    let missing = stage
        .http
        .get(stage.url("/assets/nope-AAAAAAAA.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
