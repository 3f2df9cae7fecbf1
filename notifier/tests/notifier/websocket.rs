//! The WebSocket fan-out: auth, confinement, channels, resume, shutdown.

use std::time::Duration;

use serde_json::{json, Value};
use waiter_harness::{jwt, ws::Dashboard};
use waiter_nats::events::EventType::{self, *};

use crate::common::{self, all_channels, channels, Auth, Socket, Stage, SECRET};

const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing else arrives" is watched for.
const QUIET: Duration = Duration::from_millis(400);

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_cannot_open_a_socket() {
    let stage = Stage::start().await;
    let a = stage.a.id;
    let url = stage.ws_url();
    let expired = jwt::token(SECRET, a, "staff", -120);
    let wrong = jwt::token("some-other-secret-0000", a, "staff", 3600);
    for (what, auth) in [
        ("expired header", Auth::Header(&expired)),
        ("wrong secret header", Auth::Header(&wrong)),
        ("garbage header", Auth::Header("garbage")),
        ("expired protocol", Auth::Protocol(&expired)),
        ("garbage protocol", Auth::Protocol("garbage")),
    ] {
        assert_eq!(Socket::connect(&url, auth).await.err(), Some(401), "{what}");
    }
    // No credentials at all.
    let response = stage
        .http
        .get(url.replace("ws://", "http://"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    let (status, body) = common::status_and_json(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    let refused = tokio::time::timeout(WAIT, Dashboard::connect(&url, "nope")).await;
    assert!(refused.expect("an answer").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_subprotocol_auth_both_receive_events() {
    let stage = Stage::start().await;
    let a = stage.a.id;
    let token = stage.staff(a);
    let mut by_header = tokio::time::timeout(WAIT, Dashboard::connect(&stage.ws_url(), &token))
        .await
        .expect("handshake")
        .unwrap();
    by_header.subscribe(a, None).await;
    let subscribed = by_header.wait_for("subscribed", WAIT).await.unwrap();
    assert_eq!(subscribed["channels"].as_array().unwrap().len(), 3);

    let mut by_protocol = Socket::connect(&stage.ws_url(), Auth::Protocol(&token))
        .await
        .unwrap();
    assert_eq!(by_protocol.protocol, Some(format!("bearer.{token}")));
    by_protocol.subscribe(&all_channels(a), None).await;

    let seq = stage
        .publish_event(a, MessageReceived, json!({"body": "مرحبا"}))
        .await;
    for frame in [
        by_header.wait_for("message.received", WAIT).await.unwrap(),
        by_protocol
            .wait_for("message.received", WAIT)
            .await
            .unwrap(),
    ] {
        assert_eq!(
            frame,
            json!({"type": "message.received", "seq": seq, "data": {"body": "مرحبا"}})
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_never_sees_another_restaurants_events() {
    let stage = Stage::start().await;
    let (a, b) = (stage.a.id, stage.b.id);
    let mut socket_a = Socket::connect(&stage.ws_url(), Auth::Header(&stage.staff(a)))
        .await
        .unwrap();
    let mut socket_b = Socket::connect(&stage.ws_url(), Auth::Header(&stage.staff(b)))
        .await
        .unwrap();
    socket_a.subscribe(&all_channels(a), None).await;
    socket_b.subscribe(&all_channels(b), None).await;

    let mut a_seqs = vec![];
    for (i, event_type) in [MessageReceived, OrderCreated, ConversationUpdated]
        .into_iter()
        .enumerate()
    {
        a_seqs.push(
            stage
                .publish_event(a, event_type, json!({"of": "a", "i": i}))
                .await,
        );
        stage
            .publish_event(b, event_type, json!({"of": "b", "i": i}))
            .await;
    }
    let events = socket_a.events(3, QUIET).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.iter().all(|e| e["data"]["of"] == "a"), "{events:?}");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, a_seqs);
    let events = socket_b.events(3, QUIET).await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["data"]["of"] == "b"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_bad_channels_are_refused() {
    let stage = Stage::start().await;
    let (a, b) = (stage.a.id, stage.b.id);
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&stage.staff(a)))
        .await
        .unwrap();

    // Only B's channels: nothing granted, every one forbidden.
    socket
        .send_json(json!({"action": "subscribe", "channels": all_channels(b)}))
        .await;
    let subscribed = socket.next_json(WAIT).await.unwrap();
    assert_eq!(subscribed, json!({"type": "subscribed", "channels": []}));
    for channel in all_channels(b) {
        let error = socket.next_json(WAIT).await.unwrap();
        assert_eq!(
            error,
            json!({"type": "error", "code": "forbidden", "channel": channel})
        );
    }
    stage
        .publish_event(b, OrderCreated, json!({"of": "b"}))
        .await;
    stage
        .publish_event(b, MessageReceived, json!({"of": "b"}))
        .await;
    assert!(socket.events(0, QUIET).await.is_empty());

    // A mix: A's channel granted, the others refused.
    let mut requested = channels(b, &["orders"]);
    requested.push(format!("ws:restaurant:{a}:menu"));
    requested.extend(channels(a, &["orders"]));
    socket
        .send_json(json!({"action": "subscribe", "channels": requested}))
        .await;
    assert_eq!(
        socket.next_json(WAIT).await.unwrap(),
        json!({"type": "subscribed", "channels": channels(a, &["orders"])})
    );
    assert_eq!(socket.next_json(WAIT).await.unwrap()["code"], "forbidden");
    let bad = socket.next_json(WAIT).await.unwrap();
    assert_eq!(bad["code"], "bad_channel");
    assert_eq!(bad["channel"], format!("ws:restaurant:{a}:menu"));
    stage
        .publish_event(b, OrderCreated, json!({"of": "b"}))
        .await;
    let seq = stage
        .publish_event(a, OrderCreated, json!({"of": "a"}))
        .await;
    let events = socket.events(1, QUIET).await;
    assert_eq!(
        events,
        vec![json!({"type": "order.created", "seq": seq, "data": {"of": "a"}})]
    );

    // Bad requests are answered, and the socket stays usable.
    socket.send_text("{not json").await;
    assert_eq!(socket.next_json(WAIT).await.unwrap()["code"], "bad_request");
    socket.send_json(json!({"action": "dance"})).await;
    assert_eq!(socket.next_json(WAIT).await.unwrap()["code"], "bad_request");
    socket.send_json(json!({"action": "ping"})).await;
    assert_eq!(
        socket.next_json(WAIT).await.unwrap(),
        json!({"type": "pong"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_resumes_exactly_after_the_last_seen_event() {
    let stage = Stage::start().await;
    let a = stage.a.id;
    let token = stage.staff(a);
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&token))
        .await
        .unwrap();
    socket.subscribe(&all_channels(a), None).await;
    for i in 0..3 {
        stage
            .publish_event(a, MessageReceived, json!({"n": i}))
            .await;
    }
    let first = socket.events(3, Duration::ZERO).await;
    assert_eq!(
        first
            .iter()
            .map(|e| e["data"]["n"].clone())
            .collect::<Vec<_>>(),
        vec![json!(0), json!(1), json!(2)]
    );
    let last_seq = first[2]["seq"].as_u64().unwrap();
    drop(socket);

    // While disconnected: two more for A (and noise for B).
    let mut missed = vec![];
    for i in 3..5 {
        missed.push(stage.publish_event(a, OrderUpdated, json!({"n": i})).await);
        stage
            .publish_event(stage.b.id, OrderUpdated, json!({"n": i}))
            .await;
    }
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&token))
        .await
        .unwrap();
    socket.subscribe(&all_channels(a), Some(last_seq)).await;
    let resumed = socket.events(2, QUIET).await;
    let seqs: Vec<u64> = resumed.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, missed);
    assert_eq!(resumed[0]["data"]["n"], 3);
    assert_eq!(resumed[1]["data"]["n"], 4);
    assert_eq!(types(&resumed), vec!["order.updated", "order.updated"]);

    // And live events keep coming after the backlog.
    let live = stage.publish_event(a, MessageSent, json!({"n": 5})).await;
    let next = socket.events(1, Duration::ZERO).await;
    assert_eq!(next[0]["seq"].as_u64(), Some(live));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_subscribed_channels_are_delivered() {
    let stage = Stage::start().await;
    let a = stage.a.id;
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&stage.staff(a)))
        .await
        .unwrap();
    socket.subscribe(&channels(a, &["orders"]), None).await;
    let published: Vec<(EventType, u64)> = {
        let mut v = vec![];
        for t in [
            MessageReceived,
            OrderCreated,
            MessageSent,
            ConversationUpdated,
            MessageStatus,
            LowRating,
            OrderRated,
        ] {
            v.push((t, stage.publish_event(a, t, json!({"t": t.as_str()})).await));
        }
        v
    };
    let events = socket.events(3, QUIET).await;
    assert_eq!(
        types(&events),
        vec!["order.created", "alert.low_rating", "order.rated"]
    );
    let expected: Vec<u64> = published
        .iter()
        .filter(|(t, _)| t.channel() == "orders")
        .map(|(_, seq)| *seq)
        .collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, expected);

    // Re-subscribing replaces the subscription.
    socket.subscribe(&channels(a, &["messages"]), None).await;
    stage.publish_event(a, OrderCreated, json!({})).await;
    stage
        .publish_event(a, MessageStatus, json!({"status": "read"}))
        .await;
    let events = socket.events(1, QUIET).await;
    assert_eq!(types(&events), vec!["message.status"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_may_watch_several_restaurants() {
    let stage = Stage::start().await;
    let (a, b) = (stage.a.id, stage.b.id);
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Protocol(&stage.admin()))
        .await
        .unwrap();
    let mut requested = channels(a, &["orders"]);
    requested.extend(channels(b, &["orders"]));
    let subscribed = socket.subscribe(&requested, None).await;
    assert_eq!(subscribed["channels"].as_array().unwrap().len(), 2);
    let s1 = stage
        .publish_event(b, OrderCreated, json!({"of": "b"}))
        .await;
    stage
        .publish_event(a, MessageReceived, json!({"of": "a"}))
        .await;
    let s2 = stage
        .publish_event(a, OrderCreated, json!({"of": "a"}))
        .await;
    let events = socket.events(2, QUIET).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![s1, s2]);

    // Resuming reads every restaurant's subjects, and still delivers only
    // the granted channels.
    drop(socket);
    let other = uuid::Uuid::new_v4();
    stage
        .publish_event(other, OrderCreated, json!({"of": "other"}))
        .await;
    let s3 = stage
        .publish_event(a, OrderUpdated, json!({"of": "a"}))
        .await;
    stage
        .publish_event(b, MessageSent, json!({"of": "b"}))
        .await;
    let s4 = stage.publish_event(b, OrderRated, json!({"of": "b"})).await;
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Protocol(&stage.admin()))
        .await
        .unwrap();
    socket.subscribe(&requested, Some(s2)).await;
    let events = socket.events(2, QUIET).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![s3, s4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sockets_cleanly() {
    let mut stage = Stage::start().await;
    let a = stage.a.id;
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&stage.staff(a)))
        .await
        .unwrap();
    socket.subscribe(&all_channels(a), None).await;
    stage.env.shutdown.cancel();
    let close = loop {
        match socket.next(WAIT).await.expect("a close frame") {
            Ok(_) => continue,
            Err(close) => break close,
        }
    };
    let close = close.expect("a close frame with a code");
    assert_eq!(u16::from(close.code), 1001);
    assert_eq!(close.reason, "server shutting down");
    tokio::time::timeout(WAIT, &mut stage.running.done)
        .await
        .expect("the notifier stops")
        .unwrap();
}
