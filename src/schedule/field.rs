//! One crontab field: its grammar, its range, and a located, field-level error when it is wrong.
//!
//! croner's own errors carry no position and accept a few things a crontab user would not
//! expect (a weekday name in the minute field, `+` in the day-of-week field), so every field is
//! checked here first. A field that passes is rewritten to plain numbers for croner.

use crate::diagnostics::did_you_mean;

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Which crontab field a piece of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl FieldKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            FieldKind::Second => "second",
            FieldKind::Minute => "minute",
            FieldKind::Hour => "hour",
            FieldKind::DayOfMonth => "day-of-month",
            FieldKind::Month => "month",
            FieldKind::DayOfWeek => "day-of-week",
        }
    }

    /// The values the field accepts; day-of-week takes 7 as a second Sunday.
    fn bounds(self) -> (u32, u32) {
        match self {
            FieldKind::Second | FieldKind::Minute => (0, 59),
            FieldKind::Hour => (0, 23),
            FieldKind::DayOfMonth => (1, 31),
            FieldKind::Month => (1, 12),
            FieldKind::DayOfWeek => (0, 7),
        }
    }

    /// The largest step that still selects more than the first value of the field.
    fn max_step(self) -> u32 {
        match self {
            FieldKind::DayOfWeek => 6,
            kind => {
                let (min, max) = kind.bounds();
                max - min
            }
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            FieldKind::Month => &MONTH_NAMES,
            FieldKind::DayOfWeek => &WEEKDAY_NAMES,
            _ => &[],
        }
    }

    /// The number a name stands for: months count from 1, weekdays from Sunday = 0.
    fn name_value(self, name: &str) -> Option<u32> {
        let position = self
            .names()
            .iter()
            .position(|candidate| *candidate == name)?;
        let position = u32::try_from(position).ok()?;
        Some(if self == FieldKind::Month {
            position + 1
        } else {
            position
        })
    }

    fn is_day(self) -> bool {
        matches!(self, FieldKind::DayOfMonth | FieldKind::DayOfWeek)
    }

    /// What the field accepts, for help texts.
    fn accepts(self) -> String {
        let (min, max) = self.bounds();
        match self {
            FieldKind::DayOfMonth => {
                format!(
                    "day-of-month takes {min}-{max}, `L` (last day), `LW` or `15W` (nearest weekday)"
                )
            }
            FieldKind::Month => format!("month takes {min}-{max} or JAN-DEC"),
            FieldKind::DayOfWeek => format!(
                "day-of-week takes {min}-{max} (0 and 7 are Sunday) or SUN-SAT, `5L` (last Friday) or `MON#2` (second Monday)"
            ),
            kind => format!("{} takes {min}-{max}", kind.label()),
        }
    }
}

/// Why a field is wrong. The caller knows where the field is and adds the field layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) help: String,
}

/// Checks one field and returns it in croner's numeric spelling (names replaced by numbers,
/// upper case, `?` as `*`).
pub(crate) fn check_field(kind: FieldKind, text: &str) -> Result<String, FieldError> {
    let field = Field { kind, text };
    if let Some(bad) = text
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || "*/,-#?".contains(*ch)))
    {
        return Err(field.syntax(
            text,
            format!("has an unexpected character `{bad}`"),
            kind.accepts(),
        ));
    }
    let items = text
        .split(',')
        .map(|item| field.check_item(item))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(items.join(","))
}

struct Field<'a> {
    kind: FieldKind,
    text: &'a str,
}

impl Field<'_> {
    fn check_item(&self, item: &str) -> Result<String, FieldError> {
        let kind = self.kind;
        if item.is_empty() {
            return Err(self.syntax(
                self.text,
                "has an empty list item".to_owned(),
                "separate values with single commas, e.g. `1,15,30`".to_owned(),
            ));
        }
        if item == "*" {
            return Ok("*".to_owned());
        }
        if item == "?" {
            return if kind.is_day() {
                Ok("*".to_owned())
            } else {
                Err(self.syntax(
                    item,
                    "uses `?`, which only day-of-month and day-of-week accept".to_owned(),
                    "use `*` for every value".to_owned(),
                ))
            };
        }
        if let Some((base, step)) = item.split_once('/') {
            return self.check_step(item, base, step);
        }
        if kind == FieldKind::DayOfMonth {
            if item.eq_ignore_ascii_case("L") || item.eq_ignore_ascii_case("LW") {
                return Ok(item.to_ascii_uppercase());
            }
            if let Some(day) = item.strip_suffix(['W', 'w']) {
                let value = self.value(day)?;
                return Ok(format!("{value}W"));
            }
            if item.starts_with(['L', 'l']) {
                return Err(self.syntax(
                    item,
                    "is not supported: only `L` and `LW` start with L".to_owned(),
                    kind.accepts(),
                ));
            }
        }
        if kind == FieldKind::DayOfWeek {
            if let Some((day, nth)) = item.split_once('#') {
                let value = self.value(day)?;
                return match nth.parse::<u32>() {
                    Ok(n @ 1..=5) => Ok(format!("{value}#{n}")),
                    _ => Err(FieldError {
                        code: "cron-range",
                        message: self.message(item, &format!("has `#{nth}`, but # must be 1-5")),
                        help: "`MON#2` is the second Monday of the month; a month has at most 5 of each weekday".to_owned(),
                    }),
                };
            }
            if item.eq_ignore_ascii_case("L") {
                return Err(self.syntax(
                    item,
                    "uses `L` without a weekday".to_owned(),
                    "write the weekday before it: `5L` or `FRIL` is the last Friday of the month"
                        .to_owned(),
                ));
            }
            if let Some(day) = item.strip_suffix(['L', 'l']) {
                let value = self.value(day)?;
                return Ok(format!("{value}L"));
            }
        }
        if let Some((start, end)) = item.split_once('-') {
            let (start, end) = self.range(item, start, end)?;
            return Ok(format!("{start}-{end}"));
        }
        Ok(self.value(item)?.to_string())
    }

    fn check_step(&self, item: &str, base: &str, step: &str) -> Result<String, FieldError> {
        let kind = self.kind;
        let max_step = kind.max_step();
        if step.is_empty() || !step.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(self.syntax(
                item,
                format!("has step `{step}`, which is not a number"),
                format!("write a step as `*/15` or `0-30/5`; {}", kind.accepts()),
            ));
        }
        let Some(step_value) = step
            .parse::<u32>()
            .ok()
            .filter(|value| (1..=max_step).contains(value))
        else {
            return Err(FieldError {
                code: "cron-range",
                message: self.message(
                    item,
                    &format!("has step `{step}`, which is out of range 1-{max_step}"),
                ),
                help: format!("a {} step must be 1-{max_step}", kind.label()),
            });
        };
        let base = if base == "*" {
            "*".to_owned()
        } else if let Some((start, end)) = base.split_once('-') {
            let (start, end) = self.range(base, start, end)?;
            format!("{start}-{end}")
        } else {
            let hint = if base.is_empty() {
                format!("write `*/{step}`")
            } else {
                let max = if kind == FieldKind::DayOfWeek {
                    6
                } else {
                    kind.bounds().1
                };
                format!("write `*/{step}`, or a range such as `{base}-{max}/{step}`")
            };
            return Err(self.syntax(item, "needs `*` or a range before the `/`".to_owned(), hint));
        };
        Ok(format!("{base}/{step_value}"))
    }

    fn range(&self, item: &str, start: &str, end: &str) -> Result<(u32, u32), FieldError> {
        let start_value = self.value(start)?;
        // `SUN` ends a weekday range as 7, so `SAT-SUN` and `MON-SUN` read as written.
        let end_value = if self.kind == FieldKind::DayOfWeek && end.eq_ignore_ascii_case("SUN") {
            7
        } else {
            self.value(end)?
        };
        if start_value > end_value {
            let (min, max) = self.kind.bounds();
            let (first, last) = match self.kind.names() {
                [first, .., last] => ((*first).to_owned(), (*last).to_owned()),
                _ => (min.to_string(), max.to_string()),
            };
            return Err(FieldError {
                code: "cron-range",
                message: self.message(item, "runs backwards"),
                help: format!(
                    "a range cannot wrap around; split it, e.g. `{start}-{last},{first}-{end}`"
                ),
            });
        }
        Ok((start_value, end_value))
    }

    /// One number or name, checked against the field's range.
    fn value(&self, text: &str) -> Result<u32, FieldError> {
        let kind = self.kind;
        let (min, max) = kind.bounds();
        if text.is_empty() {
            return Err(self.syntax(self.text, "is missing a value".to_owned(), kind.accepts()));
        }
        if text.bytes().all(|byte| byte.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(value) if (min..=max).contains(&value) => Ok(value),
                _ => Err(FieldError {
                    code: "cron-range",
                    message: self.message(text, &format!("is out of range {min}-{max}")),
                    help: kind.accepts(),
                }),
            };
        }
        let upper = text.to_ascii_uppercase();
        if let Some(value) = kind.name_value(&upper) {
            return Ok(value);
        }
        let other = [FieldKind::Month, FieldKind::DayOfWeek]
            .into_iter()
            .find(|other| *other != kind && other.name_value(&upper).is_some());
        let help = match (did_you_mean(&upper, kind.names().iter().copied()), other) {
            (Some(name), _) => format!("did you mean `{name}`? {}", kind.accepts()),
            (None, Some(other)) => {
                format!("`{text}` is a {} name; {}", other.label(), kind.accepts())
            }
            (None, None) => kind.accepts(),
        };
        let what = if kind.names().is_empty() {
            "a number"
        } else {
            "a number or a name"
        };
        Err(self.syntax(text, format!("is not {what}"), help))
    }

    /// "{kind} field `{field}` {detail}", naming the part when it is not the whole field.
    fn message(&self, part: &str, detail: &str) -> String {
        let label = self.kind.label();
        let text = self.text;
        if part == text {
            format!("{label} field `{text}` {detail}")
        } else {
            format!("{label} field `{text}`: `{part}` {detail}")
        }
    }

    fn syntax(&self, part: &str, detail: String, help: String) -> FieldError {
        FieldError {
            code: "cron-syntax",
            message: self.message(part, &detail),
            help,
        }
    }
}
