//! `waiterctl trace MESSAGE_SID`: the webhook, the router's decision, the
//! rows, the reply with its Twilio sid and status history, the dashboard
//! events, with the time between hops.

use crate::{converse, customer, ok, waiterctl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_follows_one_message_from_the_webhook_to_the_read_receipt() {
    let p = waiter_e2e::Pipeline::start().await;
    let sid = converse(&p, &customer(1), "hello", 1).await;
    // Another customer's traffic is not part of the trace.
    converse(&p, &customer(2), "hello", 1).await;
    let reply_sid = p.sim.sent_to(&customer(1))[0].sid.clone();

    let ran = ok(&p, &["--json", "trace", &sid]);
    let t: serde_json::Value = serde_json::from_str(&ran.stdout).expect("JSON");
    assert_eq!(t["message_sid"], sid.as_str());
    let trace_id = t["trace_id"].as_str().unwrap();
    assert!(!trace_id.is_empty());
    assert!(t["webhook"]["seq"].as_u64().unwrap() > 0);
    assert!(t["webhook"]["ack_latency_ms"].as_i64().unwrap() >= 0);
    assert!(
        t["router_decision"]
            .as_str()
            .unwrap()
            .starts_with("routed to"),
        "{}",
        t["router_decision"]
    );
    assert!(t["conversation_id"].is_string());

    let hops = t["hops"].as_array().unwrap();
    let kinds: Vec<&str> = hops.iter().map(|h| h["kind"].as_str().unwrap()).collect();
    for kind in [
        "ingest.inbound",
        "conv.input",
        "outbound.message",
        "events.dashboard",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert_eq!(kinds[0], "ingest.inbound", "the webhook first: {kinds:?}");
    let times: Vec<i64> = hops
        .iter()
        .map(|h| h["after_webhook_ms"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(hops
        .iter()
        .all(|h| h["after_previous_ms"].as_i64().unwrap() >= 0));
    // Only this message's hops: one webhook, one reply.
    assert_eq!(kinds.iter().filter(|k| **k == "ingest.inbound").count(), 1);
    assert_eq!(
        kinds.iter().filter(|k| **k == "outbound.message").count(),
        1
    );

    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["direction"], "in");
    assert_eq!(rows[0]["wa_sid"], sid.as_str());
    assert_eq!(rows[1]["direction"], "out");
    assert_eq!(rows[1]["wa_sid"], reply_sid.as_str());
    assert_eq!(rows[1]["status"], "read");
    let history: Vec<&str> = t["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["message_sid"] == reply_sid.as_str())
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert!(
        history.contains(&"delivered") && history.last() == Some(&"read"),
        "{history:?}"
    );

    // The table a person reads.
    let table = ok(&p, &["trace", &sid]).stdout;
    assert!(table.contains(&sid) && table.contains(trace_id), "{table}");
    assert!(
        table.contains(&reply_sid) && table.contains("read (+"),
        "{table}"
    );
    assert!(table.contains("dashboard event"), "{table}");

    let unknown = waiterctl(&p, &["trace", "SM0000000000000000000000000000dead"]);
    assert!(
        !unknown.ok && unknown.stderr.contains("no webhook"),
        "{}",
        unknown.stderr
    );
}
