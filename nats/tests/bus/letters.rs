//! Dead letters from the loop: poison, a permanent PostgreSQL error, the
//! last delivery; and what is not a dead letter: a newer schema.

use std::{sync::Arc, time::Duration};

use async_nats::HeaderMap;
use sqlx::PgPool;
use waiter_harness::{eventually, TestBus, TestDb};
use waiter_nats::{
    streams::{ensure_consumer, ConsumerSpec},
    Delivery, Envelope, Failure, Handler, LetterContext, Outcome, StreamKind,
};

use crate::support::*;

/// Stores each step's key in a real table: a NUL byte is refused by
/// PostgreSQL (SQLSTATE 22021), which the loop must treat as permanent.
struct Storing {
    pool: PgPool,
    script: Arc<Script>,
}

impl Handler for Storing {
    type Message = Step;
    async fn handle(&self, env: Envelope<Step>, delivery: Delivery) -> Outcome {
        let stored = sqlx::query("INSERT INTO steps (key, n) VALUES ($1, $2)")
            .bind(&env.body.key)
            .bind(env.body.n as i32)
            .execute(&self.pool)
            .await;
        match stored {
            Ok(_) => {
                self.script
                    .handle("storing", &env.body.key, env.body.n, &delivery)
                    .await
            }
            Err(e) => Outcome::Retry(Failure::from(&e).with_context(LetterContext {
                recipient: Some(env.body.key.clone()),
                ..LetterContext::default()
            })),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_permanent_database_errors_are_dead_lettered_and_the_partition_moves_on() {
    let t = TestBus::with_partitions(1).await;
    let db = TestDb::new().await;
    sqlx::query("CREATE TABLE steps (key text NOT NULL, n int NOT NULL)")
        .execute(&db.pool)
        .await
        .unwrap();
    let script = Arc::new(Script::default());
    prepare(&t).await;
    let subject = t.bus.topology().conversation(0);
    // 1. Not MessagePack at all, with headers of its own.
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "poison-1");
    headers.insert("Waiter-Trace-Id", "trace-poison");
    headers.insert("X-Origin", "fuzzer");
    t.bus
        .publish_with_headers(
            subject.clone(),
            headers,
            b"\x01\x02 not an envelope".to_vec(),
        )
        .await
        .unwrap();
    // 2. A NUL in a text column: PostgreSQL says 22021, forever.
    let nul = Envelope::new(
        "nul-1",
        "trace-nul",
        Step {
            key: "whatsapp:+1555\u{0}".into(),
            n: 0,
        },
    );
    t.bus.publish(subject.clone(), &nul).await.unwrap();
    // 3. A good message behind both.
    publish(&t.bus, "whatsapp:+15550003", 0).await;

    let handler = Arc::new(Storing {
        pool: db.pool.clone(),
        script: script.clone(),
    });
    let replica = Replica::ordered(&t, "w", handler, fast).await;
    let started = std::time::Instant::now();
    eventually("the good message behind them", WAIT, || async {
        (script.count() == 1).then_some(())
    })
    .await;
    // Within the configured bound: two attempts of the permanent failure
    // (WORKER_PERMANENT_ATTEMPTS), ~250 ms apart, plus takeover.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let letters = eventually("two dead letters", WAIT, || async {
        let letters = dead_letters(&t.bus).await;
        (letters.len() == 2).then_some(letters)
    })
    .await;
    let (poison, poison_headers) = &letters[0];
    assert_eq!(poison.body.stage, "tester");
    assert_eq!(poison.body.consumer, "tester-p0");
    assert_eq!(poison.body.reason_class, "poison");
    assert_eq!(poison.body.code.as_deref(), Some("undecodable"));
    assert!(
        poison.body.reason.contains("cannot decode"),
        "{}",
        poison.body.reason
    );
    assert_eq!(poison.body.original, b"\x01\x02 not an envelope");
    assert_eq!(poison.body.original_subject, subject);
    assert!(poison
        .body
        .original_headers
        .contains(&("X-Origin".to_string(), "fuzzer".to_string())));
    assert_eq!(poison.body.trace_id.as_deref(), Some("trace-poison"));
    assert_eq!(poison.body.stream_sequence, 1);
    assert_eq!(poison.body.attempts, 1);
    assert_eq!(
        poison.trace_id, "trace-poison",
        "the letter keeps the trace"
    );
    assert_eq!(
        poison_headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some("dlq:tester:tester-p0:1")
    );

    let (permanent, _) = &letters[1];
    assert_eq!(permanent.body.reason_class, "permanent");
    assert_eq!(permanent.body.code.as_deref(), Some("22021"));
    assert_eq!(permanent.body.attempts, 2);
    assert_eq!(permanent.body.delivered, 1, "retried in place");
    assert_eq!(
        permanent.body.recipient.as_deref(),
        Some("whatsapp:+1555\u{0}")
    );
    let original = Envelope::<Step>::decode(&permanent.body.original).unwrap();
    assert_eq!(original.id, "nul-1");
    assert!(permanent
        .body
        .original_headers
        .contains(&("Nats-Msg-Id".to_string(), "nul-1".to_string())));
    drained(&t.bus).await;
    assert_eq!(replica.worker.report().dead_lettered, 2);
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_on_the_last_delivery_is_dead_lettered() {
    let t = TestBus::with_partitions(1).await;
    prepare(&t).await;
    let key = "whatsapp:+15550004";
    publish(&t.bus, key, 0).await;
    publish(&t.bus, key, 1).await;
    // The consumer as the worker will want it, with max_deliver 2; one
    // delivery is used up by a reader that never acknowledges it.
    let mut config = t.config.clone();
    fast(&mut config);
    config.worker.max_deliver = 2;
    let mut spec = ConsumerSpec::partition(t.bus.topology(), StreamKind::Conversation, "tester", 0);
    spec.max_ack_pending = i64::from(config.worker.window);
    spec.ack_wait = config.ack_wait;
    spec.max_deliver = 2;
    let (c, _) = ensure_consumer(t.bus.jetstream(), t.bus.topology(), &spec)
        .await
        .unwrap();
    {
        use futures::StreamExt;
        let mut taken = c.fetch().max_messages(1).messages().await.unwrap();
        assert!(taken.next().await.is_some());
    }
    let script = Arc::new(Script::default());
    script.fail(key, 0, vec![Outcome::transient("db down"); 100]);
    let replica = Replica::start(&t, "w", &script, Mode::Ordered, |c| {
        fast(c);
        c.worker.max_deliver = 2;
    })
    .await;
    eventually("the next message", WAIT, || async {
        (script.count() == 1).then_some(())
    })
    .await;
    let letters = dead_letters(&t.bus).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0].0.body;
    assert_eq!(letter.reason_class, "max_deliver");
    assert_eq!(letter.delivered, 2);
    assert!(letter.reason.contains("last delivery"), "{}", letter.reason);
    drained(&t.bus).await;
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_of_a_newer_schema_waits_in_place_for_a_newer_reader() {
    let t = TestBus::with_partitions(1).await;
    prepare(&t).await;
    let key = "whatsapp:+15550005";
    let newer = Envelope::new(
        "v2-0",
        "t",
        StepV2 {
            key: key.into(),
            n: 0,
            note: Some("from the future".into()),
        },
    );
    t.bus
        .publish(subject_of(&t.bus, key), &newer)
        .await
        .unwrap();
    publish(&t.bus, key, 1).await;
    let script = Arc::new(Script::default());
    let old = Replica::start(&t, "old", &script, Mode::Ordered, |c| {
        fast(c);
        c.worker.newer_schema_delay = Duration::from_millis(300);
    })
    .await;
    eventually("the old reader defers it, more than once", WAIT, || async {
        (old.worker.report().deferred >= 2).then_some(())
    })
    .await;
    assert_eq!(script.count(), 0, "nothing overtakes the deferred message");
    assert!(dead_letters(&t.bus).await.is_empty(), "not a dead letter");
    old.stop().await;

    // The rolling deploy brings the newer reader: both, in order.
    let handler = Arc::new(RecorderV2 {
        replica: "new".into(),
        script: script.clone(),
    });
    let newer_reader = Replica::ordered(&t, "new", handler, fast).await;
    eventually("both handled by the newer reader", WAIT, || async {
        (script.count() == 2).then_some(())
    })
    .await;
    let ns: Vec<u32> = script.seen().iter().map(|s| s.n).collect();
    assert_eq!(ns, [0, 1]);
    drained(&t.bus).await;
    newer_reader.stop().await;
}
