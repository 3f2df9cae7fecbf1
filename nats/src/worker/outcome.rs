//! What a handler says about a message, and how an error becomes one.

use std::time::Duration;

use uuid::Uuid;

use crate::error::BusError;

/// Whether a failure can pass by waiting. It decides how long the loop
/// retries before the message goes to the dead-letter stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// A dependency is down or busy (connection refused or reset, pool
    /// timeout, NATS publish timeout, serialization failure, deadlock,
    /// server shutting down). It is down for everyone: the message is
    /// retried with backoff for as long as it lasts.
    Transient,
    /// The message can never succeed as it is (a data or constraint
    /// violation, an undecodable payload, a business rule that can never
    /// pass): dead-lettered after `WORKER_PERMANENT_ATTEMPTS`.
    Permanent,
    /// Nobody knows: retried with backoff up to `WORKER_MAX_ATTEMPTS`
    /// and `WORKER_MAX_RETRY_SECS`, then dead-lettered.
    Unknown,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
            FailureClass::Unknown => "unknown",
        }
    }
}

/// Who a dead letter concerns, when the handler knows: `just dlq` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LetterContext {
    pub restaurant_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    /// The WhatsApp address a message was for or from.
    pub recipient: Option<String>,
}

/// Why handling failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    pub reason: String,
    /// A machine-readable code: a SQLSTATE (`23505`), a provider's error
    /// code (Twilio `21211`), ...
    pub code: Option<String>,
    pub context: LetterContext,
}

impl Failure {
    pub fn new(class: FailureClass, reason: impl ToString) -> Self {
        Self {
            class,
            reason: reason.to_string(),
            code: None,
            context: LetterContext::default(),
        }
    }

    pub fn transient(reason: impl ToString) -> Self {
        Self::new(FailureClass::Transient, reason)
    }

    pub fn permanent(reason: impl ToString) -> Self {
        Self::new(FailureClass::Permanent, reason)
    }

    pub fn unknown(reason: impl ToString) -> Self {
        Self::new(FailureClass::Unknown, reason)
    }

    pub fn with_code(mut self, code: impl ToString) -> Self {
        self.code = Some(code.to_string());
        self
    }

    pub fn with_context(mut self, context: LetterContext) -> Self {
        self.context = context;
        self
    }

    /// Puts the reason in front of what the error said (`"audit: ..."`).
    pub fn while_doing(mut self, what: &str) -> Self {
        self.reason = format!("{what}: {}", self.reason);
        self
    }
}

/// What to do with a message once its handler is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done, including "already done before" (effects are idempotent).
    Ack,
    /// It failed; the loop retries in place (the partition waits, so order
    /// holds) with jittered backoff, or dead-letters it, by the failure's
    /// class and the attempts so far.
    Retry(Failure),
    /// Not now, and not a failure: come back after `delay` (a rate limit,
    /// Twilio's `Retry-After`). Does not count as an attempt.
    Defer { delay: Duration, reason: String },
    /// Give up at once: the loop publishes the dead letter (and only then
    /// acknowledges the message). The handler has done whatever else
    /// giving up means for it (a row marked failed, a status event).
    DeadLetter(Failure),
}

impl Outcome {
    /// A failure nobody classified.
    pub fn retry(reason: impl ToString) -> Self {
        Outcome::Retry(Failure::unknown(reason))
    }

    pub fn transient(reason: impl ToString) -> Self {
        Outcome::Retry(Failure::transient(reason))
    }

    pub fn permanent(reason: impl ToString) -> Self {
        Outcome::Retry(Failure::permanent(reason))
    }

    pub fn defer(delay: Duration, reason: impl ToString) -> Self {
        Outcome::Defer {
            delay,
            reason: reason.to_string(),
        }
    }

    pub fn dead_letter(reason: impl ToString) -> Self {
        Outcome::DeadLetter(Failure::permanent(reason))
    }

    /// Whether the message is finished with (acknowledged or given up on),
    /// so the next one may be handled.
    pub fn is_final(&self) -> bool {
        matches!(self, Outcome::Ack | Outcome::DeadLetter(_))
    }

    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ack => "ack",
            Outcome::Retry(_) => "retry",
            Outcome::Defer { .. } => "defer",
            Outcome::DeadLetter(_) => "dead_letter",
        }
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Self {
        Outcome::Retry(failure)
    }
}

impl From<&BusError> for Failure {
    fn from(e: &BusError) -> Self {
        match e {
            BusError::Encode { .. } | BusError::Decode { .. } => Failure::permanent(e),
            _ => Failure::transient(e),
        }
    }
}

impl From<BusError> for Failure {
    fn from(e: BusError) -> Self {
        Failure::from(&e)
    }
}

#[cfg(feature = "postgres")]
pub use self::postgres::classify;

#[cfg(feature = "postgres")]
mod postgres {
    use super::{Failure, FailureClass};

    /// The class of a database error, by SQLSTATE where there is one.
    ///
    /// Transient: connection exceptions (class 08), insufficient resources
    /// (53), serialization failure (40001), deadlock (40P01), lock not
    /// available (55P03), the server shutting down or starting (57P01–03),
    /// and every I/O or pool failure. Permanent: data exceptions (22) and
    /// integrity constraint violations (23): the same row will fail the
    /// same way again; values that cannot be encoded or decoded. The rest
    /// (a missing table during a deploy, a cancelled statement, ...) is
    /// unknown.
    pub fn classify(e: &sqlx::Error) -> FailureClass {
        match e {
            sqlx::Error::Database(db) => match db.code() {
                Some(code) => sqlstate_class(&code),
                None => FailureClass::Unknown,
            },
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => FailureClass::Transient,
            sqlx::Error::Decode(_)
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Encode(_)
            | sqlx::Error::InvalidArgument(_) => FailureClass::Permanent,
            _ => FailureClass::Unknown,
        }
    }

    pub(super) fn sqlstate_class(code: &str) -> FailureClass {
        match code {
            "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" => FailureClass::Transient,
            _ if code.starts_with("08") || code.starts_with("53") => FailureClass::Transient,
            _ if code.starts_with("22") || code.starts_with("23") => FailureClass::Permanent,
            _ => FailureClass::Unknown,
        }
    }

    impl From<&sqlx::Error> for Failure {
        fn from(e: &sqlx::Error) -> Self {
            let failure = Failure::new(classify(e), e);
            match e {
                sqlx::Error::Database(db) => match db.code() {
                    Some(code) => failure.with_code(code),
                    None => failure,
                },
                _ => failure,
            }
        }
    }

    impl From<sqlx::Error> for Failure {
        fn from(e: sqlx::Error) -> Self {
            Failure::from(&e)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sqlstates_are_classified_by_class_and_code() {
            let cases = [
                ("08006", FailureClass::Transient), // connection failure
                ("08001", FailureClass::Transient),
                ("53300", FailureClass::Transient), // too many connections
                ("40001", FailureClass::Transient), // serialization failure
                ("40P01", FailureClass::Transient), // deadlock
                ("57P01", FailureClass::Transient), // admin shutdown
                ("55P03", FailureClass::Transient), // lock not available
                ("22021", FailureClass::Permanent), // invalid byte sequence (NUL)
                ("22P02", FailureClass::Permanent), // invalid text representation
                ("23505", FailureClass::Permanent), // unique violation
                ("23503", FailureClass::Permanent), // foreign key violation
                ("42P01", FailureClass::Unknown),   // undefined table (deploy skew)
                ("57014", FailureClass::Unknown),   // statement cancelled
                ("XX000", FailureClass::Unknown),
            ];
            for (code, class) in cases {
                assert_eq!(sqlstate_class(code), class, "{code}");
            }
        }

        #[test]
        fn driver_errors_are_classified() {
            let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
            assert_eq!(classify(&sqlx::Error::Io(refused)), FailureClass::Transient);
            assert_eq!(
                classify(&sqlx::Error::PoolTimedOut),
                FailureClass::Transient
            );
            assert_eq!(classify(&sqlx::Error::RowNotFound), FailureClass::Unknown);
            let failure = Failure::from(sqlx::Error::PoolTimedOut);
            assert_eq!(failure.class, FailureClass::Transient);
            assert_eq!(failure.code, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_errors_are_transient_except_codec_failures() {
        let timeout = BusError::PublishTimeout {
            subject: "x".into(),
        };
        assert_eq!(Failure::from(&timeout).class, FailureClass::Transient);
        let decode = BusError::Decode {
            kind: "k",
            version: 1,
            reason: "garbage".into(),
        };
        assert_eq!(Failure::from(decode).class, FailureClass::Permanent);
    }

    #[test]
    fn only_ack_and_dead_letter_finish_a_message() {
        assert!(Outcome::Ack.is_final());
        assert!(Outcome::dead_letter("no").is_final());
        assert!(!Outcome::retry("later").is_final());
        assert!(!Outcome::defer(Duration::from_secs(1), "rate").is_final());
        assert_eq!(Outcome::transient("db down").label(), "retry");
        let outcome: Outcome = Failure::permanent("bad").with_code("23505").into();
        assert!(
            matches!(outcome, Outcome::Retry(Failure { class: FailureClass::Permanent, code: Some(ref c), .. }) if c == "23505")
        );
    }
}
