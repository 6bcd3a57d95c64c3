//! Run variables: the workflow's defaults overridden by `--var k=v` or an API body. An override
//! must name a declared var and have its default's type. Pure.
//!
//! Types follow the default: a string default takes any text; a number default takes a number
//! (`--var threshold=5000`); a boolean default takes `true` or `false`; a list default takes a
//! JSON list (`--var regions='["West","North"]'`). A `null` default takes any value (`--var`
//! text stays text). A mapping is never a var value.

use serde_json::Value;

use crate::diagnostics::did_you_mean;

/// Why a var override was refused; messages name the var and say what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    #[error("`{arg}` is not a var assignment; write `--var name=value`")]
    Malformed { arg: String },
    #[error("unknown var `{name}`{}", unknown_help(.suggestion.as_deref(), .declared))]
    Unknown {
        name: String,
        suggestion: Option<String>,
        declared: Vec<String>,
    },
    #[error("var `{name}` is given more than once")]
    Duplicate { name: String },
    #[error(
        "var `{name}` is {expected} (its default is {default}), but the value {found} is not; {help}"
    )]
    WrongType {
        name: String,
        expected: &'static str,
        default: String,
        found: String,
        help: &'static str,
    },
}

fn unknown_help(suggestion: Option<&str>, declared: &[String]) -> String {
    match (suggestion, declared.is_empty()) {
        (Some(suggestion), _) => format!("; did you mean `{suggestion}`?"),
        (None, true) => "; the workflow declares no vars".to_string(),
        (None, false) => format!("; declared vars: {}", declared.join(", ")),
    }
}

/// The type a default gives its var.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VarType {
    String,
    Number,
    Bool,
    List,
    Any,
}

impl VarType {
    fn of(default: &Value) -> VarType {
        match default {
            Value::String(_) => VarType::String,
            Value::Number(_) => VarType::Number,
            Value::Bool(_) => VarType::Bool,
            Value::Array(_) => VarType::List,
            Value::Null | Value::Object(_) => VarType::Any,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            VarType::String => "a string",
            VarType::Number => "a number",
            VarType::Bool => "a boolean",
            VarType::List => "a list",
            VarType::Any => "any value",
        }
    }

    fn help(self) -> &'static str {
        match self {
            VarType::String => "give text",
            VarType::Number => "give a number such as 5000 or 2.5",
            VarType::Bool => "give true or false",
            VarType::List => "give a JSON list such as [\"West\",\"North\"]",
            VarType::Any => "give a string, number, boolean or list",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Object(_)) => false,
            (VarType::Any, _) => true,
            (VarType::String, Value::String(_))
            | (VarType::Number, Value::Number(_))
            | (VarType::Bool, Value::Bool(_))
            | (VarType::List, Value::Array(_)) => true,
            _ => false,
        }
    }

    /// Parses `--var` text into this type.
    fn parse(self, text: &str) -> Option<Value> {
        match self {
            VarType::String | VarType::Any => Some(Value::String(text.to_string())),
            VarType::Number => {
                let trimmed = text.trim();
                if let Ok(int) = trimmed.parse::<i64>() {
                    return Some(Value::from(int));
                }
                trimmed
                    .parse::<f64>()
                    .ok()
                    .filter(|number| number.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            }
            VarType::Bool => match text.trim() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            VarType::List => serde_json::from_str::<Value>(text)
                .ok()
                .filter(|value| value.is_array() && VarType::List.accepts(value))
                .filter(|value| {
                    value
                        .as_array()
                        .is_some_and(|items| items.iter().all(|item| !item.is_object()))
                }),
        }
    }
}

/// Splits one `--var` argument at its first `=`.
pub fn parse_var_arg(arg: &str) -> Result<(String, String), VarError> {
    match arg.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(VarError::Malformed {
            arg: arg.to_string(),
        }),
    }
}

/// The run vars for `--var` arguments (`name=value`, text parsed to the default's type).
pub fn resolve_cli_vars(
    defaults: &[(String, Value)],
    args: &[String],
) -> Result<Vec<(String, Value)>, VarError> {
    let mut overrides = Vec::with_capacity(args.len());
    for arg in args {
        let (name, text) = parse_var_arg(arg)?;
        let default = declared(defaults, &name)?;
        let kind = VarType::of(default);
        let value = kind.parse(&text).ok_or_else(|| VarError::WrongType {
            expected: kind.expected(),
            default: default.to_string(),
            found: format!("`{text}`"),
            help: kind.help(),
            name: name.clone(),
        })?;
        overrides.push((name, value));
    }
    apply(defaults, overrides)
}

/// The run vars for a JSON object of overrides (API and webhook bodies): each value must have
/// its default's JSON type.
pub fn resolve_json_vars(
    defaults: &[(String, Value)],
    overrides: &serde_json::Map<String, Value>,
) -> Result<Vec<(String, Value)>, VarError> {
    let mut checked = Vec::with_capacity(overrides.len());
    for (name, value) in overrides {
        let default = declared(defaults, name)?;
        let kind = VarType::of(default);
        if !kind.accepts(value) {
            return Err(VarError::WrongType {
                name: name.clone(),
                expected: kind.expected(),
                default: default.to_string(),
                found: describe(value),
                help: kind.help(),
            });
        }
        checked.push((name.clone(), value.clone()));
    }
    apply(defaults, checked)
}

fn declared<'a>(defaults: &'a [(String, Value)], name: &str) -> Result<&'a Value, VarError> {
    defaults
        .iter()
        .find(|(declared, _)| declared == name)
        .map(|(_, value)| value)
        .ok_or_else(|| VarError::Unknown {
            name: name.to_string(),
            suggestion: did_you_mean(name, defaults.iter().map(|(n, _)| n.as_str()))
                .map(str::to_string),
            declared: defaults.iter().map(|(n, _)| n.clone()).collect(),
        })
}

fn apply(
    defaults: &[(String, Value)],
    overrides: Vec<(String, Value)>,
) -> Result<Vec<(String, Value)>, VarError> {
    let mut vars = defaults.to_vec();
    let mut seen: Vec<&str> = Vec::with_capacity(overrides.len());
    for (name, value) in &overrides {
        if seen.contains(&name.as_str()) {
            return Err(VarError::Duplicate { name: name.clone() });
        }
        seen.push(name);
        if let Some(slot) = vars.iter_mut().find(|(declared, _)| declared == name) {
            slot.1 = value.clone();
        }
    }
    Ok(vars)
}

fn describe(value: &Value) -> String {
    match value {
        Value::Object(_) => "a mapping".to_string(),
        other => {
            let text = other.to_string();
            if text.chars().count() > 60 {
                format!("{}…", text.chars().take(60).collect::<String>())
            } else {
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn defaults() -> Vec<(String, Value)> {
        vec![
            ("territory".into(), json!("West")),
            ("threshold".into(), json!(1000)),
            ("enabled".into(), json!(false)),
            ("regions".into(), json!(["West"])),
            ("anything".into(), Value::Null),
        ]
    }

    fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn defaults_without_overrides() {
        assert_eq!(resolve_cli_vars(&defaults(), &[]).unwrap(), defaults());
    }

    #[test]
    fn cli_text_is_parsed_to_the_default_type() {
        let vars = resolve_cli_vars(
            &defaults(),
            &args(&[
                "territory=North=East",
                "threshold=5000",
                "enabled=true",
                "regions=[\"A\",\"B\"]",
                "anything=12",
            ]),
        )
        .unwrap();
        assert_eq!(vars[0].1, json!("North=East"));
        assert_eq!(vars[1].1, json!(5000));
        assert_eq!(vars[2].1, json!(true));
        assert_eq!(vars[3].1, json!(["A", "B"]));
        assert_eq!(vars[4].1, json!("12"));
        let vars = resolve_cli_vars(&defaults(), &args(&["threshold=2.5"])).unwrap();
        assert_eq!(vars[1].1, json!(2.5));
    }

    #[test]
    fn wrong_types_are_refused_with_help() {
        let err = resolve_cli_vars(&defaults(), &args(&["threshold=lots"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "var `threshold` is a number (its default is 1000), but the value `lots` is not; \
             give a number such as 5000 or 2.5"
        );
        for bad in [
            "enabled=yes",
            "regions=West",
            "regions={\"a\":1}",
            "threshold=NaN",
        ] {
            assert!(
                matches!(
                    resolve_cli_vars(&defaults(), &args(&[bad])),
                    Err(VarError::WrongType { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_names_get_a_suggestion() {
        let err = resolve_cli_vars(&defaults(), &args(&["teritory=East"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown var `teritory`; did you mean `territory`?"
        );
        let err = resolve_cli_vars(&defaults(), &args(&["zzz=1"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("declared vars: territory, threshold")
        );
        let err = resolve_cli_vars(&[], &args(&["zzz=1"])).unwrap_err();
        assert!(err.to_string().contains("declares no vars"));
    }

    #[test]
    fn malformed_and_duplicate_arguments() {
        assert!(matches!(
            resolve_cli_vars(&defaults(), &args(&["territory"])),
            Err(VarError::Malformed { .. })
        ));
        assert!(matches!(
            resolve_cli_vars(&defaults(), &args(&["=x"])),
            Err(VarError::Malformed { .. })
        ));
        assert_eq!(
            resolve_cli_vars(&defaults(), &args(&["threshold=1", "threshold=2"])).unwrap_err(),
            VarError::Duplicate {
                name: "threshold".into()
            }
        );
    }

    #[test]
    fn json_overrides_must_match_the_default_type() {
        let body = json!({"threshold": 7, "regions": ["X"]});
        let vars = resolve_json_vars(&defaults(), body.as_object().unwrap()).unwrap();
        assert_eq!(vars[1].1, json!(7));
        assert_eq!(vars[3].1, json!(["X"]));
        let body = json!({"threshold": "7"});
        let err = resolve_json_vars(&defaults(), body.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().contains("the value \"7\" is not"), "{err}");
        let body = json!({"anything": {"a": 1}});
        assert!(resolve_json_vars(&defaults(), body.as_object().unwrap()).is_err());
        let body = json!({"nope": 1});
        assert!(matches!(
            resolve_json_vars(&defaults(), body.as_object().unwrap()),
            Err(VarError::Unknown { .. })
        ));
    }
}
