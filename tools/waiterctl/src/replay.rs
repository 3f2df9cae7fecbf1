//! `just replay`: a subject's or a stream's messages as JSON lines
//! (envelope decoded from MessagePack, headers included), or fed back to
//! the stages with `--republish`.

use async_nats::jetstream::consumer::DeliverPolicy;
use waiter_nats::{envelope::decode_to_json, Bus, StreamKind};

use crate::scan::{self, Range};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// A subject (wildcards allowed), e.g. waiter.conv.>, or a whole stream
    /// by name: ingest, conv, order, outbound, events, dlq, tenants, lease.
    target: String,
    /// Only messages stored since then: an age (10m, 2h, 1d) or an RFC 3339 time.
    #[arg(long, conflicts_with = "seq")]
    since: Option<String>,
    /// Start at this stream sequence.
    #[arg(long)]
    seq: Option<u64>,
    /// Only messages stored up to then: an age or an RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Only one restaurant's messages (id or slug).
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long, default_value_t = 100_000)]
    limit: usize,
    /// Publish the messages again instead of printing them. Each stage
    /// applies an envelope once (by its id), so only what was not applied
    /// takes effect.
    #[arg(long)]
    republish: bool,
}

/// What `--tenant` matches in a message: the restaurant's id anywhere in
/// the subject or body, its Twilio account or its WhatsApp number.
struct Tenant {
    id: String,
    account_sid: String,
    number: String,
}

impl Tenant {
    fn matches(&self, subject: &str, envelope: &serde_json::Value) -> bool {
        if subject.contains(&self.id) {
            return true;
        }
        let body = &envelope["body"];
        let is = |field: &str, want: &str| body[field].as_str() == Some(want);
        is("restaurant_id", &self.id)
            || is("account_sid", &self.account_sid)
            || is("to", &self.number)
            || is("from", &self.number)
    }
}

/// Streams whose messages must not be fed back: the dashboards' events
/// (a copy is a new event for every client resuming with `since`), dead
/// letters (`dlq-retry` sends them where they came from), and the
/// last-record-per-subject streams (an old lease or directory entry
/// would overwrite the current one).
fn refuses_republish(kind: StreamKind) -> Option<&'static str> {
    match kind {
        StreamKind::Events => Some(
            "events are what the stages derive: republish the stage's input (e.g. conv) and the stage decides",
        ),
        StreamKind::DeadLetter => Some("dead letters go back with `just dlq-retry`"),
        StreamKind::Directory => Some("the directory is written by waiterctl and the router from the database"),
        StreamKind::Leases => Some("leases are written by the workers only, by compare-and-set"),
        _ => None,
    }
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let bus = crate::connect::bus().await?;
    let (kind, filter) = scan::resolve(&bus, &args.target)?;
    if args.republish {
        if let Some(why) = refuses_republish(kind) {
            anyhow::bail!("--republish of {}: {why}", bus.topology().stream_name(kind));
        }
    }
    let tenant = match &args.tenant {
        Some(name) => {
            let pool = crate::connect::pool().await?;
            let r = crate::connect::restaurant(&pool, name).await?;
            Some(Tenant {
                id: r.id.to_string(),
                account_sid: r.twilio_account_sid,
                number: r.whatsapp_number,
            })
        }
        None => None,
    };
    let start = match (args.seq, &args.since) {
        (Some(seq), _) => DeliverPolicy::ByStartSequence {
            start_sequence: seq,
        },
        (None, Some(since)) => DeliverPolicy::ByStartTime {
            start_time: scan::parse_point(since, "--since")?,
        },
        (None, None) => DeliverPolicy::All,
    };
    let range = Range {
        start,
        until: args
            .until
            .as_deref()
            .map(|u| scan::parse_point(u, "--until"))
            .transpose()?,
        limit: args.limit,
        progress: true,
    };
    let stream_name = bus.topology().stream_name(kind);
    let mut chosen = 0usize;
    let read = scan::each(&bus, kind, &filter, &range, async |message| {
        let envelope = decode_to_json(&message.payload)
            .unwrap_or_else(|e| serde_json::json!({ "undecodable": e }));
        if let Some(tenant) = &tenant {
            if !tenant.matches(message.subject.as_str(), &envelope) {
                return Ok(());
            }
        }
        chosen += 1;
        if args.republish {
            republish(&bus, &message).await
        } else {
            let info = message.info().map_err(anyhow::Error::msg)?;
            let line = serde_json::json!({
                "stream": stream_name,
                "seq": info.stream_sequence,
                "time": scan::rfc3339(info.published),
                "subject": message.subject.as_str(),
                "headers": scan::headers_json(&message),
                "envelope": envelope,
            });
            println!("{line}");
            Ok(())
        }
    })
    .await?;
    let verb = if args.republish {
        "republished"
    } else {
        "printed"
    };
    eprintln!("{verb} {chosen} of {read} message(s) read from {stream_name} ({filter})");
    Ok(())
}

/// The message again, on its subject, with its trace id and kind. A new
/// `Nats-Msg-Id` (the original may still be in the duplicate window, which
/// would swallow it); the envelope inside keeps its id, by which every
/// stage applies it once.
async fn republish(bus: &Bus, message: &async_nats::jetstream::Message) -> anyhow::Result<()> {
    let id = scan::header(message, "Nats-Msg-Id").unwrap_or_default();
    let trace = scan::header(message, waiter_nats::TRACE_HEADER).unwrap_or_default();
    let kind = scan::header(message, waiter_nats::envelope::KIND_HEADER).unwrap_or_default();
    bus.publish_encoded(
        message.subject.to_string(),
        &format!("{id}:replay:{}", uuid::Uuid::new_v4().simple()),
        &trace,
        &kind,
        message.payload.to_vec(),
    )
    .await?;
    Ok(())
}
