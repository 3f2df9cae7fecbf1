//! What an endpoint's answer means for a delivery (pure).

use std::time::Duration;

/// How one POST to an endpoint ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    Status(u16),
    TimedOut,
    /// Could not connect (refused, unreachable, DNS, TLS).
    Unreachable(String),
}

/// What follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Delivered,
    /// 408, 429, 5xx, timeout, no connection: the receiver may take it later.
    Retry {
        reason: String,
        code: Option<String>,
    },
    /// Any other answer (3xx: redirects are not followed; 4xx): it will
    /// answer the same to the same request.
    Refused {
        reason: String,
        code: String,
    },
}

pub fn judge(posted: &Posted, timeout: Duration) -> Judgement {
    match posted {
        Posted::Status(s) if (200..300).contains(s) => Judgement::Delivered,
        Posted::Status(s) if *s == 408 || *s == 429 || *s >= 500 => Judgement::Retry {
            reason: format!("answered {s}"),
            code: Some(s.to_string()),
        },
        Posted::Status(s) => Judgement::Refused {
            reason: format!("answered {s}"),
            code: s.to_string(),
        },
        Posted::TimedOut => Judgement::Retry {
            reason: format!("no answer within {} ms", timeout.as_millis()),
            code: None,
        },
        Posted::Unreachable(why) => Judgement::Retry {
            reason: format!("unreachable: {why}"),
            code: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(posted: Posted) -> Judgement {
        judge(&posted, Duration::from_secs(10))
    }

    #[test]
    fn two_hundreds_deliver_server_trouble_retries_and_the_rest_is_refused() {
        assert_eq!(j(Posted::Status(200)), Judgement::Delivered);
        assert_eq!(j(Posted::Status(204)), Judgement::Delivered);
        for retry in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(j(Posted::Status(retry)), Judgement::Retry { .. }),
                "{retry}"
            );
        }
        for refused in [301, 400, 401, 404, 410] {
            assert!(
                matches!(j(Posted::Status(refused)), Judgement::Refused { .. }),
                "{refused}"
            );
        }
        assert!(matches!(j(Posted::TimedOut), Judgement::Retry { .. }));
        assert!(matches!(
            j(Posted::Unreachable("connection refused".into())),
            Judgement::Retry { .. }
        ));
    }
}
