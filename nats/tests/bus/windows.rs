//! Ordered windows and keyed lanes over leased partitions, with several
//! replicas, retries in place and replicas joining and leaving.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use waiter_harness::{eventually, TestBus};
use waiter_nats::{worker::assignment::desired_owner, Failure, Outcome};

use crate::support::*;

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("whatsapp:+1555000{i:03}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_replicas_keep_per_key_order_under_retries_in_place() {
    for replicas in [2, 3] {
        let t = TestBus::with_partitions(4).await;
        let script = Arc::new(Script::default());
        let keys = keys(8);
        // Message 8 of every key fails once (transient), message 10 once
        // (unknown): both are retried in place, behind nothing.
        for k in &keys {
            script.fail(k, 8, vec![Outcome::transient("database restarting")]);
            script.fail(k, 10, vec![Outcome::Retry(Failure::unknown("odd"))]);
        }
        let ids: Vec<String> = (0..replicas).map(|r| format!("r{r}")).collect();
        let mut running = vec![];
        for id in &ids {
            running.push(Replica::start(&t, id, &script, Mode::Ordered, fast).await);
        }
        // The first half while the replicas still hand partitions to each
        // other (handovers hand back in order)...
        for n in 0..6 {
            for k in &keys {
                publish(&t.bus, k, n).await;
            }
        }
        // ... the second half once every partition is with its owner.
        eventually(
            "every partition with its rendezvous owner",
            WAIT,
            || async {
                running
                    .iter()
                    .zip(&ids)
                    .all(|(r, id)| {
                        let desired: Vec<u16> = (0..4)
                            .filter(|&p| {
                                desired_owner("tester", p, ids.iter().map(String::as_str))
                                    == Some(id.as_str())
                            })
                            .collect();
                        r.worker.report().owned_partitions == desired
                    })
                    .then_some(())
            },
        )
        .await;
        for n in 6..12 {
            for k in &keys {
                publish(&t.bus, k, n).await;
            }
        }
        eventually("all 96 messages handled", WAIT, || async {
            (script.count() >= 96).then_some(())
        })
        .await;
        drained(&t.bus).await;
        let seen = script.seen();
        assert_exactly_once_in_order(&seen, &keys, 12);
        for s in seen.iter().filter(|s| s.n == 8 || s.n == 10) {
            assert_eq!(s.delivered, 1, "retried in place, not redelivered: {s:?}");
            assert_eq!(s.attempt, 2, "{s:?}");
        }
        let handlers: BTreeSet<&str> = seen.iter().map(|s| s.replica.as_str()).collect();
        assert!(
            handlers.len() >= 2,
            "{replicas} replicas, handled by {handlers:?}"
        );
        for r in running {
            r.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_one_to_three_to_one_during_a_steady_stream_loses_and_repeats_nothing() {
    let t = TestBus::with_partitions(4).await;
    let script = Arc::new(Script::default());
    *script.pace.lock().unwrap() = Duration::from_millis(2);
    let keys = keys(12);
    const PER_KEY: u32 = 60;
    let first = Replica::start(&t, "r0", &script, Mode::Ordered, fast).await;

    // A steady stream: one message per key every 60 ms or so, for ~6 s.
    let publisher = {
        let (bus, keys) = (t.bus.clone(), keys.clone());
        tokio::spawn(async move {
            for n in 0..PER_KEY {
                for k in &keys {
                    publish(&bus, k, n).await;
                }
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };
    eventually("the first replica at work", WAIT, || async {
        (script.count() >= 60).then_some(())
    })
    .await;
    let second = Replica::start(&t, "r1", &script, Mode::Ordered, fast).await;
    let third = Replica::start(&t, "r2", &script, Mode::Ordered, fast).await;
    eventually(
        "the partitions spread over three replicas",
        WAIT,
        || async {
            let owned = [&first, &second, &third]
                .iter()
                .filter(|r| !r.worker.report().owned_partitions.is_empty())
                .count();
            (owned >= 2).then_some(())
        },
    )
    .await;
    let during = script.count();
    eventually("the new replicas handle messages", WAIT, || async {
        let seen = script.seen();
        seen.iter().any(|s| s.replica != "r0").then_some(())
    })
    .await;
    second.stop().await;
    third.stop().await;
    eventually(
        "the remaining replica takes every partition back",
        WAIT,
        || async { (first.worker.report().owned_partitions.len() == 4).then_some(()) },
    )
    .await;
    publisher.await.expect("publisher");
    let total = keys.len() * PER_KEY as usize;
    eventually("every message handled", WAIT, || async {
        (script.count() >= total).then_some(())
    })
    .await;
    drained(&t.bus).await;
    let seen = script.seen();
    assert!(during < total, "scaling happened mid-stream");
    assert_exactly_once_in_order(&seen, &keys, PER_KEY);
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_lanes_keep_each_keys_order_while_a_retrying_key_waits_alone() {
    let t = TestBus::with_partitions(1).await;
    let script = Arc::new(Script::default());
    let keys = keys(4);
    let slow = keys[0].clone();
    // The first message of one conversation is rate-limited for a while,
    // then fails once: its later messages wait, the others do not.
    script.fail(
        &slow,
        0,
        vec![
            Outcome::defer(Duration::from_millis(1500), "rate limit"),
            Outcome::transient("Twilio 503"),
        ],
    );
    let replica = Replica::start(&t, "r0", &script, Mode::Lanes, fast).await;
    for n in 0..5 {
        for k in &keys {
            publish(&t.bus, k, n).await;
        }
    }
    eventually("all 20 handled", WAIT, || async {
        (script.count() >= 20).then_some(())
    })
    .await;
    drained(&t.bus).await;
    let seen = script.seen();
    assert_exactly_once_in_order(&seen, &keys, 5);
    let slow_first = seen
        .iter()
        .position(|s| s.key == slow)
        .expect("the slow key");
    let others_done = seen.iter().filter(|s| s.key != slow && s.n == 4).count();
    assert_eq!(others_done, 3);
    assert!(
        seen[..slow_first].iter().filter(|s| s.key != slow).count() == 15,
        "the other conversations finished while the slow one waited: {seen:?}"
    );
    let first = seen.iter().find(|s| s.key == slow && s.n == 0).unwrap();
    assert_eq!(
        first.attempt, 2,
        "the deferral was not an attempt, the 503 was"
    );
    assert_eq!(first.delivered, 1);
    replica.stop().await;
}
