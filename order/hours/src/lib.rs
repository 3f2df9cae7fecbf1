//! A branch's opening hours, and the two questions asked of them: is it
//! open at instant T (until when), and when does it next open. Pure: the
//! caller passes the instant and the restaurant's IANA time zone.
//!
//! Rules:
//! - A [`Schedule`] with no weekly intervals is open around the clock
//!   (a branch nobody set hours for takes orders, as before hours existed).
//! - An interval belongs to the day it opens: `fri 18:00-02:00` runs from
//!   Friday 18:00 to Saturday 02:00 local time; `24:00` is the end of a day.
//! - A closure (a range of local dates, both ends included) cancels the
//!   intervals that open on its dates; a round-the-clock branch is closed on
//!   those whole days.
//! - Daylight saving: an opening time that does not exist that day (the
//!   clock jumps over it) opens at the first minute that exists; a time
//!   that exists twice opens at the first and closes at the second.

mod text;

use std::fmt;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use text::ParseError;

/// How far ahead `next_opening` looks (a long closure, e.g. a renovation).
const LOOKAHEAD_DAYS: i64 = 400;
const MINUTES_PER_DAY: u16 = 24 * 60;

/// A time of day in minutes, `00:00` to `24:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub fn new(hour: u16, minute: u16) -> Option<TimeOfDay> {
        let m = hour.checked_mul(60)?.checked_add(minute)?;
        (minute < 60 && m <= MINUTES_PER_DAY).then_some(TimeOfDay(m))
    }

    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        text::time_of_day(&s).map_err(serde::de::Error::custom)
    }
}

/// A day of the week, written `mon` … `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    pub fn of(weekday: Weekday) -> Day {
        Day::ALL[weekday.num_days_from_monday() as usize]
    }

    pub fn name(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self as usize]
    }

    fn next(self) -> Day {
        Day::ALL[(self as usize + 1) % 7]
    }
}

/// Open from `opens` on `day` until `closes` (the next day when `closes`
/// is not after `opens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub day: Day,
    pub opens: TimeOfDay,
    pub closes: TimeOfDay,
}

impl Interval {
    fn past_midnight(&self) -> bool {
        self.closes <= self.opens
    }
}

/// Closed on the local dates `from` to `to`, both included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub from: NaiveDate,
    pub to: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Closure {
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to
    }
}

/// A branch's weekly hours and closures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Schedule {
    pub weekly: Vec<Interval>,
    pub closures: Vec<Closure>,
}

/// Whether a branch is open at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Open; `until` is when it closes (`None`: not within the lookahead).
    Open { until: Option<DateTime<Utc>> },
    /// Closed; `opens` is when it next opens (`None`: not within the lookahead).
    Closed { opens: Option<DateTime<Utc>> },
}

impl Status {
    pub fn is_open(&self) -> bool {
        matches!(self, Status::Open { .. })
    }
}

impl Schedule {
    /// Round the clock, no closures.
    pub fn always_open() -> Schedule {
        Schedule::default()
    }

    /// Weekly hours from their text form (`sat-thu 12:00-23:30; fri 13:00-15:00,18:00-02:00`).
    pub fn parse_weekly(text: &str) -> Result<Vec<Interval>, ParseError> {
        text::parse_weekly(text)
    }

    /// The weekly hours in their text form (`always` when none are set).
    pub fn weekly_text(&self) -> String {
        text::weekly_text(&self.weekly)
    }

    pub fn is_open(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        self.status(tz, at).is_open()
    }

    pub fn status(&self, tz: Tz, at: DateTime<Utc>) -> Status {
        if self.weekly.is_empty() && self.closures.is_empty() {
            // Round the clock: following the opening day by day would walk
            // the whole lookahead (800 time-zone conversions) to say so.
            return Status::Open { until: None };
        }
        let today = at.with_timezone(&tz).date_naive();
        let mut windows = self.windows(tz, today - Duration::days(1), today + Duration::days(1));
        if let Some(current) = windows.iter().position(|w| w.0 <= at && at < w.1) {
            // Follow the opening across later days while it runs on.
            let mut end = windows[current].1;
            let mut day = today + Duration::days(2);
            while day <= today + Duration::days(LOOKAHEAD_DAYS) {
                let next = self.windows(tz, day, day);
                match next.first() {
                    Some(w) if w.0 <= end => {
                        end = end.max(next.iter().map(|w| w.1).max().unwrap_or(end));
                        day += Duration::days(1);
                    }
                    _ => return Status::Open { until: Some(end) },
                }
            }
            return Status::Open { until: None };
        }
        windows.retain(|w| w.0 > at);
        if let Some(w) = windows.first() {
            return Status::Closed { opens: Some(w.0) };
        }
        let mut day = today + Duration::days(2);
        while day <= today + Duration::days(LOOKAHEAD_DAYS) {
            let last = (day + Duration::days(6)).min(today + Duration::days(LOOKAHEAD_DAYS));
            if let Some(w) = self.windows(tz, day, last).into_iter().find(|w| w.0 > at) {
                return Status::Closed { opens: Some(w.0) };
            }
            day = last + Duration::days(1);
        }
        Status::Closed { opens: None }
    }

    /// When the branch next opens after `at` (`at` itself if it opens then);
    /// `None` while open or if it never opens within the lookahead.
    pub fn next_opening(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.status(tz, at) {
            Status::Open { .. } => None,
            Status::Closed { opens } => opens,
        }
    }

    /// The open windows of the intervals opening on local dates `first..=last`,
    /// sorted and merged where they touch.
    fn windows(
        &self,
        tz: Tz,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut out = Vec::new();
        let mut date = first;
        while date <= last {
            if !self.closures.iter().any(|c| c.covers(date)) {
                if self.weekly.is_empty() {
                    out.push((
                        local(tz, date, 0, Edge::Opens),
                        local(tz, date, MINUTES_PER_DAY, Edge::Closes),
                    ));
                }
                let day = Day::of(date.weekday());
                for interval in self.weekly.iter().filter(|i| i.day == day) {
                    let close_date = if interval.past_midnight() {
                        date + Duration::days(1)
                    } else {
                        date
                    };
                    out.push((
                        local(tz, date, interval.opens.0, Edge::Opens),
                        local(tz, close_date, interval.closes.0, Edge::Closes),
                    ));
                }
            }
            date += Duration::days(1);
        }
        out.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(out.len());
        for w in out {
            match merged.last_mut() {
                Some(last) if w.0 <= last.1 => last.1 = last.1.max(w.1),
                _ => merged.push(w),
            }
        }
        merged
    }
}

#[derive(Clone, Copy)]
enum Edge {
    Opens,
    Closes,
}

/// The instant of a local date and time of day in `tz` (see the module's
/// daylight-saving rules).
fn local(tz: Tz, date: NaiveDate, minutes: u16, edge: Edge) -> DateTime<Utc> {
    let (date, minutes) = if minutes >= MINUTES_PER_DAY {
        (date + Duration::days(1), minutes - MINUTES_PER_DAY)
    } else {
        (date, minutes)
    };
    let mut naive = date
        .and_hms_opt(u32::from(minutes / 60), u32::from(minutes % 60), 0)
        .expect("valid time of day");
    // A gap is at most a few hours; walk forward to the first existing minute.
    for _ in 0..(4 * 60) {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, second) => {
                return match edge {
                    Edge::Opens => first,
                    Edge::Closes => second,
                }
                .with_timezone(&Utc)
            }
            LocalResult::None => naive += Duration::minutes(1),
        }
    }
    Utc.from_utc_datetime(&naive)
}

/// A time zone from its IANA name (`Asia/Riyadh`).
pub fn time_zone(name: &str) -> Result<Tz, ParseError> {
    name.trim().parse::<Tz>().map_err(|_| {
        ParseError(format!(
            "{name:?} is not an IANA time zone (e.g. Asia/Riyadh)"
        ))
    })
}

#[cfg(test)]
mod tests;
