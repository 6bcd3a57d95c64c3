//! Rendering a workflow's `callback:` block for an ended operation into the exact request to
//! deliver ([`RenderedDelivery`]): URL, headers, body bytes and their signature.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::hmac::signature_header;
use super::payload::{FinalStatus, OperationOutcome, format_instant};
use crate::compile::Callback;
use crate::diagnostics::Problem;
use crate::template::{RenderError, SecretSource, TemplateSet, analyze, value_from_json};

/// The header that identifies a delivery; the same on every attempt.
pub const DELIVERY_HEADER: &str = "X-Fetchflow-Delivery";
/// The header that carries `sha256=<hex>` when the callback has a `secret`.
pub const SIGNATURE_HEADER: &str = "X-Fetchflow-Signature";
/// The content type of every body unless the callback's `headers` set one.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// What the callback templates see besides `operation`: the run's values (DESIGN.md section 2).
#[derive(Debug, Clone, Copy)]
pub struct RunContext<'a> {
    /// The run's variables: the file's defaults with the run's overrides applied.
    pub vars: &'a Map<String, Value>,
    /// The workflow version the operation ran (content hash).
    pub workflow_version: &'a str,
    /// The operation's fixed `now` (its start time).
    pub now: DateTime<Utc>,
}

/// One delivery, rendered once when the operation ends and sent as is on every attempt.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedDelivery {
    pub delivery_id: String,
    /// `POST` (default), `PUT`, `PATCH` or `GET`.
    pub method: String,
    pub url: String,
    /// In order: the callback's `headers`, `Content-Type` (unless the callback set it),
    /// `X-Fetchflow-Delivery`, and `X-Fetchflow-Signature` when the callback has a `secret`.
    pub headers: Vec<(String, String)>,
    /// The exact bytes that were signed.
    pub body: Vec<u8>,
    /// Which parts were rendered by a template that reads a secret: `Debug` hides them.
    pub secret_parts: SecretParts,
}

/// The parts of a [`RenderedDelivery`] whose template calls `secret()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretParts {
    pub url: bool,
    pub body: bool,
    /// Header names, as in `headers`.
    pub headers: Vec<String>,
}

impl RenderedDelivery {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The `X-Fetchflow-Signature` value (`sha256=<hex>`), when the callback has a `secret`.
    pub fn signature(&self) -> Option<&str> {
        self.header(SIGNATURE_HEADER)
    }
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for RenderedDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Shown<'a>(&'a str);
        impl fmt::Debug for Shown<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        let url: &dyn fmt::Debug = if self.secret_parts.url {
            &Shown(REDACTED)
        } else {
            &self.url
        };
        let headers: Vec<(&str, &dyn fmt::Debug)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let secret = self.secret_parts.headers.iter().any(|part| part == name);
                let value: &dyn fmt::Debug = if secret { &Shown(REDACTED) } else { value };
                (name.as_str(), value)
            })
            .collect();
        let body = if self.secret_parts.body {
            format!("<redacted: {} bytes>", self.body.len())
        } else {
            format!("{:?}", String::from_utf8_lossy(&self.body))
        };
        f.debug_struct("RenderedDelivery")
            .field("delivery_id", &self.delivery_id)
            .field("method", &self.method)
            .field("url", url)
            .field("headers", &headers)
            .field("body", &Shown(&body))
            .finish()
    }
}

/// Why a callback could not be rendered. No variant carries a rendered value, so no secret can
/// reach a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// A template does not compile (`compile` rejects these, so only a hand-built [`Callback`]
    /// can get here).
    #[error("`{key}`: {}", problem.message)]
    Template { key: String, problem: Problem },
    /// A template failed to render; a missing secret names the variable.
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("`callback.secret` rendered to an empty key; deliveries cannot be signed with it")]
    EmptySecret,
    #[error("the rendered callback URL {reason}")]
    InvalidUrl { reason: &'static str },
    #[error("callback header `{name}` {reason}")]
    InvalidHeader { name: String, reason: &'static str },
}

/// Whether the callback wants to hear about an operation that ended with `status` (`on:`).
pub fn should_send(callback: &Callback, status: FinalStatus) -> bool {
    callback.on.contains(&status.event())
}

/// Renders `callback` for `outcome`: URL, headers and body from their templates (the body
/// defaults to [`OperationOutcome::default_body`]), then `Content-Type`, the delivery id and, when
/// the callback has a `secret`, the signature of the exact body bytes.
///
/// `secrets` is asked only for the names the callback's templates use; `delivery_id` is chosen by
/// the caller (a random UUID) and must be kept for every attempt.
pub fn render_delivery(
    callback: &Callback,
    outcome: &OperationOutcome,
    run: &RunContext<'_>,
    secrets: &dyn SecretSource,
    delivery_id: &str,
) -> Result<RenderedDelivery, CallbackError> {
    let mut templates = Templates::default();
    templates.add("callback.url", &callback.url)?;
    for (name, value) in &callback.headers {
        templates.add(&header_key(name), value)?;
    }
    if let Some(body) = &callback.body {
        templates.add("callback.body", body)?;
    }
    if let Some(secret) = &callback.secret {
        templates.add("callback.secret", secret)?;
    }
    let set = templates.compile(secrets)?;
    let ctx = value_from_json(&json!({
        "vars": run.vars,
        "workflow": {"name": outcome.workflow, "version": run.workflow_version},
        "now": format_instant(run.now),
        "operation": outcome.template_value(),
    }));

    let url = set.render("callback.url", &ctx)?;
    check_url(&url)?;

    let mut secret_parts = SecretParts {
        url: templates.uses_secret("callback.url"),
        body: false,
        headers: Vec::new(),
    };
    let mut headers = Vec::with_capacity(callback.headers.len() + 3);
    for (name, _) in &callback.headers {
        let key = header_key(name);
        let value = set.render(&key, &ctx)?;
        check_header(name, &value)?;
        if templates.uses_secret(&key) {
            secret_parts.headers.push(name.clone());
        }
        headers.push((name.clone(), value));
    }

    let body = match &callback.body {
        Some(_) => {
            secret_parts.body = templates.uses_secret("callback.body");
            set.render("callback.body", &ctx)?.into_bytes()
        }
        None => outcome.default_body(),
    };

    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".to_string(), JSON_CONTENT_TYPE.to_string()));
    }
    headers.push((DELIVERY_HEADER.to_string(), delivery_id.to_string()));
    if callback.secret.is_some() {
        let key = set.render("callback.secret", &ctx)?;
        if key.is_empty() {
            return Err(CallbackError::EmptySecret);
        }
        headers.push((
            SIGNATURE_HEADER.to_string(),
            signature_header(key.as_bytes(), &body),
        ));
    }

    Ok(RenderedDelivery {
        delivery_id: delivery_id.to_string(),
        method: callback.method.clone(),
        url,
        headers,
        body,
        secret_parts,
    })
}

fn header_key(name: &str) -> String {
    format!("callback.headers.{name}")
}

/// The callback's templates before compilation, with the secret names they use.
#[derive(Default)]
struct Templates<'a> {
    entries: Vec<(String, &'a str)>,
    /// Keys of the templates that call `secret()`.
    with_secrets: Vec<String>,
    secret_names: Vec<String>,
}

impl<'a> Templates<'a> {
    fn add(&mut self, key: &str, text: &'a str) -> Result<(), CallbackError> {
        let analysis = analyze(text).map_err(|problem| CallbackError::Template {
            key: key.to_string(),
            problem,
        })?;
        if !analysis.secrets.is_empty() {
            self.with_secrets.push(key.to_string());
        }
        self.secret_names
            .extend(analysis.secrets.into_iter().filter_map(|call| call.name));
        self.entries.push((key.to_string(), text));
        Ok(())
    }

    fn uses_secret(&self, key: &str) -> bool {
        self.with_secrets.iter().any(|with| with == key)
    }

    /// A template set whose `secret()` answers from the values of the names used, read once from
    /// `secrets` (which [`TemplateSet`] cannot borrow).
    fn compile(&self, secrets: &dyn SecretSource) -> Result<TemplateSet, CallbackError> {
        let mut values = HashMap::new();
        for name in &self.secret_names {
            if !values.contains_key(name)
                && let Some(value) = secrets.secret(name)
            {
                values.insert(name.clone(), value);
            }
        }
        let snapshot = SecretSnapshot(values);
        let mut set = TemplateSet::with_secrets(Arc::new(snapshot));
        for (key, text) in &self.entries {
            set.add(key, text)
                .map_err(|problem| CallbackError::Template {
                    key: key.clone(),
                    problem,
                })?;
        }
        Ok(set)
    }
}

/// The secrets one render uses. Deliberately not `Debug`.
struct SecretSnapshot(HashMap<String, String>);

impl SecretSource for SecretSnapshot {
    fn secret(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// An absolute http(s) URL without whitespace or control characters. The URL is not part of the
/// error: it may carry a secret (Dataverse-style SAS URLs do).
fn check_url(url: &str) -> Result<(), CallbackError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return Err(CallbackError::InvalidUrl {
            reason: "does not start with http:// or https://",
        });
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CallbackError::InvalidUrl {
            reason: "contains spaces or control characters",
        });
    }
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return Err(CallbackError::InvalidUrl {
            reason: "has no host",
        });
    }
    Ok(())
}

/// A valid header name (RFC 9110 token) and a value of visible ASCII, spaces and tabs (what
/// HTTP clients accept; a line break would inject a header). The value is not part of the error.
fn check_header(name: &str, value: &str) -> Result<(), CallbackError> {
    let invalid = |reason| CallbackError::InvalidHeader {
        name: name.to_string(),
        reason,
    };
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(invalid("is not a valid header name"));
    }
    if name.eq_ignore_ascii_case(DELIVERY_HEADER) || name.eq_ignore_ascii_case(SIGNATURE_HEADER) {
        return Err(invalid("is set by fetchflow itself"));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(invalid(
            "rendered to a value with a line break, control or non-ASCII character",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::callback::hmac::verify_signature;
    use crate::callback::payload::tests::{ID, failed, succeeded};
    use crate::compile::CallbackEvent;

    const KEY: &str = "s3cr3t-callback-key";
    const DELIVERY: &str = "9b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f";

    fn secrets(name: &str) -> Option<String> {
        match name {
            "CALLBACK_SECRET" => Some(KEY.to_string()),
            "HOOK_TOKEN" => Some("tok-abc123".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn readme_callback() -> Callback {
        Callback {
            url: "https://hooks.example.com/fetchflow/{{ operation.id }}".to_string(),
            method: "POST".to_string(),
            headers: vec![("X-Team".to_string(), "crm".to_string())],
            body: Some(
                "{\"workflow\": {{ workflow.name | tojson }}, \"status\": {{ operation.status | tojson }}}\n"
                    .to_string(),
            ),
            secret: Some("{{ secret('CALLBACK_SECRET') }}".to_string()),
            on: vec![
                CallbackEvent::Succeeded,
                CallbackEvent::Failed,
                CallbackEvent::Canceled,
            ],
        }
    }

    fn render(
        callback: &Callback,
        outcome: &OperationOutcome,
    ) -> Result<RenderedDelivery, CallbackError> {
        let vars =
            json!({"territory": "West", "new_owner": "5e000000-0000-4000-8000-000000000002"});
        let run = RunContext {
            vars: vars.as_object().unwrap(),
            workflow_version: "ab12",
            now: Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap(),
        };
        render_delivery(callback, outcome, &run, &secrets, DELIVERY)
    }

    #[test]
    fn readme_body_renders_and_its_signature_verifies() {
        let delivery = render(&readme_callback(), &succeeded()).unwrap();
        assert_eq!(delivery.delivery_id, DELIVERY);
        assert_eq!(delivery.method, "POST");
        assert_eq!(
            delivery.url,
            format!("https://hooks.example.com/fetchflow/{ID}")
        );
        assert_eq!(
            delivery.body,
            br#"{"workflow": "territory-restructure", "status": "succeeded"}"#
        );
        let signature = delivery.signature().unwrap();
        assert!(verify_signature(KEY.as_bytes(), &delivery.body, signature));
        assert!(!verify_signature(b"another key", &delivery.body, signature));
        let names: Vec<_> = delivery
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            names,
            ["X-Team", "Content-Type", DELIVERY_HEADER, SIGNATURE_HEADER]
        );
        assert_eq!(delivery.header("x-team"), Some("crm"));
        assert_eq!(delivery.header("content-type"), Some(JSON_CONTENT_TYPE));
        assert_eq!(delivery.header(DELIVERY_HEADER), Some(DELIVERY));
        // Rendering is deterministic: a re-render gives the same bytes and signature.
        assert_eq!(render(&readme_callback(), &succeeded()).unwrap(), delivery);
    }

    #[test]
    fn default_body_is_the_dataverse_payload_and_is_signed() {
        let callback = Callback {
            body: None,
            ..readme_callback()
        };
        let delivery = render(&callback, &failed()).unwrap();
        assert_eq!(delivery.body, failed().default_body());
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(body["backgroundOperationStatusCode"], 31);
        let signature = delivery.header(SIGNATURE_HEADER).unwrap();
        assert!(verify_signature(KEY.as_bytes(), &delivery.body, signature));
    }

    #[test]
    fn the_whole_context_is_available() {
        let callback = Callback {
            url: "https://h.example/{{ workflow.name }}?v={{ workflow.version }}&t={{ vars.territory }}"
                .to_string(),
            headers: vec![("X-Finished".to_string(), "{{ operation.finished_at }}".to_string())],
            body: Some(
                "{{ operation.state_code }}/{{ operation.status_code }} {{ operation.selected }} \
                 {{ operation.succeeded }} {{ operation.failed }} {{ operation.skipped }} \
                 {{ operation.mode }} {{ operation.trigger }} {{ operation.started_at }} {{ now }} \
                 {{ operation.location }} {{ operation.error | tojson }}"
                    .to_string(),
            ),
            secret: None,
            ..readme_callback()
        };
        let delivery = render(&callback, &succeeded()).unwrap();
        assert_eq!(
            delivery.url,
            "https://h.example/territory-restructure?v=ab12&t=West"
        );
        assert_eq!(delivery.header("X-Finished"), Some("2026-11-26T02:03:07Z"));
        assert_eq!(
            String::from_utf8(delivery.body.clone()).unwrap(),
            format!(
                "3/30 10000 9990 0 10 async cron@2026-11-26T02:00:00Z 2026-11-26T02:00:00Z \
                 2026-11-26T02:00:00Z /api/operations/{ID} null"
            )
        );
        // No secret, no signature.
        assert_eq!(delivery.signature(), None);

        let failure = render(
            &Callback {
                body: Some("{{ operation.error | tojson }}".to_string()),
                ..callback
            },
            &failed(),
        )
        .unwrap();
        let error: Value = serde_json::from_slice(&failure.body).unwrap();
        assert_eq!(
            error,
            json!({"code": -2147187707i64, "message": "Access is denied. \"account\" <West>"})
        );
    }

    #[test]
    fn on_filters_the_endings() {
        let mut callback = readme_callback();
        assert!(FinalStatus::ALL.iter().all(|&s| should_send(&callback, s)));
        callback.on = vec![CallbackEvent::Failed];
        assert!(!should_send(&callback, FinalStatus::Succeeded));
        assert!(should_send(&callback, FinalStatus::Failed));
        assert!(!should_send(&callback, FinalStatus::Canceled));
        callback.on = vec![CallbackEvent::Succeeded, CallbackEvent::Canceled];
        assert!(should_send(&callback, FinalStatus::Succeeded));
        assert!(!should_send(&callback, FinalStatus::Failed));
        assert!(should_send(&callback, FinalStatus::Canceled));
    }

    #[test]
    fn a_missing_secret_names_the_variable() {
        let callback = Callback {
            secret: Some("{{ secret('MISSING_SECRET') }}".to_string()),
            ..readme_callback()
        };
        let err = render(&callback, &succeeded()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret `MISSING_SECRET` used in `callback.secret` is not set"
        );
        let empty = Callback {
            secret: Some("{{ secret('EMPTY') }}".to_string()),
            ..readme_callback()
        };
        assert_eq!(
            render(&empty, &succeeded()).unwrap_err(),
            CallbackError::EmptySecret
        );
    }

    #[test]
    fn secrets_never_reach_errors() {
        let failing = [
            // The URL renders a secret and is then rejected.
            Callback {
                url: "https://h.example/{{ secret('HOOK_TOKEN') }} x".to_string(),
                ..readme_callback()
            },
            Callback {
                url: "ftp://{{ secret('HOOK_TOKEN') }}".to_string(),
                ..readme_callback()
            },
            // A header renders a secret with a line break.
            Callback {
                headers: vec![(
                    "Authorization".to_string(),
                    "Bearer {{ secret('HOOK_TOKEN') }}\nX-Evil: 1".to_string(),
                )],
                ..readme_callback()
            },
            // A template fails after reading a secret.
            Callback {
                body: Some("{{ secret('CALLBACK_SECRET') + 1 }}".to_string()),
                ..readme_callback()
            },
            Callback {
                body: Some("{{ secret('CALLBACK_SECRET')[operation.nope] }}".to_string()),
                ..readme_callback()
            },
        ];
        for callback in &failing {
            let err = render(callback, &succeeded()).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("tok-abc123"), "{shown}");
            assert!(!shown.contains(KEY), "{shown}");
        }
    }

    #[test]
    fn debug_hides_secret_parts_and_never_holds_the_key() {
        let callback = Callback {
            url: "https://h.example/hook?sig={{ secret('HOOK_TOKEN') }}".to_string(),
            headers: vec![
                ("X-Team".to_string(), "crm".to_string()),
                (
                    "Authorization".to_string(),
                    "Bearer {{ secret('HOOK_TOKEN') }}".to_string(),
                ),
            ],
            body: Some("{\"token\": {{ secret('HOOK_TOKEN') | tojson }}}".to_string()),
            ..readme_callback()
        };
        let delivery = render(&callback, &succeeded()).unwrap();
        assert_eq!(delivery.url, "https://h.example/hook?sig=tok-abc123");
        assert_eq!(
            delivery.secret_parts,
            SecretParts {
                url: true,
                body: true,
                headers: vec!["Authorization".to_string()],
            }
        );
        let shown = format!("{delivery:?}");
        assert!(!shown.contains("tok-abc123"), "{shown}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("\"crm\""), "{shown}");
        assert!(shown.contains(DELIVERY), "{shown}");
        assert!(shown.contains("sha256="), "{shown}");

        let plain = render(&readme_callback(), &succeeded()).unwrap();
        let shown = format!("{plain:?}");
        assert!(shown.contains("hooks.example.com/fetchflow"), "{shown}");
        assert!(shown.contains("territory-restructure"), "{shown}");
        assert!(!shown.contains(KEY), "{shown}");
    }

    #[test]
    fn a_content_type_in_headers_replaces_the_default() {
        let callback = Callback {
            headers: vec![(
                "content-type".to_string(),
                "text/plain; charset=utf-8".to_string(),
            )],
            body: Some("{{ workflow.name }} {{ operation.status }}".to_string()),
            ..readme_callback()
        };
        let delivery = render(&callback, &succeeded()).unwrap();
        assert_eq!(
            delivery.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            delivery
                .headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                .count(),
            1
        );
        assert_eq!(delivery.body, b"territory-restructure succeeded");
    }

    #[test]
    fn bad_urls_and_headers_are_refused() {
        for (url, reason) in [
            (
                "hooks.example.com/x",
                "does not start with http:// or https://",
            ),
            ("https:///path", "has no host"),
            ("https://", "has no host"),
            (
                "https://h.example/a b",
                "contains spaces or control characters",
            ),
        ] {
            let callback = Callback {
                url: url.to_string(),
                ..readme_callback()
            };
            assert_eq!(
                render(&callback, &succeeded()).unwrap_err(),
                CallbackError::InvalidUrl { reason },
                "{url}"
            );
        }
        let ok = Callback {
            url: "HTTP://h.example".to_string(),
            ..readme_callback()
        };
        assert!(render(&ok, &succeeded()).is_ok());

        for (name, value) in [
            ("X-Fetchflow-Signature", "v"),
            ("x-fetchflow-delivery", "v"),
            ("Bad Name", "v"),
            ("X-Ok", "a\r\nX-Injected: 1"),
            ("X-Ok", "caf\u{e9}"),
            ("X-Ok", "{{ vars.territory }}\u{0}"),
        ] {
            let callback = Callback {
                headers: vec![(name.to_string(), value.to_string())],
                ..readme_callback()
            };
            let err = render(&callback, &succeeded()).unwrap_err();
            assert!(
                matches!(&err, CallbackError::InvalidHeader { name: n, .. } if n == name),
                "{name}: {err:?}"
            );
        }
        let tab = Callback {
            headers: vec![("X-Ok".to_string(), "a\tb ~".to_string())],
            ..readme_callback()
        };
        assert_eq!(
            render(&tab, &succeeded()).unwrap().header("X-Ok"),
            Some("a\tb ~")
        );
    }

    #[test]
    fn undefined_names_and_syntax_errors_are_reported_by_key() {
        let callback = Callback {
            body: Some("{{ operation.nope }}".to_string()),
            ..readme_callback()
        };
        assert_eq!(
            render(&callback, &succeeded()).unwrap_err().to_string(),
            "`operation.nope` is undefined in `callback.body`"
        );
        let callback = Callback {
            url: "https://h.example/{{ operation.id".to_string(),
            ..readme_callback()
        };
        let err = render(&callback, &succeeded()).unwrap_err();
        assert!(
            matches!(&err, CallbackError::Template { key, .. } if key == "callback.url"),
            "{err:?}"
        );
    }

    #[test]
    fn secrets_are_read_only_for_the_names_used() {
        use std::sync::Mutex;
        let asked = Mutex::new(Vec::new());
        let source = |name: &str| {
            asked.lock().unwrap().push(name.to_string());
            secrets(name)
        };
        let vars = Map::new();
        let run = RunContext {
            vars: &vars,
            workflow_version: "v",
            now: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        };
        render_delivery(&readme_callback(), &succeeded(), &run, &source, DELIVERY).unwrap();
        assert_eq!(*asked.lock().unwrap(), ["CALLBACK_SECRET"]);
    }
}
