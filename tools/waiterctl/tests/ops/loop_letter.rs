//! `waiterctl dlq` and `dlq-retry` as commands, over a dead letter the
//! worker loop wrote: listed with its stage and class, and sent back to
//! its subject with its trace id under an id deduplication keeps.

use std::{sync::Arc, time::Duration};

use async_nats::HeaderMap;
use tokio_util::sync::CancellationToken;
use waiter_harness::{eventually, read_stream, TestEnv};
use waiter_nats::{
    messages::ConversationInput, Delivery, Envelope, Handler, Outcome, StreamKind, Worker,
};

struct Accepting;

impl Handler for Accepting {
    type Message = ConversationInput;
    async fn handle(&self, _: Envelope<ConversationInput>, _: Delivery) -> Outcome {
        Outcome::Ack
    }
}

/// Runs a conversation worker until it dead-lettered one message.
async fn dead_letter_one(bus: &waiter_nats::Bus) {
    let worker = Worker::with_replica(bus, "conversation", "c1");
    let stop = CancellationToken::new();
    let run = {
        let (worker, stop) = (worker.clone(), stop.clone());
        tokio::spawn(async move {
            worker
                .run_ordered(StreamKind::Conversation, Arc::new(Accepting), stop)
                .await
        })
    };
    eventually("a dead letter", Duration::from_secs(30), || async {
        (worker.report().dead_lettered == 1).then_some(())
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
}

/// `waiterctl dlq`, parsed.
fn listed(env: &TestEnv) -> Vec<serde_json::Value> {
    let ran = crate::run(env, &["--json", "dlq"]);
    assert!(ran.ok, "{}", ran.stderr);
    serde_json::from_str(&ran.stdout).expect("a JSON array")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_lists_a_loop_dead_letter_and_dlq_retry_sends_it_back_keeping_its_trace() {
    let env = TestEnv::with_partitions(1).await;
    let bus = env.bus.bus.clone();
    bus.ensure_streams(&[StreamKind::Conversation, StreamKind::DeadLetter])
        .await
        .unwrap();
    let subject = bus.topology().conversation(0);
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "poison-7");
    headers.insert("Waiter-Trace-Id", "trace-7");
    bus.publish_with_headers(subject.clone(), headers, b"not an envelope".to_vec())
        .await
        .unwrap();

    let mut retry_ids = vec![];
    // Twice: a second retry of the same message must not be swallowed as
    // a duplicate of the first.
    for round in 1..=2 {
        dead_letter_one(&bus).await;
        let letters = listed(&env);
        assert_eq!(letters.len(), 1, "{letters:?}");
        let letter = &letters[0];
        assert_eq!(letter["stage"], "conversation");
        assert_eq!(letter["consumer"], "conversation-p0");
        assert_eq!(letter["reason_class"], "poison");
        assert_eq!(letter["subject"], subject.as_str());
        assert_eq!(letter["trace_id"], "trace-7");
        let seq = letter["seq"].as_u64().unwrap().to_string();

        let said = crate::run(&env, &["dlq-retry", "--seq", &seq]).stderr;
        assert!(said.contains("1 dead letter(s) sent again"), "{said}");
        assert!(listed(&env).is_empty(), "the letter was removed");
        let back = read_stream(&bus, StreamKind::Conversation, subject.clone()).await;
        assert_eq!(back.len(), 1 + round, "the original and {round} retries");
        let retried = back.last().unwrap();
        assert_eq!(&retried.payload[..], b"not an envelope");
        let h = retried.headers.as_ref().unwrap();
        assert_eq!(h.get("Waiter-Trace-Id").unwrap().as_str(), "trace-7");
        let id = h.get("Nats-Msg-Id").unwrap().as_str().to_string();
        assert!(id.starts_with("poison-7:dlq-retry:"), "{id}");
        retry_ids.push(id);
    }
    assert_ne!(retry_ids[0], retry_ids[1]);
}
