//! The stage's decisions, without I/O: what a Twilio answer means, how far
//! along a delivery status is, whether a message was already handled and
//! whether a failed send is worth another attempt.

use std::time::Duration;

use serde::Deserialize;

/// What came back from one Messages API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Twilio (or something in front of it) answered with this status and
    /// body, and a `Retry-After` (in seconds) if it sent one.
    Http {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// No answer within the client's timeout. Twilio may have taken the
    /// message: this is the one place a retry can send twice.
    Timeout,
    /// The connection failed (refused, reset, DNS, TLS).
    Connection(String),
}

/// The longest `Retry-After` obeyed: a broken header must not park a
/// restaurant for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

impl Answer {
    /// How long Twilio asked us to wait (a 429 or 503 with `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Answer::Http {
                retry_after: Some(wait),
                ..
            } => Some((*wait).min(MAX_RETRY_AFTER)),
            _ => None,
        }
    }
}

/// `Retry-After` in delay-seconds (Twilio's form); an HTTP date is not
/// understood and ignored.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// What to do about an [`Answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Twilio took the message: record its sid.
    Sent { sid: String, status: String },
    /// Worth another attempt later (rate limits, Twilio's or the network's
    /// trouble).
    Transient { code: Option<i64>, reason: String },
    /// Will never succeed as it is: fail fast.
    Permanent { code: Option<i64>, reason: String },
}

impl Verdict {
    pub fn code(&self) -> Option<i64> {
        match self {
            Verdict::Sent { .. } => None,
            Verdict::Transient { code, .. } | Verdict::Permanent { code, .. } => *code,
        }
    }
}

/// Twilio error codes that mean "not now" rather than "never".
///
/// 20429: too many concurrent requests (never processed). 63017: account over
/// its messages per second. 63018: channel or tier rate limit. 20500 and
/// 20503: Twilio's own internal error or unavailability.
pub const TRANSIENT_CODES: [i64; 5] = [20429, 63017, 63018, 20500, 20503];

pub fn is_transient_code(code: i64) -> bool {
    TRANSIENT_CODES.contains(&code)
}

#[derive(Deserialize)]
struct Created {
    sid: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

/// Classifies one answer of the Messages API.
///
/// - 2xx with a `sid`: sent.
/// - HTTP 429, 408, any 5xx, a timeout or a failed connection: transient.
/// - Any other 4xx: transient only for the codes in [`TRANSIENT_CODES`]
///   (63017/63018 come as 4xx), otherwise permanent (21211 invalid To,
///   21610 unsubscribed, 21608 unverified, 63024 invalid recipient, 63016
///   outside the 24-hour window, 21617 body too long, 20003 bad
///   credentials, ...).
/// - 2xx without a readable sid, or a 1xx/3xx: permanent. A 2xx may mean
///   Twilio took the message, so sending again could reach the customer
///   twice; a redirect means a wrong `TWILIO_API_BASE`, which no retry fixes.
pub fn classify(answer: &Answer) -> Verdict {
    let (status, body) = match answer {
        Answer::Timeout => {
            return Verdict::Transient {
                code: None,
                reason: "no answer from Twilio in time".into(),
            }
        }
        Answer::Connection(reason) => {
            return Verdict::Transient {
                code: None,
                reason: format!("cannot reach Twilio: {reason}"),
            }
        }
        Answer::Http { status, body, .. } => (*status, body.as_str()),
    };
    if (200..300).contains(&status) {
        return match serde_json::from_str::<Created>(body) {
            Ok(Created {
                sid: Some(sid),
                status: sent_status,
            }) if !sid.trim().is_empty() => Verdict::Sent {
                sid,
                status: sent_status.unwrap_or_else(|| "queued".into()),
            },
            _ => Verdict::Permanent {
                code: None,
                reason: format!("Twilio answered {status} without a message sid"),
            },
        };
    }
    let error = serde_json::from_str::<TwilioError>(body).ok();
    let code = error.as_ref().and_then(|e| e.code);
    let message = error
        .and_then(|e| e.message)
        .filter(|m| !m.trim().is_empty());
    let reason = match (code, message) {
        (Some(code), Some(message)) => format!("Twilio {status} error {code}: {message}"),
        (Some(code), None) => format!("Twilio {status} error {code}"),
        (None, _) => format!("Twilio answered HTTP {status}: {}", snippet(body)),
    };
    let transient = status == 429
        || status == 408
        || (500..600).contains(&status)
        || code.is_some_and(is_transient_code);
    if transient {
        Verdict::Transient { code, reason }
    } else {
        Verdict::Permanent { code, reason }
    }
}

/// The start of a body that was not Twilio's JSON, for the reason text.
fn snippet(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return "(empty body)".into();
    }
    let mut out: String = trimmed.chars().take(120).collect();
    if trimmed.chars().count() > 120 {
        out.push('…');
    }
    out
}

/// What a delivery of an OutboundMessage should do after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterTransient {
    Retry,
    GiveUp,
}

/// `calls` is the number of Messages API calls made for the message so far
/// (1 after the first); waiting for the rate limit is not a call.
pub fn after_transient(calls: i64, max_attempts: i64) -> AfterTransient {
    if calls >= max_attempts.max(1) {
        AfterTransient::GiveUp
    } else {
        AfterTransient::Retry
    }
}

/// Rank of the statuses an outbound row can be in before it was sent.
pub const UNSENT_RANK: i32 = 0;
/// The status written after Twilio's 201.
pub const QUEUED: &str = "queued";
/// The status written when we give up on a message.
pub const FAILED: &str = "failed";

/// How far along a delivery status is. A status callback is applied only if
/// its rank is higher than the row's, so statuses never go backwards:
/// queued 1 < sending 2 < sent 3 < failed/undelivered 4 < delivered 5 <
/// read 6. `failed`/`undelivered` outrank everything before delivery, but a
/// later `delivered`/`read` proves the message arrived and wins.
/// `None` for statuses that say nothing about an outbound message's
/// delivery (accepted, scheduled, canceled, partially_delivered, receiving,
/// received, or anything new).
pub fn status_rank(status: &str) -> Option<i32> {
    match status {
        "pending" | "retrying" => Some(UNSENT_RANK),
        "queued" => Some(1),
        "sending" => Some(2),
        "sent" => Some(3),
        "failed" | "undelivered" => Some(4),
        "delivered" => Some(5),
        "read" => Some(6),
        _ => None,
    }
}

/// The rank of a status a callback may move a row to (never back to unsent).
pub fn callback_rank(status: &str) -> Option<i32> {
    status_rank(status).filter(|&rank| rank > UNSENT_RANK)
}

/// A row that has a sid or any status past pending/retrying was handled by
/// an earlier delivery: acknowledge without sending again.
pub fn already_handled(status: &str, wa_sid: Option<&str>) -> bool {
    wa_sid.is_some() || !matches!(status, "pending" | "retrying")
}

/// How long a send may wait in the handler for its tenant's rate limit
/// before the message is deferred (`Outcome::Defer`) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Wait(Duration),
    Defer(Duration),
}

/// `wait` is what the limiter asks for, `waited` what this delivery already
/// waited, `budget` how long one delivery may wait in total.
pub fn rate_decision(wait: Duration, waited: Duration, budget: Duration) -> RateDecision {
    if waited + wait <= budget {
        RateDecision::Wait(wait)
    } else {
        RateDecision::Defer(wait.max(Duration::from_millis(1)))
    }
}

/// The message for a row's `error_message`: Twilio's text, bounded.
pub fn error_message(reason: &str) -> String {
    reason.chars().take(1000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, body: &str) -> Answer {
        Answer::Http {
            status,
            body: body.to_string(),
            retry_after: None,
        }
    }

    #[test]
    fn retry_after_is_seconds_and_bounded() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        let answer = Answer::Http {
            status: 429,
            body: String::new(),
            retry_after: Some(Duration::from_secs(86_400)),
        };
        assert_eq!(answer.retry_after(), Some(MAX_RETRY_AFTER));
        assert!(matches!(classify(&answer), Verdict::Transient { .. }));
        assert_eq!(http(429, "").retry_after(), None);
    }

    fn error_body(code: i64, status: u16) -> String {
        serde_json::json!({
            "code": code,
            "message": "words",
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        })
        .to_string()
    }

    #[test]
    fn a_201_with_a_sid_is_sent() {
        let body = r#"{"sid":"SM0123","status":"queued","to":"whatsapp:+1"}"#;
        assert_eq!(
            classify(&http(201, body)),
            Verdict::Sent {
                sid: "SM0123".into(),
                status: "queued".into()
            }
        );
        assert_eq!(
            classify(&http(200, r#"{"sid":"SM9"}"#)),
            Verdict::Sent {
                sid: "SM9".into(),
                status: "queued".into()
            }
        );
    }

    #[test]
    fn a_success_without_a_sid_is_not_retried() {
        for body in ["", "{}", "<html>", r#"{"sid":""}"#] {
            assert!(
                matches!(
                    classify(&http(201, body)),
                    Verdict::Permanent { code: None, .. }
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn rate_limits_and_server_trouble_are_transient() {
        for (status, code) in [
            (429, 20429),
            (400, 63018),
            (429, 63017),
            (500, 20500),
            (503, 20503),
            (502, 0),
        ] {
            let verdict = classify(&http(status, &error_body(code, status)));
            assert!(
                matches!(verdict, Verdict::Transient { .. }),
                "{status}/{code}: {verdict:?}"
            );
        }
        assert!(matches!(
            classify(&http(504, "<html>Gateway Timeout</html>")),
            Verdict::Transient { code: None, .. }
        ));
        assert!(matches!(
            classify(&Answer::Timeout),
            Verdict::Transient { .. }
        ));
        assert!(matches!(
            classify(&Answer::Connection("refused".into())),
            Verdict::Transient { .. }
        ));
    }

    #[test]
    fn client_errors_are_permanent_with_their_code() {
        for (status, code) in [
            (400, 21211),
            (400, 21610),
            (400, 21608),
            (400, 63024),
            (400, 63016),
            (400, 21617),
            (401, 20003),
            (404, 20404),
        ] {
            let verdict = classify(&http(status, &error_body(code, status)));
            match verdict {
                Verdict::Permanent {
                    code: Some(c),
                    reason,
                } => {
                    assert_eq!(c, code);
                    assert!(reason.contains(&code.to_string()), "{reason}");
                    assert!(reason.contains("words"), "{reason}");
                }
                other => panic!("{status}/{code}: {other:?}"),
            }
        }
        assert!(matches!(
            classify(&http(400, "not json")),
            Verdict::Permanent { code: None, .. }
        ));
        assert!(matches!(
            classify(&http(302, "")),
            Verdict::Permanent { .. }
        ));
    }

    #[test]
    fn reasons_of_foreign_bodies_are_short() {
        let long = "x".repeat(5000);
        let Verdict::Transient { reason, .. } = classify(&http(500, &long)) else {
            panic!("500 is transient");
        };
        assert!(reason.len() < 200, "{reason}");
        assert_eq!(error_message(&long).chars().count(), 1000);
    }

    #[test]
    fn statuses_are_ranked_so_delivery_wins_and_nothing_goes_back() {
        let order = ["queued", "sending", "sent", "failed", "delivered", "read"];
        for pair in order.windows(2) {
            assert!(
                status_rank(pair[0]) < status_rank(pair[1]),
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(status_rank("failed"), status_rank("undelivered"));
        assert_eq!(status_rank("pending"), Some(UNSENT_RANK));
        for ignored in [
            "accepted",
            "scheduled",
            "canceled",
            "partially_delivered",
            "receiving",
            "received",
            "",
            "READ",
        ] {
            assert_eq!(callback_rank(ignored), None, "{ignored}");
        }
        assert_eq!(callback_rank("pending"), None);
        assert_eq!(callback_rank("read"), Some(6));
    }

    #[test]
    fn only_unsent_rows_are_sent() {
        assert!(!already_handled("pending", None));
        assert!(!already_handled("retrying", None));
        assert!(already_handled("pending", Some("SM1")));
        for status in [
            "queued",
            "sent",
            "delivered",
            "read",
            "failed",
            "undelivered",
        ] {
            assert!(already_handled(status, None), "{status}");
        }
    }

    #[test]
    fn transient_failures_give_up_at_the_last_attempt() {
        assert_eq!(after_transient(1, 3), AfterTransient::Retry);
        assert_eq!(after_transient(2, 3), AfterTransient::Retry);
        assert_eq!(after_transient(3, 3), AfterTransient::GiveUp);
        assert_eq!(after_transient(9, 3), AfterTransient::GiveUp);
        assert_eq!(after_transient(1, 0), AfterTransient::GiveUp);
    }

    #[test]
    fn short_rate_limit_waits_happen_in_place() {
        let ms = Duration::from_millis;
        assert_eq!(
            rate_decision(ms(10), ms(0), ms(1000)),
            RateDecision::Wait(ms(10))
        );
        assert_eq!(
            rate_decision(ms(600), ms(500), ms(1000)),
            RateDecision::Defer(ms(600))
        );
        assert_eq!(
            rate_decision(ms(0), ms(0), ms(0)),
            RateDecision::Wait(ms(0))
        );
        assert_eq!(
            rate_decision(ms(5), ms(0), ms(0)),
            RateDecision::Defer(ms(5))
        );
    }
}
