//! Query parameters of the REST API: page sizes, cursors and time ranges.
//!
//! Paging (`?limit&before`): every page answers with `next`, an opaque
//! cursor to pass as `before` for the following (older) page, or null on
//! the last page. `before` may also be an RFC3339 timestamp: the page then
//! starts strictly before that instant.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use utoipa::IntoParams;
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;
/// The default analytics window, ending now.
pub const DEFAULT_RANGE_DAYS: i64 = 30;
/// The widest UTC offset of a time zone, in minutes (UTC+14).
pub const MAX_UTC_OFFSET_MINUTES: i32 = 14 * 60;

/// `?limit&before` of a paged list.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page, or an RFC3339 timestamp (the
    /// page starts strictly before that instant).
    #[param(value_type = Option<BeforeDoc>, inline)]
    pub before: Option<Before>,
}

impl PageQuery {
    pub fn parse(raw: &str) -> Result<PageQuery, String> {
        let q = Query::parse(raw, &["limit", "before"])?;
        Ok(PageQuery {
            limit: Some(q.limit()?),
            before: q.before()?,
        })
    }

    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }
}

/// The longest range the analytics cover.
pub const MAX_RANGE: chrono::TimeDelta = chrono::TimeDelta::days(366);

/// `?from&to&utc_offset` of the analytics.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start (RFC3339, inclusive); default 30 days before `to`. Must be
    /// before `to`, and at most 366 days before it.
    pub from: Option<DateTime<Utc>>,
    /// End (RFC3339, exclusive); default now.
    pub to: Option<DateTime<Utc>>,
    /// A UTC offset in minutes (−840…840) where the days of
    /// `orders.per_day` begin; default: the restaurant's time zone.
    #[param(minimum = -840, maximum = 840)]
    pub utc_offset: Option<i32>,
}

impl RangeQuery {
    /// The query and the range it names (`[from, to)`, defaults applied).
    pub fn parse(
        raw: &str,
        now: DateTime<Utc>,
    ) -> Result<(RangeQuery, DateTime<Utc>, DateTime<Utc>), String> {
        let q = Query::parse(raw, &["from", "to", "utc_offset"])?;
        let (from, to) = q.range(now)?;
        if to - from > MAX_RANGE {
            return Err(format!(
                "the range from {from} to {to} is over {} days long; at most {} days are allowed",
                MAX_RANGE.num_days(),
                MAX_RANGE.num_days()
            ));
        }
        let utc_offset = match q.get("utc_offset") {
            None => None,
            Some(raw) => match raw.parse::<i32>() {
                Ok(m) if m.abs() <= MAX_UTC_OFFSET_MINUTES => Some(m),
                _ => {
                    return Err(format!(
                        "`utc_offset` must be minutes from -{MAX_UTC_OFFSET_MINUTES} to {MAX_UTC_OFFSET_MINUTES}, got {raw:?}"
                    ))
                }
            },
        };
        let given = |name| q.get(name).map(parse_time).transpose();
        let query = RangeQuery {
            from: given("from")?,
            to: given("to")?,
            utc_offset,
        };
        Ok((query, from, to))
    }
}

/// A position in a list ordered by (timestamp, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// None for conversations without messages (they sort last).
    pub at: Option<DateTime<Utc>>,
    pub id: Uuid,
}

impl Cursor {
    /// `<unix micros>_<uuid>` or `null_<uuid>`: opaque to clients.
    pub fn encode(&self) -> String {
        match self.at {
            Some(at) => format!("{}_{}", at.timestamp_micros(), self.id.simple()),
            None => format!("null_{}", self.id.simple()),
        }
    }

    fn decode(raw: &str) -> Option<Cursor> {
        let (at, id) = raw.split_once('_')?;
        let id = Uuid::parse_str(id).ok()?;
        let at = match at {
            "null" => None,
            micros => Some(DateTime::from_timestamp_micros(micros.parse().ok()?)?),
        };
        Some(Cursor { at, id })
    }
}

/// How `before` is written, for the OpenAPI document: a cursor
/// (`<unix micros>_<32 hex>`, or `null_<32 hex>` past the conversations
/// that have messages) or an RFC3339 timestamp.
pub struct BeforeDoc;

/// The cursors [`Cursor::encode`] writes.
pub const CURSOR_PATTERN: &str = r"^(-?[0-9]{1,16}|null)_[0-9a-fA-F]{32}$";

impl utoipa::PartialSchema for BeforeDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(CURSOR_PATTERN)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .into()
    }
}

impl utoipa::ToSchema for BeforeDoc {}

/// What `before` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    Cursor(Cursor),
    Time(DateTime<Utc>),
}

impl Before {
    pub fn parse(raw: &str) -> Result<Before, String> {
        if let Some(cursor) = Cursor::decode(raw) {
            return Ok(Before::Cursor(cursor));
        }
        parse_time(raw)
            .map(Before::Time)
            .map_err(|_| format!("`before` must be a cursor or an RFC3339 timestamp, got {raw:?}"))
    }

    /// For a list ordered newest first with ties by ascending id
    /// (conversations): a time excludes every row at that instant.
    pub fn for_ascending_ties(self) -> Cursor {
        match self {
            Before::Cursor(c) => c,
            Before::Time(t) => Cursor {
                at: Some(t),
                id: Uuid::max(),
            },
        }
    }

    /// For a list ordered newest first with ties by descending id (messages).
    pub fn for_descending_ties(self) -> Cursor {
        match self {
            Before::Cursor(c) => c,
            Before::Time(t) => Cursor {
                at: Some(t),
                id: Uuid::nil(),
            },
        }
    }
}

/// An RFC3339 timestamp. A `+` of the offset that arrived unescaped in a
/// query string reads as a space; it is taken back as `+`.
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    let fixed = raw.trim().replace(' ', "+");
    DateTime::parse_from_rfc3339(&fixed)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{raw:?} is not an RFC3339 timestamp: {e}"))
}

/// The parsed query string (`warp::query::raw`, or empty).
#[derive(Debug)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Reads a query string whose parameters are all in `known`, each at
    /// most once: an unknown or repeated name is a mistake worth a 400
    /// (`?limt=5` would otherwise quietly give 50).
    pub fn parse(raw: &str, known: &[&str]) -> Result<Query, String> {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
            .map_err(|e| format!("invalid query string: {e}"))?;
        let mut map = HashMap::new();
        for (name, value) in pairs {
            if !known.contains(&name.as_str()) {
                return Err(format!(
                    "unknown query parameter {name:?}; this route takes {}",
                    match known {
                        [] => "none".to_string(),
                        names => names.join(", "),
                    }
                ));
            }
            if map.insert(name.clone(), value).is_some() {
                return Err(format!("query parameter {name:?} is given twice"));
            }
        }
        Ok(Query(map))
    }

    /// A parameter's value. A parameter given empty (`?limit=`) is not a
    /// way to leave it out: each reader refuses it as malformed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `limit`: 1..=MAX_LIMIT, default DEFAULT_LIMIT.
    pub fn limit(&self) -> Result<i64, String> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(format!(
                    "`limit` must be a number from 1 to {MAX_LIMIT}, got {raw:?}"
                )),
            },
        }
    }

    pub fn before(&self) -> Result<Option<Before>, String> {
        self.get("before").map(Before::parse).transpose()
    }

    /// `from` and `to` (RFC3339); by default the last 30 days until `now`.
    pub fn range(&self, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
        let to = self.get("to").map(parse_time).transpose()?.unwrap_or(now);
        let from = self
            .get("from")
            .map(parse_time)
            .transpose()?
            .unwrap_or(to - Duration::days(DEFAULT_RANGE_DAYS));
        if from >= to {
            return Err("`from` must be before `to`".into());
        }
        Ok((from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CURSOR_PATTERN, by hand: digits (at most 16) or `null`, `_`, 32 hex digits.
    fn documented(s: &str) -> bool {
        let Some((at, id)) = s.split_once('_') else {
            return false;
        };
        let digits = at.strip_prefix('-').unwrap_or(at);
        let at_ok = at == "null"
            || (!digits.is_empty()
                && digits.len() <= 16
                && digits.bytes().all(|b| b.is_ascii_digit()));
        at_ok && id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
    }

    #[test]
    fn cursors_round_trip() {
        assert!(CURSOR_PATTERN.contains("{1,16}") && CURSOR_PATTERN.contains("{32}"));
        let at = DateTime::from_timestamp_micros(1_718_000_000_123_456).unwrap();
        for c in [
            Cursor {
                at: Some(at),
                id: Uuid::new_v4(),
            },
            Cursor {
                at: None,
                id: Uuid::new_v4(),
            },
        ] {
            assert_eq!(Before::parse(&c.encode()), Ok(Before::Cursor(c)));
            assert!(
                documented(&c.encode()),
                "{} matches CURSOR_PATTERN",
                c.encode()
            );
        }
        // The longest documented cursors are read back too.
        assert!(Before::parse(&format!("-{}_{}", "9".repeat(16), Uuid::nil().simple())).is_ok());
        assert!(Before::parse(&format!("{}_{}", "9".repeat(16), Uuid::nil().simple())).is_ok());
    }

    #[test]
    fn before_accepts_timestamps() {
        let t = parse_time("2024-06-01T10:00:00Z").unwrap();
        assert_eq!(Before::parse("2024-06-01T10:00:00Z"), Ok(Before::Time(t)));
        assert_eq!(
            Before::parse("2024-06-01T12:00:00 02:00"),
            Ok(Before::Time(t))
        );
        assert_eq!(Before::Time(t).for_ascending_ties().id, Uuid::max());
        assert_eq!(Before::Time(t).for_descending_ties().id, Uuid::nil());
        assert!(Before::parse("yesterday").is_err());
        assert!(Before::parse("12_notauuid").is_err());
    }

    #[test]
    fn reads_limits_and_ranges() {
        let q = Query::parse("limit=5", &["limit", "before"]).unwrap();
        assert_eq!(q.limit(), Ok(5));
        assert_eq!(q.before(), Ok(None));
        assert!(Query::parse("before=", &["before"])
            .unwrap()
            .before()
            .is_err());
        assert!(Query::parse("limit=", &["limit"]).unwrap().limit().is_err());
        assert_eq!(
            Query::parse("", &["limit"]).unwrap().limit(),
            Ok(DEFAULT_LIMIT)
        );
        for bad in ["limit=0", "limit=201", "limit=x", "limit=-1"] {
            assert!(
                Query::parse(bad, &["limit"]).unwrap().limit().is_err(),
                "{bad}"
            );
        }
        let now = parse_time("2024-06-30T00:00:00Z").unwrap();
        let (from, to) = Query::parse("", &[]).unwrap().range(now).unwrap();
        assert_eq!(to, now);
        assert_eq!(from, parse_time("2024-05-31T00:00:00Z").unwrap());
        let q = Query::parse(
            "from=2024-06-01T00:00:00%2B03:00&to=2024-06-02T00:00:00Z",
            &["from", "to"],
        )
        .unwrap();
        let (from, _) = q.range(now).unwrap();
        assert_eq!(from, parse_time("2024-05-31T21:00:00Z").unwrap());
        assert!(Query::parse(
            "from=2024-06-02T00:00:00Z&to=2024-06-01T00:00:00Z",
            &["from", "to"]
        )
        .unwrap()
        .range(now)
        .is_err());
        assert!(Query::parse("from=soon", &["from"])
            .unwrap()
            .range(now)
            .is_err());
        let (r, _, to) = RangeQuery::parse("utc_offset=180", now).unwrap();
        assert_eq!((to, r.to, r.utc_offset), (now, None, Some(180)));
        for bad in ["utc_offset=841", "utc_offset=x", "utc_offset=1.5"] {
            assert!(RangeQuery::parse(bad, now).is_err(), "{bad}");
        }
        // A year (a leap one too) is allowed; a day more is not.
        assert!(
            RangeQuery::parse("from=2023-06-01T00:00:00Z&to=2024-06-01T00:00:00Z", now).is_ok()
        );
        let err = RangeQuery::parse("from=2023-05-31T23:59:59Z&to=2024-06-01T00:00:00Z", now)
            .unwrap_err();
        assert!(err.contains("at most 366 days"), "{err}");
        assert!(Query::parse("limt=5", &["limit"])
            .unwrap_err()
            .contains("limt"));
        assert!(Query::parse("limit=5&limit=6", &["limit"])
            .unwrap_err()
            .contains("twice"));
        let page = PageQuery::parse("limit=7").unwrap();
        assert_eq!((page.limit(), page.before), (7, None));
        assert!(PageQuery::parse("before=soon").is_err());
    }
}
