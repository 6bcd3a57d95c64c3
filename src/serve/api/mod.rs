//! The HTTP API of `fetchflow serve` (DESIGN 7.3): workflows, runs, operations, webhooks,
//! `/metrics` and `/healthz`, built by [`router`] over a [`ServeState`].
//!
//! Conventions, for every endpoint:
//! - Errors are `{"error": {"code": "<stable_snake_case>", "message": "..."}}` with their HTTP
//!   status ([`ApiError`]); axum's own rejections (bodies, paths, queries, unknown routes and
//!   methods) are mapped to that shape too, never plain text.
//! - Bodies are at most [`MAX_BODY_BYTES`] (413 above). A request body must be JSON
//!   (`Content-Type: application/json`, else 415); malformed JSON is 400, a well-formed body of
//!   the wrong shape or with vars of the wrong type is 422. Every check runs before anything is
//!   written, so a refused request starts nothing.
//! - Mutating endpoints (every `POST` under `/api/`) require `Authorization: Bearer <token>`
//!   when a token is configured, compared in constant time (401 otherwise). `POST
//!   /hooks/{name}` is authenticated by its HMAC signature instead.
//! - Lists are keyset-paged: `limit` (1..=1000, default 50) and the `next_cursor` of the
//!   previous page as `cursor`.

mod error;
mod hooks;
pub(crate) mod operations;
pub(crate) mod workflows;

#[cfg(test)]
mod tests;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::serve::ServeState;
use crate::serve::metrics::{Gauges, PROMETHEUS_CONTENT_TYPE};
use crate::serve::registry::FileStatus;

pub use error::{ApiError, ApiPath, ApiQuery, RawBody};

/// The largest request body the API reads: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How long a sync run started through the API holds its operation's lease between heartbeats.
const SYNC_LEASE: Duration = Duration::from_secs(30);

/// The API over `state`. See the module documentation for the conventions.
pub fn router(state: ServeState) -> Router {
    let mutating = Router::new()
        .route("/api/workflows/{name}/runs", post(workflows::start_run))
        .route(
            "/api/operations/{id}/cancel",
            post(operations::cancel_operation),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/api/workflows", get(workflows::list_workflows))
        .route("/api/workflows/{name}", get(workflows::show_workflow))
        .route("/api/operations", get(operations::list_operations))
        .route("/api/operations/{id}", get(operations::show_operation))
        .route(
            "/api/operations/{id}/failures",
            get(operations::list_failures),
        )
        .route("/hooks/{name}", post(hooks::receive_webhook))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .merge(mutating)
        // `GET /` and the other HTML pages.
        .merge(crate::serve::dashboard::router(state.clone()))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Refuses a mutating request without the configured bearer token, before its body is read.
async fn require_token(State(state): State<ServeState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        match bearer_token(request.headers()) {
            None => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this endpoint requires `Authorization: Bearer <token>`",
                )
                .into_response();
            }
            Some(given) if !same_secret(given.as_bytes(), token.as_bytes()) => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "the bearer token is not the configured one",
                )
                .into_response();
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Compares two secrets in constant time: both are hashed first, so neither the position of
/// the first difference nor the secret's length shows in the timing.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    let difference = given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

/// `GET /healthz`.
async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

/// `GET /metrics`: the counters and the gauges read now, in the Prometheus text format.
async fn metrics(State(state): State<ServeState>) -> Response {
    let snapshot = state.registry.snapshot();
    let files_in_error = snapshot
        .files()
        .filter(|file| file.status == FileStatus::Error)
        .count();
    let gauges = Gauges {
        operations_by_status: match state.store.status_counts() {
            Ok(counts) => Some(counts),
            Err(error) => {
                tracing::warn!(%error, "The state store could not be read for /metrics.");
                None
            }
        },
        workflows_loaded: snapshot.workflows().count() as u64,
        files_in_error: files_in_error as u64,
    };
    (
        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        state.metrics.render(&gauges),
    )
        .into_response()
}

async fn unknown_route(request: Request) -> ApiError {
    error::status_error(
        StatusCode::NOT_FOUND,
        format!("no endpoint {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    error::status_error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}
