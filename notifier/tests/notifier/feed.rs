//! One feed per process: the shared consumer, `since` catch-up, missed
//! events, slow clients, a NATS restart.

use std::{collections::BTreeSet, time::Duration};

use serde_json::{json, Value};
use uuid::Uuid;
use waiter_harness::{eventually, jwt};
use waiter_nats::{events::EventType::*, StreamKind};

use crate::common::{all_channels, event_consumers, Auth, Socket, Stage, SECRET};

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(400);

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_shares_the_one_consumer_of_the_process() {
    let stage = Stage::start().await;
    let (a, b) = (stage.a.id, stage.b.id);
    assert_eq!(event_consumers(stage.bus()).await, 1, "the feed, at start");

    // A socket live before the first event: once it has that event, the
    // feed has fanned it out, and sockets subscribing later are past it
    // (a loaded machine may otherwise still be delivering it live to them).
    let probe_token = jwt::token_for(SECRET, "probe", a, "staff", 3600);
    let mut probe = Socket::connect(&stage.ws_url(), Auth::Header(&probe_token))
        .await
        .unwrap();
    probe.subscribe(&all_channels(a), None).await;
    let before = stage.publish_event(a, OrderCreated, json!({"n": 0})).await;
    assert_eq!(seqs(&probe.events(1, Duration::ZERO).await), vec![before]);
    let mut sockets = vec![];
    for (i, restaurant) in [a, a, a, b, b].into_iter().enumerate() {
        let token = jwt::token_for(SECRET, &format!("user{i}"), restaurant, "staff", 3600);
        let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&token))
            .await
            .unwrap();
        // One of them resumes from before: its catch-up consumer is gone
        // once it is live.
        let since = (i == 2).then_some(before - 1);
        socket.subscribe(&all_channels(restaurant), since).await;
        sockets.push((restaurant, socket));
    }
    let first = sockets[2].1.events(1, Duration::ZERO).await;
    assert_eq!(seqs(&first), vec![before]);
    // A pong is answered after the subscription (catch-up included) is done.
    sockets[2].1.send_json(json!({"action": "ping"})).await;
    assert_eq!(
        sockets[2].1.wait_for("pong", WAIT).await,
        Some(json!({"type": "pong"}))
    );
    let consumers = event_consumers(stage.bus()).await;
    assert_eq!(consumers, 1, "one consumer however many sockets");

    let for_a = stage
        .publish_event(a, MessageReceived, json!({"n": 1}))
        .await;
    let for_b = stage
        .publish_event(b, MessageReceived, json!({"n": 2}))
        .await;
    for (restaurant, socket) in &mut sockets {
        let events = socket.events(1, QUIET).await;
        let expected = if *restaurant == a { for_a } else { for_b };
        assert_eq!(seqs(&events), vec![expected]);
    }
    assert_eq!(event_consumers(stage.bus()).await, 1);
}

/// Publishes `n` events for `restaurant` (and as many for `noise`), in
/// the background; the sequences of the restaurant's.
fn publish_in_background(
    stage: &Stage,
    restaurant: Uuid,
    noise: Uuid,
    n: usize,
) -> tokio::task::JoinHandle<Vec<u64>> {
    let bus = stage.bus().clone();
    tokio::spawn(async move {
        let mut mine = vec![];
        for i in 0..n {
            for (id, kind) in [(restaurant, MessageReceived), (noise, OrderUpdated)] {
                let event = waiter_nats::events::DashboardEvent::new(id, kind, json!({"i": i}));
                let envelope =
                    waiter_nats::Envelope::new(waiter_nats::envelope::new_id(), "t", event.clone());
                let seq = bus
                    .publish(event.subject(bus.topology()), &envelope)
                    .await
                    .unwrap()
                    .stream_sequence;
                if id == restaurant {
                    mine.push(seq);
                }
            }
            if i % 20 == 0 {
                tokio::task::yield_now().await;
            }
        }
        mine
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_then_live_has_no_gap_and_no_duplicate_under_concurrent_publishing() {
    let stage = Stage::start().await;
    let (a, b) = (stage.a.id, stage.b.id);
    let token = stage.staff(a);
    let total = 400;
    let publisher = publish_in_background(&stage, a, b, total);

    // Reconnect again and again while events keep coming, each time with
    // the last seq seen.
    let mut seen: Vec<u64> = vec![];
    let mut since = None;
    for round in 0..4 {
        let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&token))
            .await
            .unwrap();
        socket.subscribe(&all_channels(a), since).await;
        let events = socket.events(40 + round * 10, Duration::ZERO).await;
        assert!(
            events
                .iter()
                .all(|e| e["data"]["i"].is_number() && e["type"] == "message.received"),
            "only A's events: {events:?}"
        );
        seen.extend(seqs(&events));
        since = seen.last().copied();
        // Dropped without a word, mid-stream.
    }
    let published = publisher.await.unwrap();
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&token))
        .await
        .unwrap();
    socket.subscribe(&all_channels(a), since).await;
    let rest = published.iter().filter(|s| Some(**s) > since).count();
    seen.extend(seqs(&socket.events(rest, QUIET).await));

    // Everything from the first one seen on, once each, in order.
    let start = published.iter().position(|s| *s == seen[0]).unwrap();
    assert_eq!(seen, published[start..].to_vec());
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_older_than_the_stream_gets_the_missed_events_frame() {
    let stage = Stage::start().await;
    let a = stage.a.id;
    let mut published = vec![];
    for i in 0..10 {
        published.push(stage.publish_event(a, OrderUpdated, json!({"i": i})).await);
    }
    // Retention took the first five.
    let name = stage.bus().topology().stream_name(StreamKind::Events);
    let stream = stage.bus().jetstream().get_stream(&name).await.unwrap();
    stream.purge().sequence(published[5]).await.unwrap();

    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&stage.staff(a)))
        .await
        .unwrap();
    socket.subscribe(&all_channels(a), Some(published[1])).await;
    let missed = socket.next_json(WAIT).await.unwrap();
    assert_eq!(missed["type"], "error");
    assert_eq!(missed["code"], "events_missed");
    assert_eq!(missed["first_seq"].as_u64(), Some(published[5]));
    // Then what the stream still has, then live.
    let kept = socket.events(5, Duration::ZERO).await;
    assert_eq!(seqs(&kept), published[5..].to_vec());
    let live = stage.publish_event(a, OrderUpdated, json!({})).await;
    assert_eq!(seqs(&socket.events(1, QUIET).await), vec![live]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_longer_than_the_bound_is_missed_events_then_live() {
    let stage = Stage::start_with(|config| config.ws.catchup_max = 5).await;
    let a = stage.a.id;
    let mut last = 0;
    for i in 0..8 {
        last = stage.publish_event(a, OrderUpdated, json!({"i": i})).await;
    }
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&stage.staff(a)))
        .await
        .unwrap();
    socket.subscribe(&all_channels(a), Some(0)).await;
    let missed = socket.next_json(WAIT).await.unwrap();
    assert_eq!(missed["code"], "events_missed", "{missed}");
    assert_eq!(missed["first_seq"].as_u64(), Some(last + 1));
    let live = stage.publish_event(a, OrderUpdated, json!({})).await;
    assert_eq!(seqs(&socket.events(1, QUIET).await), vec![live]);
    // Within the bound it is served.
    let mut socket = Socket::connect(&stage.ws_url(), Auth::Header(&stage.staff(a)))
        .await
        .unwrap();
    socket.subscribe(&all_channels(a), Some(last - 2)).await;
    assert_eq!(
        seqs(&socket.events(3, QUIET).await),
        vec![last - 1, last, live]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_closed_while_a_fast_one_keeps_up() {
    // A write timeout far beyond the latency asserted below: if the slow
    // socket could hold up the feed, the fast one would wait that long.
    let stage = Stage::start_with(|config| {
        config.ws.queue = 8;
        config.ws.write_timeout = Duration::from_secs(30);
    })
    .await;
    let a = stage.a.id;
    let url = stage.ws_url();
    let mut slow = Socket::connect_without_reading(&url, &stage.staff(a)).await;
    slow.subscribe(&all_channels(a), None).await;
    let mut fast = Socket::connect(&url, Auth::Header(&stage.staff(a)))
        .await
        .unwrap();
    fast.subscribe(&all_channels(a), None).await;

    // Far more than the kernel buffers of the slow socket hold.
    let padding = "x".repeat(128 * 1024);
    let mut published = vec![];
    let mut worst = Duration::ZERO;
    for i in 0..120 {
        let sent = tokio::time::Instant::now();
        let seq = stage
            .publish_event(a, MessageReceived, json!({"i": i, "padding": padding}))
            .await;
        published.push(seq);
        let frame = fast.events(1, Duration::ZERO).await;
        assert_eq!(seqs(&frame), vec![seq], "the fast client, in step");
        worst = worst.max(sent.elapsed());
    }
    assert!(
        worst < Duration::from_secs(2),
        "the fast client waited {worst:?} for an event"
    );

    // The slow one now reads: what its buffers held, in order and without
    // a gap, then 1013.
    let (got, code) = slow.until_closed(Duration::from_secs(60)).await;
    assert_eq!(code, Some(1013), "closed as too slow");
    let got = seqs(&got);
    assert!(got.len() < published.len(), "cut off before the end");
    assert_eq!(got, published[..got.len()].to_vec());

    // It resumes with since and misses nothing.
    let mut again = Socket::connect(&url, Auth::Header(&stage.staff(a)))
        .await
        .unwrap();
    let since = got.last().copied().unwrap_or(published[0] - 1);
    again.subscribe(&all_channels(a), Some(since)).await;
    let rest = again
        .events(published.len() - got.len(), Duration::ZERO)
        .await;
    assert_eq!(seqs(&rest), published[got.len()..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_resumes_where_it_was_after_nats_restarts() {
    let mut nats = crate::common::PrivateNats::start();
    let db = waiter_harness::TestDb::new().await;
    let namespace = format!("t{}", &Uuid::new_v4().simple().to_string()[..12]);
    let bus_config = waiter_nats::BusConfig {
        url: nats.url(),
        ..waiter_nats::BusConfig::local(&namespace, 4)
    };
    let bus = waiter_nats::Bus::connect(&bus_config, "feed-test")
        .await
        .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = notifier::start(
        notifier::Config::for_tests(SECRET, bus_config.clone()),
        bus.clone(),
        db.pool.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let a = Uuid::new_v4();
    let url = format!("ws://{}/ws", running.addr);
    let mut socket = Socket::connect(&url, Auth::Header(&jwt::token(SECRET, a, "staff", 3600)))
        .await
        .unwrap();
    socket.subscribe(&all_channels(a), None).await;

    let publish = |i: usize| {
        let bus = bus.clone();
        let event = waiter_nats::events::DashboardEvent::new(a, OrderUpdated, json!({"i": i}));
        let envelope = waiter_nats::Envelope::new(format!("restart-{i}"), "t", event.clone());
        async move {
            // Retried with the same id while the server comes back: stored once.
            eventually(
                "a publish after the restart",
                Duration::from_secs(30),
                || {
                    let (bus, event, envelope) = (bus.clone(), event.clone(), envelope.clone());
                    async move {
                        bus.publish(event.subject(bus.topology()), &envelope)
                            .await
                            .ok()
                            .map(|p| p.stream_sequence)
                    }
                },
            )
            .await
        }
    };
    let before = publish(0).await;
    assert_eq!(seqs(&socket.events(1, Duration::ZERO).await), vec![before]);

    nats.restart();
    let mut after = vec![];
    for i in 1..=5 {
        after.push(publish(i).await);
    }
    let events = socket.events(5, QUIET).await;
    assert_eq!(seqs(&events), after, "every event after the restart, once");
    assert_eq!(after[0], before + 1, "nothing in between was lost");
    assert_eq!(
        event_consumers(&bus).await,
        1,
        "the feed's new consumer only"
    );
    shutdown.cancel();
    tokio::time::timeout(WAIT, running.done)
        .await
        .expect("the notifier stops")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_catches_every_socket_up_exactly() {
    let stage = Stage::start_with(|config| config.ws.catchups_at_once = 4).await;
    let restaurants: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let kinds = [MessageReceived, OrderUpdated, ConversationUpdated];
    // Where every socket left off: one event of its restaurant.
    let mut left_at = vec![];
    for r in &restaurants {
        left_at.push(stage.publish_event(*r, OrderCreated, json!({})).await);
    }
    // While all are away, events for every restaurant, of every kind.
    let mut missed: Vec<Vec<u64>> = vec![vec![]; restaurants.len()];
    for i in 0..120 {
        let r = (i * 5) % restaurants.len();
        let seq = stage
            .publish_event(restaurants[r], kinds[i % 3], json!({"i": i}))
            .await;
        missed[r].push(seq);
    }
    // Forty sockets come back at once, each with its since.
    let url = stage.ws_url();
    let sockets = (0..40).map(|i| {
        let r = i % restaurants.len();
        let (url, restaurant, since) = (url.clone(), restaurants[r], left_at[r]);
        tokio::spawn(async move {
            let token = jwt::token_for(SECRET, &format!("u{i}"), restaurant, "staff", 3600);
            let mut socket = Socket::connect(&url, Auth::Header(&token)).await.unwrap();
            socket
                .subscribe(&all_channels(restaurant), Some(since))
                .await;
            (r, seqs(&socket.events(15, QUIET).await))
        })
    });
    for socket in futures::future::join_all(sockets).await {
        let (r, got) = socket.unwrap();
        assert_eq!(got, missed[r], "restaurant {r}: exactly what it missed");
    }
    assert_eq!(event_consumers(stage.bus()).await, 1);
}
