//! Bytes off the bus, as any of the envelopes a stage decodes: an error or
//! an envelope, never a panic (a poison message must be dead-lettered, not
//! crash its consumer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use waiter_nats::{
    envelope::decode_to_json,
    events::DashboardEvent,
    messages::{
        ConversationInput, InboundMessage, OrderCommand, OutboundMessage, RefusedWebhooks,
        StatusCallback,
    },
    Envelope,
};

fuzz_target!(|bytes: &[u8]| {
    let _ = Envelope::<InboundMessage>::decode(bytes);
    let _ = Envelope::<StatusCallback>::decode(bytes);
    let _ = Envelope::<RefusedWebhooks>::decode(bytes);
    let _ = Envelope::<ConversationInput>::decode(bytes);
    let _ = Envelope::<OrderCommand>::decode(bytes);
    let _ = Envelope::<OutboundMessage>::decode(bytes);
    let _ = Envelope::<DashboardEvent>::decode(bytes);
    let _ = decode_to_json(bytes);
    // What decodes encodes again and decodes to the same thing.
    if let Ok(envelope) = Envelope::<ConversationInput>::decode(bytes) {
        let again = Envelope::<ConversationInput>::decode(&envelope.encode().unwrap()).unwrap();
        assert_eq!(again.body, envelope.body);
    }
});
