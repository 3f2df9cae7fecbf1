//! Consumers under a worker: progress acks on a slow handler, a consumer
//! deleted under it, and consumers of a deployed namespace (one message
//! in flight) widened in place without replaying anything.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::consumer::{self, pull, AckPolicy, PullConsumer};
use futures::StreamExt;
use waiter_harness::{eventually, TestBus};
use waiter_nats::{
    streams::{ensure_consumer, ConsumerSpec, Ensured},
    StreamKind,
};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_acks_keep_a_slow_handlers_message_from_being_redelivered() {
    let t = TestBus::with_partitions(1).await;
    let script = Arc::new(Script::default());
    let key = "whatsapp:+15550006";
    // Four ack waits long.
    script.slow(key, 0, Duration::from_secs(6));
    let replica = Replica::start(&t, "w", &script, Mode::Ordered, |c| {
        fast(c);
        c.ack_wait = Duration::from_millis(1500);
    })
    .await;
    publish(&t.bus, key, 0).await;
    publish(&t.bus, key, 1).await;
    eventually("both handled", WAIT, || async {
        (script.count() == 2).then_some(())
    })
    .await;
    let seen = script.seen();
    assert!(seen.iter().all(|s| s.delivered == 1), "{seen:?}");
    let mut c = consumer(&t.bus, "tester-p0").await;
    let info = c.info().await.unwrap();
    assert_eq!(info.num_redelivered, 0);
    assert_eq!(info.num_ack_pending, 0);
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_deleted_under_a_worker_is_recreated_after_what_it_settled() {
    let t = TestBus::with_partitions(1).await;
    let script = Arc::new(Script::default());
    let key = "whatsapp:+15550007";
    let replica = Replica::start(&t, "w", &script, Mode::Ordered, fast).await;
    for n in 0..3 {
        publish(&t.bus, key, n).await;
    }
    eventually("the first three", WAIT, || async {
        (script.count() == 3).then_some(())
    })
    .await;
    eventually("ready", WAIT, || async {
        replica.worker.status().is_ready().then_some(())
    })
    .await;
    let stream = stream(&t.bus).await;
    // nats-server 2.9 sometimes fails a delete racing its own writes
    // ("directory not empty"); an operator would try again.
    eventually("the consumer deleted", WAIT, || async {
        stream.delete_consumer("tester-p0").await.ok()
    })
    .await;
    for n in 3..6 {
        publish(&t.bus, key, n).await;
    }
    eventually(
        "the next three, after the consumer is back",
        WAIT,
        || async { (script.count() == 6).then_some(()) },
    )
    .await;
    assert_exactly_once_in_order(&script.seen(), &[key.to_string()], 6);
    let mut c = consumer(&t.bus, "tester-p0").await;
    let info = c.info().await.unwrap();
    assert!(matches!(
        info.config.deliver_policy,
        consumer::DeliverPolicy::ByStartSequence { start_sequence: 4 }
    ));
    eventually("ready again", WAIT, || async {
        replica.worker.status().is_ready().then_some(())
    })
    .await;
    replica.stop().await;
}

#[tokio::test]
async fn a_deployed_consumers_window_is_widened_in_place_without_replay() {
    let t = TestBus::with_partitions(1).await;
    prepare(&t).await;
    let key = "whatsapp:+15550008";
    for n in 0..5 {
        publish(&t.bus, key, n).await;
    }
    // As the previous release created it: one message in flight.
    let stream = stream(&t.bus).await;
    let old: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("tester-p0".into()),
            filter_subject: t.bus.topology().conversation(0),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: 1,
            ack_wait: Duration::from_secs(30),
            max_deliver: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    for _ in 0..3 {
        let mut batch = old.fetch().max_messages(1).messages().await.unwrap();
        let m = batch.next().await.unwrap().unwrap();
        m.double_ack().await.unwrap();
    }
    let mut spec = ConsumerSpec::partition(t.bus.topology(), StreamKind::Conversation, "tester", 0);
    spec.max_ack_pending = 32;
    let (mut widened, ensured) = ensure_consumer(t.bus.jetstream(), t.bus.topology(), &spec)
        .await
        .unwrap();
    assert_eq!(ensured, Ensured::Updated);
    let info = widened.info().await.unwrap();
    assert_eq!(info.config.max_ack_pending, 32);
    assert_eq!(info.config.max_deliver, spec.max_deliver);
    assert_eq!(info.ack_floor.stream_sequence, 3, "position kept");
    // Run the worker on it: only the two not yet acknowledged.
    let script = Arc::new(Script::default());
    let replica = Replica::start(&t, "w", &script, Mode::Ordered, |_| {}).await;
    eventually("the remaining two", WAIT, || async {
        (script.count() == 2).then_some(())
    })
    .await;
    let ns: Vec<u32> = script.seen().iter().map(|s| s.n).collect();
    assert_eq!(ns, [3, 4]);
    // A field that cannot be edited (here the ack policy) makes a new
    // consumer after the ack floor, again without replay.
    replica.stop().await;
    stream.delete_consumer("tester-p0").await.unwrap();
    let _: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("tester-p0".into()),
            filter_subject: t.bus.topology().conversation(0),
            ack_policy: AckPolicy::All,
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: 5 },
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, ensured) = ensure_consumer(t.bus.jetstream(), t.bus.topology(), &spec)
        .await
        .unwrap();
    assert_eq!(ensured, Ensured::Recreated { after: 4 });
}
