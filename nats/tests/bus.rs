//! The bus kit against a real nats-server: publish dedup, per-partition
//! order, retry and poison handling, shutdown drain, the tenant directory.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use waiter_harness::{eventually, TestBus};
use waiter_nats::{
    directory::{AccountEntry, Directory, DirectoryCache},
    worker, Delivery, Envelope, Handler, Outcome, Payload, StreamKind,
};
use waiter_secrets::{twilio_token_context, Keyring};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Step {
    conversation: String,
    n: u32,
}
impl Payload for Step {
    const KIND: &'static str = "test.step";
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, u32, i64)>>,
    fail_first: Mutex<Vec<(String, u32)>>,
}

impl Handler for Recorder {
    type Message = Step;
    async fn handle(&self, env: Envelope<Step>, delivery: Delivery) -> Outcome {
        // Slow enough that parallel partitions would interleave if order
        // were not enforced.
        tokio::time::sleep(Duration::from_millis(2)).await;
        {
            let mut fail = self.fail_first.lock().unwrap();
            let key = (env.body.conversation.clone(), env.body.n);
            if let Some(i) = fail.iter().position(|k| *k == key) {
                fail.remove(i);
                return Outcome::retry("transient test failure");
            }
        }
        self.seen.lock().unwrap().push((
            env.body.conversation.clone(),
            env.body.n,
            delivery.delivered,
        ));
        Outcome::Ack
    }
}

#[tokio::test]
async fn publish_is_deduplicated_by_envelope_id() {
    let t = TestBus::new().await;
    t.bus
        .ensure_streams(&[StreamKind::Conversation])
        .await
        .unwrap();
    let env = Envelope::new(
        "same-id",
        "trace",
        Step {
            conversation: "c".into(),
            n: 1,
        },
    );
    let subject = t.bus.topology().conversation(0);
    let first = t.bus.publish(subject.clone(), &env).await.unwrap();
    let second = t.bus.publish(subject, &env).await.unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(first.stream_sequence, second.stream_sequence);
}

#[tokio::test]
async fn publishing_without_a_stream_fails_with_a_clear_error() {
    let t = TestBus::new().await;
    let env = Envelope::new(
        "x",
        "trace",
        Step {
            conversation: "c".into(),
            n: 1,
        },
    );
    let err = t
        .bus
        .publish(t.bus.topology().order_command(0), &env)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("order"), "{err}");
}

#[tokio::test]
async fn partitions_keep_order_per_key_across_two_replicas_and_retries() {
    let t = TestBus::with_partitions(4).await;
    t.bus
        .ensure_streams(&[StreamKind::Conversation])
        .await
        .unwrap();
    let topo = t.bus.topology().clone();
    let recorder = Arc::new(Recorder::default());
    // Message 3 of every conversation fails once: order must still hold.
    let conversations: Vec<String> = (0..6).map(|i| format!("whatsapp:+1555000{i}")).collect();
    *recorder.fail_first.lock().unwrap() = conversations.iter().map(|c| (c.clone(), 3)).collect();
    let shutdown = CancellationToken::new();
    // Two replicas of the same stage pull from the same partition consumers.
    for _ in 0..2 {
        let bus = t.bus.clone();
        let handler = recorder.clone();
        let token = shutdown.clone();
        tokio::spawn(async move {
            worker::run_partitioned(&bus, StreamKind::Conversation, "tester", handler, token)
                .await
                .unwrap();
        });
    }
    for n in 0..10u32 {
        for c in &conversations {
            let p = topo.conversation_partition(&uuid::Uuid::nil(), c);
            let env = Envelope::new(
                format!("{c}-{n}"),
                "trace",
                Step {
                    conversation: c.clone(),
                    n,
                },
            );
            t.bus.publish(topo.conversation(p), &env).await.unwrap();
        }
    }
    let seen = eventually("all 60 messages handled", Duration::from_secs(30), || {
        let recorder = recorder.clone();
        async move {
            let seen = recorder.seen.lock().unwrap().clone();
            (seen.len() >= 60).then_some(seen)
        }
    })
    .await;
    shutdown.cancel();
    assert_eq!(seen.len(), 60, "each message handled exactly once");
    for c in &conversations {
        let order: Vec<u32> = seen.iter().filter(|s| &s.0 == c).map(|s| s.1).collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>(), "order of {c}");
        let retried = seen.iter().find(|s| &s.0 == c && s.1 == 3).unwrap();
        assert_eq!(retried.2, 2, "message 3 of {c} was delivered twice");
    }
}

#[derive(Default)]
struct CountingHandler {
    handled: Mutex<u32>,
}
impl Handler for CountingHandler {
    type Message = Step;
    async fn handle(&self, _env: Envelope<Step>, _d: Delivery) -> Outcome {
        *self.handled.lock().unwrap() += 1;
        Outcome::Ack
    }
}

#[tokio::test]
async fn poison_messages_are_terminated_not_redelivered() {
    let t = TestBus::with_partitions(1).await;
    t.bus.ensure_streams(&[StreamKind::Order]).await.unwrap();
    let subject = t.bus.topology().order_command(0);
    t.bus
        .client()
        .publish(subject.clone(), "not messagepack".into())
        .await
        .unwrap();
    t.bus.client().flush().await.unwrap();
    let good = Envelope::new(
        "good",
        "trace",
        Step {
            conversation: "c".into(),
            n: 1,
        },
    );
    t.bus.publish(subject, &good).await.unwrap();
    let handler = Arc::new(CountingHandler::default());
    let shutdown = CancellationToken::new();
    let (bus, h, token) = (t.bus.clone(), handler.clone(), shutdown.clone());
    let run = tokio::spawn(async move {
        worker::run_partitioned(&bus, StreamKind::Order, "poison", h, token).await
    });
    eventually(
        "the good message after the poison one",
        Duration::from_secs(10),
        || {
            let h = handler.clone();
            async move { (*h.handled.lock().unwrap() == 1).then_some(()) }
        },
    )
    .await;
    shutdown.cancel();
    run.await.unwrap().unwrap();
    // Nothing left pending: the poison message was terminated, the good one acked.
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = t
        .bus
        .jetstream()
        .get_stream(t.bus.topology().stream_name(StreamKind::Order))
        .await
        .unwrap()
        .get_consumer("poison-p0")
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.delivered.stream_sequence, 2);
}

#[tokio::test]
async fn directory_changes_reach_followers_sealed() {
    let t = TestBus::new().await;
    let directory = Directory::open(&t.bus).await.unwrap();
    let keys = Keyring::for_tests();
    let entry = |token: &str, keys: &Keyring| AccountEntry {
        account_sid: "AC1".into(),
        sealed_token: Some(keys.seal(token, &twilio_token_context("AC1"))),
    };
    directory.put(&entry("one", keys)).await.unwrap();
    let cache = DirectoryCache::new(keys.clone());
    let shutdown = CancellationToken::new();
    directory
        .follow(cache.clone(), Duration::from_secs(5), shutdown.clone())
        .await
        .unwrap();
    let token = |c: &DirectoryCache| c.auth_token("AC1").map(|t| t.expose_secret().to_string());
    assert_eq!(token(&cache).as_deref(), Some("one"));
    directory.put(&entry("two", keys)).await.unwrap();
    eventually("the new token", Duration::from_secs(5), || {
        let c = cache.clone();
        async move { (token(&c).as_deref() == Some("two")).then_some(()) }
    })
    .await;
    // Sealed under a key this process lacks: the previous token stays.
    let stranger = Keyring::from_value(Some(&waiter_secrets::generate_key_entry("other"))).unwrap();
    directory.put(&entry("three", &stranger)).await.unwrap();
    directory
        .put(&AccountEntry {
            account_sid: "AC2".into(),
            sealed_token: Some(keys.seal("marker", &twilio_token_context("AC2"))),
        })
        .await
        .unwrap();
    eventually("the entry after it", Duration::from_secs(5), || {
        let c = cache.clone();
        async move { c.auth_token("AC2").is_some().then_some(()) }
    })
    .await;
    assert_eq!(token(&cache).as_deref(), Some("two"));
    directory.remove("AC1").await.unwrap();
    eventually("the removal", Duration::from_secs(5), || {
        let c = cache.clone();
        async move { c.auth_token("AC1").is_none().then_some(()) }
    })
    .await;
    shutdown.cancel();
}

#[tokio::test]
async fn stream_limits_are_applied_and_an_existing_stream_is_updated_to_new_ones() {
    use waiter_nats::streams::{Discard, StreamLimits};
    let t = TestBus::new().await;
    t.bus.ensure_streams(&[StreamKind::Events]).await.unwrap();
    let name = t.bus.topology().stream_name(StreamKind::Events);
    let mut stream = t.bus.jetstream().get_stream(&name).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    let configured = StreamLimits::for_tests(StreamKind::Events);
    assert_eq!(config.max_bytes, configured.max_bytes);
    assert_eq!(config.max_messages, configured.max_messages);
    assert_eq!(
        config.discard,
        async_nats::jetstream::stream::DiscardPolicy::Old
    );

    // A deployment restarted with other limits: the stream follows, its
    // messages and other settings stay.
    let envelope = Envelope::new(
        "e1",
        "t",
        Step {
            conversation: "c".into(),
            n: 1,
        },
    );
    t.bus
        .publish(
            t.bus
                .topology()
                .event(&uuid::Uuid::nil(), "message.received"),
            &envelope,
        )
        .await
        .unwrap();
    let mut changed = t.config.clone();
    changed.stream_limits.insert(
        StreamKind::Events,
        StreamLimits {
            max_bytes: 8 << 20,
            max_messages: 1000,
            discard: Discard::New,
        },
    );
    let restarted = waiter_nats::Bus::connect(&changed, "restarted")
        .await
        .unwrap();
    restarted
        .ensure_streams(&[StreamKind::Events])
        .await
        .unwrap();
    let info = stream.info().await.unwrap().clone();
    assert_eq!(info.config.max_bytes, 8 << 20);
    assert_eq!(info.config.max_messages, 1000);
    assert_eq!(
        info.config.discard,
        async_nats::jetstream::stream::DiscardPolicy::New
    );
    assert_eq!(info.config.max_age, config.max_age);
    assert_eq!(info.state.messages, 1, "nothing was lost by the update");

    // Full with discard new: the publish is refused, not silently dropped.
    let mut tiny = t.config.clone();
    tiny.stream_limits.insert(
        StreamKind::Events,
        StreamLimits {
            max_bytes: 8 << 20,
            max_messages: 1,
            discard: Discard::New,
        },
    );
    let full = waiter_nats::Bus::connect(&tiny, "full").await.unwrap();
    full.ensure_streams(&[StreamKind::Events]).await.unwrap();
    let second = Envelope::new(
        "e2",
        "t",
        Step {
            conversation: "c".into(),
            n: 2,
        },
    );
    assert!(full
        .publish(
            full.topology()
                .event(&uuid::Uuid::nil(), "message.received"),
            &second
        )
        .await
        .is_err());
}
