//! Erasing what the dead-letter stream holds about one customer, for a
//! data request: every dead letter whose bytes mention them (their number,
//! their conversation id) is deleted by sequence, and JetStream overwrites
//! it on disk. Dead letters are kept 30 days for operators; the work and
//! event streams keep 7 and are not touched here (deleting a message a
//! stage has not consumed yet would lose work), see `docs/DATA.md`.

use futures::StreamExt;

use crate::{Bus, BusError, StreamKind};

/// What marks a customer's dead letters: their number as text, and their
/// conversation id as text and as the 16 bytes MessagePack carries.
pub fn customer_needles(number: &str, conversation_id: Option<uuid::Uuid>) -> Vec<Vec<u8>> {
    let mut needles = vec![number.trim_start_matches("whatsapp:").as_bytes().to_vec()];
    if let Some(id) = conversation_id {
        needles.push(id.to_string().into_bytes());
        needles.push(id.as_bytes().to_vec());
    }
    needles
}

/// Deletes every dead letter whose subject, headers or payload contain any
/// of `needles`; returns how many. `progress(done, total)` is called as the
/// stream is read.
pub async fn erase_dead_letters_mentioning(
    bus: &Bus,
    needles: &[Vec<u8>],
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, BusError> {
    let setup = |reason: String| BusError::Setup {
        what: "the dead-letter erasure".into(),
        reason,
    };
    let needles: Vec<&[u8]> = needles
        .iter()
        .filter(|n| n.len() >= 8)
        .map(Vec::as_slice)
        .collect();
    let name = bus.topology().stream_name(StreamKind::DeadLetter);
    let Ok(mut stream) = bus.jetstream().get_stream(&name).await else {
        return Ok(0);
    };
    let total = stream
        .info()
        .await
        .map_err(|e| setup(e.to_string()))?
        .state
        .messages;
    if total == 0 || needles.is_empty() {
        return Ok(0);
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .map_err(|e| setup(e.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| setup(e.to_string()))?
        .take(total as usize);
    let mut mentioning = vec![];
    let mut read = 0;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| setup(e.to_string()))?;
        read += 1;
        let mut bytes = message.subject.as_bytes().to_vec();
        if let Some(headers) = &message.headers {
            for (name, values) in headers.iter() {
                bytes.extend_from_slice(name.to_string().as_bytes());
                values
                    .iter()
                    .for_each(|v| bytes.extend_from_slice(v.as_str().as_bytes()));
            }
        }
        bytes.extend_from_slice(&message.payload);
        if needles
            .iter()
            .any(|n| bytes.windows(n.len()).any(|w| w == *n))
        {
            let info = message.info().map_err(|e| setup(e.to_string()))?;
            mentioning.push(info.stream_sequence);
        }
        if read % 1000 == 0 {
            progress(read, total);
        }
    }
    progress(read, total);
    for sequence in &mentioning {
        stream
            .delete_message(*sequence)
            .await
            .map_err(|e| setup(format!("delete dead letter {sequence}: {e}")))?;
    }
    Ok(mentioning.len() as u64)
}
