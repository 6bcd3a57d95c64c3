//! Conversion of JSON data (records, vars, webhook bodies) into minijinja values for the render
//! context; minijinja's `serde` feature is not enabled, so this is done by hand.

use std::collections::BTreeMap;

use minijinja::Value;

/// Converts a JSON value into a template value: objects become maps, arrays lists, numbers stay
/// integers when they are integers.
pub fn value_from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                Value::from(int)
            } else if let Some(uint) = number.as_u64() {
                Value::from(uint)
            } else {
                Value::from(number.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(text) => Value::from(text.as_str()),
        serde_json::Value::Array(items) => items.iter().map(value_from_json).collect(),
        serde_json::Value::Object(map) => Value::from(
            map.iter()
                .map(|(key, value)| (key.clone(), value_from_json(value)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_nested_json() {
        let json = serde_json::json!({
            "name": "Contoso", "count": 3, "ratio": 0.5, "tags": ["a", null], "ok": true,
            "primarycontactid.fullname": "Ann"
        });
        let value = value_from_json(&json);
        let env = crate::template::environment();
        let text = env
            .render_str(
                "{{ r.name }} {{ r.count + 1 }} {{ r.ratio }} {{ r.tags[0] }} {{ r.ok }} \
                 {{ r['primarycontactid.fullname'] }}",
                minijinja::context!(r => value),
            )
            .unwrap();
        assert_eq!(text, "Contoso 4 0.5 a true Ann");
    }
}
