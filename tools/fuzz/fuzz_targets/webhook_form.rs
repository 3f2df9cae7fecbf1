//! A webhook body as Twilio (or anyone) may post it: parsed, its signature
//! checked, turned into a message and a status callback, and sampled as a
//! refusal. Nothing panics; what is accepted carries no NUL and no
//! oversized identifier; a sample stays
//! within its caps; the signature we compute is the one we accept.
#![no_main]

use ingest::{form, refusals, signature};
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "fuzz-auth-token";
const URL: &str = "https://waiter.example.com/whatsapp/webhook?tenant=a";

fuzz_target!(|body: &[u8]| {
    let Ok(pairs) = form::parse_pairs(body) else {
        return;
    };
    let good = signature::compute(TOKEN, URL, &pairs);
    assert!(signature::is_valid(TOKEN, URL, &pairs, Some(&good)));
    assert!(!signature::is_valid(
        "another-token",
        URL,
        &pairs,
        Some(&good)
    ));
    let header = String::from_utf8_lossy(body);
    let _ = signature::is_valid(TOKEN, URL, &pairs, Some(&header));
    let _ = signature::is_valid(TOKEN, URL, &pairs, None);

    if let Ok(message) = form::inbound_message(pairs.clone()) {
        let fields = [
            &message.from,
            &message.to,
            &message.body,
            &message.message_sid,
        ];
        assert!(fields.iter().all(|f| !f.contains('\0')));
        assert!(message
            .params
            .iter()
            .all(|(k, v)| !k.contains('\0') && !v.contains('\0')));
        let body = pairs.iter().find(|(k, _)| k == "Body");
        assert_eq!(
            message.body_original.is_some(),
            body.is_some_and(|(_, v)| v.contains('\0'))
        );
    }
    if let Ok(callback) = form::status_callback(pairs.clone()) {
        assert!(!callback.status.contains('\0'));
    }
    let sample = refusals::sample("fuzz", &pairs, chrono::Utc::now());
    assert!(sample.params.len() <= refusals::SAMPLE_PARAMS);
    let bytes: usize = sample.params.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(bytes <= refusals::SAMPLE_BYTES);
});
