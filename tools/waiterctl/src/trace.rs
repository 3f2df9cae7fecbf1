//! `just trace MESSAGE_SID`: one customer message's journey, from the trace
//! id ingest gave its webhook and every stage copies into what it causes
//! (`Waiter-Trace-Id`): the webhook, the router's decision, the rows, the
//! bot's replies and order commands, each send with its Twilio sid and
//! status history, the dashboard events, and the time between hops.

use anyhow::Context;
use async_nats::jetstream::consumer::DeliverPolicy;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;
use waiter_nats::{envelope::decode_to_json, StreamKind, TRACE_HEADER};

use crate::{
    output::Out,
    scan::{self, Range},
};

#[derive(clap::Args)]
pub struct TraceArgs {
    /// Twilio's MessageSid of the customer's message (SM…).
    message_sid: String,
    /// Look only at messages stored since then (an age or an RFC 3339
    /// time): faster on long streams.
    #[arg(long)]
    since: Option<String>,
}

/// One message on the bus that belongs to the trace.
#[derive(Debug, Serialize)]
struct Hop {
    stream: String,
    seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    subject: String,
    kind: String,
    /// Milliseconds since the webhook was stored, and since the hop before.
    after_webhook_ms: i64,
    after_previous_ms: i64,
    what: String,
    envelope: serde_json::Value,
}

/// A status callback Twilio sent for one of the replies.
#[derive(Debug, Serialize)]
struct StatusChange {
    message_sid: String,
    status: String,
    error_code: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    stored: OffsetDateTime,
    seq: u64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    direction: String,
    author: String,
    wa_sid: Option<String>,
    status: String,
    error_code: Option<String>,
    body: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    number: i64,
    status: String,
}

#[derive(Debug, Serialize)]
struct Trace {
    message_sid: String,
    trace_id: String,
    webhook: WebhookHop,
    /// Where the router sent it (a conversation subject), or nothing.
    router_decision: String,
    conversation_id: Option<Uuid>,
    rows: Vec<MessageRow>,
    orders: Vec<OrderRow>,
    hops: Vec<Hop>,
    statuses: Vec<StatusChange>,
}

#[derive(Debug, Serialize)]
struct WebhookHop {
    stream: String,
    seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    stored: OffsetDateTime,
    /// From ingest's envelope (made when the request was read) to
    /// JetStream's PubAck, after which Twilio got its answer.
    ack_latency_ms: i64,
}

fn ms(d: time::Duration) -> i64 {
    d.whole_milliseconds() as i64
}

/// A short line about a hop, by its kind.
fn what(kind: &str, e: &serde_json::Value) -> String {
    let b = &e["body"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    match kind {
        "ingest.inbound" => format!(
            "webhook {} → {}: {:?}",
            s(&b["from"]),
            s(&b["to"]),
            s(&b["body"])
        ),
        "conv.input" => format!("conversation input ({})", s(&b["type"])),
        "order.command" => format!("order {} command", s(&b["order_id"])),
        "outbound.message" => format!("send to {} (message {})", s(&b["to"]), s(&b["message_id"])),
        "events.dashboard" => format!("dashboard event {}", s(&b["event_type"])),
        "dlq.letter" => format!("dead letter of {}: {}", s(&b["stage"]), s(&b["reason"])),
        other => other.to_string(),
    }
}

pub async fn trace(args: TraceArgs, out: Out) -> anyhow::Result<()> {
    let bus = crate::connect::bus().await?;
    let pool = crate::connect::pool().await?;
    let topology = bus.topology().clone();
    let range = Range {
        start: match &args.since {
            Some(since) => DeliverPolicy::ByStartTime {
                start_time: scan::parse_point(since, "--since")?,
            },
            None => DeliverPolicy::All,
        },
        ..Range::everything()
    };

    // The webhook: the inbound envelope's id is the MessageSid.
    let inbound_filter = format!("{}.ingest.message.>", topology.namespace());
    let mut webhook = None;
    scan::each(
        &bus,
        StreamKind::Ingest,
        &inbound_filter,
        &range,
        async |m| {
            if webhook.is_none()
                && scan::header(&m, "Nats-Msg-Id").as_deref() == Some(&args.message_sid)
            {
                webhook = Some(m);
            }
            Ok(())
        },
    )
    .await?;
    let webhook = webhook.with_context(|| {
        format!(
            "no webhook with MessageSid {:?} on {} (too old for the stream's retention, or never accepted: see the router's refusals)",
            args.message_sid,
            topology.stream_name(StreamKind::Ingest)
        )
    })?;
    let trace_id = scan::header(&webhook, TRACE_HEADER).context("the webhook has no trace id")?;
    let info = webhook.info().map_err(anyhow::Error::msg)?;
    let stored = info.published;
    let envelope = decode_to_json(&webhook.payload).unwrap_or_default();
    let produced = envelope["produced_at"]
        .as_str()
        .and_then(|p| OffsetDateTime::parse(p, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or(stored);
    let webhook_hop = WebhookHop {
        stream: topology.stream_name(StreamKind::Ingest),
        seq: info.stream_sequence,
        stored,
        ack_latency_ms: ms(stored - produced),
    };

    // Everything the trace id touched, stream by stream.
    let mut hops = vec![];
    // (Not the directory and the leases: no message of theirs has a trace.)
    let traced = StreamKind::ALL
        .into_iter()
        .filter(|k| !matches!(k, StreamKind::Directory | StreamKind::Leases));
    for kind in traced {
        let stream = topology.stream_name(kind);
        let filter = topology.stream_subjects(kind);
        scan::each(&bus, kind, &filter, &range, async |m| {
            if scan::header(&m, TRACE_HEADER).as_deref() != Some(&trace_id) {
                return Ok(());
            }
            let info = m.info().map_err(anyhow::Error::msg)?;
            let envelope = decode_to_json(&m.payload).unwrap_or_default();
            let kind = scan::header(&m, waiter_nats::envelope::KIND_HEADER).unwrap_or_default();
            hops.push(Hop {
                stream: stream.clone(),
                seq: info.stream_sequence,
                time: info.published,
                subject: m.subject.to_string(),
                what: what(&kind, &envelope),
                kind,
                after_webhook_ms: 0,
                after_previous_ms: 0,
                envelope,
            });
            Ok(())
        })
        .await?;
    }
    hops.sort_by_key(|h| h.time);
    let mut previous = stored;
    for hop in &mut hops {
        hop.after_webhook_ms = ms(hop.time - stored);
        hop.after_previous_ms = ms(hop.time - previous);
        previous = hop.time;
    }
    let conv_prefix = format!("{}.conv.", topology.namespace());
    let router_decision = hops
        .iter()
        .find(|h| h.subject.starts_with(&conv_prefix) && h.envelope["body"]["type"] == "customer")
        .map(|h| format!("routed to {} (seq {})", h.subject, h.seq))
        .unwrap_or_else(|| "not routed (refused, limited or still pending: see `just dlq`)".into());

    // The rows: the customer's message, its conversation, the replies sent
    // for it and the orders it touched.
    let inbound: Option<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, conversation_id FROM messages WHERE wa_sid = $1")
            .bind(&args.message_sid)
            .fetch_optional(&pool)
            .await?;
    let mut ids: Vec<Uuid> = inbound.iter().map(|(id, _)| *id).collect();
    let field = |h: &Hop, name: &str| {
        h.envelope["body"][name]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok())
    };
    ids.extend(
        hops.iter()
            .filter(|h| h.kind == "outbound.message")
            .filter_map(|h| field(h, "message_id")),
    );
    // The customer's message and the reply may share a transaction's now().
    let rows: Vec<MessageRow> = sqlx::query_as(
        "SELECT id, direction, author, wa_sid, status, error_code, body, created_at \
         FROM messages WHERE id = ANY($1) ORDER BY seq",
    )
    .bind(&ids)
    .fetch_all(&pool)
    .await?;
    let order_ids: Vec<Uuid> = hops
        .iter()
        .filter(|h| h.kind == "order.command")
        .filter_map(|h| field(h, "order_id"))
        .collect();
    let orders: Vec<OrderRow> =
        sqlx::query_as("SELECT id, number, status FROM orders WHERE id = ANY($1) ORDER BY number")
            .bind(&order_ids)
            .fetch_all(&pool)
            .await?;

    // Twilio's status callbacks for the replies (each webhook has a trace of its own).
    let sent: Vec<String> = rows
        .iter()
        .filter(|r| r.direction == "out")
        .filter_map(|r| r.wa_sid.clone())
        .collect();
    let mut statuses = vec![];
    if !sent.is_empty() {
        scan::each(
            &bus,
            StreamKind::Ingest,
            &topology.status_callback(),
            &range,
            async |m| {
                let e = decode_to_json(&m.payload).unwrap_or_default();
                let sid = e["body"]["message_sid"].as_str().unwrap_or_default();
                if sent.iter().any(|s| s == sid) {
                    let info = m.info().map_err(anyhow::Error::msg)?;
                    statuses.push(StatusChange {
                        message_sid: sid.to_string(),
                        status: e["body"]["status"].as_str().unwrap_or_default().to_string(),
                        error_code: e["body"]["error_code"].as_str().map(String::from),
                        stored: info.published,
                        seq: info.stream_sequence,
                    });
                }
                Ok(())
            },
        )
        .await?;
    }

    let trace = Trace {
        message_sid: args.message_sid,
        trace_id,
        webhook: webhook_hop,
        router_decision,
        conversation_id: inbound.map(|(_, c)| c),
        rows,
        orders,
        hops,
        statuses,
    };
    print(&trace, out);
    Ok(())
}

fn print(t: &Trace, out: Out) {
    if out.json {
        return out.json(t);
    }
    println!(
        "{} (trace {}): webhook stored {} on {} seq {}, acknowledged in {} ms; {}",
        t.message_sid,
        t.trace_id,
        scan::rfc3339(t.webhook.stored),
        t.webhook.stream,
        t.webhook.seq,
        t.webhook.ack_latency_ms,
        t.router_decision
    );
    let hops = t
        .hops
        .iter()
        .map(|h| {
            vec![
                format!("+{} ms", h.after_webhook_ms),
                format!("{} ms", h.after_previous_ms),
                format!("{} #{}", h.stream, h.seq),
                h.subject.clone(),
                h.what.clone(),
            ]
        })
        .collect();
    out.table(&["at", "hop", "stored in", "subject", "what"], hops, &());
    let rows = t
        .rows
        .iter()
        .map(|r| {
            let history: Vec<String> = t
                .statuses
                .iter()
                .filter(|s| Some(&s.message_sid) == r.wa_sid.as_ref())
                .map(|s| format!("{} (+{} ms)", s.status, ms(s.stored - t.webhook.stored)))
                .collect();
            vec![
                r.direction.clone(),
                r.author.clone(),
                crate::output::or_dash(r.wa_sid.as_deref()),
                r.status.clone(),
                crate::output::or_dash(Some(&history.join(" → "))),
                r.body.chars().take(40).collect(),
            ]
        })
        .collect();
    out.table(
        &[
            "direction",
            "author",
            "twilio sid",
            "status",
            "status history",
            "body",
        ],
        rows,
        &(),
    );
    for o in &t.orders {
        println!("order #{} ({}): {}", o.number, o.id, o.status);
    }
}
