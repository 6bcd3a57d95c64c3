//! Conversions between the domain types and SQLite columns: instants as fixed-width RFC 3339
//! text, JSON documents, counts, and the decoding of whole rows. Bad stored data is a
//! [`StoreError::CorruptData`], never a panic.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, TimeZone, Utc};
use rusqlite::Row;

use crate::store::{
    AttemptOutcome, Checkpoint, Counts, Delivery, DeliveryAttempt, DeliveryStatus, Lease, Mode,
    Operation, OperationError, OperationStatus, RecordFailure, StoreError,
};

/// The columns [`operation_from_row`] reads, in its order.
pub(crate) const OPERATION_COLUMNS: &str = "id, workflow, workflow_version, git_commit, \
    connection, mode, trigger, vars, status, selected, succeeded, failed, skipped, checkpoint, \
    error_code, error_message, created_at, started_at, finished_at, now, lease_worker, \
    lease_expires_at, cancel_requested, retry_of, record_filter, updated_at";

/// The columns [`failure_from_row`] reads, in its order.
pub(crate) const FAILURE_COLUMNS: &str =
    "seq, operation_id, record_id, action_index, action, code, message, attempts, at";

/// The columns [`delivery_from_row`] reads, in its order.
pub(crate) const DELIVERY_COLUMNS: &str = "id, operation_id, url, method, headers, body, \
    signature, attempts, next_attempt_at, last_error, delivered_at, status, created_at, \
    secret_parts";

/// `2026-11-26T17:30:45.123456Z`: fixed width for years 0–9999, so text order is time order.
pub(crate) fn time_text(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_time(what: &str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|error| StoreError::corrupt(what, format!("`{text}`: {error}")))
}

fn parse_optional_time(
    what: &str,
    text: Option<String>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(|text| parse_time(what, &text)).transpose()
}

/// `now + span`, capped at the last instant the text format can order (year 9999).
pub(crate) fn later(now: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    let cap = Utc
        .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(now);
    TimeDelta::from_std(span)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .map_or(cap, |instant| instant.min(cap))
}

pub(crate) fn count_value(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn count(what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::corrupt(what, format!("negative count {value}")))
}

fn small(what: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::corrupt(what, format!("{value} out of range")))
}

pub(crate) fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::corrupt(what, error))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::corrupt(what, error))
}

pub(crate) fn mode_text(mode: Mode) -> &'static str {
    mode.as_str()
}

fn parse_mode(what: &str, text: &str) -> Result<Mode, StoreError> {
    match text {
        "async" => Ok(Mode::Async),
        "sync" => Ok(Mode::Sync),
        _ => Err(StoreError::corrupt(what, format!("unknown mode `{text}`"))),
    }
}

pub(crate) fn parse_status(what: &str, text: &str) -> Result<OperationStatus, StoreError> {
    text.parse()
        .map_err(|error| StoreError::corrupt(what, error))
}

pub(crate) fn operation_from_row(row: &Row<'_>) -> Result<Operation, StoreError> {
    let id: String = row.get(0)?;
    let what = |column: &str| format!("operations.{column} of {id}");
    let mode: String = row.get(5)?;
    let trigger: String = row.get(6)?;
    let vars: String = row.get(7)?;
    let status: String = row.get(8)?;
    let selected: Option<i64> = row.get(9)?;
    let checkpoint: Option<String> = row.get(13)?;
    let error_code: Option<String> = row.get(14)?;
    let error_message: Option<String> = row.get(15)?;
    let created_at: String = row.get(16)?;
    let now: String = row.get(19)?;
    let lease_worker: Option<String> = row.get(20)?;
    let lease_expires_at: Option<String> = row.get(21)?;
    let record_filter: Option<String> = row.get(24)?;
    let updated_at: String = row.get(25)?;
    let lease = match (lease_worker, lease_expires_at) {
        (Some(worker), Some(expires_at)) => Some(Lease {
            worker,
            expires_at: parse_time(&what("lease_expires_at"), &expires_at)?,
        }),
        _ => None,
    };
    let error = match (error_code, error_message) {
        (None, None) => None,
        (code, message) => Some(OperationError {
            code: code.unwrap_or_default(),
            message: message.unwrap_or_default(),
        }),
    };
    Ok(Operation {
        workflow: row.get(1)?,
        workflow_version: row.get(2)?,
        git_commit: row.get(3)?,
        connection: row.get(4)?,
        mode: parse_mode(&what("mode"), &mode)?,
        trigger: trigger
            .parse()
            .map_err(|error| StoreError::corrupt(what("trigger"), error))?,
        vars: from_json(&what("vars"), &vars)?,
        status: parse_status(&what("status"), &status)?,
        counts: Counts {
            selected: selected
                .map(|selected| count(&what("selected"), selected))
                .transpose()?,
            succeeded: count(&what("succeeded"), row.get(10)?)?,
            failed: count(&what("failed"), row.get(11)?)?,
            skipped: count(&what("skipped"), row.get(12)?)?,
        },
        checkpoint: checkpoint
            .map(|text| from_json::<Checkpoint>(&what("checkpoint"), &text))
            .transpose()?,
        error,
        created_at: parse_time(&what("created_at"), &created_at)?,
        started_at: parse_optional_time(&what("started_at"), row.get(17)?)?,
        finished_at: parse_optional_time(&what("finished_at"), row.get(18)?)?,
        updated_at: parse_time(&what("updated_at"), &updated_at)?,
        now: parse_time(&what("now"), &now)?,
        lease,
        cancel_requested: row.get::<_, i64>(22)? != 0,
        retry_of: row.get(23)?,
        record_filter: record_filter
            .map(|text| from_json(&what("record_filter"), &text))
            .transpose()?,
        id,
    })
}

/// A failure and its `seq` (the failures' page cursor).
pub(crate) fn failure_from_row(row: &Row<'_>) -> Result<(i64, RecordFailure), StoreError> {
    let seq: i64 = row.get(0)?;
    let what = |column: &str| format!("record_failures.{column} of row {seq}");
    let at: String = row.get(8)?;
    Ok((
        seq,
        RecordFailure {
            operation_id: row.get(1)?,
            record_id: row.get(2)?,
            action_index: small(&what("action_index"), row.get(3)?)?,
            action: row.get(4)?,
            code: row.get(5)?,
            message: row.get(6)?,
            attempts: small(&what("attempts"), row.get(7)?)?,
            at: parse_time(&what("at"), &at)?,
        },
    ))
}

pub(crate) fn delivery_from_row(row: &Row<'_>) -> Result<Delivery, StoreError> {
    let id: String = row.get(0)?;
    let what = |column: &str| format!("deliveries.{column} of {id}");
    let headers: String = row.get(4)?;
    let status: String = row.get(11)?;
    let created_at: String = row.get(12)?;
    let secret_parts: String = row.get(13)?;
    Ok(Delivery {
        operation_id: row.get(1)?,
        url: row.get(2)?,
        method: row.get(3)?,
        headers: from_json(&what("headers"), &headers)?,
        body: row.get(5)?,
        signature: row.get(6)?,
        secret_parts: from_json(&what("secret_parts"), &secret_parts)?,
        attempts: small(&what("attempts"), row.get(7)?)?,
        next_attempt_at: parse_optional_time(&what("next_attempt_at"), row.get(8)?)?,
        last_error: row.get(9)?,
        delivered_at: parse_optional_time(&what("delivered_at"), row.get(10)?)?,
        status: status
            .parse::<DeliveryStatus>()
            .map_err(|error| StoreError::corrupt(what("status"), error))?,
        created_at: parse_time(&what("created_at"), &created_at)?,
        id,
    })
}

/// Reads `delivery_id, attempt, at, status_code, error`.
pub(crate) fn attempt_from_row(row: &Row<'_>) -> Result<DeliveryAttempt, StoreError> {
    let delivery_id: String = row.get(0)?;
    let attempt: i64 = row.get(1)?;
    let what = |column: &str| format!("delivery_attempts.{column} of {delivery_id}#{attempt}");
    let at: String = row.get(2)?;
    let status_code: Option<i64> = row.get(3)?;
    let error: Option<String> = row.get(4)?;
    let outcome = match (status_code, error) {
        (Some(code), _) => AttemptOutcome::Status(u16::try_from(code).map_err(|_| {
            StoreError::corrupt(what("status_code"), format!("{code} out of range"))
        })?),
        (None, Some(error)) => AttemptOutcome::Error(error),
        (None, None) => {
            return Err(StoreError::corrupt(
                what("outcome"),
                "neither a status code nor an error",
            ));
        }
    };
    Ok(DeliveryAttempt {
        attempt: small(&what("attempt"), attempt)?,
        at: parse_time(&what("at"), &at)?,
        outcome,
        delivery_id,
    })
}
