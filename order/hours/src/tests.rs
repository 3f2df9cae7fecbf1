use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::*;

fn riyadh() -> Tz {
    time_zone("Asia/Riyadh").unwrap()
}

/// A local wall-clock time in `tz`, as an instant.
fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .earliest()
        .expect("local time exists")
        .with_timezone(&Utc)
}

fn schedule(weekly: &str) -> Schedule {
    Schedule {
        weekly: Schedule::parse_weekly(weekly).unwrap(),
        closures: vec![],
    }
}

// 2026-03-06 is a Friday.
#[test]
fn a_past_midnight_interval_runs_into_the_next_day() {
    let tz = riyadh();
    let s = schedule("fri 18:00-02:00");
    assert!(!s.is_open(tz, at(tz, 2026, 3, 6, 17, 59)));
    assert_eq!(
        s.status(tz, at(tz, 2026, 3, 6, 23, 0)),
        Status::Open {
            until: Some(at(tz, 2026, 3, 7, 2, 0))
        }
    );
    // Saturday 01:30 is still Friday night's opening.
    assert!(s.is_open(tz, at(tz, 2026, 3, 7, 1, 30)));
    assert_eq!(
        s.status(tz, at(tz, 2026, 3, 7, 2, 0)),
        Status::Closed {
            opens: Some(at(tz, 2026, 3, 13, 18, 0))
        }
    );
}

#[test]
fn several_intervals_a_day_and_the_next_opening_later_that_day() {
    let tz = riyadh();
    let s = schedule("sat-thu 12:00-15:00,18:00-23:30; fri 13:00-23:00");
    // Thursday 2026-03-05 16:00: between the two intervals.
    assert_eq!(
        s.next_opening(tz, at(tz, 2026, 3, 5, 16, 0)),
        Some(at(tz, 2026, 3, 5, 18, 0))
    );
    // Thursday 23:45: Friday opens at 13:00.
    assert_eq!(
        s.next_opening(tz, at(tz, 2026, 3, 5, 23, 45)),
        Some(at(tz, 2026, 3, 6, 13, 0))
    );
    assert!(
        s.is_open(tz, at(tz, 2026, 3, 7, 12, 0)),
        "opens exactly at 12:00"
    );
    assert!(
        !s.is_open(tz, at(tz, 2026, 3, 7, 15, 0)),
        "closed exactly at 15:00"
    );
}

#[test]
fn intervals_that_touch_across_midnight_are_one_opening() {
    let tz = riyadh();
    let s = schedule("sun 18:00-24:00; mon 00:00-02:00");
    // 2026-03-08 is a Sunday.
    assert_eq!(
        s.status(tz, at(tz, 2026, 3, 8, 20, 0)),
        Status::Open {
            until: Some(at(tz, 2026, 3, 9, 2, 0))
        }
    );
}

#[test]
fn a_closure_cancels_the_days_it_covers() {
    let tz = riyadh();
    let mut s = schedule("daily 12:00-23:00");
    s.closures.push(Closure {
        from: NaiveDate::from_ymd_opt(2026, 3, 19).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 3, 21).unwrap(),
        note: Some("Eid".into()),
    });
    assert!(s.is_open(tz, at(tz, 2026, 3, 18, 13, 0)));
    assert!(!s.is_open(tz, at(tz, 2026, 3, 19, 13, 0)));
    assert_eq!(
        s.next_opening(tz, at(tz, 2026, 3, 19, 13, 0)),
        Some(at(tz, 2026, 3, 22, 12, 0)),
        "first day after the closure"
    );
}

#[test]
fn no_hours_means_always_open_except_closures() {
    let tz = riyadh();
    let mut s = Schedule::always_open();
    assert_eq!(
        s.status(tz, at(tz, 2026, 3, 18, 3, 0)),
        Status::Open { until: None }
    );
    s.closures.push(Closure {
        from: NaiveDate::from_ymd_opt(2026, 3, 20).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 3, 20).unwrap(),
        note: None,
    });
    assert_eq!(
        s.status(tz, at(tz, 2026, 3, 19, 22, 0)),
        Status::Open {
            until: Some(at(tz, 2026, 3, 20, 0, 0))
        }
    );
    assert_eq!(
        s.next_opening(tz, at(tz, 2026, 3, 20, 9, 0)),
        Some(at(tz, 2026, 3, 21, 0, 0))
    );
}

#[test]
fn daylight_saving_changes_move_the_instants_not_the_wall_clock() {
    let tz = time_zone("Europe/London").unwrap();
    let s = schedule("sun 00:30-03:00; sat 12:00-22:00");
    // 2026-03-29: clocks go from 01:00 to 02:00. 00:30 local is 00:30 UTC.
    let spring = at(tz, 2026, 3, 29, 0, 30);
    assert_eq!(spring, Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap());
    // The opening lasts 1.5 hours of real time that night (03:00 BST = 02:00 UTC).
    assert_eq!(
        s.status(tz, spring),
        Status::Open {
            until: Some(Utc.with_ymd_and_hms(2026, 3, 29, 2, 0, 0).unwrap())
        }
    );
    // A week earlier (GMT) Saturday noon is 12:00 UTC; a week later (BST) 11:00 UTC.
    assert_eq!(
        s.next_opening(tz, Utc.with_ymd_and_hms(2026, 3, 28, 8, 0, 0).unwrap()),
        Some(Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap())
    );
    assert_eq!(
        s.next_opening(tz, Utc.with_ymd_and_hms(2026, 4, 4, 8, 0, 0).unwrap()),
        Some(Utc.with_ymd_and_hms(2026, 4, 4, 11, 0, 0).unwrap())
    );
    // An opening time inside the gap opens when the clock resumes.
    let gap = schedule("sun 01:30-04:00");
    assert_eq!(
        gap.next_opening(tz, Utc.with_ymd_and_hms(2026, 3, 28, 20, 0, 0).unwrap()),
        Some(Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()),
        "02:00 BST, the first minute after 01:00 GMT that exists"
    );
    // 2026-10-25: 01:00-02:00 happens twice; a 01:30 closing closes at the second.
    let fall = schedule("sun 00:00-01:30");
    assert_eq!(
        fall.status(tz, Utc.with_ymd_and_hms(2026, 10, 25, 0, 10, 0).unwrap()),
        Status::Open {
            until: Some(Utc.with_ymd_and_hms(2026, 10, 25, 1, 30, 0).unwrap())
        }
    );
}

#[test]
fn a_branch_closed_for_good_never_opens() {
    let tz = riyadh();
    let mut s = schedule("mon 10:00-11:00");
    s.closures.push(Closure {
        from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
        note: None,
    });
    assert_eq!(
        s.status(tz, at(tz, 2026, 3, 9, 10, 30)),
        Status::Closed { opens: None }
    );
}

#[test]
fn the_text_form_parses_wraps_and_prints_back() {
    let weekly =
        Schedule::parse_weekly("Sat-Thu 12:00-23:30; fri 13:00-15:00, 18:00-02:00").unwrap();
    assert_eq!(weekly.len(), 8);
    let s = Schedule {
        weekly,
        closures: vec![],
    };
    let text = s.weekly_text();
    assert_eq!(
        text,
        "mon-thu 12:00-23:30; fri 13:00-15:00,18:00-02:00; sat-sun 12:00-23:30"
    );
    assert_eq!(Schedule::parse_weekly(&text).unwrap(), s.weekly);
    assert_eq!(
        schedule("daily 00:00-24:00").weekly_text(),
        "daily 00:00-24:00"
    );
    assert_eq!(Schedule::default().weekly_text(), "always");
}

#[test]
fn bad_hours_are_refused_with_the_reason() {
    for (text, needle) in [
        ("mon 12:00", "time range"),
        ("funday 12:00-13:00", "not a day"),
        ("mon 25:00-26:00", "not a time of day"),
        ("mon 12:00-12:00", "must differ"),
        ("12:00-13:00", "days then times"),
    ] {
        let e = Schedule::parse_weekly(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
    assert!(time_zone("Mars/Olympus").is_err());
}

#[test]
fn a_schedule_is_stored_as_readable_json() {
    let mut s = schedule("fri 18:00-02:00");
    s.closures.push(Closure {
        from: NaiveDate::from_ymd_opt(2026, 3, 19).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 3, 21).unwrap(),
        note: Some("Eid".into()),
    });
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(
        json,
        r#"{"weekly":[{"day":"fri","opens":"18:00","closes":"02:00"}],"closures":[{"from":"2026-03-19","to":"2026-03-21","note":"Eid"}]}"#
    );
    assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    assert_eq!(
        serde_json::from_str::<Schedule>("{}").unwrap(),
        Schedule::default()
    );
}
