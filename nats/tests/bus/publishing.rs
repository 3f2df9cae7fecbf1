//! Publishing (dedup, clear errors) and the tenant directory.

use std::time::Duration;

use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use waiter_harness::{eventually, TestBus};
use waiter_nats::{
    directory::{AccountEntry, Directory, DirectoryCache},
    Envelope, StreamKind,
};
use waiter_secrets::{twilio_token_context, Keyring};

use crate::support::Step;

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
            key: "c".into(),
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
            key: "c".into(),
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
            key: "c".into(),
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
            key: "c".into(),
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

#[tokio::test]
async fn a_cluster_url_list_connects_to_the_server_that_answers() {
    let t = TestBus::new().await;
    // A server that is gone first, then the real one: as NATS_URL names
    // the nodes of a cluster.
    let bus = t
        .connect(|config| config.url = format!("nats://127.0.0.1:1,{}", config.url))
        .await;
    bus.ensure_streams(&[StreamKind::Conversation])
        .await
        .unwrap();
    let env = Envelope::new(
        "listed",
        "trace",
        Step {
            key: "c".into(),
            n: 1,
        },
    );
    let published = bus.publish(bus.topology().conversation(0), &env).await;
    assert!(!published.unwrap().duplicate);
}

#[tokio::test]
async fn a_directory_whose_entries_were_rewritten_is_loaded() {
    // The router rewrites every entry on each sync: the stream's sequence
    // runs far ahead of its three messages.
    let t = TestBus::new().await;
    let directory = Directory::open(&t.bus).await.unwrap();
    let keys = Keyring::for_tests();
    for round in 0..5 {
        for sid in ["AC1", "AC2", "AC3"] {
            let token = format!("{sid}-{round}");
            directory
                .put(&AccountEntry {
                    account_sid: sid.into(),
                    sealed_token: Some(keys.seal(&token, &twilio_token_context(sid))),
                })
                .await
                .unwrap();
        }
    }
    let cache = DirectoryCache::new(keys.clone());
    let shutdown = CancellationToken::new();
    directory
        .follow(cache.clone(), Duration::from_secs(5), shutdown.clone())
        .await
        .unwrap();
    assert!(cache.is_loaded(), "not loaded within 5 s");
    let token = cache
        .auth_token("AC3")
        .map(|t| t.expose_secret().to_string());
    assert_eq!(token.as_deref(), Some("AC3-4"));
    shutdown.cancel();
}
