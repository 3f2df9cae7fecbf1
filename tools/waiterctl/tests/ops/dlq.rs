//! `waiterctl dlq` and `dlq-retry --all`: one poison message for each
//! consuming stage's consumer is listed with its stage and reason, the
//! partitions keep flowing, and a retry sends each back where it came from.

use std::collections::BTreeSet;

use async_nats::HeaderMap;
use waiter_e2e::Pipeline;
use waiter_harness::eventually;

use crate::{converse, customer, ok, waiterctl, WAIT};

fn listed(p: &Pipeline) -> Vec<serde_json::Value> {
    let ran = ok(p, &["--json", "dlq"]);
    serde_json::from_str::<Vec<serde_json::Value>>(&ran.stdout).expect("a JSON array")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_of_every_consuming_stage_is_listed_and_retried() {
    let p = Pipeline::start().await;
    let bus = p.env.bus.bus.clone();
    let t = bus.topology().clone();
    // (subject, stage, consumer) of every loop a stage runs.
    let poisons = [
        (t.inbound_message(0), "router", "router-p0"),
        (t.refused_webhooks(), "router", "router-refusals"),
        (t.conversation(0), "conversation", "conversation-p0"),
        (t.order_command(0), "order", "order-p0"),
        (t.outbound(0), "outbound", "outbound-p0"),
        (t.status_callback(), "outbound", "outbound-status"),
    ];
    for (n, (subject, _, _)) in poisons.iter().enumerate() {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("poison-{n}").as_str());
        headers.insert("Waiter-Trace-Id", format!("trace-poison-{n}").as_str());
        bus.publish_with_headers(subject.clone(), headers, b"\xc1 not an envelope".to_vec())
            .await
            .unwrap();
    }
    let letters = eventually("a dead letter per consumer", WAIT, || async {
        let letters = listed(&p);
        (letters.len() >= poisons.len()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), poisons.len(), "{letters:#?}");
    let got: BTreeSet<(String, String, String)> = letters
        .iter()
        .map(|l| {
            assert_eq!(l["reason_class"], "poison", "{l}");
            assert!(l["trace_id"].as_str().unwrap().starts_with("trace-poison-"));
            (
                l["subject"].as_str().unwrap().to_string(),
                l["stage"].as_str().unwrap().to_string(),
                l["consumer"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = poisons
        .iter()
        .map(|(s, stage, c)| (s.clone(), stage.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);

    // The table: one row per letter, the stage, class and attempts readable.
    let table = ok(&p, &["dlq"]).stdout;
    for stage in ["router", "conversation", "order", "outbound"] {
        assert!(table.contains(stage), "{table}");
    }
    assert!(table.contains("poison:"), "{table}");
    assert!(
        table.contains("attempts") && table.contains("age"),
        "{table}"
    );
    let only = ok(&p, &["--json", "dlq", "--stage", "order"]).stdout;
    let only: Vec<serde_json::Value> = serde_json::from_str(&only).unwrap();
    assert_eq!(only.len(), 1);

    // The partitions the poison sat on go on: a customer is answered.
    converse(&p, &customer(7), "hello", 1).await;

    // dlq-retry needs to be told which.
    assert!(!waiterctl(&p, &["dlq-retry"]).ok);
    let missing = waiterctl(&p, &["dlq-retry", "--seq", "999999"]);
    assert!(!missing.ok && missing.stderr.contains("no dead letter 999999"));
    let ran = ok(&p, &["dlq-retry", "--all"]);
    assert!(
        ran.stderr
            .contains(&format!("{} dead letter(s) sent again", poisons.len())),
        "{}",
        ran.stderr
    );
    // Still poison: each comes back, once, from the same consumer.
    let again = eventually("the retried letters dead-lettered again", WAIT, || async {
        let letters = listed(&p);
        (letters.len() >= poisons.len()).then_some(letters)
    })
    .await;
    assert_eq!(again.len(), poisons.len());
    let seqs_before: BTreeSet<u64> = letters.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(again
        .iter()
        .all(|l| !seqs_before.contains(&l["seq"].as_u64().unwrap())));
    assert!(again.iter().all(|l| l["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h[0] == "Nats-Msg-Id" && h[1].as_str().unwrap().contains(":dlq-retry:"))));
}
