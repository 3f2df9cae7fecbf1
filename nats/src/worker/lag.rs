//! Consumer lag as metrics: every few seconds, each consumer a loop works
//! on is asked for its pending and ack-pending counts.
//!
//! Every replica of a stage reports the same consumers (the numbers are the
//! server's), so dashboards and alerts take `max by (stage, consumer)`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{bus::Bus, topology::StreamKind};

/// How often the counts are asked for.
pub const EVERY: Duration = Duration::from_secs(5);

/// Sets `waiter_worker_consumer_pending` and
/// `waiter_worker_consumer_ack_pending` for `consumers` until `stop`.
pub async fn report(
    bus: Bus,
    stage: &'static str,
    stream: StreamKind,
    consumers: Vec<String>,
    stop: CancellationToken,
) {
    // Zero, not absent, until the first redelivery: rates and alerts see it.
    for consumer in &consumers {
        metrics::counter!("waiter_worker_redelivered_total",
            "stage" => stage, "consumer" => consumer.clone())
        .increment(0);
    }
    let name = bus.topology().stream_name(stream);
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(stream) = bus.jetstream().get_stream(&name).await else {
            continue;
        };
        for consumer in &consumers {
            // A consumer not created yet, or deleted under the worker (it
            // re-creates it), has no counts this round.
            let Ok(info) = stream.consumer_info(consumer.as_str()).await else {
                continue;
            };
            let labels = [("stage", stage.to_string()), ("consumer", consumer.clone())];
            metrics::gauge!("waiter_worker_consumer_pending", &labels).set(info.num_pending as f64);
            metrics::gauge!("waiter_worker_consumer_ack_pending", &labels)
                .set(info.num_ack_pending as f64);
        }
    }
}
