//! `just dlq` and `just dlq-retry`: the dead letters every stage's worker
//! loop writes, listed readably and sent back where they came from.

use std::collections::HashMap;

use anyhow::Context;
use uuid::Uuid;
use waiter_nats::{
    envelope::decode_to_json,
    messages::{DeadLetter, OutboundMessage},
    Envelope, StreamKind,
};

use crate::{
    output::{or_dash, Out},
    scan::{self, Range},
};

#[derive(clap::Args)]
pub struct DlqArgs {
    /// Only this stage's letters (router, conversation, order, outbound, …).
    #[arg(long)]
    stage: Option<String>,
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct RetryArgs {
    /// The dead letter's sequence (the `seq` column of `just dlq`).
    #[arg(long)]
    seq: Option<u64>,
    /// Every dead letter.
    #[arg(long)]
    all: bool,
}

/// One dead letter with its place in the stream.
struct Listed {
    seq: u64,
    letter: DeadLetter,
}

async fn letters(bus: &waiter_nats::Bus, limit: usize) -> anyhow::Result<(Vec<Listed>, usize)> {
    let filter = bus.topology().stream_subjects(StreamKind::DeadLetter);
    let mut listed = vec![];
    let mut undecodable = 0;
    let range = Range {
        limit,
        ..Range::everything()
    };
    scan::each(bus, StreamKind::DeadLetter, &filter, &range, async |m| {
        let seq = m.info().map_err(anyhow::Error::msg)?.stream_sequence;
        match Envelope::<DeadLetter>::decode(&m.payload) {
            Ok(env) => listed.push(Listed {
                seq,
                letter: env.body,
            }),
            Err(e) => {
                undecodable += 1;
                eprintln!("warning: dead letter {seq} cannot be read: {e}");
            }
        }
        Ok(())
    })
    .await?;
    Ok((listed, undecodable))
}

/// Slugs by restaurant id, when the database answers (the list works
/// without it, showing ids).
async fn slugs() -> HashMap<Uuid, String> {
    let Ok(pool) = crate::connect::pool().await else {
        return HashMap::new();
    };
    sqlx::query_as::<_, (Uuid, String)>("SELECT id, slug FROM restaurants")
        .fetch_all(&pool)
        .await
        .map(|rows| rows.into_iter().collect())
        .unwrap_or_default()
}

/// `3s`, `4m`, `2h`, `5d`.
fn age(since: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (chrono::Utc::now() - since).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn short(reason: &str) -> String {
    let one_line = reason.replace('\n', " ");
    match one_line.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

pub async fn list(args: DlqArgs, out: Out) -> anyhow::Result<()> {
    let bus = crate::connect::bus().await?;
    let (mut listed, _) = letters(&bus, args.limit).await?;
    if let Some(stage) = &args.stage {
        listed.retain(|l| &l.letter.stage == stage);
    }
    let slugs = slugs().await;
    let restaurant =
        |id: Option<Uuid>| id.map(|id| slugs.get(&id).cloned().unwrap_or_else(|| id.to_string()));
    let rows = listed
        .iter()
        .map(|Listed { seq, letter: l }| {
            let who = l
                .recipient
                .clone()
                .or(l.conversation_id.map(|c| format!("conversation {c}")));
            vec![
                seq.to_string(),
                l.stage.clone(),
                or_dash(restaurant(l.restaurant_id).as_deref()),
                or_dash(who.as_deref()),
                format!("{}: {}", l.reason_class, short(&l.reason)),
                l.attempts.to_string(),
                age(l.failed_at),
            ]
        })
        .collect();
    let json: Vec<serde_json::Value> = listed
        .iter()
        .map(|Listed { seq, letter: l }| {
            serde_json::json!({
                "seq": seq, "stage": l.stage, "consumer": l.consumer,
                "reason": l.reason, "reason_class": l.reason_class,
                "code": l.code, "error_code": l.error_code,
                "restaurant_id": l.restaurant_id,
                "restaurant": restaurant(l.restaurant_id),
                "conversation_id": l.conversation_id,
                "recipient": l.recipient, "trace_id": l.trace_id,
                "subject": l.original_subject, "stream_sequence": l.stream_sequence,
                "attempts": l.attempts, "delivered": l.delivered, "failed_at": l.failed_at,
                "age": age(l.failed_at),
                "headers": l.original_headers,
                "original": decode_to_json(&l.original).ok(),
            })
        })
        .collect();
    out.table(
        &[
            "seq",
            "stage",
            "restaurant",
            "recipient / conversation",
            "reason",
            "attempts",
            "age",
        ],
        rows,
        &json,
    );
    eprintln!("{} dead letter(s)", listed.len());
    Ok(())
}

pub async fn retry(args: RetryArgs) -> anyhow::Result<()> {
    let bus = crate::connect::bus().await?;
    let (listed, _) = letters(&bus, usize::MAX).await?;
    let chosen: Vec<Listed> = listed
        .into_iter()
        .filter(|l| args.all || args.seq == Some(l.seq))
        .collect();
    if let (Some(seq), true) = (args.seq, chosen.is_empty()) {
        anyhow::bail!("no dead letter {seq} (see `just dlq`)");
    }
    let pool = match chosen.iter().any(|l| l.letter.stage == "outbound") {
        true => Some(crate::connect::pool().await?),
        false => None,
    };
    let stream = bus
        .jetstream()
        .get_stream(bus.topology().stream_name(StreamKind::DeadLetter))
        .await
        .context("the dead-letter stream")?;
    let total = chosen.len();
    for (done, Listed { seq, letter }) in chosen.into_iter().enumerate() {
        if let (Some(pool), "outbound") = (&pool, letter.stage.as_str()) {
            // The send failed for good: make the message sendable again.
            if let Ok(original) = Envelope::<OutboundMessage>::decode(&letter.original) {
                sqlx::query(
                    "UPDATE messages SET status = 'pending', status_rank = 0, error_code = NULL, \
                        error_message = NULL, updated_at = now() WHERE id = $1 AND wa_sid IS NULL",
                )
                .bind(original.body.message_id)
                .execute(pool)
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
            &format!("{original_id}:dlq-retry:{}", Uuid::new_v4().simple()),
            &trace,
            &kind,
            letter.original.clone(),
        )
        .await?;
        stream.delete_message(seq).await?;
        eprintln!(
            "[{}/{total}] retried dead letter {seq} ({}: {})",
            done + 1,
            letter.stage,
            short(&letter.reason)
        );
    }
    eprintln!("{total} dead letter(s) sent again");
    Ok(())
}
