//! Twilio's form parameters into typed payloads. Unknown parameters are
//! kept (in `params`) and never a reason to refuse.

use std::{borrow::Cow, collections::BTreeMap};

use base64::Engine;
use chrono::Utc;
use thiserror::Error;
use waiter_nats::messages::{
    ButtonReply, InboundMessage, ListReply, Location, Media, StatusCallback,
};

/// Why a form is refused with 400.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FormError {
    #[error("the body is not application/x-www-form-urlencoded: {0}")]
    NotAForm(String),
    #[error("required parameter {0} is missing or empty")]
    Missing(&'static str),
    #[error("parameter {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Parses a form body, keeping every pair in order (names may repeat).
pub fn parse_pairs(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map_err(|e| FormError::NotAForm(e.to_string()))
}

/// The longest SID or address accepted (Twilio's are under 50 bytes).
pub const MAX_IDENTIFIER_BYTES: usize = 256;

struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn opt(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_string)
    }

    fn required(&self, name: &'static str) -> Result<String, FormError> {
        self.opt(name).ok_or(FormError::Missing(name))
    }

    /// A required identifier (a SID, an address): also a key in unique
    /// indexes downstream, where an oversized value would fail every retry.
    fn identifier(&self, name: &'static str) -> Result<String, FormError> {
        let value = self.required(name)?;
        if value.len() > MAX_IDENTIFIER_BYTES {
            return Err(FormError::Invalid {
                name,
                reason: format!("{} bytes long; at most {MAX_IDENTIFIER_BYTES}", value.len()),
            });
        }
        Ok(value)
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name)
            .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
            .unwrap_or(false)
    }
}

fn account_sid(p: &Params<'_>) -> Result<String, FormError> {
    let sid = p.required("AccountSid")?;
    let well_formed =
        sid.len() == 34 && sid.starts_with("AC") && sid[2..].chars().all(|c| c.is_ascii_hexdigit());
    if well_formed {
        Ok(sid)
    } else {
        Err(FormError::Invalid {
            name: "AccountSid",
            reason: "expected AC followed by 32 hex digits".into(),
        })
    }
}

fn coordinate(p: &Params<'_>, name: &'static str, limit: f64) -> Result<Option<f64>, FormError> {
    match p.opt(name) {
        None => Ok(None),
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v.abs() <= limit => Ok(Some(v)),
            _ => Err(FormError::Invalid {
                name,
                reason: format!("{raw:?} is not a coordinate"),
            }),
        },
    }
}

/// The AccountSid of a form, if present (for choosing the signing token).
pub fn account_of(pairs: &[(String, String)]) -> Option<&str> {
    Params { pairs }.get("AccountSid")
}

/// Text as PostgreSQL can store it: `text` and `jsonb` cannot hold U+0000,
/// so each NUL becomes U+FFFD (the replacement character). Every other
/// character, control characters included, is kept as the customer sent it.
pub fn visible(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

fn visible_pairs(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let fix = |s: String| match visible(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(fixed) => fixed,
    };
    pairs.into_iter().map(|(k, v)| (fix(k), fix(v))).collect()
}

/// An inbound message webhook. Call after the signature check: the
/// signature covers the values as received, NULs included.
pub fn inbound_message(pairs: Vec<(String, String)>) -> Result<InboundMessage, FormError> {
    let body_original = Params { pairs: &pairs }
        .get("Body")
        .filter(|body| body.contains('\0'))
        .map(|body| base64::engine::general_purpose::STANDARD.encode(body.as_bytes()));
    let pairs = visible_pairs(pairs);
    let p = Params { pairs: &pairs };
    let message_sid = p.identifier("MessageSid")?;
    let account_sid = account_sid(&p)?;
    let from = p.identifier("From")?;
    let to = p.identifier("To")?;
    let num_media: usize = match p.opt("NumMedia") {
        None => 0,
        Some(n) => n.trim().parse().map_err(|_| FormError::Invalid {
            name: "NumMedia",
            reason: format!("{n:?} is not a count"),
        })?,
    };
    if num_media > 10 {
        return Err(FormError::Invalid {
            name: "NumMedia",
            reason: format!("{num_media} is more than WhatsApp's 10"),
        });
    }
    let media = (0..num_media)
        .filter_map(|i| {
            p.opt(&format!("MediaUrl{i}")).map(|url| Media {
                url,
                content_type: p.opt(&format!("MediaContentType{i}")),
            })
        })
        .collect();
    let location = match (
        coordinate(&p, "Latitude", 90.0)?,
        coordinate(&p, "Longitude", 180.0)?,
    ) {
        (Some(latitude), Some(longitude)) => Some(Location {
            latitude,
            longitude,
            address: p.opt("Address"),
            label: p.opt("Label"),
        }),
        (None, None) => None,
        _ => {
            return Err(FormError::Invalid {
                name: "Latitude",
                reason: "Latitude and Longitude come together".into(),
            })
        }
    };
    let button =
        (p.opt("ButtonPayload").is_some() || p.opt("ButtonText").is_some()).then(|| ButtonReply {
            text: p.opt("ButtonText"),
            payload: p.opt("ButtonPayload"),
            button_type: p.opt("ButtonType"),
        });
    // Which field carries a list-picker choice is not documented firmly:
    // ListId (seen in the wild), else an id inside InteractiveData JSON.
    let list_reply = p
        .opt("ListId")
        .map(|id| ListReply {
            id,
            title: p.opt("ListTitle"),
        })
        .or_else(|| {
            let raw = p
                .opt("InteractiveData")
                .or_else(|| p.opt("ChannelMetadata"))?;
            let json: serde_json::Value = serde_json::from_str(&raw).ok()?;
            let id = json
                .pointer("/list_reply/id")
                .or_else(|| json.pointer("/interactive/list_reply/id"))
                .or_else(|| json.pointer("/id"))?
                .as_str()?
                .to_string();
            Some(ListReply { id, title: None })
        });
    let referral: BTreeMap<String, String> = pairs
        .iter()
        .filter(|(k, v)| k.starts_with("Referral") && !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let message = InboundMessage {
        message_sid,
        account_sid,
        messaging_service_sid: p.opt("MessagingServiceSid"),
        from,
        to,
        body: p.get("Body").unwrap_or_default().to_string(),
        body_original,
        profile_name: p.opt("ProfileName"),
        wa_id: p.opt("WaId"),
        message_type: p.opt("MessageType"),
        media,
        location,
        button,
        list_reply,
        original_replied_message_sid: p.opt("OriginalRepliedMessageSid"),
        external_user_id: p.opt("ExternalUserId"),
        parent_external_user_id: p.opt("ParentExternalUserId"),
        forwarded: p.flag("Forwarded"),
        frequently_forwarded: p.flag("FrequentlyForwarded"),
        referral,
        params: redact(pairs.clone()),
        received_at: Utc::now(),
    };
    Ok(message)
}

/// A status callback.
pub fn status_callback(pairs: Vec<(String, String)>) -> Result<StatusCallback, FormError> {
    let pairs = visible_pairs(pairs);
    let p = Params { pairs: &pairs };
    let callback = StatusCallback {
        message_sid: p.identifier("MessageSid")?,
        account_sid: account_sid(&p)?,
        status: p
            .opt("MessageStatus")
            .or_else(|| p.opt("SmsStatus"))
            .ok_or(FormError::Missing("MessageStatus"))?
            .to_ascii_lowercase(),
        error_code: p.opt("ErrorCode"),
        error_message: p.opt("ErrorMessage"),
        from: p.opt("From"),
        to: p.opt("To"),
        params: redact(pairs.clone()),
        received_at: Utc::now(),
    };
    Ok(callback)
}

/// Removes anything that looks like a credential before a form is kept.
pub fn redact(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    for (name, value) in pairs.iter_mut() {
        let lower = name.to_ascii_lowercase();
        if ["token", "password", "secret", "authorization"]
            .iter()
            .any(|word| lower.contains(word))
        {
            *value = "[redacted]".into();
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const AC: &str = "AC0123456789abcdef0123456789abcdef";

    #[test]
    fn reads_every_whatsapp_field() {
        let m = inbound_message(form(&[
            ("MessageSid", "SM1"),
            ("AccountSid", AC),
            ("From", "whatsapp:+966500000001"),
            ("To", "whatsapp:+14155238886"),
            ("Body", "أريد ٢ شاورما 🌯"),
            ("NumMedia", "2"),
            ("MediaUrl0", "https://api.twilio.com/m0"),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl1", "https://api.twilio.com/m1"),
            ("ProfileName", "Ahmed"),
            ("WaId", "966500000001"),
            ("Latitude", "24.7136"),
            ("Longitude", "46.6753"),
            ("Address", "Riyadh"),
            ("ButtonText", "Rate now"),
            ("ButtonPayload", "rate:now"),
            ("OriginalRepliedMessageSid", "SM0"),
            ("ReferralBody", "Ad"),
            ("ReferralCtwaClid", "x1"),
            ("SomethingNew", "kept"),
        ]))
        .unwrap();
        assert_eq!(m.body, "أريد ٢ شاورما 🌯");
        assert_eq!(m.media.len(), 2);
        assert_eq!(m.media[0].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(m.media[1].content_type, None);
        let loc = m.location.unwrap();
        assert!((loc.latitude - 24.7136).abs() < 1e-9);
        assert_eq!(loc.address.as_deref(), Some("Riyadh"));
        assert_eq!(m.button.unwrap().payload.as_deref(), Some("rate:now"));
        assert_eq!(m.original_replied_message_sid.as_deref(), Some("SM0"));
        assert_eq!(m.referral.len(), 2);
        assert!(m
            .params
            .iter()
            .any(|(k, v)| k == "SomethingNew" && v == "kept"));
    }

    #[test]
    fn list_choice_from_list_id_or_interactive_json() {
        let base = [
            ("MessageSid", "SM1"),
            ("AccountSid", AC),
            ("From", "whatsapp:abc"),
            ("To", "whatsapp:+1"),
        ];
        let mut a = form(&base);
        a.push(("ListId".into(), "item:42".into()));
        assert_eq!(
            inbound_message(a).unwrap().list_reply.unwrap().id,
            "item:42"
        );
        let mut b = form(&base);
        b.push((
            "InteractiveData".into(),
            r#"{"list_reply":{"id":"rate:5"}}"#.into(),
        ));
        assert_eq!(inbound_message(b).unwrap().list_reply.unwrap().id, "rate:5");
    }

    #[test]
    fn refuses_what_twilio_would_never_send() {
        let ok = [
            ("MessageSid", "SM1"),
            ("AccountSid", AC),
            ("From", "whatsapp:+1"),
            ("To", "whatsapp:+2"),
        ];
        for missing in ["MessageSid", "AccountSid", "From", "To"] {
            let pairs: Vec<_> = ok.iter().filter(|(k, _)| *k != missing).copied().collect();
            assert_eq!(
                inbound_message(form(&pairs)).unwrap_err(),
                FormError::Missing(missing)
            );
        }
        let mut bad_sid = form(&ok);
        bad_sid[1].1 = "AC123".into();
        assert!(matches!(
            inbound_message(bad_sid),
            Err(FormError::Invalid {
                name: "AccountSid",
                ..
            })
        ));
        let mut bad_media = form(&ok);
        bad_media.push(("NumMedia".into(), "eleven".into()));
        assert!(inbound_message(bad_media).is_err());
        for name in ["MessageSid", "From", "To"] {
            let mut huge = form(&ok);
            huge.iter_mut().find(|(k, _)| k == name).unwrap().1 = "9".repeat(60_000);
            assert!(
                matches!(inbound_message(huge), Err(FormError::Invalid { name: n, .. }) if n == name),
                "{name}"
            );
        }
        let mut half_location = form(&ok);
        half_location.push(("Latitude".into(), "24.1".into()));
        assert!(inbound_message(half_location).is_err());
        // Decoding is lenient, like Twilio's own parsers: repeated names are
        // kept, percent-escapes and `+` decoded.
        assert_eq!(
            parse_pairs(b"a=1&a=2&b=%D8%B4+%F0%9F%8C%AF").unwrap(),
            form(&[("a", "1"), ("a", "2"), ("b", "ش 🌯")])
        );
    }

    #[test]
    fn empty_body_is_allowed_and_status_is_read() {
        let m = inbound_message(form(&[
            ("MessageSid", "SM1"),
            ("AccountSid", AC),
            ("From", "whatsapp:+1"),
            ("To", "whatsapp:+2"),
            ("Body", ""),
        ]))
        .unwrap();
        assert_eq!(m.body, "");
        let s = status_callback(form(&[
            ("MessageSid", "SM9"),
            ("AccountSid", AC),
            ("MessageStatus", "Delivered"),
            ("ErrorCode", "63016"),
        ]))
        .unwrap();
        assert_eq!(s.status, "delivered");
        assert_eq!(s.error_code.as_deref(), Some("63016"));
    }

    #[test]
    fn nul_is_replaced_everywhere_and_the_original_body_kept() {
        let m = inbound_message(form(&[
            ("MessageSid", "SM1"),
            ("AccountSid", AC),
            ("From", "whatsapp:+1\0"),
            ("To", "\0"),
            ("Body", "hi\0there\u{7}"),
            ("ProfileName", "\0\0"),
            ("X\0", "y"),
        ]))
        .unwrap();
        assert_eq!(m.body, "hi\u{FFFD}there\u{7}", "only NUL is replaced");
        let original = base64::engine::general_purpose::STANDARD
            .decode(m.body_original.unwrap())
            .unwrap();
        assert_eq!(original, b"hi\0there\x07");
        assert_eq!(m.to, "\u{FFFD}");
        assert_eq!(m.from, "whatsapp:+1\u{FFFD}");
        assert_eq!(m.profile_name.as_deref(), Some("\u{FFFD}\u{FFFD}"));
        assert!(m
            .params
            .iter()
            .all(|(k, v)| !k.contains('\0') && !v.contains('\0')));
        let plain = inbound_message(form(&[
            ("MessageSid", "SM1"),
            ("AccountSid", AC),
            ("From", "whatsapp:+1"),
            ("To", "whatsapp:+2"),
            ("Body", "hi"),
        ]))
        .unwrap();
        assert_eq!(plain.body_original, None);
    }

    #[test]
    fn credentials_are_redacted() {
        let r = redact(form(&[("AuthToken", "s3cret"), ("Body", "hi")]));
        assert_eq!(r[0].1, "[redacted]");
        assert_eq!(r[1].1, "hi");
    }
}
