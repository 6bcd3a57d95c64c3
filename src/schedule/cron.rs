//! Cron expressions: `parse_cron` (located problems per field) and the parsed `CronSpec`,
//! which answers "which wall-clock times match" and "does it ever fire".

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveTime};
use croner::parser::{CronParser, Seconds, Year};
use croner::{Cron, Weekday};

use crate::diagnostics::{Problem, did_you_mean};
use crate::schedule::field::{FieldKind, check_field};

const LAYOUT: &str = "fields are `minute hour day-of-month month day-of-week`, or `second minute hour day-of-month month day-of-week`";
const NICKNAMES: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// A checked cron expression.
///
/// Standard crontab semantics:
/// - 5 fields `minute hour day-of-month month day-of-week`, or 6 with seconds first; years are
///   not supported. Names `JAN`-`DEC` and `SUN`-`SAT` (any case), ranges, steps (`*/15`,
///   `1-30/5`), lists, `L`, `LW` and `15W` in day-of-month, `5L` and `MON#2` in day-of-week,
///   `?` as `*` in the day fields, and the nicknames `@yearly`, `@annually`, `@monthly`,
///   `@weekly`, `@daily`, `@midnight`, `@hourly`. Both 0 and 7 are Sunday.
/// - When both day-of-month and day-of-week are restricted (neither is exactly `*` or `?`), a
///   day matches when EITHER matches, as in vixie cron: `0 0 13 * 5` runs on the 13th and on
///   every Friday. This is croner's behaviour with its `dom_and_dow` option left at its default
///   `false` (the option, or a `+` before day-of-week, would make it AND; fetchflow allows
///   neither). `*/2` counts as restricted.
#[derive(Clone, PartialEq, Eq)]
pub struct CronSpec {
    source: String,
    cron: Cron,
    seconds: Vec<u32>,
    minutes: Vec<u32>,
    hours: Vec<u32>,
    /// Matching days as bits (bit `d` = day `d`), by month (0-11), leap year (0 or 1) and the
    /// weekday of the month's first day (0 = Sunday). Every real month is one of these shapes.
    day_masks: [[[u32; 7]; 2]; 12],
    /// Byte range of the day-of-month through day-of-week fields in `source`.
    days_span: (usize, usize),
}

/// Parses a crontab expression. Problems point at the offending field, by byte offset into
/// `expr`; the help always shows the field layout.
pub fn parse_cron(expr: &str) -> Result<CronSpec, Problem> {
    let fields = split_fields(expr);
    let Some(&(first_offset, first)) = fields.first() else {
        return Err(Problem::error(
            "cron-field-count",
            0,
            expr.len(),
            "cron expression is empty",
        )
        .with_help(format!("{LAYOUT}, e.g. `0 2 * * 1-5`")));
    };
    if first.starts_with('@') {
        return parse_nickname(expr, &fields);
    }
    let kinds: &[FieldKind] = match fields.len() {
        5 => &[
            FieldKind::Minute,
            FieldKind::Hour,
            FieldKind::DayOfMonth,
            FieldKind::Month,
            FieldKind::DayOfWeek,
        ],
        6 => &[
            FieldKind::Second,
            FieldKind::Minute,
            FieldKind::Hour,
            FieldKind::DayOfMonth,
            FieldKind::Month,
            FieldKind::DayOfWeek,
        ],
        7 => {
            let (offset, year) = fields[6];
            return Err(Problem::error(
                "cron-field-count",
                offset,
                year.len(),
                format!(
                    "cron expression has 7 fields, but a year field (`{year}`) is not supported"
                ),
            )
            .with_help(format!("remove the year; {LAYOUT}")));
        }
        count => {
            let (last_offset, last) = fields[count - 1];
            return Err(Problem::error(
                "cron-field-count",
                first_offset,
                last_offset + last.len() - first_offset,
                format!(
                    "cron expression has {count} field{}, expected 5 (or 6 with seconds first)",
                    if count == 1 { "" } else { "s" }
                ),
            )
            .with_help(format!("{LAYOUT}, e.g. `0 2 * * 1-5`")));
        }
    };
    let mut numeric = Vec::with_capacity(6);
    if fields.len() == 5 {
        numeric.push("0".to_owned());
    }
    for (&(offset, text), &kind) in fields.iter().zip(kinds) {
        let checked = check_field(kind, text).map_err(|error| {
            Problem::error(error.code, offset, text.len(), error.message)
                .with_help(format!("{}; {LAYOUT}", error.help))
        })?;
        numeric.push(checked);
    }
    let (dom_offset, _) = fields[fields.len() - 3];
    let (dow_offset, dow) = fields[fields.len() - 1];
    CronSpec::build(
        expr,
        &numeric.join(" "),
        (dom_offset, dow_offset + dow.len()),
    )
}

fn parse_nickname(expr: &str, fields: &[(usize, &str)]) -> Result<CronSpec, Problem> {
    let (offset, name) = fields[0];
    if let Some(&(extra_offset, _)) = fields.get(1) {
        let (last_offset, last) = fields[fields.len() - 1];
        return Err(Problem::error(
            "cron-field-count",
            extra_offset,
            last_offset + last.len() - extra_offset,
            format!("`{name}` stands alone, but fields follow it"),
        )
        .with_help(format!(
            "write either `{name}` or a cron expression; {LAYOUT}"
        )));
    }
    let lowered = name.to_ascii_lowercase();
    if let Some((_, pattern)) = NICKNAMES.iter().find(|(nick, _)| *nick == lowered) {
        return CronSpec::build(expr, &format!("0 {pattern}"), (offset, offset + name.len()));
    }
    let help = if lowered == "@reboot" {
        "fetchflow schedules run on the clock; use a manual run or a webhook to run at start-up"
            .to_owned()
    } else {
        let known = NICKNAMES.map(|(nick, _)| nick).join(", ");
        match did_you_mean(name, NICKNAMES.iter().map(|(nick, _)| *nick)) {
            Some(nick) => format!("did you mean `{nick}`? nicknames are {known}"),
            None => format!("nicknames are {known}; {LAYOUT}"),
        }
    };
    Err(Problem::error(
        "cron-syntax",
        offset,
        name.len(),
        format!("unknown cron nickname `{name}`"),
    )
    .with_help(help))
}

/// Whitespace-separated fields with their byte offsets.
fn split_fields(expr: &str) -> Vec<(usize, &str)> {
    let mut fields = Vec::new();
    let mut start = None;
    for (index, ch) in expr.char_indices() {
        match (ch.is_whitespace(), start) {
            (true, Some(from)) => {
                fields.push((from, &expr[from..index]));
                start = None;
            }
            (false, None) => start = Some(index),
            _ => {}
        }
    }
    if let Some(from) = start {
        fields.push((from, &expr[from..]));
    }
    fields
}

impl CronSpec {
    /// Builds the spec from croner's parse of the numeric six-field form.
    fn build(source: &str, numeric: &str, days_span: (usize, usize)) -> Result<Self, Problem> {
        let parser = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .dom_and_dow(false)
            .build();
        // The fields were checked above, so croner refusing them is a gap in those checks;
        // report it on the whole expression rather than failing silently.
        let cron = parser.parse(numeric).map_err(|error| {
            let reason = error.to_string();
            Problem::error(
                "cron-syntax",
                0,
                source.len(),
                format!(
                    "cron expression is not valid: {}",
                    reason.trim_end_matches('.').to_lowercase()
                ),
            )
            .with_help(LAYOUT)
        })?;
        let values = |component: &croner::CronComponent| {
            component
                .values()
                .into_iter()
                .map(u32::from)
                .collect::<Vec<_>>()
        };
        let mut spec = CronSpec {
            source: source.to_owned(),
            seconds: values(&cron.pattern.seconds),
            minutes: values(&cron.pattern.minutes),
            hours: values(&cron.pattern.hours),
            cron,
            day_masks: [[[0; 7]; 2]; 12],
            days_span,
        };
        if spec.seconds.is_empty() || spec.minutes.is_empty() || spec.hours.is_empty() {
            return Err(Problem::error(
                "cron-syntax",
                0,
                source.len(),
                "cron expression selects no time of day",
            )
            .with_help(LAYOUT));
        }
        spec.day_masks = spec.compute_day_masks();
        Ok(spec)
    }

    fn compute_day_masks(&self) -> [[[u32; 7]; 2]; 12] {
        let pattern = &self.cron.pattern;
        let mut masks = [[[0; 7]; 2]; 12];
        for (month, by_leap) in (1..=12u32).zip(masks.iter_mut()) {
            if !pattern.month_match(month).unwrap_or(false) {
                continue;
            }
            // 2023 is a common year and 2024 a leap year; only the month length matters.
            for (year, by_weekday) in [2023, 2024].into_iter().zip(by_leap.iter_mut()) {
                let length = days_in_month(year, month);
                for (first, mask) in (0..7u32).zip(by_weekday.iter_mut()) {
                    for day in 1..=length {
                        let weekday = Weekday::from_days_from_sunday(first + day - 1);
                        if pattern
                            .day_match(year, month, day, weekday)
                            .unwrap_or(false)
                        {
                            *mask |= 1 << day;
                        }
                    }
                }
            }
        }
        masks
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// An English description, e.g. for plan dumps.
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    /// Whether the hour field selects every hour (`*`, `*/1`, `0-23`). Such a schedule follows
    /// real time through daylight-saving changes; see `Schedule`.
    pub fn every_hour(&self) -> bool {
        self.hours.len() == 24
    }

    /// Whether no date ever matches, e.g. `0 0 30 2 *` or `0 0 31 4 *`.
    ///
    /// Exact and O(1): which days of a month match depends only on the month, its length and
    /// the weekday of its first day, so the 168 possible month shapes are checked once at parse
    /// time. All of them occur in every 400-year Gregorian cycle (each month starts on every
    /// weekday, in leap and in common years), so a shape that matches is a date that comes.
    /// A bounded search (e.g. 28 years) would be slower and not enough: the calendar repeats
    /// every 28 years only between century years, and `0 0 * 2 1#5` (a fifth Monday in
    /// February) can be 40 years apart across 2100.
    pub fn never_fires(&self) -> bool {
        self.day_masks
            .iter()
            .flatten()
            .flatten()
            .all(|mask| *mask == 0)
    }

    /// The `cron-never-fires` warning, located on the day and month fields, when no date
    /// ever matches.
    pub fn never_fires_warning(&self) -> Option<Problem> {
        if !self.never_fires() {
            return None;
        }
        let (start, end) = self.days_span;
        Some(
            Problem::warning(
                "cron-never-fires",
                start,
                end - start,
                format!("cron expression `{}` never fires: no date matches its day and month fields", self.source.trim()),
            )
            .with_help("check the day-of-month against the month's length, e.g. there is no 30 February or 31 April"),
        )
    }

    /// The matching days of one month, as bits (bit `d` = day `d`).
    pub(crate) fn days_in(&self, year: i32, month: u32) -> u32 {
        let Some(first) = NaiveDate::from_ymd_opt(year, month, 1) else {
            return 0;
        };
        let leap = usize::from(days_in_month(year, 2) == 29);
        let month_index = usize::try_from(month - 1).unwrap_or(0);
        let weekday = usize::try_from(first.weekday().num_days_from_sunday()).unwrap_or(0);
        self.day_masks[month_index][leap][weekday]
    }

    /// The first matching time of day at or after `from`, on a matching date.
    pub(crate) fn first_time_from(&self, from: NaiveTime) -> Option<NaiveTime> {
        use chrono::Timelike;
        let (hour, minute, second) = (from.hour(), from.minute(), from.second());
        let at_or_after = |values: &[u32], from: u32| {
            let index = values.partition_point(|value| *value < from);
            values.get(index).copied()
        };
        for h in self.hours.iter().copied().filter(|h| *h >= hour) {
            let minute_from = if h == hour { minute } else { 0 };
            for m in self.minutes.iter().copied().filter(|m| *m >= minute_from) {
                let second_from = if h == hour && m == minute { second } else { 0 };
                if let Some(s) = at_or_after(&self.seconds, second_from) {
                    return NaiveTime::from_hms_opt(h, m, s);
                }
            }
        }
        None
    }
}

/// Only the expression: croner's parsed form holds a 5000-entry year table.
impl fmt::Debug for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronSpec").field(&self.source).finish()
    }
}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if NaiveDate::from_ymd_opt(year, 2, 29).is_some() => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::diagnostics::Severity;
    use crate::schedule::Schedule;

    /// Parses `expr` and expects a problem: (code, offset, len, message).
    fn problem(expr: &str) -> (&'static str, usize, usize, String) {
        let problem = parse_cron(expr).expect_err(expr);
        assert_eq!(problem.severity, Severity::Error);
        let help = problem.help.clone().unwrap_or_default();
        assert!(
            help.contains("minute hour day-of-month month day-of-week"),
            "{help}"
        );
        (problem.code, problem.offset, problem.len, problem.message)
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The next `n` fires in UTC after `after`, as RFC 3339 keys.
    fn fires(expr: &str, after: &str, n: usize) -> Vec<String> {
        let schedule = Schedule::new(parse_cron(expr).unwrap(), chrono_tz::UTC);
        schedule
            .next_fires(utc(after), n)
            .iter()
            .map(|fire| fire.instant_key())
            .collect()
    }

    /// (expression, code, offset, len, message)
    type FieldCase = (&'static str, &'static str, usize, usize, &'static str);

    #[test]
    fn field_errors_point_at_the_field() {
        let cases: &[FieldCase] = &[
            (
                "61 * * * *",
                "cron-range",
                0,
                2,
                "minute field `61` is out of range 0-59",
            ),
            (
                "0 24 * * *",
                "cron-range",
                2,
                2,
                "hour field `24` is out of range 0-23",
            ),
            (
                "0 0 32 * *",
                "cron-range",
                4,
                2,
                "day-of-month field `32` is out of range 1-31",
            ),
            (
                "0 0 0 * *",
                "cron-range",
                4,
                1,
                "day-of-month field `0` is out of range 1-31",
            ),
            (
                "0 0 * 13 *",
                "cron-range",
                6,
                2,
                "month field `13` is out of range 1-12",
            ),
            (
                "0 0 * * 8",
                "cron-range",
                8,
                1,
                "day-of-week field `8` is out of range 0-7",
            ),
            (
                "0  0 * *  MON#6",
                "cron-range",
                10,
                5,
                "day-of-week field `MON#6` has `#6`, but # must be 1-5",
            ),
            (
                "0 0 * * MON#0",
                "cron-range",
                8,
                5,
                "day-of-week field `MON#0` has `#0`, but # must be 1-5",
            ),
            (
                "5,61 * * * *",
                "cron-range",
                0,
                4,
                "minute field `5,61`: `61` is out of range 0-59",
            ),
            (
                "70-80 * * * *",
                "cron-range",
                0,
                5,
                "minute field `70-80`: `70` is out of range 0-59",
            ),
            (
                "*/0 * * * *",
                "cron-range",
                0,
                3,
                "minute field `*/0` has step `0`, which is out of range 1-59",
            ),
            (
                "*/60 * * * *",
                "cron-range",
                0,
                4,
                "minute field `*/60` has step `60`, which is out of range 1-59",
            ),
            (
                "0 0 * * FRI-MON",
                "cron-range",
                8,
                7,
                "day-of-week field `FRI-MON` runs backwards",
            ),
            (
                "99999999999 * * * *",
                "cron-range",
                0,
                11,
                "minute field `99999999999` is out of range 0-59",
            ),
            (
                "MON * * * *",
                "cron-syntax",
                0,
                3,
                "minute field `MON` is not a number",
            ),
            (
                "0 0 * JANUARY *",
                "cron-syntax",
                6,
                7,
                "month field `JANUARY` is not a number or a name",
            ),
            (
                "0 0 * * MONDAY",
                "cron-syntax",
                8,
                6,
                "day-of-week field `MONDAY` is not a number or a name",
            ),
            (
                "0 0 * MON *",
                "cron-syntax",
                6,
                3,
                "month field `MON` is not a number or a name",
            ),
            (
                "0 0 * * +1",
                "cron-syntax",
                8,
                2,
                "day-of-week field `+1` has an unexpected character `+`",
            ),
            (
                "0 0 1,,2 * *",
                "cron-syntax",
                4,
                4,
                "day-of-month field `1,,2` has an empty list item",
            ),
            (
                "5/10 * * * *",
                "cron-syntax",
                0,
                4,
                "minute field `5/10` needs `*` or a range before the `/`",
            ),
            (
                "*/x * * * *",
                "cron-syntax",
                0,
                3,
                "minute field `*/x` has step `x`, which is not a number",
            ),
            (
                "? * * * *",
                "cron-syntax",
                0,
                1,
                "minute field `?` uses `?`, which only day-of-month and day-of-week accept",
            ),
            (
                "0 0 * * L",
                "cron-syntax",
                8,
                1,
                "day-of-week field `L` uses `L` without a weekday",
            ),
            (
                "0 0 L-2 * *",
                "cron-syntax",
                4,
                3,
                "day-of-month field `L-2` is not supported: only `L` and `LW` start with L",
            ),
            (
                "0 0 1W-5 * *",
                "cron-syntax",
                4,
                4,
                "day-of-month field `1W-5`: `1W` is not a number",
            ),
            // Byte offsets: U+3000 (3 bytes) is whitespace and separates fields.
            (
                "0\u{3000}61 * * *",
                "cron-range",
                4,
                2,
                "hour field `61` is out of range 0-23",
            ),
            (
                "0 0 * * é",
                "cron-syntax",
                8,
                2,
                "day-of-week field `é` has an unexpected character `é`",
            ),
        ];
        for (expr, code, offset, len, message) in cases {
            let got = problem(expr);
            assert_eq!(got, (*code, *offset, *len, (*message).to_owned()), "{expr}");
            assert_eq!(
                &expr[*offset..*offset + *len],
                expr[*offset..].split_whitespace().next().unwrap()
            );
        }
    }

    #[test]
    fn field_count_errors() {
        assert_eq!(
            problem(""),
            (
                "cron-field-count",
                0,
                0,
                "cron expression is empty".to_owned()
            )
        );
        assert_eq!(
            problem("  0 2 * *"),
            (
                "cron-field-count",
                2,
                7,
                "cron expression has 4 fields, expected 5 (or 6 with seconds first)".to_owned()
            )
        );
        assert_eq!(
            problem("0 0 0 1 1 * 2027"),
            (
                "cron-field-count",
                12,
                4,
                "cron expression has 7 fields, but a year field (`2027`) is not supported"
                    .to_owned()
            )
        );
        assert_eq!(problem("0 0 0 1 1 * 2027 x").0, "cron-field-count");
        assert_eq!(
            problem("@daily 0"),
            (
                "cron-field-count",
                7,
                1,
                "`@daily` stands alone, but fields follow it".to_owned()
            )
        );
        let typo = parse_cron("@daly").unwrap_err();
        assert_eq!((typo.code, typo.offset, typo.len), ("cron-syntax", 0, 5));
        assert!(typo.help.unwrap().contains("did you mean `@daily`?"));
        assert_eq!(parse_cron("@reboot").unwrap_err().code, "cron-syntax");
    }

    #[test]
    fn help_names_what_the_field_takes() {
        let help = parse_cron("0 0 * * MONN").unwrap_err().help.unwrap();
        assert!(help.starts_with("did you mean `MON`?"), "{help}");
        let help = parse_cron("0 0 * FRI *").unwrap_err().help.unwrap();
        assert!(help.starts_with("`FRI` is a day-of-week name"), "{help}");
    }

    #[test]
    fn five_and_six_field_forms() {
        // Thursday 26 November 2026, 16:17:47 UTC.
        let now = "2026-11-26T16:17:47Z";
        // Weekdays at 02:00: Fri 27, Mon 30 Nov, Tue 1 Dec.
        assert_eq!(
            fires("0 2 * * 1-5", now, 3),
            [
                "2026-11-27T02:00:00Z",
                "2026-11-30T02:00:00Z",
                "2026-12-01T02:00:00Z"
            ]
        );
        // Six fields: seconds first.
        assert_eq!(
            fires("*/20 * * * * *", now, 3),
            [
                "2026-11-26T16:18:00Z",
                "2026-11-26T16:18:20Z",
                "2026-11-26T16:18:40Z"
            ]
        );
        assert_eq!(fires("30 15 10 * * *", now, 1), ["2026-11-27T10:15:30Z"]);
        // Ranges with steps and lists.
        assert_eq!(
            fires("0 8-18/5,23 * * *", now, 4),
            [
                "2026-11-26T18:00:00Z",
                "2026-11-26T23:00:00Z",
                "2026-11-27T08:00:00Z",
                "2026-11-27T13:00:00Z"
            ]
        );
        // Nicknames.
        assert_eq!(fires("@daily", now, 1), ["2026-11-27T00:00:00Z"]);
        assert_eq!(fires("@HOURLY", now, 1), ["2026-11-26T17:00:00Z"]);
        assert_eq!(fires("@weekly", now, 1), ["2026-11-29T00:00:00Z"]);
        assert_eq!(fires("@monthly", now, 1), ["2026-12-01T00:00:00Z"]);
        assert_eq!(fires("@yearly", now, 1), ["2027-01-01T00:00:00Z"]);
        // Leading and trailing whitespace and tabs.
        assert_eq!(fires(" 0\t2 * * 1-5 ", now, 1), ["2026-11-27T02:00:00Z"]);
    }

    #[test]
    fn names_are_case_insensitive() {
        let now = "2026-11-26T16:17:47Z";
        // 1 January 2027 is a Friday, so the first Monday in January is the 4th.
        let expected = ["2027-01-04T09:00:00Z", "2027-01-11T09:00:00Z"];
        assert_eq!(fires("0 9 * JAN,jul mon", now, 2), expected);
        assert_eq!(fires("0 9 * 1,7 1", now, 2), expected);
        assert_eq!(fires("0 9 * Jan-Jan Mon-Mon", now, 2), expected);
        // SAT-SUN spells 6-7, which is Saturday and Sunday.
        assert_eq!(
            fires("0 0 * * SAT-SUN", now, 2),
            ["2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z"]
        );
    }

    #[test]
    fn zero_and_seven_are_sunday() {
        let now = "2026-11-26T16:17:47Z";
        let sundays = ["2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z"];
        for expr in [
            "0 0 * * 0",
            "0 0 * * 7",
            "0 0 * * SUN",
            "0 0 * * sun",
            "0 0 * * 0,7",
        ] {
            assert_eq!(fires(expr, now, 2), sundays, "{expr}");
        }
        // 7#1 is the first Sunday: 6 December 2026; 7L the last: 29 November 2026.
        assert_eq!(fires("0 0 * * 7#1", now, 1), ["2026-12-06T00:00:00Z"]);
        assert_eq!(fires("0 0 * * 7L", now, 1), ["2026-11-29T00:00:00Z"]);
    }

    #[test]
    fn last_weekday_and_nth() {
        // Last day of February: 28 in 2027, 29 in 2028.
        assert_eq!(
            fires("0 0 L 2 *", "2027-01-01T00:00:00Z", 2),
            ["2027-02-28T00:00:00Z", "2028-02-29T00:00:00Z"]
        );
        // Last weekday: 28 Feb 2026 is a Saturday, so Friday 27; 31 Mar 2026 is a Tuesday.
        assert_eq!(
            fires("0 0 LW * *", "2026-02-01T00:00:00Z", 2),
            ["2026-02-27T00:00:00Z", "2026-03-31T00:00:00Z"]
        );
        // Nearest weekday to the 15th: 15 Mar 2026 is a Sunday (→ Monday 16),
        // 15 Aug 2026 a Saturday (→ Friday 14). 1 Aug 2026 is a Saturday and W does not leave
        // the month, so 1W is Monday 3 August.
        assert_eq!(
            fires("0 0 15W 3 *", "2026-01-01T00:00:00Z", 1),
            ["2026-03-16T00:00:00Z"]
        );
        assert_eq!(
            fires("0 0 15w 8 *", "2026-01-01T00:00:00Z", 1),
            ["2026-08-14T00:00:00Z"]
        );
        assert_eq!(
            fires("0 0 1W 8 *", "2026-01-01T00:00:00Z", 1),
            ["2026-08-03T00:00:00Z"]
        );
        // Last Friday of November 2026 is the 27th (30 Nov is a Monday).
        assert_eq!(
            fires("0 0 * * 5L", "2026-11-26T00:00:00Z", 1),
            ["2026-11-27T00:00:00Z"]
        );
        assert_eq!(
            fires("0 0 * * FRIL", "2026-11-26T00:00:00Z", 1),
            ["2026-11-27T00:00:00Z"]
        );
        // 1 Dec 2026 is a Tuesday: Mondays are 7 and 14, so MON#2 is the 14th.
        assert_eq!(
            fires("0 0 * * MON#2", "2026-11-26T00:00:00Z", 1),
            ["2026-12-14T00:00:00Z"]
        );
        // November 2026 has five Mondays (2, 9, 16, 23, 30).
        assert_eq!(
            fires("0 0 * * 1#5", "2026-11-26T00:00:00Z", 1),
            ["2026-11-30T00:00:00Z"]
        );
        // A fifth Monday in February needs 29 February on a Monday: 2016, then 2044.
        assert_eq!(
            fires("0 0 * 2 1#5", "2026-11-26T00:00:00Z", 1),
            ["2044-02-29T00:00:00Z"]
        );
    }

    #[test]
    fn restricted_day_fields_match_either() {
        // The 13th OR any Friday (vixie cron; croner's `dom_and_dow` = false).
        assert_eq!(
            fires("0 0 13 * 5", "2026-11-26T00:00:00Z", 5),
            [
                "2026-11-27T00:00:00Z",
                "2026-12-04T00:00:00Z",
                "2026-12-11T00:00:00Z",
                "2026-12-13T00:00:00Z",
                "2026-12-18T00:00:00Z"
            ]
        );
        // `?` is `*`: only Fridays.
        assert_eq!(
            fires("0 0 ? * 5", "2026-11-26T00:00:00Z", 2),
            ["2026-11-27T00:00:00Z", "2026-12-04T00:00:00Z"]
        );
    }

    #[test]
    fn never_fires_is_detected_quickly() {
        for expr in [
            "0 0 30 2 *",
            "0 0 31 4 *",
            "0 0 31 2,4,6,9,11 *",
            "0 0 30,31 FEB *",
            "0 0 31W 4 *",
        ] {
            let spec = parse_cron(expr).unwrap();
            let schedule = Schedule::new(spec.clone(), chrono_tz::Europe::London);
            let started = Instant::now();
            assert!(spec.never_fires(), "{expr}");
            assert_eq!(schedule.next_fire(utc("2026-01-01T00:00:00Z")), None);
            assert!(
                started.elapsed() < Duration::from_millis(5),
                "{expr}: {:?}",
                started.elapsed()
            );
            let warning = schedule.never_fires_warning().unwrap();
            assert_eq!(
                (warning.code, warning.severity),
                ("cron-never-fires", Severity::Warning)
            );
            assert_eq!(
                &expr[warning.offset..warning.offset + warning.len],
                &expr[4..]
            );
        }
        for expr in [
            "0 0 29 2 *",
            "0 0 31 * *",
            "0 0 * 2 1#5",
            "0 0 30 2 1",
            "0 0 L 2 *",
        ] {
            let spec = parse_cron(expr).unwrap();
            assert!(!spec.never_fires(), "{expr}");
            assert_eq!(spec.never_fires_warning(), None);
        }
    }

    #[test]
    fn every_month_shape_occurs_in_every_gregorian_cycle() {
        // The premise of `never_fires`: all (month, leap, first weekday) shapes occur.
        let mut seen = [[[false; 7]; 2]; 12];
        for year in 2000..2400 {
            for month in 1..=12u32 {
                let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap();
                let leap = usize::from(days_in_month(year, 2) == 29);
                let weekday = first.weekday().num_days_from_sunday() as usize;
                seen[month as usize - 1][leap][weekday] = true;
            }
        }
        assert!(seen.iter().flatten().flatten().all(|seen| *seen));
    }

    /// A small deterministic generator for the mutation test.
    fn next_random(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// A random expression built field by field, mostly valid.
    fn generated(state: &mut u64) -> String {
        let limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
        let mut fields = Vec::new();
        if next_random(state).is_multiple_of(4) {
            fields.push(format!("*/{}", next_random(state) % 30 + 1));
        }
        for (index, (min, max)) in limits.into_iter().enumerate() {
            let span = max - min + 1;
            // One past the maximum now and then, to exercise the range checks.
            let mut value = || min + next_random(state) % (span + 1);
            let (a, b, c) = (value(), value(), value());
            let (low, high) = (a.min(b), a.max(b));
            let field = match (index, c % 12) {
                (_, 0..=2) => "*".to_owned(),
                (_, 3 | 4) => a.to_string(),
                (_, 5) => format!("{low}-{high}"),
                (_, 6) => format!("*/{}", c % span + 1),
                (_, 7) => format!("{low}-{high}/{}", c % 5 + 1),
                (_, 8) => format!("{a},{b}"),
                (2, 9) => "L".to_owned(),
                (2, 10) => "LW".to_owned(),
                (2, _) => format!("{a}W"),
                (4, 9) => format!("{a}#{}", c % 6 + 1),
                (4, _) => format!("{a}L"),
                _ => a.to_string(),
            };
            fields.push(field);
        }
        fields.join(" ")
    }

    #[test]
    fn mutated_expressions_never_panic() {
        let seeds = [
            "0 2 * * 1-5",
            "*/15 * * * *",
            "0 0 L * *",
            "0 0 LW * *",
            "0 0 15W * *",
            "0 0 * * MON#2",
            "0 0 * * 5L",
            "0 30 9-17/2 * JAN-MAR MON-FRI",
            "@daily",
            "0 0 13 * 5",
            "1,2,3 4-5 6/7 8 ?",
        ];
        let alphabet: Vec<char> = "0123456789*/,-#?LWlw @ \tJANMONFRISUNDEC+xé\u{3000}7"
            .chars()
            .collect();
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let after = utc("2026-03-01T00:00:00Z");
        let mut accepted = 0;
        for round in 0..20_000_usize {
            let expr = if round.is_multiple_of(2) {
                generated(&mut state)
            } else {
                let seed = seeds[round % seeds.len()];
                let mut chars: Vec<char> = seed.chars().collect();
                for _ in 0..=(next_random(&mut state) % 4) {
                    let pick = alphabet[(next_random(&mut state) % alphabet.len() as u64) as usize];
                    let at = (next_random(&mut state) % (chars.len() as u64 + 1)) as usize;
                    match next_random(&mut state) % 3 {
                        0 => chars.insert(at, pick),
                        1 if at < chars.len() => {
                            chars.remove(at);
                        }
                        _ if at < chars.len() => chars[at] = pick,
                        _ => chars.push(pick),
                    }
                }
                chars.into_iter().collect()
            };
            match parse_cron(&expr) {
                Ok(spec) => {
                    accepted += 1;
                    let _ = spec.describe();
                    let schedule = Schedule::new(spec.clone(), chrono_tz::America::New_York);
                    let next = schedule.next_fires(after, 3);
                    assert_eq!(next.is_empty(), spec.never_fires(), "{expr}");
                    assert!(
                        next.windows(2).all(|pair| pair[0].utc < pair[1].utc),
                        "{expr}"
                    );
                    // Without daylight saving, croner's own search must agree.
                    let in_utc = Schedule::new(spec.clone(), chrono_tz::UTC).next_fire(after);
                    if let Ok(theirs) = spec.cron.find_next_occurrence(&after, false) {
                        assert_eq!(in_utc.map(|fire| fire.utc), Some(theirs), "{expr}");
                    }
                }
                Err(problem) => {
                    assert!(problem.offset + problem.len <= expr.len(), "{expr}");
                    assert!(expr.is_char_boundary(problem.offset), "{expr}");
                    assert!(
                        expr.is_char_boundary(problem.offset + problem.len),
                        "{expr}"
                    );
                    assert!(
                        !problem.message.starts_with("cron expression is not valid"),
                        "croner refused what the field checks passed: {expr}: {}",
                        problem.message
                    );
                }
            }
        }
        // Enough mutations stay valid for the comparison with croner to mean something.
        assert!(accepted > 3_000, "only {accepted} mutations parsed");
    }
}
