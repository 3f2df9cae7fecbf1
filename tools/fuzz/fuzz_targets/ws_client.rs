//! A dashboard's WebSocket frame: a request or a readable error, never a
//! panic; channel names parse or are refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use notifier::channels::{Channel, ClientRequest};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match ClientRequest::parse(text) {
        Ok(ClientRequest::Subscribe { channels, .. }) => {
            for name in &channels {
                if let Some(channel) = Channel::parse(name) {
                    assert_eq!(Channel::parse(&channel.name()), Some(channel));
                }
            }
        }
        Ok(ClientRequest::Ping) => {}
        Err(reason) => assert!(!reason.is_empty()),
    }
    let _ = Channel::parse(text);
});
