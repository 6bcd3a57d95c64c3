//! Date values and relative-date windows of the date operators, computed in UTC from the org's
//! clock. Boundaries follow reference §3.3 (the Sql4Cds interpretation; `today` is UTC
//! midnight, weeks start on Sunday): every window is `[start, end)` or `[start, now]`.

use chrono::{
    DateTime, Datelike, Days, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc,
};

use crate::fetchxml::Operator;

/// How date-times are stored: `YYYY-MM-DDTHH:MM:SSZ`, so text order is time order.
pub(crate) fn format(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A date or date-time literal as an instant. A date is its UTC midnight; a date-time without
/// offset is read as UTC (the local org's users are in UTC).
pub(crate) fn parse(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Some(midnight(date));
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(value) {
        return Some(instant.with_timezone(&Utc));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
    .map(|naive| Utc.from_utc_datetime(&naive))
}

/// The UTC day a date or date-time literal falls on (`on`, `on-or-before`, `on-or-after`).
pub(crate) fn day(value: &str) -> Option<NaiveDate> {
    parse(value).map(|instant| instant.date_naive())
}

pub(crate) fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
}

/// A time window: rows with `start <= value` and `value < end` (or `<= end` when inclusive).
/// `None` bounds are open; `empty` windows match nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) start: Option<DateTime<Utc>>,
    pub(crate) end: Option<DateTime<Utc>>,
    pub(crate) end_inclusive: bool,
    pub(crate) empty: bool,
}

impl Window {
    fn range(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Self {
        Window {
            start,
            end,
            end_inclusive: false,
            empty: false,
        }
    }

    /// `[start, now]`; a start too far back to represent is open.
    fn until_now(start: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        Window {
            start,
            end: Some(now),
            end_inclusive: true,
            empty: false,
        }
    }

    /// `< end`; an end too far back to represent matches nothing.
    fn before(end: Option<DateTime<Utc>>) -> Self {
        Window {
            start: None,
            empty: end.is_none(),
            end,
            end_inclusive: false,
        }
    }
}

/// The window of a relative-date operator (`x` is its count, ≥ 1), or `None` for operators
/// that are not relative-date ones.
pub(crate) fn window(operator: Operator, x: i64, now: DateTime<Utc>) -> Option<Window> {
    let today = midnight(now.date_naive());
    let days = |n: i64| Duration::try_days(n);
    let plus_days = |base: DateTime<Utc>, n: i64| days(n).and_then(|d| base.checked_add_signed(d));
    let months = |n: i64| u32::try_from(n).ok().map(Months::new);
    let minus_months = |n: i64| months(n).and_then(|m| today.checked_sub_months(m));
    let years = |n: i64| n.checked_mul(12).and_then(months);
    let hours_since =
        |hours: i64| Duration::try_hours(hours).and_then(|offset| today.checked_add_signed(offset));
    let hour_now = i64::from(now.hour());
    let week_start = today - Days::new(u64::from(now.weekday().num_days_from_sunday()));
    let month_start = midnight(now.date_naive().with_day(1)?);
    let year_start = midnight(NaiveDate::from_ymd_opt(now.year(), 1, 1)?);
    let add_months = |base: DateTime<Utc>, n: i64| match n {
        n if n >= 0 => months(n).and_then(|m| base.checked_add_months(m)),
        n => months(-n).and_then(|m| base.checked_sub_months(m)),
    };
    let window = match operator {
        Operator::Yesterday => Window::range(plus_days(today, -1), Some(today)),
        Operator::Today => Window::range(Some(today), plus_days(today, 1)),
        Operator::Tomorrow => Window::range(plus_days(today, 1), plus_days(today, 2)),
        Operator::LastSevenDays => Window::until_now(plus_days(today, -7), now),
        Operator::NextSevenDays => Window::range(Some(now), plus_days(today, 8)),
        Operator::LastWeek => Window::range(plus_days(week_start, -7), Some(week_start)),
        Operator::ThisWeek => Window::range(Some(week_start), plus_days(week_start, 7)),
        Operator::NextWeek => Window::range(plus_days(week_start, 7), plus_days(week_start, 14)),
        Operator::LastMonth => Window::range(add_months(month_start, -1), Some(month_start)),
        Operator::ThisMonth => Window::range(Some(month_start), add_months(month_start, 1)),
        Operator::NextMonth => {
            Window::range(add_months(month_start, 1), add_months(month_start, 2))
        }
        Operator::LastYear => Window::range(add_months(year_start, -12), Some(year_start)),
        Operator::ThisYear => Window::range(Some(year_start), add_months(year_start, 12)),
        Operator::NextYear => Window::range(add_months(year_start, 12), add_months(year_start, 24)),
        Operator::LastXHours => Window::until_now(hours_since(hour_now - x), now),
        Operator::LastXDays => Window::until_now(plus_days(today, -x), now),
        Operator::LastXWeeks => {
            Window::until_now(x.checked_mul(-7).and_then(|n| plus_days(today, n)), now)
        }
        Operator::LastXMonths => Window::until_now(minus_months(x), now),
        Operator::LastXYears => {
            Window::until_now(years(x).and_then(|m| today.checked_sub_months(m)), now)
        }
        Operator::NextXHours => Window::range(Some(now), hours_since(hour_now + x + 1)),
        Operator::NextXDays => Window::range(Some(now), plus_days(today, x.saturating_add(1))),
        Operator::NextXWeeks => Window::range(
            Some(now),
            x.checked_mul(7)
                .and_then(|n| plus_days(today, n.saturating_add(1))),
        ),
        Operator::NextXMonths => Window::range(
            Some(now),
            plus_days(today, 1).and_then(|base| add_months(base, x)),
        ),
        Operator::NextXYears => Window::range(
            Some(now),
            plus_days(today, 1)
                .and_then(|base| x.checked_mul(12).and_then(|n| add_months(base, n))),
        ),
        Operator::OlderThanXMinutes => {
            let minutes = i64::from(now.hour()) * 60 + i64::from(now.minute());
            Window::before(
                Duration::try_minutes(minutes - x)
                    .and_then(|offset| today.checked_add_signed(offset)),
            )
        }
        Operator::OlderThanXHours => Window::before(hours_since(hour_now - x)),
        Operator::OlderThanXDays => Window::before(plus_days(today, -x)),
        Operator::OlderThanXWeeks => {
            Window::before(x.checked_mul(-7).and_then(|n| plus_days(today, n)))
        }
        Operator::OlderThanXMonths => Window::before(minus_months(x)),
        Operator::OlderThanXYears => {
            Window::before(years(x).and_then(|m| today.checked_sub_months(m)))
        }
        _ => return None,
    };
    Some(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse(text).unwrap()
    }

    #[test]
    fn parses_literals_as_utc() {
        assert_eq!(format(at("2023-03-15")), "2023-03-15T00:00:00Z");
        assert_eq!(format(at("2023-03-15T10:20:30Z")), "2023-03-15T10:20:30Z");
        assert_eq!(
            format(at("2023-03-15T10:20:30+02:00")),
            "2023-03-15T08:20:30Z"
        );
        assert_eq!(format(at("2023-03-15T10:20")), "2023-03-15T10:20:00Z");
        assert_eq!(
            day("2023-03-15T23:30:00-02:00").unwrap().to_string(),
            "2023-03-16"
        );
        assert!(parse("15/03/2023").is_none());
    }

    #[test]
    fn windows_follow_the_reference_boundaries() {
        // A Wednesday.
        let now = at("2024-05-15T13:45:10Z");
        let show = |operator, x| {
            let window = window(operator, x, now).unwrap();
            (
                window.start.map(format).unwrap_or_default(),
                window.end.map(format).unwrap_or_default(),
                window.end_inclusive,
            )
        };
        let range = |start: &str, end: &str| (start.to_owned(), end.to_owned(), false);
        let until_now = |start: &str| (start.to_owned(), format(now), true);
        assert_eq!(
            show(Operator::Today, 1),
            range("2024-05-15T00:00:00Z", "2024-05-16T00:00:00Z")
        );
        assert_eq!(
            show(Operator::Yesterday, 1),
            range("2024-05-14T00:00:00Z", "2024-05-15T00:00:00Z")
        );
        assert_eq!(
            show(Operator::ThisWeek, 1),
            range("2024-05-12T00:00:00Z", "2024-05-19T00:00:00Z")
        );
        assert_eq!(
            show(Operator::LastWeek, 1),
            range("2024-05-05T00:00:00Z", "2024-05-12T00:00:00Z")
        );
        assert_eq!(
            show(Operator::NextMonth, 1),
            range("2024-06-01T00:00:00Z", "2024-07-01T00:00:00Z")
        );
        assert_eq!(
            show(Operator::LastYear, 1),
            range("2023-01-01T00:00:00Z", "2024-01-01T00:00:00Z")
        );
        assert_eq!(
            show(Operator::LastXDays, 3),
            until_now("2024-05-12T00:00:00Z")
        );
        assert_eq!(
            show(Operator::LastXHours, 2),
            until_now("2024-05-15T11:00:00Z")
        );
        assert_eq!(
            show(Operator::LastXMonths, 2),
            until_now("2024-03-15T00:00:00Z")
        );
        assert_eq!(
            show(Operator::NextXDays, 2),
            (format(now), "2024-05-18T00:00:00Z".to_owned(), false)
        );
        assert_eq!(
            show(Operator::OlderThanXDays, 10),
            ("".to_owned(), "2024-05-05T00:00:00Z".to_owned(), false)
        );
        assert_eq!(
            show(Operator::OlderThanXMinutes, 5),
            ("".to_owned(), "2024-05-15T13:40:00Z".to_owned(), false)
        );
        assert!(
            window(Operator::OlderThanXYears, i64::MAX, now)
                .unwrap()
                .empty
        );
        assert!(window(Operator::Eq, 1, now).is_none());
    }
}
