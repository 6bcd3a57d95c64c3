//! Literal values checked against column metadata: the conversions a write will make,
//! done at validate time so a run cannot fail on a value that was visible in the file.

use std::time::Duration;

use chrono::{DateTime, NaiveDate};
use serde_json::Value;

use crate::metadata::{AttributeMeta, AttributeType, Catalogue};

/// Why a literal does not fit a column: the message and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueMismatch {
    pub message: String,
    pub help: Option<String>,
}

impl ValueMismatch {
    fn new(message: impl Into<String>) -> Self {
        ValueMismatch {
            message: message.into(),
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Checks that `value` can be written to `attribute` as is. `null` clears a column and fits all.
pub fn check_literal(
    attribute: &AttributeMeta,
    value: &Value,
    catalogue: &Catalogue,
) -> Result<(), ValueMismatch> {
    if value.is_null() {
        return Ok(());
    }
    let column = &attribute.logical_name;
    let kind = attribute.kind;
    let found = describe(value);
    match kind {
        AttributeType::String | AttributeType::Memo => {
            let Value::String(text) = value else {
                return Err(ValueMismatch::new(format!(
                    "`{column}` is a text column, but the value is {found}"
                ))
                .help("quote the value so YAML keeps it as text (e.g. \"00123\")"));
            };
            if let Some(max) = attribute.max_length
                && text.chars().count() > max as usize
            {
                return Err(ValueMismatch::new(format!(
                    "`{column}` holds at most {max} characters, the value has {}",
                    text.chars().count()
                )));
            }
            Ok(())
        }
        AttributeType::Integer | AttributeType::BigInt => {
            let number = as_integer(value).ok_or_else(|| {
                ValueMismatch::new(format!(
                    "`{column}` is a whole-number column, but the value is {found}"
                ))
            })?;
            check_range(attribute, number as f64)
        }
        AttributeType::Decimal | AttributeType::Double | AttributeType::Money => {
            let number = as_number(value).ok_or_else(|| {
                ValueMismatch::new(format!(
                    "`{column}` is a {} column, but the value is {found}",
                    kind.name()
                ))
            })?;
            check_range(attribute, number)
        }
        AttributeType::Boolean => match value {
            Value::Bool(_) => Ok(()),
            Value::String(text) if matches!(text.as_str(), "true" | "false" | "1" | "0") => Ok(()),
            Value::Number(number) if number.as_i64().is_some_and(|n| n == 0 || n == 1) => Ok(()),
            _ => Err(ValueMismatch::new(format!(
                "`{column}` is a yes/no column, but the value is {found}"
            ))
            .help("write true or false")),
        },
        AttributeType::DateTime => match value {
            Value::String(text) if parse_datetime(text).is_some() => Ok(()),
            _ => Err(ValueMismatch::new(format!(
                "`{column}` is a date and time column, but the value is {found}"
            ))
            .help("write an ISO-8601 date or UTC time, e.g. 2026-03-15 or 2026-03-15T10:00:00Z")),
        },
        AttributeType::Uniqueidentifier => match value {
            Value::String(text) if is_guid(text) => Ok(()),
            _ => Err(ValueMismatch::new(format!(
                "`{column}` holds a unique identifier, but the value is {found}"
            ))
            .help("write a GUID such as 5e000000-0000-4000-8000-000000000002")),
        },
        AttributeType::Lookup | AttributeType::Customer | AttributeType::Owner => {
            let Value::String(text) = value else {
                return Err(ValueMismatch::new(format!(
                    "`{column}` is a lookup, but the value is {found}"
                ))
                .help(lookup_help(attribute)));
            };
            check_lookup(attribute, text, catalogue)
        }
        AttributeType::Picklist | AttributeType::State | AttributeType::Status => {
            let number = as_integer(value).ok_or_else(|| {
                ValueMismatch::new(format!(
                    "`{column}` is a choice column, but the value is {found}"
                ))
                .help(format!(
                    "use an option value: {}",
                    attribute.describe_options()
                ))
            })?;
            let known = i32::try_from(number)
                .ok()
                .and_then(|number| attribute.option(number))
                .is_some();
            if known || attribute.options.is_empty() {
                Ok(())
            } else {
                Err(
                    ValueMismatch::new(format!("`{number}` is not an option of `{column}`"))
                        .help(format!("use one of: {}", attribute.describe_options())),
                )
            }
        }
        _ => Ok(()),
    }
}

/// Checks a lookup literal: `<id>` for a single-target lookup, `<entity>:<id>` for any.
pub fn check_lookup(
    attribute: &AttributeMeta,
    text: &str,
    catalogue: &Catalogue,
) -> Result<(), ValueMismatch> {
    let column = &attribute.logical_name;
    let (target, id) = match text.split_once(':') {
        Some((entity, id)) => (Some(entity), id),
        None => (None, text),
    };
    if !is_guid(id) {
        return Err(ValueMismatch::new(format!(
            "`{id}` is not a GUID, so it cannot reference a row from `{column}`"
        ))
        .help(lookup_help(attribute)));
    }
    match target {
        None if attribute.targets.len() > 1 => Err(ValueMismatch::new(format!(
            "`{column}` can reference {}; say which with `<entity>:<id>`",
            attribute.targets.join(" or ")
        ))
        .help(lookup_help(attribute))),
        None => Ok(()),
        Some(entity) if attribute.targets.iter().any(|t| t == entity) => Ok(()),
        Some(entity) if attribute.targets.is_empty() && catalogue.entity(entity).is_some() => {
            Ok(())
        }
        Some(entity) => Err(ValueMismatch::new(format!(
            "`{column}` cannot reference a `{entity}` row"
        ))
        .help(lookup_help(attribute))),
    }
}

fn lookup_help(attribute: &AttributeMeta) -> String {
    match attribute.targets.as_slice() {
        [single] => format!(
            "write the {single} id, e.g. \"5e000000-0000-4000-8000-000000000002\" (or \"{single}:<id>\")"
        ),
        targets if !targets.is_empty() => format!(
            "write \"<entity>:<id>\" with entity one of {}, e.g. \"{}:5e000000-0000-4000-8000-000000000002\"",
            targets.join(", "),
            targets[0]
        ),
        _ => "write \"<entity>:<id>\"".to_string(),
    }
}

fn check_range(attribute: &AttributeMeta, number: f64) -> Result<(), ValueMismatch> {
    let column = &attribute.logical_name;
    if let Some(min) = attribute.min_value
        && number < min
    {
        return Err(ValueMismatch::new(format!(
            "`{column}` must be at least {min}, the value is {number}"
        )));
    }
    if let Some(max) = attribute.max_value
        && number > max
    {
        return Err(ValueMismatch::new(format!(
            "`{column}` must be at most {max}, the value is {number}"
        )));
    }
    Ok(())
}

fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok().filter(|n: &f64| n.is_finite()),
        _ => None,
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the text \"{}\"", truncate(text, 40)),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(max).collect();
        short.push('…');
        short
    }
}

/// A GUID in 8-4-4-4-12 hex form, braces optional, any case.
pub fn is_guid(text: &str) -> bool {
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An ISO-8601 date (`2026-03-15`) or date-time with an offset (`2026-03-15T10:00:00Z`).
pub fn parse_datetime(text: &str) -> Option<DateTime<chrono::Utc>> {
    if let Ok(datetime) = DateTime::parse_from_rfc3339(text) {
        return Some(datetime.to_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
}

/// Parses `30s`, `2m`, `1h30m`, `500ms`, `1d`: one or more number-unit pairs.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err("empty duration".to_string());
    }
    let mut total = Duration::ZERO;
    let mut rest = compact.as_str();
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{}` is too large", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let seconds_per_unit: Option<u64> = match unit {
            "ms" => None,
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3600),
            "d" => Some(86_400),
            "" => return Err(format!("`{number}` needs a unit: ms, s, m, h or d")),
            other => return Err(format!("unknown unit `{other}`; use ms, s, m, h or d")),
        };
        let part = match seconds_per_unit {
            None => Duration::from_millis(number),
            Some(factor) => number
                .checked_mul(factor)
                .map(Duration::from_secs)
                .ok_or_else(|| "duration is too large".to_string())?,
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| "duration is too large".to_string())?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("2 minutes").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn recognises_guids_and_dates() {
        assert!(is_guid("5e000000-0000-4000-8000-000000000002"));
        assert!(is_guid("{5E000000-0000-4000-8000-000000000002}"));
        assert!(!is_guid("5e000000-0000-4000-8000-00000000000"));
        assert!(parse_datetime("2026-03-15").is_some());
        assert!(parse_datetime("2026-03-15T10:00:00Z").is_some());
        assert!(parse_datetime("15/03/2026").is_none());
    }
}
