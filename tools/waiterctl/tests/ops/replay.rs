//! `waiterctl replay`: JSON lines of any stream, filtered; `--republish`
//! of all traffic changes no row, sends nothing twice and adds no
//! dashboard event.

use std::time::Duration;

use waiter_e2e::Pipeline;
use waiter_nats::StreamKind;

use crate::{converse, customer, ok, settled, waiterctl};

/// Every table's rows, as one digest per table.
async fn digest(p: &Pipeline) -> Vec<(String, Option<String>)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
         AND tablename NOT LIKE '\\_sqlx%' ORDER BY 1",
    )
    .fetch_all(p.env.pool())
    .await
    .unwrap();
    let mut out = vec![];
    for table in tables {
        let sql =
            format!("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM \"{table}\" t");
        let d: Option<String> = sqlx::query_scalar(&sql)
            .fetch_one(p.env.pool())
            .await
            .unwrap();
        out.push((table, d));
    }
    out
}

fn lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_prints_every_stream_and_republishing_all_traffic_changes_nothing() {
    let p = Pipeline::start().await;
    let restaurant = p.restaurant(0).id;
    for n in 1..=3 {
        converse(&p, &customer(n), "hello", 1).await;
    }
    settled(&p).await;
    let ns = p.env.bus.namespace().to_string();

    // Printing: a stream by name, headers and the decoded envelope.
    let conv = lines(&ok(&p, &["replay", "conv"]).stdout);
    assert!(conv.len() >= 3, "{conv:?}");
    for line in &conv {
        assert_eq!(line["stream"], format!("{}_CONV", ns.to_uppercase()));
        assert!(line["seq"].as_u64().unwrap() > 0);
        assert!(line["headers"]["Waiter-Trace-Id"].is_string(), "{line}");
        assert_eq!(line["envelope"]["kind"], "conv.input");
        assert!(line["time"].as_str().unwrap().contains('T'));
    }
    let events = lines(
        &ok(
            &p,
            &["replay", "EVENTS", "--tenant", &restaurant.to_string()],
        )
        .stdout,
    );
    assert!(!events.is_empty());
    assert!(events
        .iter()
        .all(|e| e["envelope"]["body"]["restaurant_id"] == restaurant.to_string()));
    let unknown = waiterctl(&p, &["replay", "events", "--tenant", "nobody-here"]);
    assert!(
        !unknown.ok && unknown.stderr.contains("no restaurant"),
        "{}",
        unknown.stderr
    );
    // A subject, a start sequence and a limit.
    let inbound = lines(&ok(&p, &["replay", &format!("{ns}.ingest.message.>")]).stdout);
    assert_eq!(inbound.len(), 3, "three webhooks");
    let second = inbound[1]["seq"].as_u64().unwrap().to_string();
    let from_second = lines(
        &ok(
            &p,
            &[
                "replay",
                &format!("{ns}.ingest.message.>"),
                "--seq",
                &second,
                "--limit",
                "1",
            ],
        )
        .stdout,
    );
    assert_eq!(from_second.len(), 1);
    assert_eq!(from_second[0]["seq"], inbound[1]["seq"]);
    let until_past = lines(&ok(&p, &["replay", "ingest", "--until", "1h"]).stdout);
    assert!(until_past.is_empty(), "nothing was stored an hour ago");
    let dead = ok(&p, &["replay", "dlq"]);
    assert!(dead.stderr.contains("0 of 0"), "{}", dead.stderr);
    // Unknown names are refused with the streams one may name.
    let bad = waiterctl(&p, &["replay", "kitchen"]);
    assert!(!bad.ok && bad.stderr.contains("EVENTS"), "{}", bad.stderr);

    // Republishing everything the stages consume.
    let rows_before = digest(&p).await;
    let sent_before = p.sim.sent().len();
    let events_before = p
        .published_on(StreamKind::Events, format!("{ns}.events.>"))
        .await;
    let last_seq = events.last().unwrap()["seq"].as_u64().unwrap();
    for target in ["ingest", "conv", "order", "outbound"] {
        let ran = ok(&p, &["replay", target, "--republish"]);
        assert!(ran.stderr.contains("republished"), "{}", ran.stderr);
    }
    // The streams the stages derive, or that hold one record per subject,
    // are not fed back.
    for target in ["events", "dlq", "lease", "tenants"] {
        let ran = waiterctl(&p, &["replay", target, "--republish"]);
        assert!(!ran.ok, "{target} must not be republished");
        assert!(ran.stderr.contains("--republish of"), "{}", ran.stderr);
    }
    let republished = lines(&ok(&p, &["replay", &format!("{ns}.ingest.message.>")]).stdout);
    assert_eq!(
        republished.len(),
        6,
        "the three webhooks are in the stream again"
    );
    assert!(republished[3]["headers"]["Nats-Msg-Id"]
        .as_str()
        .unwrap()
        .contains(":replay:"));
    settled(&p).await;
    // A client resuming where it left off sees nothing new.
    let mut dashboard = waiter_harness::ws::Dashboard::connect(&p.ws_url(), &p.token(0))
        .await
        .unwrap();
    dashboard.subscribe(restaurant, Some(last_seq)).await;
    let frames = dashboard.collect_for(Duration::from_secs(2)).await;
    let replayed: Vec<_> = frames
        .iter()
        .filter(|f| f["seq"].as_u64().is_some_and(|s| s > last_seq))
        .collect();
    assert!(
        replayed.is_empty(),
        "no event after {last_seq}: {replayed:?}"
    );

    assert_eq!(digest(&p).await, rows_before, "no row changed");
    assert_eq!(p.sim.sent().len(), sent_before, "nothing sent twice");
    assert_eq!(
        p.published_on(StreamKind::Events, format!("{ns}.events.>"))
            .await,
        events_before,
        "no dashboard event added"
    );
}
