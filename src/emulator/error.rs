//! `DvError`, every error the emulator answers: an HTTP status and the Dataverse error body
//! `{"error":{"code":"0x…","message":"…"}}` (`org::odata::error_body`), plus headers such as
//! `Retry-After` and `WWW-Authenticate`.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::org::odata::{
    self, DUPLICATE_RECORD, INVALID_ARGUMENT, MappingError, OBJECT_DOES_NOT_EXIST,
    PROPERTY_NOT_FOUND, RESOURCE_NOT_FOUND, UNEXPECTED,
};
use crate::org::{OrgError, RecordError};

/// `0x80048d19`: the payload is not what the operation takes (malformed JSON, bad multipart).
pub(crate) const BAD_PAYLOAD: i64 = -2147185383;
/// `0x80048306`: the background operation (or other item) is not there.
pub(crate) const ITEM_NOT_FOUND: i64 = -2147185406;
/// `0x8004d234`: an HTTP method the resource does not take.
pub(crate) const METHOD_NOT_ALLOWED: i64 = -2147167692;
/// `0x80040220`: not authenticated.
pub(crate) const NOT_AUTHENTICATED: i64 = -2147220960;

/// An error response in the Dataverse shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {message}")]
pub struct DvError {
    pub status: StatusCode,
    pub number: i64,
    pub message: String,
    pub headers: Vec<(HeaderName, String)>,
}

impl DvError {
    pub fn new(status: StatusCode, number: i64, message: impl Into<String>) -> DvError {
        DvError {
            status,
            number,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> DvError {
        self.headers.push((name, value.into()));
        self
    }

    /// The same error with `prefix` before its message (e.g. which target of a bulk message).
    #[must_use]
    pub fn prefixed(mut self, prefix: &str) -> DvError {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> DvError {
        DvError::new(StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message)
    }

    pub fn bad_payload(message: impl Into<String>) -> DvError {
        DvError::new(StatusCode::BAD_REQUEST, BAD_PAYLOAD, message)
    }

    pub fn internal(message: impl Into<String>) -> DvError {
        DvError::new(StatusCode::INTERNAL_SERVER_ERROR, UNEXPECTED, message)
    }

    /// 404 "Resource not found for the segment '<segment>'."
    pub fn not_found_segment(segment: &str) -> DvError {
        DvError::new(
            StatusCode::NOT_FOUND,
            RESOURCE_NOT_FOUND,
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    /// 404 "<entity> With Id = <id> Does Not Exist".
    pub fn does_not_exist(entity: &str, id: &str) -> DvError {
        DvError::new(
            StatusCode::NOT_FOUND,
            OBJECT_DOES_NOT_EXIST,
            format!("{entity} With Id = {id} Does Not Exist"),
        )
    }

    pub fn method_not_allowed(method: &str, path: &str) -> DvError {
        DvError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            METHOD_NOT_ALLOWED,
            format!("The HTTP method '{method}' is not allowed on '{path}'."),
        )
    }

    /// The status Dataverse answers for an error number.
    fn status_of(number: i64) -> StatusCode {
        match number {
            OBJECT_DOES_NOT_EXIST | RESOURCE_NOT_FOUND | ITEM_NOT_FOUND => StatusCode::NOT_FOUND,
            DUPLICATE_RECORD => StatusCode::PRECONDITION_FAILED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<OrgError> for DvError {
    fn from(error: OrgError) -> DvError {
        let status = if error.retryable {
            StatusCode::SERVICE_UNAVAILABLE
        } else if error.code == "StorageError" {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            DvError::status_of(error.number)
        };
        let mut dv = DvError::new(status, error.number, error.message);
        if let Some(wait) = error.retry_after {
            dv = dv.with_header(
                axum::http::header::RETRY_AFTER,
                wait.as_secs().max(1).to_string(),
            );
        }
        dv
    }
}

impl From<RecordError> for DvError {
    fn from(error: RecordError) -> DvError {
        let status = if error.code == "StorageError" {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            DvError::status_of(error.number)
        };
        DvError::new(status, error.number, error.message)
    }
}

impl From<MappingError> for DvError {
    fn from(error: MappingError) -> DvError {
        let status = match error.number {
            RESOURCE_NOT_FOUND | PROPERTY_NOT_FOUND => StatusCode::BAD_REQUEST,
            number => DvError::status_of(number),
        };
        DvError::new(status, error.number, error.message)
    }
}

impl From<rusqlite::Error> for DvError {
    fn from(error: rusqlite::Error) -> DvError {
        DvError::internal(format!("local org storage error: {error}"))
    }
}

impl IntoResponse for DvError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(odata::error_body(self.number, &self.message)),
        )
            .into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}
