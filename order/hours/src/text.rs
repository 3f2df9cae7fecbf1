//! The text form of weekly hours an operator types and reads:
//! `sat-thu 12:00-23:30; fri 13:00-15:00,18:00-02:00`. Groups are separated
//! by `;` or new lines; days are `mon`…`sun`, ranges of them (`sat-thu`
//! wraps over the week's end), lists (`mon,wed`) or `daily`; times are
//! `HH:MM`, `24:00` ending a day.

use crate::{Day, Interval, TimeOfDay};

/// A text that is not valid hours, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

pub(crate) fn time_of_day(s: &str) -> Result<TimeOfDay, ParseError> {
    let s = s.trim();
    let parsed = s.split_once(':').and_then(|(h, m)| {
        let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
        (m < 60 && s.len() == 5).then_some(())?;
        TimeOfDay::new(h, m)
    });
    match parsed {
        Some(t) => Ok(t),
        None => err(format!(
            "{s:?} is not a time of day (HH:MM, 00:00 to 24:00)"
        )),
    }
}

fn day(s: &str) -> Result<Day, ParseError> {
    let s = s.trim().to_ascii_lowercase();
    Day::ALL
        .into_iter()
        .find(|d| s.len() >= 3 && d.name() == &s[..3] && full_or_short(&s, *d))
        .map_or_else(|| err(format!("{s:?} is not a day (mon, tue, … sun)")), Ok)
}

fn full_or_short(s: &str, d: Day) -> bool {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    s.len() == 3 || s == FULL[d as usize]
}

fn days(s: &str) -> Result<Vec<Day>, ParseError> {
    let s = s.trim().to_ascii_lowercase();
    if s == "daily" {
        return Ok(Day::ALL.to_vec());
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (mut d, to) = (day(from)?, day(to)?);
                out.push(d);
                while d != to {
                    d = d.next();
                    out.push(d);
                }
            }
            None => out.push(day(part)?),
        }
    }
    Ok(out)
}

pub(crate) fn parse_weekly(text: &str) -> Result<Vec<Interval>, ParseError> {
    let mut out = Vec::new();
    for group in text
        .split([';', '\n'])
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        let (day_part, ranges) = group.split_once(char::is_whitespace).map_or_else(
            || {
                err(format!(
                    "{group:?}: days then times, e.g. \"mon-fri 12:00-23:00\""
                ))
            },
            Ok,
        )?;
        let days = days(day_part)?;
        for range in ranges.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (opens, closes) = range.split_once('-').map_or_else(
                || err(format!("{range:?} is not a time range (12:00-23:00)")),
                Ok,
            )?;
            let (opens, closes) = (time_of_day(opens)?, time_of_day(closes)?);
            if opens == closes || opens.minutes() == 24 * 60 {
                return err(format!(
                    "{range:?}: opening and closing must differ (00:00-24:00 for a whole day)"
                ));
            }
            for &day in &days {
                let interval = Interval { day, opens, closes };
                if !out.contains(&interval) {
                    out.push(interval);
                }
            }
        }
    }
    out.sort_by_key(|i| (i.day, i.opens));
    Ok(out)
}

pub(crate) fn weekly_text(weekly: &[Interval]) -> String {
    if weekly.is_empty() {
        return "always".into();
    }
    let ranges_of = |d: Day| -> String {
        let mut of_day: Vec<&Interval> = weekly.iter().filter(|i| i.day == d).collect();
        of_day.sort_by_key(|i| i.opens);
        of_day
            .iter()
            .map(|i| format!("{}-{}", i.opens, i.closes))
            .collect::<Vec<_>>()
            .join(",")
    };
    // Consecutive days (Monday first) with the same ranges share a group.
    let mut groups: Vec<(Day, Day, String)> = Vec::new();
    for d in Day::ALL {
        let ranges = ranges_of(d);
        if ranges.is_empty() {
            continue;
        }
        match groups.last_mut() {
            Some((_, last, r)) if *r == ranges && last.next() == d => *last = d,
            _ => groups.push((d, d, ranges)),
        }
    }
    groups
        .into_iter()
        .map(|(from, to, ranges)| {
            if from == to {
                format!("{} {ranges}", from.name())
            } else if from == Day::Mon && to == Day::Sun {
                format!("daily {ranges}")
            } else {
                format!("{}-{} {ranges}", from.name(), to.name())
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
