//! The dashboard of `fetchflow serve` (DESIGN 7.3, `GET /`): server-rendered HTML pages over
//! the same state as the API — the operations log, one operation with its failures and
//! callback deliveries, the workflow files — with Cancel, "Retry failed" and "Run now" forms.
//!
//! Conventions:
//! - Pages are minijinja templates compiled into the binary (`templates/*.html`), loaded once
//!   when the router is built, auto-escaped. Pages read without JavaScript; `static/dashboard.js`
//!   only polls `/operations/{id}/progress` to keep running operations live.
//! - The logic is the API's (`serve::api::operations`, `serve::api::workflows`): this module
//!   only turns requests into calls and results into HTML.
//! - Security lives in `session`: every POST needs the session's CSRF token and a same-origin
//!   request; with a configured token every page needs a signed-in session (`/login`).
//! - Lists are keyset-paged by the store's cursors; no page loads all operations.

mod operations;
mod session;
mod workflows;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use minijinja::Environment;
use serde_json::{Value, json};

use crate::serve::ServeState;
use crate::serve::api::ApiError;
use crate::store::StoreError;

/// The templates, by name; `.html` names are auto-escaped.
const TEMPLATES: [(&str, &str); 6] = [
    ("base.html", include_str!("templates/base.html")),
    ("operations.html", include_str!("templates/operations.html")),
    ("operation.html", include_str!("templates/operation.html")),
    ("workflows.html", include_str!("templates/workflows.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
];

const STYLESHEET: &str = include_str!("static/dashboard.css");
const SCRIPT: &str = include_str!("static/dashboard.js");

/// What every dashboard handler shares: the service's state, the compiled templates and the
/// per-process key that signs sessions and CSRF tokens.
pub(crate) struct Dashboard {
    serve: ServeState,
    templates: Environment<'static>,
    key: [u8; 32],
}

type Shared = Arc<Dashboard>;

/// The dashboard's routes, to be merged into the API router (which owns the fallback).
pub fn router<S: Clone + Send + Sync + 'static>(state: ServeState) -> Router<S> {
    let dashboard: Shared = Arc::new(Dashboard::new(state));
    let pages = Router::new()
        .route("/", get(operations::list))
        .route("/operations", get(operations::list))
        .route("/operations/{id}", get(operations::show))
        .route("/operations/{id}/failures.csv", get(operations::csv))
        .route("/operations/{id}/progress", get(operations::progress))
        .route("/operations/{id}/cancel", post(operations::cancel))
        .route("/operations/{id}/retry", post(operations::retry))
        .route("/workflows", get(workflows::list))
        .route("/workflows/{name}/run", post(workflows::run_now))
        .route("/logout", post(session::logout))
        .route_layer(middleware::from_fn_with_state(
            dashboard.clone(),
            session::require_session,
        ));
    Router::new()
        .route("/login", get(session::login_page).post(session::login))
        .route("/static/dashboard.css", get(stylesheet))
        .route("/static/dashboard.js", get(script))
        .merge(pages)
        .layer(middleware::from_fn(security_headers))
        .with_state(dashboard)
}

impl Dashboard {
    fn new(serve: ServeState) -> Dashboard {
        let mut templates = Environment::new();
        templates.set_formatter(format_value);
        for (name, source) in TEMPLATES {
            // The templates are part of the binary and covered by tests: a broken one is a
            // build defect, reported by every page that uses it rather than by a panic here.
            if let Err(error) = templates.add_template(name, source) {
                tracing::error!(template = name, %error, "A dashboard template does not compile.");
            }
        }
        // Two v4 UUIDs: 244 bits from the operating system's random source.
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Dashboard {
            serve,
            templates,
            key,
        }
    }

    /// Renders `template` with `context`, plus what the layout needs (the CSRF token of the
    /// session, whether sign-out is offered, which nav link is current).
    fn render(
        &self,
        template: &str,
        session: Option<&session::Session>,
        nav: &str,
        mut context: Value,
    ) -> Result<String, PageError> {
        if let Value::Object(map) = &mut context {
            map.insert(
                "csrf".into(),
                json!(session.map(|session| self.csrf_token(session))),
            );
            map.insert("signed_in".into(), json!(self.serve.token.is_some()));
            map.insert("nav".into(), json!(nav));
        }
        let value = crate::template::value_from_json(&context);
        self.templates
            .get_template(template)
            .and_then(|template| template.render(value))
            .map_err(|error| {
                tracing::error!(%error, "A dashboard page could not be rendered.");
                PageError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "this page could not be rendered",
                )
            })
    }

    /// An HTML page with the headers every page gets.
    fn page(
        &self,
        template: &str,
        session: Option<&session::Session>,
        nav: &str,
        context: Value,
    ) -> Response {
        match self.render(template, session, nav, context) {
            Ok(html) => Html(html).into_response(),
            Err(error) => self.error_page(session, &error),
        }
    }

    /// The error page for `error`, with its status; plain text if even that cannot render.
    fn error_page(&self, session: Option<&session::Session>, error: &PageError) -> Response {
        let context = json!({"title": error.title(), "status": error.status.as_u16(), "message": error.message});
        match self.render("error.html", session, "", context) {
            Ok(html) => (error.status, Html(html)).into_response(),
            Err(_) => (error.status, error.message.clone()).into_response(),
        }
    }

    /// `result` as a response: the page, or the error page.
    fn respond(
        &self,
        session: Option<&session::Session>,
        result: Result<Response, PageError>,
    ) -> Response {
        result.unwrap_or_else(|error| self.error_page(session, &error))
    }
}

/// Prints values into pages: strings HTML-escaped (`&`, `<`, `>`, `"`, `'`), so they are safe
/// in element content and in quoted attributes; unlike minijinja's default, `/` is left as
/// it is, so links read as written. Everything else is formatted as minijinja does.
fn format_value(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if matches!(state.auto_escape(), minijinja::AutoEscape::Html)
        && !value.is_safe()
        && let Some(text) = value.as_str()
    {
        return write_html_escaped(out, text).map_err(minijinja::Error::from);
    }
    minijinja::escape_formatter(out, state, value)
}

fn write_html_escaped(out: &mut minijinja::Output, text: &str) -> std::fmt::Result {
    let mut last = 0;
    for (index, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            _ => continue,
        };
        out.write_str(&text[last..index])?;
        out.write_str(entity)?;
        last = index + 1;
    }
    out.write_str(&text[last..])
}

/// Why a page could not be shown: a status and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    fn title(&self) -> String {
        match self.status.canonical_reason() {
            Some(reason) => format!("{} {reason}", self.status.as_u16()),
            None => self.status.as_u16().to_string(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        PageError::new(error.status, error.message)
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> PageError {
        ApiError::from(error).into()
    }
}

/// 303 See Other to `location` (after a POST, and to the login page).
fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Headers of every dashboard response: no framing, no inline script or style (the pages use
/// none, so an injected one would not run), no MIME sniffing, and pages are never cached
/// because they carry the session's CSRF token.
async fn security_headers(request: Request, next: Next) -> Response {
    let is_static = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !is_static {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        STYLESHEET,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// An instant as pages show it: `2026-11-26 12:00:00 UTC`.
fn shown_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `{"text", "iso"}` of an instant, for a `<time>` element; `null` when absent.
fn time_json(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(
        Value::Null,
        |at| json!({"text": shown_time(at), "iso": crate::view::instant(at)}),
    )
}

/// Percent-encodes `text` for a URL path segment or query value (RFC 3986 unreserved
/// characters stay as they are).
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A query string (`?a=1&b=2`) of the pairs whose value is present and not empty; `""` when
/// none is.
fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| {
            value
                .filter(|value| !value.is_empty())
                .map(|value| format!("{name}={}", encode_component(value)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A form or query value as given, `None` when absent or blank (forms submit empty fields).
fn given(value: Option<String>) -> Option<String> {
    value
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
}
