//! Reading a stream back in order, for `replay`, `dlq` and `trace`: a range
//! (start, until, limit) over one filter, ending at a known sequence.

use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{
    self,
    consumer::{pull::OrderedConfig, DeliverPolicy},
};
use futures::StreamExt;
use time::OffsetDateTime;
use waiter_nats::{Bus, StreamKind};

/// Which messages of a filter to read.
#[derive(Debug, Clone)]
pub struct Range {
    pub start: DeliverPolicy,
    /// Nothing stored after this.
    pub until: Option<OffsetDateTime>,
    pub limit: usize,
    /// Print a progress line on stderr every second or so.
    pub progress: bool,
}

impl Range {
    pub fn everything() -> Self {
        Self {
            start: DeliverPolicy::All,
            until: None,
            limit: usize::MAX,
            progress: false,
        }
    }
}

/// A point in time from `10m`, `2h`, `1d`, `30s` ago, or an RFC 3339 time.
pub fn parse_point(s: &str, flag: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(at);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().with_context(|| {
        format!("{flag} {s:?}: expected an age (10m, 2h, 1d) or an RFC 3339 time")
    })?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => anyhow::bail!("{flag} {s:?}: unit must be s, m, h or d"),
    };
    Ok(OffsetDateTime::now_utc() - Duration::from_secs(secs))
}

/// The stream of a subject of this namespace, or a stream named by its
/// token (`events`, `dlq`), its name (`WAITER_EVENTS`) in any case: the
/// stream and the filter to read.
pub fn resolve(bus: &Bus, target: &str) -> anyhow::Result<(StreamKind, String)> {
    let topology = bus.topology();
    if let Some(kind) = topology.stream_of_subject(target) {
        return Ok((kind, target.to_string()));
    }
    let named = StreamKind::ALL.into_iter().find(|k| {
        target.eq_ignore_ascii_case(&k.env_token())
            || target.eq_ignore_ascii_case(&topology.stream_name(*k))
    });
    match named {
        Some(kind) => Ok((kind, topology.stream_subjects(kind))),
        None => anyhow::bail!(
            "{target:?} is neither a subject of namespace {ns:?} (e.g. {ns}.conv.>) nor a stream ({})",
            StreamKind::ALL.map(|k| k.env_token()).join(", "),
            ns = topology.namespace()
        ),
    }
}

/// Calls `each` with every message of `filter` in `range`, oldest first;
/// returns how many it was given. Ends at the last message the filter held
/// when the read began (never on a pending count: nats-server 2.9's
/// filtered counts are wrong both ways).
pub async fn each<F>(
    bus: &Bus,
    kind: StreamKind,
    filter: &str,
    range: &Range,
    mut each: F,
) -> anyhow::Result<usize>
where
    F: AsyncFnMut(jetstream::Message) -> anyhow::Result<()>,
{
    let Some(mut stream) = stream(bus, kind).await? else {
        return Ok(0);
    };
    let last = match stream.get_last_raw_message_by_subject(filter).await {
        Ok(m) => m.sequence,
        Err(_) => return Ok(0),
    };
    let first = stream.info().await?.state.first_sequence;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.to_string(),
            deliver_policy: range.start,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut given = 0;
    let mut told = Instant::now();
    while given < range.limit {
        let message = match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
            Ok(Some(message)) => message?,
            Ok(None) => break,
            Err(_) => anyhow::bail!("the stream stopped answering before sequence {last}"),
        };
        let info = message.info().map_err(anyhow::Error::msg)?;
        let (seq, published) = (info.stream_sequence, info.published);
        if range.until.is_some_and(|until| published > until) || seq > last {
            break;
        }
        each(message).await?;
        given += 1;
        if range.progress && told.elapsed() > Duration::from_secs(1) {
            told = Instant::now();
            eprintln!(
                "… {given} message(s), at sequence {seq} of {first}..{last} ({}%)",
                (seq - first + 1) * 100 / (last - first + 1).max(1)
            );
        }
        if seq >= last {
            break;
        }
    }
    Ok(given)
}

async fn stream(bus: &Bus, kind: StreamKind) -> anyhow::Result<Option<jetstream::stream::Stream>> {
    match bus
        .jetstream()
        .get_stream(bus.topology().stream_name(kind))
        .await
    {
        Ok(stream) => Ok(Some(stream)),
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(_)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).context("reading the stream"),
    }
}

/// A message's headers as a JSON object (a repeated header: an array).
pub fn headers_json(message: &jetstream::Message) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Some(headers) = &message.headers {
        for (name, values) in headers.iter() {
            let values: Vec<serde_json::Value> = values
                .iter()
                .map(|v| serde_json::Value::String(v.to_string()))
                .collect();
            let value = match values.len() {
                1 => values.into_iter().next().unwrap_or_default(),
                _ => serde_json::Value::Array(values),
            };
            out.insert(name.to_string(), value);
        }
    }
    serde_json::Value::Object(out)
}

/// One header's value.
pub fn header(message: &jetstream::Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()?
        .get(name)
        .map(|v| v.as_str().to_string())
}

/// RFC 3339, for output.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
