//! The summary block both modes print: throughput against the baselines,
//! ack latency, end-to-end latencies and stage lags.

use hdrhistogram::Histogram;

use crate::{audit::Audit, baselines::Baselines, load::Outcome, ms};

fn end_to_end(label: &str, h: &Histogram<u64>) {
    println!(
        "  {label:<29} p50 {:>8.1} ms  p99 {:>8.1} ms  p99.9 {:>8.1} ms  ({} samples)",
        ms(h, 0.5),
        ms(h, 0.99),
        ms(h, 0.999),
        h.len()
    );
}

/// `pipeline_secs`: from the first webhook until every message was answered.
/// `reconnects`: times a dashboard socket was closed as too slow and
/// reconnected with `since`.
pub fn print(b: &Baselines, load: &Outcome, pipeline_secs: f64, audit: &Audit, reconnects: u64) {
    let (raw_rate, raw_lat) = &b.raw;
    let (async_rate, async_lat) = &b.raw_async;
    let accept_rate = load.accept_rate();
    let unique = audit.unique;
    println!("  ─── Waiter benchmark ───────────────────────────────────────────────");
    println!(
        "  machine                 {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "  raw JetStream publish   {raw_rate:>9.0} msg/s    ack p50 {:>7.2} ms  p99 {:>7.2} ms",
        ms(raw_lat, 0.5),
        ms(raw_lat, 0.99)
    );
    println!(
        "  webhooks accepted       {accept_rate:>9.0} /s       ack p50 {:>7.2} ms  p99 {:>7.2} ms   ({} posts in {:.1} s, {} refused)",
        ms(&load.ack, 0.5),
        ms(&load.ack, 0.99),
        load.posts,
        load.send_secs,
        load.refused
    );
    println!(
        "  raw publish, {:>4} in flight {async_rate:>6.0} msg/s    ack p50 {:>7.2} ms  p99 {:>7.2} ms",
        b.raw_in_flight,
        ms(async_lat, 0.5),
        ms(async_lat, 0.99)
    );
    if let Some((rate, lat)) = &b.bare {
        println!(
            "  bare warp POST          {rate:>9.0} /s       p50 {:>7.2} ms  p99 {:>7.2} ms",
            ms(lat, 0.5),
            ms(lat, 0.99)
        );
        println!(
            "  ingest / bare POST      {:>9.1} %",
            100.0 * accept_rate / rate
        );
    }
    println!(
        "  ratio to raw publish    {:>9.1} %  ({:.1} % of raw publish at {} in flight)",
        100.0 * accept_rate / raw_rate,
        100.0 * accept_rate / async_rate,
        b.raw_in_flight
    );
    println!(
        "  answered end to end     {:>9.0} msg/s  ({unique} messages answered within {pipeline_secs:.1} s; {:.2} % of raw publish at {} in flight)",
        unique as f64 / pipeline_secs,
        100.0 * unique as f64 / pipeline_secs / async_rate,
        b.raw_in_flight
    );
    end_to_end("webhook → reply at Twilio", &audit.to_twilio);
    end_to_end("webhook → dashboard event", &audit.to_dashboard);
    if reconnects > 0 {
        println!(
            "    (the notifier closed a dashboard socket as too slow {reconnects} time(s); it reconnected with since)"
        );
    }
    println!("  stage lag (from row timestamps)");
    for (stage, p50, p99) in &audit.stage_lags {
        println!(
            "    {stage:<28} p50 {:>8.1} ms  p99 {:>8.1} ms",
            p50.unwrap_or(0.0),
            p99.unwrap_or(0.0)
        );
    }
}
