//! Every metric the alert rules (`deploy/prometheus/alerts.yml`) and the
//! Grafana dashboard (`deploy/grafana/waiter.json`) name is exported by
//! the stages, once traffic has gone through the pipeline.

use std::{collections::BTreeSet, time::Duration};

use twilio_sim::{Fault, InboundSpec};
use waiter_e2e::Pipeline;

const WAIT: Duration = Duration::from_secs(60);

/// The `waiter_*` series a file names (histogram suffixes dropped).
fn named_in(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("waiter_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        // A job name (`waiter-router`) is not a metric.
        if rest[..at].ends_with(|c: char| c.is_ascii_alphanumeric()) || base == "waiter_" {
            rest = &tail[end..];
            continue;
        }
        names.insert(base.to_string());
        rest = &tail[end..];
    }
    names
}

fn exported(scrape: &str, name: &str) -> bool {
    scrape.lines().any(|line| {
        line.strip_prefix(name).is_some_and(|after| {
            after.starts_with('{')
                || after.starts_with(' ')
                || after.starts_with("_bucket")
                || after.starts_with("_sum")
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_name_is_exported() {
    let wanted: BTreeSet<String> = named_in("deploy/prometheus/alerts.yml")
        .into_iter()
        .chain(named_in("deploy/grafana/waiter.json"))
        .collect();
    assert!(wanted.len() > 15, "{wanted:?}");

    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let _dashboard = p.dashboard(0).await;
    // One reply Twilio refuses for good, one poison message, and a rate of
    // one send a second for three customers at once.
    sqlx::query("UPDATE restaurants SET outbound_rate_per_second = 1 WHERE id = $1")
        .bind(r.id)
        .execute(p.env.pool())
        .await
        .unwrap();
    let refused = "whatsapp:+966500000901".to_string();
    p.sim
        .inject_fault(Fault::new(400, 21211).times(1).only_to(refused.clone()));
    let topology = p.env.bus.bus.topology().clone();
    p.env
        .bus
        .bus
        .client()
        .publish(topology.order_command(0), b"\xc1 poison".to_vec().into())
        .await
        .unwrap();
    let customers = [
        "whatsapp:+966500000902",
        "whatsapp:+966500000903",
        "whatsapp:+966500000904",
    ];
    for from in std::iter::once(refused.as_str()).chain(customers) {
        let answer = p
            .sim
            .send_inbound(InboundSpec::text(&r.account_sid, from, &r.number, "hello"))
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
    }
    for from in customers {
        p.sim.wait_for_sent(from, 1, WAIT).await;
    }

    // Labelled as the rules expect (the lag is asked for every 5 s).
    let labelled = [
        format!("waiter_outbound_sent_total{{restaurant=\"{}\"}}", r.id),
        "waiter_stage_ready{stage=\"router\"} 1".to_string(),
        "waiter_worker_consumer_pending{stage=\"conversation\",consumer=\"conversation-p0\"}"
            .to_string(),
        "waiter_dead_letters_total{stage=\"order\",reason_class=\"poison\"}".to_string(),
    ];
    let url = format!("http://{}/metrics", p.ops["router"]);
    let missing = |scrape: &str| -> Vec<String> {
        wanted
            .iter()
            .filter(|name| !exported(scrape, name))
            .chain(labelled.iter().filter(|l| !scrape.contains(l.as_str())))
            .cloned()
            .collect()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut left = vec!["(no scrape)".to_string()];
    while tokio::time::Instant::now() < deadline {
        if let Ok(scrape) = async { reqwest::get(&url).await?.text().await }.await {
            left = missing(&scrape);
            if left.is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(left.is_empty(), "not exported: {left:?}");
}
