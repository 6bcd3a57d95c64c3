//! Rendered action values → the row-format values (DESIGN 5.2) an org expects, by column type,
//! and owner strings → `OwnerRef`. Pure; a value that does not convert is an error message
//! naming the column, which the caller makes that record's error.

use chrono::SecondsFormat;
use serde_json::Value;

use crate::compile::values::{check_lookup, is_guid, parse_datetime};
use crate::metadata::{AttributeMeta, AttributeType, Catalogue};
use crate::org::OwnerRef;

/// Converts a rendered string into the value written to `attribute`. Text columns keep the
/// text (an empty string stays empty); for every other type, an empty (or blank) string is null.
pub fn convert_rendered(
    attribute: &AttributeMeta,
    text: &str,
    catalogue: &Catalogue,
) -> Result<Value, String> {
    let column = &attribute.logical_name;
    if attribute.kind.is_string() {
        return Ok(Value::String(text.to_string()));
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Value::Null);
    }
    let mismatch = |what: &str| {
        format!(
            "`{column}` is {what}, but the rendered value is \"{}\"",
            shorten(text)
        )
    };
    match attribute.kind {
        AttributeType::String | AttributeType::Memo => Ok(Value::String(text.to_string())),
        AttributeType::Integer
        | AttributeType::BigInt
        | AttributeType::Picklist
        | AttributeType::State
        | AttributeType::Status => trimmed
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| mismatch(whole_kind(attribute.kind))),
        AttributeType::Decimal | AttributeType::Double | AttributeType::Money => {
            if let Ok(int) = trimmed.parse::<i64>() {
                return Ok(Value::from(int));
            }
            trimmed
                .parse::<f64>()
                .ok()
                .filter(|number| number.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| mismatch(&format!("a {} column", attribute.kind.name())))
        }
        AttributeType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(mismatch("a yes/no column (true or false)")),
        },
        AttributeType::DateTime => parse_datetime(trimmed)
            .map(|instant| Value::String(instant.to_rfc3339_opts(SecondsFormat::Secs, true)))
            .ok_or_else(|| {
                mismatch("a date and time column (ISO-8601, e.g. 2026-03-15T10:00:00Z)")
            }),
        AttributeType::Uniqueidentifier => {
            if is_guid(trimmed) {
                Ok(Value::String(normalize_guid(trimmed)))
            } else {
                Err(mismatch("a unique identifier column (a GUID)"))
            }
        }
        AttributeType::Lookup | AttributeType::Owner | AttributeType::Customer => {
            check_lookup(attribute, trimmed, catalogue).map_err(|problem| {
                let mut message = format!("`{column}`: {}", problem.message);
                if let Some(help) = problem.help {
                    message.push_str(&format!("; {help}"));
                }
                message
            })?;
            Ok(Value::String(match trimmed.split_once(':') {
                Some((entity, id)) => format!("{}:{}", entity.trim(), normalize_guid(id.trim())),
                None => normalize_guid(trimmed),
            }))
        }
        AttributeType::MultiSelectPicklist => {
            let items: Option<Vec<i64>> = match serde_json::from_str::<Value>(trimmed) {
                Ok(Value::Array(items)) => items.iter().map(Value::as_i64).collect(),
                _ => trimmed
                    .split(',')
                    .map(|item| item.trim().parse::<i64>().ok())
                    .collect(),
            };
            items
                .map(Value::from)
                .ok_or_else(|| mismatch("a multi-select choice column (e.g. [1, 3] or 1,3)"))
        }
    }
}

/// A literal from the file: strings are converted as rendered text would be (so `"2026-03-15"`
/// becomes a date-time and `"1"` a number); other literals were checked by `compile` and pass
/// through.
pub fn convert_literal(
    attribute: &AttributeMeta,
    value: &Value,
    catalogue: &Catalogue,
) -> Result<Value, String> {
    match value {
        Value::String(text) => convert_rendered(attribute, text, catalogue),
        Value::Number(number) if attribute.kind == AttributeType::Boolean => {
            match number.as_i64() {
                Some(0) => Ok(Value::Bool(false)),
                Some(1) => Ok(Value::Bool(true)),
                _ => Ok(value.clone()),
            }
        }
        other => Ok(other.clone()),
    }
}

/// `"<id>"` → a systemuser, `"team:<id>"` → a team (`"systemuser:<id>"` also works).
pub fn parse_owner(text: &str) -> Result<OwnerRef, String> {
    let trimmed = text.trim();
    let (entity, id) = match trimmed.split_once(':') {
        Some((entity, id)) => (entity.trim(), id.trim()),
        None => ("systemuser", trimmed),
    };
    if !matches!(entity, "systemuser" | "team") || !is_guid(id) {
        return Err(format!(
            "\"{}\" is not an owner; write a systemuser id, or \"team:<id>\" for a team",
            shorten(text)
        ));
    }
    Ok(OwnerRef {
        entity: entity.to_string(),
        id: normalize_guid(id),
    })
}

/// Lower-case, without braces.
pub fn normalize_guid(text: &str) -> String {
    text.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_ascii_lowercase()
}

fn whole_kind(kind: AttributeType) -> &'static str {
    if kind.is_option_set() {
        "a choice column (an option value)"
    } else {
        "a whole-number column"
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(60).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attr(entity: &str, column: &str) -> AttributeMeta {
        Catalogue::builtin()
            .entity(entity)
            .and_then(|meta| meta.attribute(column))
            .cloned()
            .unwrap_or_else(|| panic!("{entity}.{column}"))
    }

    fn convert(entity: &str, column: &str, text: &str) -> Result<Value, String> {
        convert_rendered(&attr(entity, column), text, &Catalogue::builtin())
    }

    #[test]
    fn converts_by_column_type() {
        assert_eq!(convert("account", "name", " A ").unwrap(), json!(" A "));
        assert_eq!(convert("account", "name", "").unwrap(), json!(""));
        assert_eq!(
            convert("account", "numberofemployees", " 12 ").unwrap(),
            json!(12)
        );
        assert_eq!(convert("account", "revenue", "1500").unwrap(), json!(1500));
        assert_eq!(convert("account", "revenue", "2.5").unwrap(), json!(2.5));
        assert_eq!(
            convert("account", "creditonhold", "true").unwrap(),
            json!(true)
        );
        assert_eq!(
            convert("account", "creditonhold", "0").unwrap(),
            json!(false)
        );
        assert_eq!(
            convert("account", "createdon", "2026-03-15").unwrap(),
            json!("2026-03-15T00:00:00Z")
        );
        assert_eq!(
            convert("account", "createdon", "2026-03-15T12:00:00+02:00").unwrap(),
            json!("2026-03-15T10:00:00Z")
        );
        assert_eq!(convert("account", "industrycode", "3").unwrap(), json!(3));
        assert_eq!(convert("account", "revenue", "").unwrap(), Value::Null);
        assert_eq!(convert("account", "createdon", "  ").unwrap(), Value::Null);
    }

    #[test]
    fn converts_lookups() {
        assert_eq!(
            convert(
                "account",
                "primarycontactid",
                "{C0000000-0000-4000-8000-000000000001}"
            )
            .unwrap(),
            json!("c0000000-0000-4000-8000-000000000001")
        );
        assert_eq!(
            convert(
                "task",
                "regardingobjectid",
                "account:A0000000-0000-4000-8000-000000000001"
            )
            .unwrap(),
            json!("account:a0000000-0000-4000-8000-000000000001")
        );
        let err = convert(
            "task",
            "regardingobjectid",
            "a0000000-0000-4000-8000-000000000001",
        )
        .unwrap_err();
        assert!(err.contains("regardingobjectid"), "{err}");
        let err = convert("account", "primarycontactid", "nope").unwrap_err();
        assert!(err.contains("primarycontactid"), "{err}");
    }

    #[test]
    fn bad_values_name_the_column() {
        let err = convert("account", "numberofemployees", "many").unwrap_err();
        assert_eq!(
            err,
            "`numberofemployees` is a whole-number column, but the rendered value is \"many\""
        );
        assert!(convert("account", "revenue", "NaN").is_err());
        assert!(convert("account", "creditonhold", "yes").is_err());
        assert!(convert("account", "createdon", "15/03/2026").is_err());
        assert!(convert("account", "accountid", "x").is_err());
    }

    #[test]
    fn literals_pass_through_or_convert_from_text() {
        let catalogue = Catalogue::builtin();
        let revenue = attr("account", "revenue");
        assert_eq!(
            convert_literal(&revenue, &json!(5), &catalogue).unwrap(),
            json!(5)
        );
        assert_eq!(
            convert_literal(&revenue, &json!("5"), &catalogue).unwrap(),
            json!(5)
        );
        assert_eq!(
            convert_literal(&revenue, &Value::Null, &catalogue).unwrap(),
            Value::Null
        );
        let flag = attr("account", "creditonhold");
        assert_eq!(
            convert_literal(&flag, &json!(1), &catalogue).unwrap(),
            json!(true)
        );
    }

    #[test]
    fn owners() {
        assert_eq!(
            parse_owner("5E000000-0000-4000-8000-000000000002").unwrap(),
            OwnerRef {
                entity: "systemuser".into(),
                id: "5e000000-0000-4000-8000-000000000002".into()
            }
        );
        assert_eq!(
            parse_owner("team:5e000000-0000-4000-8000-000000000003")
                .unwrap()
                .entity,
            "team"
        );
        assert!(parse_owner("queue:5e000000-0000-4000-8000-000000000003").is_err());
        assert!(parse_owner("").is_err());
    }
}
