//! `ApiError`, the one error shape of the API (`{"error": {"code", "message"}}` with its HTTP
//! status), and the extractors that turn axum's own rejections into it, so that no client ever
//! gets a plain-text error.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::serve::api::MAX_BODY_BYTES;
use crate::store::StoreError;

/// An API error: a status, a stable snake_case code clients can match on, and a message for
/// people. Messages never carry a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn internal(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
    }

    /// The JSON document of this error.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.to_json())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    /// Errors about the request get their 4xx; the store's own troubles are 503 when trying
    /// again may help, 500 otherwise.
    fn from(error: StoreError) -> ApiError {
        let message = error.to_string();
        match error {
            StoreError::OperationNotFound { .. } => {
                ApiError::not_found("operation_not_found", message)
            }
            StoreError::InvalidCursor { cursor } => ApiError::bad_request(
                "invalid_cursor",
                format!(
                    "invalid cursor `{cursor}`: pass the `next_cursor` of the previous page as is"
                ),
            ),
            StoreError::AlreadyFinished { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_finished", message)
            }
            StoreError::WorkflowBusy { .. } => {
                ApiError::new(StatusCode::CONFLICT, "workflow_busy", message)
            }
            StoreError::LeaseHeld { .. } => {
                ApiError::new(StatusCode::CONFLICT, "lease_held", message)
            }
            error if error.is_retryable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "state_store_busy",
                format!("{message}; try again"),
            ),
            _ => ApiError::internal("state_store_error", message),
        }
    }
}

/// The JSON error of any status without a more specific code (unknown routes, methods).
pub(crate) fn status_error(status: StatusCode, message: impl Into<String>) -> ApiError {
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        _ if status.is_client_error() => "bad_request",
        _ => "internal_error",
    };
    ApiError::new(status, code, message)
}

/// The raw request body, at most [`MAX_BODY_BYTES`]; a larger one is a JSON 413.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| body_rejection(&rejection))
    }
}

fn body_rejection(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        )
    } else {
        ApiError::bad_request(
            "unreadable_body",
            format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ),
        )
    }
}

/// Path parameters, with a JSON 400 when they cannot be decoded.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))
    }
}

/// Query parameters, with a JSON 400 naming the parameter that is wrong or unknown.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`).
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON body into `T`. An empty body is `None` (every field of a request body is
/// optional); a non-empty one must say it is JSON (415), be well-formed JSON (400) and have
/// the expected shape (422).
pub(crate) fn parse_json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !is_json_content_type(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON, sent with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body).map(Some).map_err(|error| {
        if error.is_data() {
            ApiError::unprocessable(
                "invalid_body",
                format!("the request body has the wrong shape: {error}"),
            )
        } else {
            ApiError::bad_request(
                "malformed_json",
                format!("the request body is not valid JSON: {error}"),
            )
        }
    })
}
