//! Who may hold a socket, and for how long: token expiry, Origin, caps.

use std::time::Duration;

use serde_json::json;
use waiter_harness::{eventually, jwt};
use waiter_nats::events::EventType::*;

use crate::common::{all_channels, channels, refused_handshake, Auth, Socket, Stage, SECRET};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_closed_with_4001_when_its_token_expires() {
    let stage = Stage::start().await;
    let a = stage.a.id;
    let ttl = 2;
    let token = jwt::token(SECRET, a, "staff", ttl);
    let expires_at = chrono::Utc::now().timestamp() + ttl;
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Protocol(&token))
        .await
        .unwrap();
    socket.subscribe(&all_channels(a), None).await;
    let seq = stage.publish_event(a, OrderCreated, json!({"n": 1})).await;
    let (events, code) = socket
        .until_closed(Duration::from_secs(ttl as u64 + 10))
        .await;
    assert_eq!(code, Some(4001), "closed for its token");
    assert!(
        chrono::Utc::now().timestamp() >= expires_at - 1,
        "not closed before the token's exp"
    );
    assert_eq!(
        events.iter().map(|e| e["seq"].as_u64()).collect::<Vec<_>>(),
        vec![Some(seq)],
        "events flowed until then"
    );

    // A token that expired within the verification leeway opens a socket
    // that is closed at once, with the same code.
    let stale = jwt::token(SECRET, a, "staff", -2);
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&stale))
        .await
        .unwrap();
    let (_, code) = socket.until_closed(WAIT).await;
    assert_eq!(code, Some(4001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_and_no_origin_is_allowed() {
    let stage = Stage::start_with(|config| {
        config.ws.allowed_origins =
            notifier::AllowedOrigins::parse_list("https://dash.example.com").unwrap();
    })
    .await;
    let a = stage.a.id;
    let token = stage.staff(a);
    let url = stage.ws_url();

    for origin in [
        "https://evil.example",
        "http://dash.example.com",
        "https://dash.example.com.evil.example",
        "null",
    ] {
        let (status, body, _) =
            refused_handshake(&stage.http, &url, Some(&token), Some(origin)).await;
        assert_eq!(status, 403, "{origin}");
        assert_eq!(body["error"], "forbidden_origin", "{origin}: {body}");
    }
    // Refused before the token is looked at: no token, same answer.
    let (status, _, _) =
        refused_handshake(&stage.http, &url, None, Some("https://evil.example")).await;
    assert_eq!(status, 403);

    let mut from_dashboard = Socket::connect_from(
        &url,
        Auth::Protocol(&token),
        Some("https://DASH.example.com"),
    )
    .await
    .expect("the dashboard's own origin");
    let mut from_a_tool = Socket::connect(&url, Auth::Header(&token))
        .await
        .expect("no Origin: a server-side client");
    from_dashboard.subscribe(&all_channels(a), None).await;
    from_a_tool.subscribe(&all_channels(a), None).await;
    let seq = stage
        .publish_event(a, MessageReceived, json!({"body": "hi"}))
        .await;
    for socket in [&mut from_dashboard, &mut from_a_tool] {
        let frame = socket.wait_for("message.received", WAIT).await.unwrap();
        assert_eq!(frame["seq"].as_u64(), Some(seq));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_are_capped_per_user_and_in_total() {
    let stage = Stage::start_with(|config| {
        config.ws.max_sockets = 3;
        config.ws.max_sockets_per_user = 2;
    })
    .await;
    let (a, b) = (stage.a.id, stage.b.id);
    let url = stage.ws_url();
    let ali = jwt::token_for(SECRET, "ali", a, "staff", 3600);
    let sara = jwt::token_for(SECRET, "sara", a, "staff", 3600);
    // Another restaurant's user of the same name is another user.
    let ali_of_b = jwt::token_for(SECRET, "ali", b, "staff", 3600);

    let first = Socket::connect(&url, Auth::Header(&ali)).await.unwrap();
    let _second = Socket::connect(&url, Auth::Header(&ali)).await.unwrap();
    let (status, body, _) = refused_handshake(&stage.http, &url, Some(&ali), None).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"], "too_many_sockets");
    assert_eq!(body["reason"], "at most 2 open sockets per user");

    let mut third = Socket::connect(&url, Auth::Header(&ali_of_b))
        .await
        .unwrap();
    let (status, body, retry_after) = refused_handshake(&stage.http, &url, Some(&sara), None).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "at_capacity");
    assert_eq!(retry_after.as_deref(), Some("5"));

    // The refusals changed nothing: the open sockets still work.
    third.subscribe(&all_channels(b), None).await;
    let seq = stage.publish_event(b, OrderCreated, json!({})).await;
    assert_eq!(
        third.wait_for("order.created", WAIT).await.unwrap()["seq"].as_u64(),
        Some(seq)
    );

    // A closed socket gives its place back.
    drop(first);
    let url = &url;
    let sara = &sara;
    let mut admitted = eventually("a place after a socket closed", WAIT, || async move {
        Socket::connect(url, Auth::Header(sara)).await.ok()
    })
    .await;
    admitted.send_json(json!({"action": "ping"})).await;
    assert_eq!(
        admitted.next_json(WAIT).await.unwrap(),
        json!({"type": "pong"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_per_socket_are_capped() {
    let stage = Stage::start_with(|config| config.ws.max_channels = 2).await;
    let a = stage.a.id;
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&stage.staff(a)))
        .await
        .unwrap();
    let requested = channels(a, &["orders", "messages", "conversations"]);
    socket
        .send_json(json!({"action": "subscribe", "channels": requested}))
        .await;
    assert_eq!(
        socket.next_json(WAIT).await.unwrap(),
        json!({"type": "subscribed", "channels": channels(a, &["messages", "orders"])})
    );
    assert_eq!(
        socket.next_json(WAIT).await.unwrap(),
        json!({"type": "error", "code": "too_many_channels", "channel": requested[2],
               "reason": "at most 2 channels per socket"})
    );
    // The granted channels are live; the refused one is not.
    stage.publish_event(a, ConversationUpdated, json!({})).await;
    let seq = stage.publish_event(a, OrderCreated, json!({})).await;
    let events = socket.events(1, Duration::from_millis(300)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["seq"].as_u64(), Some(seq));
}
