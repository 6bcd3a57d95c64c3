//! `Schedule` (a cron expression in a time zone) and its `Fire` instants, computed as a pure
//! function of a given instant, with the daylight-saving rules of DESIGN section 8.

use std::collections::VecDeque;

use chrono::{DateTime, Datelike, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime};
use chrono::{Offset, SecondsFormat, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::diagnostics::Problem;
use crate::schedule::cron::CronSpec;

/// A cron expression in a time zone.
///
/// The expression matches wall-clock times in `tz`. Daylight-saving rules:
/// - **Spring forward** (a wall-clock time that does not exist): the job fires once, at the
///   first instant after the gap (`30 1 * * *` in London on 29 March 2026 fires at 02:00 BST
///   = 01:00 UTC). Several missing times collapse into that one fire.
/// - **Fall back** (a wall-clock time that happens twice): the job fires once, at the first
///   of the two instants (`30 1 * * *` in London on 25 October 2026 fires at 01:30 BST only).
/// - **Exception, decided here:** a schedule whose hour field selects every hour (`*`, `*/1`,
///   `0-23`), such as `*/15 * * * *` or `0 * * * *`, follows real time instead: it fires in
///   both passes of a repeated hour (every 15 real minutes keeps going) and skips the times of
///   a gap (there is no real time to catch up). Its interval is what the user asked for, and
///   the hour field is what says so. A schedule that names hours (`30 1 * * *`,
///   `*/15 1 * * *`, `0,30 1,13 * * *`) is about wall-clock times and follows the two rules
///   above. This differs from croner, which calls only single-valued second/minute/hour
///   patterns "fixed-time" and, for example, skips `0,30 1 * * *` entirely on a spring-forward
///   day and runs it twice at 01:00 and 01:30 on a fall-back day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    cron: CronSpec,
    tz: Tz,
}

/// One instant at which a schedule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fire {
    pub utc: DateTime<Utc>,
    /// The same instant on the schedule's wall clock.
    pub local: DateTime<Tz>,
}

impl Fire {
    /// The fire's stable identity for claiming it in the state store: the UTC instant in
    /// RFC 3339 with whole seconds, e.g. `2026-03-29T01:00:00Z`.
    pub fn instant_key(&self) -> String {
        self.utc.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// The trigger name of a run started by this fire: `cron@<instant_key>`.
    pub fn trigger_name(&self) -> String {
        format!("cron@{}", self.instant_key())
    }
}

impl Schedule {
    pub fn new(cron: CronSpec, tz: Tz) -> Self {
        Schedule { cron, tz }
    }

    pub fn cron(&self) -> &CronSpec {
        &self.cron
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire strictly after `after`, or `None` if the schedule never fires.
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<Fire> {
        self.fires_after(after).next()
    }

    /// The next `n` fires strictly after `after`, strictly increasing.
    pub fn next_fires(&self, after: DateTime<Utc>, n: usize) -> Vec<Fire> {
        self.fires_after(after).take(n).collect()
    }

    /// The latest fire in `(after, until]`, e.g. the one missed fire to run at start-up after
    /// downtime (`missed: run_once`). Searches backwards from `until` in doubling windows, so
    /// the cost follows the schedule's density near `until`, not the length of the downtime.
    pub fn latest_fire(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<Fire> {
        let mut window = TimeDelta::hours(1);
        loop {
            let from = until
                .checked_sub_signed(window)
                .map_or(after, |from| from.max(after));
            let latest = self
                .fires_after(from)
                .take_while(|fire| fire.utc <= until)
                .last();
            if latest.is_some() || from == after {
                return latest;
            }
            window = window.checked_mul(2).unwrap_or(TimeDelta::MAX);
        }
    }

    /// All fires strictly after `after`, in order, lazily.
    pub fn fires_after(&self, after: DateTime<Utc>) -> FiresAfter<'_> {
        FiresAfter::new(self, after)
    }

    /// Whether the schedule never fires; see `CronSpec::never_fires`. O(1).
    pub fn never_fires(&self) -> bool {
        self.cron.never_fires()
    }

    /// The `cron-never-fires` warning, located in the cron expression, when it never fires.
    pub fn never_fires_warning(&self) -> Option<Problem> {
        self.cron.never_fires_warning()
    }
}

/// Iterator over a schedule's fires; see `Schedule::fires_after`.
///
/// It walks matching wall-clock times in order and resolves each in the time zone. Instants
/// come out in that order except the second pass of a repeated hour, whose instants follow all
/// of the first pass; they wait in `second_pass` until the walk leaves the repeated hour.
#[derive(Debug, Clone)]
pub struct FiresAfter<'a> {
    schedule: &'a Schedule,
    after: DateTime<Utc>,
    /// The next wall-clock time to consider, inclusive; `None` once the walk is over.
    cursor: Option<NaiveDateTime>,
    second_pass: VecDeque<DateTime<Utc>>,
    ready: VecDeque<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl<'a> FiresAfter<'a> {
    fn new(schedule: &'a Schedule, after: DateTime<Utc>) -> Self {
        let tz = schedule.tz;
        let whole = after.with_nanosecond(0).unwrap_or(after);
        let wall = wall_clock(tz, whole);
        // When `after` lies in the first pass of a repeated hour, wall-clock times before its
        // own have second-pass instants still to come, so the walk starts at the repeat.
        let start = wall.and_then(|wall| match tz.from_local_datetime(&wall) {
            LocalResult::Ambiguous(earlier, later) if earlier == whole => {
                wall.checked_sub_signed(later - earlier)
            }
            _ => Some(wall),
        });
        FiresAfter {
            schedule,
            after,
            cursor: if schedule.never_fires() { None } else { start },
            second_pass: VecDeque::new(),
            ready: VecDeque::new(),
            last: None,
        }
    }

    /// Resolves one matching wall-clock time into zero, one or two instants.
    fn resolve(&mut self, wall: NaiveDateTime) {
        let tz = self.schedule.tz;
        let every_hour = self.schedule.cron.every_hour();
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(instant) => {
                let instant = instant.with_timezone(&Utc);
                self.release_second_pass(Some(instant));
                self.ready.push_back(instant);
            }
            LocalResult::Ambiguous(earlier, later) => {
                let earlier = earlier.with_timezone(&Utc);
                self.release_second_pass(Some(earlier));
                self.ready.push_back(earlier);
                if every_hour {
                    self.second_pass.push_back(later.with_timezone(&Utc));
                }
            }
            LocalResult::None => {
                let after_gap = first_instant_after_gap(tz, wall);
                self.release_second_pass(after_gap);
                if let Some(instant) = after_gap {
                    if !every_hour {
                        self.ready.push_back(instant);
                    }
                    // Every other time in the gap resolves the same way: continue after it.
                    if let (Some(cursor), Some(wall_after_gap)) =
                        (self.cursor, wall_clock(tz, instant))
                    {
                        self.cursor = Some(cursor.max(wall_after_gap));
                    }
                }
            }
        }
    }

    /// Moves waiting second-pass instants before `until` (all of them for `None`) to `ready`.
    fn release_second_pass(&mut self, until: Option<DateTime<Utc>>) {
        while let Some(&instant) = self.second_pass.front() {
            if until.is_some_and(|until| instant >= until) {
                break;
            }
            self.ready.push_back(instant);
            self.second_pass.pop_front();
        }
    }

    fn fire(&self, utc: DateTime<Utc>) -> Fire {
        Fire {
            utc,
            local: utc.with_timezone(&self.schedule.tz),
        }
    }
}

impl Iterator for FiresAfter<'_> {
    type Item = Fire;

    fn next(&mut self) -> Option<Fire> {
        loop {
            while let Some(instant) = self.ready.pop_front() {
                if instant > self.after && self.last.is_none_or(|last| instant > last) {
                    self.last = Some(instant);
                    return Some(self.fire(instant));
                }
            }
            let Some(cursor) = self.cursor else {
                if self.second_pass.is_empty() {
                    return None;
                }
                self.release_second_pass(None);
                continue;
            };
            match next_wall(&self.schedule.cron, cursor) {
                Some(wall) => {
                    self.cursor = wall.checked_add_signed(TimeDelta::seconds(1));
                    self.resolve(wall);
                }
                None => self.cursor = None,
            }
        }
    }
}

/// The wall-clock time of `instant` in `tz`; `None` past the ends of chrono's calendar.
fn wall_clock(tz: Tz, instant: DateTime<Utc>) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&instant.naive_utc()).fix();
    instant.naive_utc().checked_add_offset(offset)
}

/// The first matching wall-clock time at or after `from`. A schedule that fires at all has a
/// matching date in every 400-year Gregorian cycle, so the walk gives up 401 years on.
fn next_wall(cron: &CronSpec, from: NaiveDateTime) -> Option<NaiveDateTime> {
    let mut date = from.date();
    let horizon = date
        .checked_add_months(Months::new(401 * 12))
        .unwrap_or(NaiveDate::MAX);
    let mut time = from.time();
    while date <= horizon {
        let later_days = cron.days_in(date.year(), date.month()) & (u32::MAX << date.day());
        if later_days == 0 {
            date = date.with_day(1)?.checked_add_months(Months::new(1))?;
            time = NaiveTime::MIN;
            continue;
        }
        let day = later_days.trailing_zeros();
        if day != date.day() {
            date = date.with_day(day)?;
            time = NaiveTime::MIN;
        }
        if let Some(found) = cron.first_time_from(time) {
            return Some(date.and_time(found));
        }
        date = date.succ_opt()?;
        time = NaiveTime::MIN;
    }
    None
}

/// The first instant after the gap that skips the wall-clock time `wall`: the instant of the
/// offset change, found by bisection over whole seconds. Offsets stay within a day of UTC, so
/// the change lies within 36 hours of `wall` read as UTC.
fn first_instant_after_gap(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let margin = 36 * 3600;
    let wall_seconds = wall.and_utc().timestamp();
    let past_wall = |seconds: i64| {
        DateTime::from_timestamp(seconds, 0)
            .and_then(|instant| wall_clock(tz, instant))
            .map(|local| local > wall)
    };
    let (mut low, mut high) = (wall_seconds - margin, wall_seconds + margin);
    if past_wall(low)? || !past_wall(high)? {
        return None;
    }
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if past_wall(middle)? {
            high = middle;
        } else {
            low = middle;
        }
    }
    DateTime::from_timestamp(high, 0)
}

#[cfg(test)]
mod tests {
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::London;

    use super::*;
    use crate::schedule::parse_cron;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The next `n` fires after `after` as `(UTC key, local wall time with offset)`.
    fn fires(expr: &str, tz: Tz, after: &str, n: usize) -> Vec<(String, String)> {
        Schedule::new(parse_cron(expr).unwrap(), tz)
            .next_fires(utc(after), n)
            .iter()
            .map(|fire| (fire.instant_key(), fire.local.to_rfc3339()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(utc, local)| ((*utc).to_owned(), (*local).to_owned()))
            .collect()
    }

    // Europe/London 2026: BST starts Sunday 29 March at 01:00 UTC (01:00 GMT → 02:00 BST) and
    // ends Sunday 25 October at 01:00 UTC (02:00 BST → 01:00 GMT).
    // America/New_York 2026: EDT starts Sunday 8 March at 07:00 UTC (02:00 EST → 03:00 EDT)
    // and ends Sunday 1 November at 06:00 UTC (02:00 EDT → 01:00 EST).

    #[test]
    fn london_spring_forward_fires_once_after_the_gap() {
        // 01:30 does not exist on 29 March: fire at 02:00 BST = 01:00 UTC.
        assert_eq!(
            fires("30 1 * * *", London, "2026-03-28T12:00:00Z", 2),
            pairs(&[
                ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00+01:00"),
                ("2026-03-30T00:30:00Z", "2026-03-30T01:30:00+01:00"),
            ])
        );
        // Both 01:00 and 01:30 are missing: one fire at 02:00 BST. (croner skips the day.)
        assert_eq!(
            fires("0,30 1 * * *", London, "2026-03-28T12:00:00Z", 2),
            pairs(&[
                ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00+01:00"),
                ("2026-03-30T00:00:00Z", "2026-03-30T01:00:00+01:00"),
            ])
        );
        // A missing time that collapses onto a real one fires once: 01:30 → 02:00, plus 02:00.
        assert_eq!(
            fires("0,30 1,2 * * *", London, "2026-03-29T00:00:00Z", 3),
            pairs(&[
                ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00+01:00"),
                ("2026-03-29T01:30:00Z", "2026-03-29T02:30:00+01:00"),
                ("2026-03-30T00:00:00Z", "2026-03-30T01:00:00+01:00"),
            ])
        );
        // Strictly after: from the fire itself, the next is the following day.
        assert_eq!(
            fires("30 1 * * *", London, "2026-03-29T01:00:00Z", 1),
            pairs(&[("2026-03-30T00:30:00Z", "2026-03-30T01:30:00+01:00")])
        );
        assert_eq!(
            fires("30 1 * * *", London, "2026-03-29T00:59:59Z", 1),
            pairs(&[("2026-03-29T01:00:00Z", "2026-03-29T02:00:00+01:00")])
        );
    }

    #[test]
    fn london_fall_back_fires_once() {
        // 01:30 happens at 00:30 UTC (BST) and 01:30 UTC (GMT): only the first fires.
        assert_eq!(
            fires("30 1 * * *", London, "2026-10-24T12:00:00Z", 2),
            pairs(&[
                ("2026-10-25T00:30:00Z", "2026-10-25T01:30:00+01:00"),
                ("2026-10-26T01:30:00Z", "2026-10-26T01:30:00+00:00"),
            ])
        );
        // From between the two passes (01:40 BST = 00:40 UTC), nothing more that day.
        assert_eq!(
            fires("30 1 * * *", London, "2026-10-25T00:40:00Z", 1),
            pairs(&[("2026-10-26T01:30:00Z", "2026-10-26T01:30:00+00:00")])
        );
        // A list of named times fires each once (croner fires 01:00 and 01:30 twice).
        assert_eq!(
            fires("0,30 1 * * *", London, "2026-10-24T12:00:00Z", 3),
            pairs(&[
                ("2026-10-25T00:00:00Z", "2026-10-25T01:00:00+01:00"),
                ("2026-10-25T00:30:00Z", "2026-10-25T01:30:00+01:00"),
                ("2026-10-26T01:00:00Z", "2026-10-26T01:00:00+00:00"),
            ])
        );
        // Named hour, wildcard minutes: the wall-clock rule, each time once.
        assert_eq!(
            fires("*/15 1 * * *", London, "2026-10-24T12:00:00Z", 5),
            pairs(&[
                ("2026-10-25T00:00:00Z", "2026-10-25T01:00:00+01:00"),
                ("2026-10-25T00:15:00Z", "2026-10-25T01:15:00+01:00"),
                ("2026-10-25T00:30:00Z", "2026-10-25T01:30:00+01:00"),
                ("2026-10-25T00:45:00Z", "2026-10-25T01:45:00+01:00"),
                ("2026-10-26T01:00:00Z", "2026-10-26T01:00:00+00:00"),
            ])
        );
    }

    #[test]
    fn every_hour_schedules_follow_real_time() {
        // From 00:00 BST on 25 October: every 30 real minutes through the repeated hour.
        assert_eq!(
            fires("*/30 * * * *", London, "2026-10-24T23:00:00Z", 6),
            pairs(&[
                ("2026-10-24T23:30:00Z", "2026-10-25T00:30:00+01:00"),
                ("2026-10-25T00:00:00Z", "2026-10-25T01:00:00+01:00"),
                ("2026-10-25T00:30:00Z", "2026-10-25T01:30:00+01:00"),
                ("2026-10-25T01:00:00Z", "2026-10-25T01:00:00+00:00"),
                ("2026-10-25T01:30:00Z", "2026-10-25T01:30:00+00:00"),
                ("2026-10-25T02:00:00Z", "2026-10-25T02:00:00+00:00"),
            ])
        );
        // Starting inside the first pass (01:40 BST = 00:40 UTC): the second pass is ahead.
        assert_eq!(
            fires("*/30 * * * *", London, "2026-10-25T00:40:00Z", 3),
            pairs(&[
                ("2026-10-25T01:00:00Z", "2026-10-25T01:00:00+00:00"),
                ("2026-10-25T01:30:00Z", "2026-10-25T01:30:00+00:00"),
                ("2026-10-25T02:00:00Z", "2026-10-25T02:00:00+00:00"),
            ])
        );
        // Hourly fires every real hour, twice at 01:00 wall time.
        assert_eq!(
            fires("0 * * * *", London, "2026-10-24T23:30:00Z", 3),
            pairs(&[
                ("2026-10-25T00:00:00Z", "2026-10-25T01:00:00+01:00"),
                ("2026-10-25T01:00:00Z", "2026-10-25T01:00:00+00:00"),
                ("2026-10-25T02:00:00Z", "2026-10-25T02:00:00+00:00"),
            ])
        );
        // Spring forward: the missing 01:00 and 01:30 GMT are skipped, still 30 real minutes.
        assert_eq!(
            fires("*/30 * * * *", London, "2026-03-29T00:00:00Z", 3),
            pairs(&[
                ("2026-03-29T00:30:00Z", "2026-03-29T00:30:00+00:00"),
                ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00+01:00"),
                ("2026-03-29T01:30:00Z", "2026-03-29T02:30:00+01:00"),
            ])
        );
    }

    #[test]
    fn new_york_transitions() {
        // 02:30 does not exist on 8 March: fire at 03:00 EDT = 07:00 UTC.
        assert_eq!(
            fires("30 2 * * *", New_York, "2026-03-07T12:00:00Z", 2),
            pairs(&[
                ("2026-03-08T07:00:00Z", "2026-03-08T03:00:00-04:00"),
                ("2026-03-09T06:30:00Z", "2026-03-09T02:30:00-04:00"),
            ])
        );
        // 01:30 happens at 05:30 UTC (EDT) and 06:30 UTC (EST) on 1 November: fires once.
        assert_eq!(
            fires("30 1 * * *", New_York, "2026-10-31T12:00:00Z", 2),
            pairs(&[
                ("2026-11-01T05:30:00Z", "2026-11-01T01:30:00-04:00"),
                ("2026-11-02T06:30:00Z", "2026-11-02T01:30:00-05:00"),
            ])
        );
        // Every 20 minutes through the repeated 01:00-02:00.
        assert_eq!(
            fires("*/20 * * * *", New_York, "2026-11-01T05:30:00Z", 6),
            pairs(&[
                ("2026-11-01T05:40:00Z", "2026-11-01T01:40:00-04:00"),
                ("2026-11-01T06:00:00Z", "2026-11-01T01:00:00-05:00"),
                ("2026-11-01T06:20:00Z", "2026-11-01T01:20:00-05:00"),
                ("2026-11-01T06:40:00Z", "2026-11-01T01:40:00-05:00"),
                ("2026-11-01T07:00:00Z", "2026-11-01T02:00:00-05:00"),
                ("2026-11-01T07:20:00Z", "2026-11-01T02:20:00-05:00"),
            ])
        );
    }

    #[test]
    fn time_zone_shifts_the_wall_clock() {
        // 09:00 in New York in winter is 14:00 UTC; in London 09:00 GMT is 09:00 UTC.
        assert_eq!(
            fires("0 9 * * *", New_York, "2026-11-26T16:17:47Z", 1),
            pairs(&[("2026-11-27T14:00:00Z", "2026-11-27T09:00:00-05:00")])
        );
        assert_eq!(
            fires(
                "0 9 * * *",
                chrono_tz::Asia::Kolkata,
                "2026-11-26T16:17:47Z",
                1
            ),
            pairs(&[("2026-11-27T03:30:00Z", "2026-11-27T09:00:00+05:30")])
        );
    }

    #[test]
    fn fires_are_strictly_increasing_and_unique() {
        let zones = [
            chrono_tz::UTC,
            London,
            New_York,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::America::Santiago,
            chrono_tz::Pacific::Apia,
        ];
        let exprs = [
            "*/7 * * * *",
            "30 1 * * *",
            "0,30 0-3 * * *",
            "*/15 1,2 * * *",
            "0 0 * * *",
            "15 */2 * * *",
            "*/45 * * * * *",
        ];
        for tz in zones {
            for expr in exprs {
                let schedule = Schedule::new(parse_cron(expr).unwrap(), tz);
                for after in [
                    "2011-12-29T00:00:00Z",
                    "2026-03-07T00:00:00Z",
                    "2026-10-24T00:00:00Z",
                ] {
                    let after = utc(after);
                    let fires = schedule.next_fires(after, 400);
                    assert_eq!(fires.len(), 400, "{expr} in {tz}");
                    assert!(fires[0].utc > after, "{expr} in {tz}");
                    assert!(
                        fires.windows(2).all(|pair| pair[0].utc < pair[1].utc),
                        "{expr} in {tz}"
                    );
                    // Resuming from any fire continues the same sequence.
                    assert_eq!(schedule.next_fire(fires[199].utc), Some(fires[200]));
                }
            }
        }
    }

    #[test]
    fn latest_fire_is_the_last_missed_one() {
        let schedule = Schedule::new(parse_cron("30 1 * * *").unwrap(), London);
        // Down from 20 March to 30 March 2026 12:00 UTC: the last fire was 30 March 01:30 BST.
        let latest = schedule.latest_fire(utc("2026-03-20T00:00:00Z"), utc("2026-03-30T12:00:00Z"));
        assert_eq!(latest.unwrap().instant_key(), "2026-03-30T00:30:00Z");
        // `until` itself counts, `after` does not.
        let latest = schedule.latest_fire(utc("2026-03-20T00:00:00Z"), utc("2026-03-30T00:30:00Z"));
        assert_eq!(latest.unwrap().instant_key(), "2026-03-30T00:30:00Z");
        assert_eq!(
            schedule.latest_fire(utc("2026-03-30T00:30:00Z"), utc("2026-03-30T12:00:00Z")),
            None
        );
        // A yearly schedule after three years of downtime.
        let yearly = Schedule::new(parse_cron("0 0 1 1 *").unwrap(), chrono_tz::UTC);
        let latest = yearly.latest_fire(utc("2023-06-01T00:00:00Z"), utc("2026-11-26T16:17:47Z"));
        assert_eq!(latest.unwrap().instant_key(), "2026-01-01T00:00:00Z");
        // Every second over a year of downtime is still quick.
        let dense = Schedule::new(parse_cron("* * * * * *").unwrap(), London);
        let latest = dense.latest_fire(utc("2025-11-26T00:00:00Z"), utc("2026-11-26T16:17:47.5Z"));
        assert_eq!(latest.unwrap().instant_key(), "2026-11-26T16:17:47Z");
    }

    #[test]
    fn single_time_jobs_agree_with_croner() {
        // croner calls these "fixed-time" and applies the same two rules.
        for tz in [
            London,
            New_York,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::America::Havana,
        ] {
            for expr in [
                "30 1 * * *",
                "0 2 * * *",
                "30 2 * * *",
                "0 0 * * *",
                "15 1 * * 0",
            ] {
                let spec = parse_cron(expr).unwrap();
                let cron = croner::parser::CronParser::builder()
                    .seconds(croner::parser::Seconds::Optional)
                    .build()
                    .parse(expr)
                    .unwrap();
                let start = utc("2025-12-31T00:00:00Z");
                let ours: Vec<_> = Schedule::new(spec, tz)
                    .next_fires(start, 800)
                    .into_iter()
                    .map(|fire| fire.utc)
                    .collect();
                let theirs: Vec<_> = cron
                    .iter_after(start.with_timezone(&tz))
                    .take(800)
                    .map(|time| time.with_timezone(&Utc))
                    .collect();
                assert_eq!(ours, theirs, "{expr} in {tz}");
            }
        }
    }

    #[test]
    fn instant_key_and_trigger_name() {
        let fire = Schedule::new(parse_cron("30 1 * * *").unwrap(), London)
            .next_fire(utc("2026-03-28T12:00:00.123Z"))
            .unwrap();
        assert_eq!(fire.instant_key(), "2026-03-29T01:00:00Z");
        assert_eq!(fire.trigger_name(), "cron@2026-03-29T01:00:00Z");
    }

    #[test]
    fn sub_second_after_is_strict() {
        let schedule = Schedule::new(parse_cron("* * * * * *").unwrap(), chrono_tz::UTC);
        let next = schedule.next_fire(utc("2026-01-01T00:00:00.500Z")).unwrap();
        assert_eq!(next.instant_key(), "2026-01-01T00:00:01Z");
        let next = schedule.next_fire(utc("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(next.instant_key(), "2026-01-01T00:00:01Z");
    }

    #[test]
    fn far_future_ends_without_panic() {
        let schedule = Schedule::new(parse_cron("0 0 * * *").unwrap(), London);
        assert_eq!(schedule.next_fire(DateTime::<Utc>::MAX_UTC), None);
        // London's offset at chrono's first instant is negative: there is no wall clock there.
        let _ = schedule.next_fire(DateTime::<Utc>::MIN_UTC);
        let utc_schedule = Schedule::new(parse_cron("0 0 * * *").unwrap(), chrono_tz::UTC);
        let first = utc_schedule.next_fire(DateTime::<Utc>::MIN_UTC).unwrap();
        assert!(first.utc > DateTime::<Utc>::MIN_UTC);
    }
}
