//! Dataverse error bodies (`{"error":{"code":"0x80040217","message":"..."}}`, reference §3.1)
//! turned into our errors, with the error's name when we know its number.

use std::time::Duration;

use crate::org::odata;
use crate::org::{OrgError, RecordError};

/// Names of numbers a bulk job meets that `odata::error_name` does not know.
const MORE_NAMES: &[(u32, &str)] = &[
    (0x8004_0220, "PrincipalPrivilegeDenied"),
    (0x8004_0204, "InvalidParent"),
    (0x8006_0882, "ConcurrencyVersionMismatch"),
    (0x8004_0265, "CustomPluginNotAllowed"),
];

/// The three throttling errors of service protection (reference §4.2).
pub(crate) const THROTTLING: [i64; 3] = [
    odata::THROTTLE_REQUESTS,
    odata::THROTTLE_EXECUTION_TIME,
    odata::THROTTLE_CONCURRENCY,
];

/// The name of a Dataverse error number, `DataverseError` when it is not one we know.
pub(crate) fn code_name(number: i64) -> &'static str {
    odata::error_name(number).unwrap_or_else(|| {
        MORE_NAMES
            .iter()
            .find(|(code, _)| i64::from(*code as i32) == number)
            .map_or("DataverseError", |(_, name)| name)
    })
}

/// A Dataverse error body: its number (0 when the code is not a number) and message.
pub(crate) fn parse_error_body(body: &[u8]) -> Option<(i64, String)> {
    odata::parse_error_body(body).map(|error| (error.number.unwrap_or(0), error.message))
}

/// The record's error for a non-success status: the Dataverse body when there is one.
pub(crate) fn record_error(status: u16, body: &[u8]) -> RecordError {
    match parse_error_body(body) {
        Some((number, message)) if number != 0 => RecordError {
            code: code_name(number),
            number,
            message,
        },
        Some((_, message)) => RecordError {
            code: status_code_name(status),
            number: 0,
            message: if message.is_empty() {
                format!("HTTP {status}")
            } else {
                message
            },
        },
        None => RecordError {
            code: status_code_name(status),
            number: 0,
            message: format!("HTTP {status} without a Dataverse error body"),
        },
    }
}

/// A name for an error that only has an HTTP status.
pub(crate) fn status_code_name(status: u16) -> &'static str {
    match status {
        400 => "InvalidArgument",
        401 => "Unauthorized",
        403 => "PrincipalPrivilegeDenied",
        404 => "ObjectDoesNotExist",
        412 => "DuplicateRecord",
        413 => "PayloadTooLarge",
        429 => "ServiceProtection",
        500..=599 => "ServiceUnavailable",
        _ => "DataverseError",
    }
}

/// A request-level error: `connection `x`: METHOD path: what happened`.
pub(crate) fn org_error(
    connection: &str,
    request: &str,
    code: &'static str,
    number: i64,
    what: impl std::fmt::Display,
) -> OrgError {
    OrgError::new(
        code,
        number,
        format!("connection `{connection}`: {request}: {what}"),
    )
}

/// A request-level error from a non-success answer (4xx the caller cannot attribute to one
/// record): the Dataverse error with the status.
pub(crate) fn answer_error(connection: &str, request: &str, status: u16, body: &[u8]) -> OrgError {
    let error = record_error(status, body);
    org_error(
        connection,
        request,
        error.code,
        error.number,
        format!("{status}: {}", error.message),
    )
}

/// A part answered 429 or 5xx: retryable, with the wait a 429 asks for.
pub(crate) fn part_failure(
    connection: &str,
    describe: &str,
    part: &crate::org::dataverse::batch::PartAnswer,
) -> OrgError {
    let mut error = answer_error(connection, describe, part.status, &part.body);
    error.retryable = true;
    let retry_after = part
        .header("retry-after")
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    error.retry_after = if part.status == 429 || THROTTLING.contains(&error.number) {
        Some(retry_after.unwrap_or(Duration::from_secs(5)))
    } else {
        retry_after
    };
    error
}
