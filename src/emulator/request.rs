//! One Web API request as the handlers see it (`Call`: top-level or a `$batch` part), and the
//! parsing of its query string and `Prefer` header.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use serde_json::{Map, Value};

use crate::emulator::error::DvError;
use crate::emulator::journal;
use crate::org::odata::url_decode;

/// A request below `/api/data/v9.2/`.
pub(crate) struct Call {
    pub(crate) method: Method,
    /// The path after `/api/data/v9.2/`, percent-decoded, e.g. `accounts(<id>)`.
    pub(crate) path: String,
    /// Decoded query parameters in order.
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// `[Org]`, for `OData-EntityId`, `Location` and `@odata.context`.
    pub(crate) base: String,
    /// Set inside a change set: writes go into its journal and it restores on failure.
    pub(crate) journal: Option<journal::Shared>,
}

impl Call {
    pub(crate) fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub(crate) fn prefer(&self) -> Prefer {
        Prefer::parse(&self.headers)
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    }

    /// The body as a JSON object; malformed JSON and other shapes are Dataverse errors.
    pub(crate) fn json_object(&self) -> Result<Map<String, Value>, DvError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(DvError::bad_payload(
                "The request body is empty; this operation takes a JSON object.",
            ));
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(other) => Err(DvError::bad_payload(format!(
                "Error identified in Payload provided by the user: expected a JSON object, \
                 found {}",
                kind(&other)
            ))),
            Err(error) => Err(DvError::bad_payload(format!(
                "Error identified in Payload provided by the user: the body is not valid JSON \
                 ({error})"
            ))),
        }
    }

    /// `<org>/api/data/v9.2/`.
    pub(crate) fn api_url(&self) -> String {
        format!("{}{}", self.base, crate::org::odata::API_PATH)
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `a=1&b=x%20y` → [("a", "1"), ("b", "x y")]; `+` is a space, as in form encoding.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| url_decode(text).unwrap_or_else(|| text.to_owned());
            (decode(key), decode(value))
        })
        .collect()
}

/// What a `Prefer` header asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Prefer {
    pub(crate) return_representation: bool,
    /// `odata.include-annotations` patterns (`*`, `Microsoft.Dynamics.CRM.*`, exact names,
    /// `-name` exclusions).
    pub(crate) annotations: Vec<String>,
    pub(crate) respond_async: bool,
    pub(crate) callback_url: Option<String>,
    pub(crate) continue_on_error: bool,
    pub(crate) max_page_size: Option<u32>,
}

impl Prefer {
    pub(crate) fn parse(headers: &HeaderMap) -> Prefer {
        let mut prefer = Prefer::default();
        for value in headers.get_all("prefer") {
            let Ok(text) = value.to_str() else { continue };
            for item in split_outside_quotes(text, ',') {
                let mut parts = split_outside_quotes(&item, ';').into_iter();
                let head = parts.next().unwrap_or_default();
                let (name, argument) = match head.split_once('=') {
                    Some((name, argument)) => (name.trim(), Some(unquote(argument.trim()))),
                    None => (head.trim(), None),
                };
                match name.to_ascii_lowercase().as_str() {
                    "return" => {
                        prefer.return_representation =
                            argument.is_some_and(|value| value == "representation");
                    }
                    "odata.include-annotations" => {
                        prefer.annotations = argument
                            .unwrap_or_default()
                            .split(',')
                            .map(|pattern| pattern.trim().to_owned())
                            .filter(|pattern| !pattern.is_empty())
                            .collect();
                    }
                    "respond-async" => prefer.respond_async = true,
                    "odata.continue-on-error" => prefer.continue_on_error = true,
                    "odata.maxpagesize" => {
                        prefer.max_page_size = argument.and_then(|value| value.parse().ok());
                    }
                    "odata.callback" | "callback" => {
                        for parameter in parts.by_ref() {
                            if let Some((key, url)) = parameter.split_once('=')
                                && key.trim().eq_ignore_ascii_case("url")
                            {
                                prefer.callback_url = Some(unquote(url.trim()));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        prefer
    }

    /// Whether the annotation (without `@`) was asked for.
    pub(crate) fn wants(&self, annotation: &str) -> bool {
        let annotation = annotation.trim_start_matches('@');
        let matches = |pattern: &str| {
            pattern == "*"
                || pattern == annotation
                || pattern
                    .strip_suffix('*')
                    .is_some_and(|prefix| annotation.starts_with(prefix))
        };
        if self
            .annotations
            .iter()
            .filter_map(|pattern| pattern.strip_prefix('-'))
            .any(matches)
        {
            return false;
        }
        self.annotations
            .iter()
            .filter(|pattern| !pattern.starts_with('-'))
            .any(|pattern| matches(pattern))
    }

    /// Removes the instance annotations (`key@annotation`) that were not asked for.
    pub(crate) fn filter_annotations(&self, entity: &mut Map<String, Value>) {
        entity.retain(|key, _| match key.split_once('@') {
            Some((property, annotation)) if !property.is_empty() => self.wants(annotation),
            _ => true,
        });
    }
}

fn unquote(text: &str) -> String {
    text.strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(text)
        .to_owned()
}

/// Splits on `separator` outside double quotes.
fn split_outside_quotes(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == separator && !quoted {
            parts.push(std::mem::take(&mut current).trim().to_owned());
        } else {
            current.push(c);
        }
    }
    parts.push(current.trim().to_owned());
    parts.retain(|part| !part.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn prefer(values: &[&str]) -> Prefer {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("prefer", HeaderValue::from_str(value).unwrap());
        }
        Prefer::parse(&headers)
    }

    #[test]
    fn prefer_headers_parse_as_documented() {
        let p = prefer(&[
            "odata.include-annotations=\"Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords\"",
        ]);
        assert!(p.wants("Microsoft.Dynamics.CRM.morerecords"));
        assert!(p.wants("@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"));
        assert!(!p.wants("Microsoft.Dynamics.CRM.lookuplogicalname"));
        let p = prefer(&["odata.include-annotations=\"*\", return=representation"]);
        assert!(p.wants("OData.Community.Display.V1.FormattedValue"));
        assert!(p.return_representation);
        let p = prefer(&["respond-async, odata.callback; url=\"http://h/cb?a=1,2\""]);
        assert!(p.respond_async);
        assert_eq!(p.callback_url.as_deref(), Some("http://h/cb?a=1,2"));
        let p = prefer(&["odata.continue-on-error", "odata.maxpagesize=10"]);
        assert!(p.continue_on_error);
        assert_eq!(p.max_page_size, Some(10));
        assert!(!p.wants("x"));
    }

    #[test]
    fn queries_decode() {
        assert_eq!(
            parse_query("fetchXml=%3Cfetch%20top%3D%275%27%3E&$select=a,b&x"),
            vec![
                ("fetchXml".to_owned(), "<fetch top='5'>".to_owned()),
                ("$select".to_owned(), "a,b".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
    }
}
