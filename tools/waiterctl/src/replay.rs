//! Reading streams back: `just replay`, `just dlq`, `just dlq-retry`.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures::StreamExt;
use waiter_nats::{
    envelope::decode_to_json,
    messages::{DeadLetter, OutboundMessage},
    Bus, Envelope, StreamKind,
};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// A subject (wildcards allowed), e.g. waiter.conv.> or waiter.events.<restaurant>.>
    subject: String,
    /// Only messages newer than this (e.g. 10m, 2h, 1d).
    #[arg(long, conflicts_with = "seq")]
    since: Option<String>,
    /// Start at this stream sequence.
    #[arg(long)]
    seq: Option<u64>,
    /// Publish the messages again instead of printing them. Consumers apply
    /// each envelope once, so this re-processes only what was not applied.
    #[arg(long)]
    republish: bool,
    #[arg(long, default_value_t = 10_000)]
    limit: usize,
}

fn parse_age(s: &str) -> anyhow::Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("--since {s:?}: expected e.g. 10m"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => anyhow::bail!("--since {s:?}: unit must be s, m, h or d"),
    };
    Ok(Duration::from_secs(secs))
}

/// Messages of a stream matching `filter`, oldest first.
async fn read(
    bus: &Bus,
    kind: StreamKind,
    filter: String,
    deliver_policy: DeliverPolicy,
    limit: usize,
) -> anyhow::Result<Vec<async_nats::jetstream::Message>> {
    let stream = bus
        .jetstream()
        .get_stream(bus.topology().stream_name(kind))
        .await
        .context("the stream does not exist yet")?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            deliver_policy,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut out = vec![];
    while out.len() < limit {
        match tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
            Ok(Some(Ok(message))) => {
                let done = message.info().map(|i| i.pending == 0).unwrap_or(true);
                out.push(message);
                if done {
                    break;
                }
            }
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(out)
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let bus = crate::connect::bus().await?;
    let kind = bus
        .topology()
        .stream_of_subject(&args.subject)
        .with_context(|| {
            format!(
                "{:?} is not a subject of namespace {:?} (e.g. {}.conv.>)",
                args.subject,
                bus.topology().namespace(),
                bus.topology().namespace()
            )
        })?;
    let policy = match (args.seq, &args.since) {
        (Some(seq), _) => DeliverPolicy::ByStartSequence {
            start_sequence: seq,
        },
        (None, Some(age)) => {
            let start = time::OffsetDateTime::now_utc() - parse_age(age)?;
            DeliverPolicy::ByStartTime { start_time: start }
        }
        (None, None) => DeliverPolicy::All,
    };
    let messages = read(&bus, kind, args.subject.clone(), policy, args.limit).await?;
    let mut republished = 0;
    for message in &messages {
        let info = message.info().ok();
        let seq = info.as_ref().map(|i| i.stream_sequence).unwrap_or(0);
        if args.republish {
            let headers = message.headers.clone().unwrap_or_default();
            let id = headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.to_string())
                .unwrap_or_default();
            let kind = headers
                .get(waiter_nats::envelope::KIND_HEADER)
                .map(|v| v.to_string())
                .unwrap_or_default();
            let trace = headers
                .get(waiter_nats::TRACE_HEADER)
                .map(|v| v.to_string())
                .unwrap_or_default();
            // A new Nats-Msg-Id so JetStream stores it again; the envelope
            // inside keeps its id, which is what stages apply once by.
            bus.publish_encoded(
                message.subject.to_string(),
                &format!("{id}:replay:{}", chrono::Utc::now().timestamp_millis()),
                &trace,
                &kind,
                message.payload.to_vec(),
            )
            .await?;
            republished += 1;
        } else {
            let line = serde_json::json!({
                "seq": seq,
                "subject": message.subject.as_str(),
                "envelope": decode_to_json(&message.payload).unwrap_or_else(|e| serde_json::json!({"undecodable": e})),
            });
            println!("{line}");
        }
    }
    if args.republish {
        eprintln!("republished {republished} message(s) to {}", args.subject);
    } else {
        eprintln!("{} message(s)", messages.len());
    }
    Ok(())
}

pub async fn list_dead_letters(limit: usize) -> anyhow::Result<()> {
    let bus = crate::connect::bus().await?;
    let filter = bus.topology().stream_subjects(StreamKind::DeadLetter);
    let messages = read(
        &bus,
        StreamKind::DeadLetter,
        filter,
        DeliverPolicy::All,
        limit,
    )
    .await?;
    for message in &messages {
        let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        match Envelope::<DeadLetter>::decode(&message.payload) {
            Ok(env) => {
                let l = env.body;
                println!(
                    "{}",
                    serde_json::json!({
                        "seq": seq, "stage": l.stage, "consumer": l.consumer,
                        "reason": l.reason, "reason_class": l.reason_class,
                        "code": l.code, "error_code": l.error_code,
                        "restaurant_id": l.restaurant_id, "conversation_id": l.conversation_id,
                        "recipient": l.recipient, "trace_id": l.trace_id,
                        "subject": l.original_subject, "stream_sequence": l.stream_sequence,
                        "attempts": l.attempts, "delivered": l.delivered, "failed_at": l.failed_at,
                        "headers": l.original_headers,
                        "original": decode_to_json(&l.original).ok(),
                    })
                );
            }
            Err(e) => println!(
                "{}",
                serde_json::json!({"seq": seq, "undecodable": e.to_string()})
            ),
        }
    }
    eprintln!("{} dead letter(s)", messages.len());
    Ok(())
}

pub async fn retry_dead_letters(only: Option<u64>) -> anyhow::Result<()> {
    let bus = crate::connect::bus().await?;
    let pool = crate::connect::pool().await?;
    let filter = bus.topology().stream_subjects(StreamKind::DeadLetter);
    let messages = read(
        &bus,
        StreamKind::DeadLetter,
        filter,
        DeliverPolicy::All,
        100_000,
    )
    .await?;
    let stream = bus
        .jetstream()
        .get_stream(bus.topology().stream_name(StreamKind::DeadLetter))
        .await?;
    let mut retried = 0;
    for message in messages {
        let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        if only.is_some_and(|s| s != seq) {
            continue;
        }
        let letter = Envelope::<DeadLetter>::decode(&message.payload)?.body;
        if letter.stage == "outbound" {
            // The send failed for good: make the message sendable again.
            if let Ok(original) = Envelope::<OutboundMessage>::decode(&letter.original) {
                sqlx::query(
                    "UPDATE messages SET status = 'pending', status_rank = 0, error_code = NULL, \
                        error_message = NULL, updated_at = now() WHERE id = $1 AND wa_sid IS NULL",
                )
                .bind(original.body.message_id)
                .execute(&pool)
                .await?;
            }
        }
        // The original's trace id and kind, under a new Nats-Msg-Id: the
        // original id may still be in the duplicate window, and a second
        // retry of the same letter must not be swallowed either. Stages
        // apply by the envelope's own id, so nothing is applied twice.
        let header = |name: &str| {
            letter
                .original_headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let original_id = header("Nats-Msg-Id").unwrap_or_else(|| format!("dlq:{seq}"));
        let trace = header(waiter_nats::TRACE_HEADER)
            .or(letter.trace_id.clone())
            .unwrap_or_else(|| format!("dlq-retry:{seq}"));
        let kind = header(waiter_nats::envelope::KIND_HEADER).unwrap_or_else(|| "dlq.retry".into());
        bus.publish_encoded(
            letter.original_subject.clone(),
            &format!("{original_id}:dlq-retry:{}", uuid::Uuid::new_v4().simple()),
            &trace,
            &kind,
            letter.original.clone(),
        )
        .await?;
        stream.delete_message(seq).await?;
        retried += 1;
        eprintln!(
            "retried dead letter {seq} ({}: {})",
            letter.stage, letter.reason
        );
    }
    eprintln!("{retried} dead letter(s) sent again");
    Ok(())
}
