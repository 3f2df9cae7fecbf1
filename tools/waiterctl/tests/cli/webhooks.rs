use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::common::Ctl;

/// One HTTP request as a receiver sees it: headers and body.
async fn receive_one(listener: TcpListener) -> (http::HeaderMap, Vec<u8>) {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut raw = vec![];
    let mut buf = [0u8; 4096];
    let (head, body_start) = loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed before the headers ended");
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8(raw[..end].to_vec()).unwrap(), end + 4);
        }
    };
    let mut headers = http::HeaderMap::new();
    for line in head.lines().skip(1) {
        let (name, value) = line.split_once(':').unwrap();
        headers.insert(
            http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    let length: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
    let mut body = raw[body_start..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut buf).await.unwrap();
        body.extend_from_slice(&buf[..n]);
    }
    socket
        .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    (headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_is_added_with_a_secret_shown_once_tested_with_a_valid_signature_and_removed() {
    let ctl = Ctl::new().await;
    ctl.restaurant("bait-grill");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/waiter", listener.local_addr().unwrap());

    let added = ctl.run(&[
        "webhooks",
        "add",
        "--restaurant",
        "bait-grill",
        "--url",
        &url,
    ]);
    let text = added.ok();
    let secret = text
        .split_whitespace()
        .find(|w| w.starts_with("whsec_"))
        .unwrap_or_else(|| panic!("no secret in {text}"))
        .to_string();
    // Stored sealed only; listed without it.
    let list = ctl.run(&["webhooks", "list", "--restaurant", "bait-grill"]);
    assert!(
        list.ok().contains(&url) && !list.ok().contains("whsec_"),
        "{}",
        list.ok()
    );
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_sealed FROM webhook_endpoints")
        .fetch_one(&ctl.db.pool)
        .await
        .unwrap();
    let key = secret.trim_start_matches("whsec_");
    assert!(!stored.windows(key.len()).any(|w| w == key.as_bytes()));
    // The same URL twice is refused; so is plain HTTP off this machine.
    ctl.run(&[
        "webhooks",
        "add",
        "--restaurant",
        "bait-grill",
        "--url",
        &url,
    ])
    .fails(1);
    let http = ctl.run(&[
        "webhooks",
        "add",
        "--restaurant",
        "bait-grill",
        "--url",
        "http://pos.example.com/hook",
    ]);
    assert!(
        http.fails(1).contains("not an https:// URL"),
        "{}",
        http.stderr
    );

    let receiver = tokio::spawn(receive_one(listener));
    let test = {
        let command = ctl.command();
        tokio::task::spawn_blocking(move || {
            let mut command = command;
            command
                .args(["webhooks", "test", "--restaurant", "bait-grill"])
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(stdout.contains("204"), "{stdout}");
    let (headers, body) = receiver.await.unwrap();
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&body, &headers)
        .expect("the standardwebhooks crate accepts the signature");
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "webhook.test");

    ctl.run(&[
        "webhooks",
        "remove",
        "--restaurant",
        "bait-grill",
        "--url",
        &url,
    ])
    .ok();
    assert!(ctl
        .run(&["webhooks", "list", "--restaurant", "bait-grill"])
        .ok()
        .contains("(none)"));
}
