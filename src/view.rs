//! JSON views of operations, their per-record failures and their callback deliveries: the one
//! stable shape that `fetchflow ops --format json` prints and the HTTP API returns.
//!
//! Instants are RFC 3339 in UTC; absent values are `null`. Parts of a callback rendered from a
//! secret are shown as `<redacted>` (a secret body as `<redacted: N bytes>`) and the signature
//! itself is never shown, so these views are safe to print and to serve.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::callback::location_of;
use crate::store::{
    AttemptOutcome, DeliveryLog, FailurePage, Operation, OperationPage, RecordFailure,
};

/// An instant as every view writes it: RFC 3339, UTC, `Z`, fractional seconds only when there
/// are any.
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An operation: `{"id", "workflow", "workflow_version", "git_commit", "connection", "mode",
/// "trigger", "status", "state_code", "status_code", "counts": {"selected", "succeeded",
/// "failed", "skipped"}, "created_at", "started_at", "finished_at", "updated_at", "now",
/// "error": {"code", "message"} | null, "cancel_requested", "retry_of", "location"}`.
pub fn operation_json(operation: &Operation) -> Value {
    let counts = operation.progress_counts();
    json!({
        "id": operation.id,
        "workflow": operation.workflow,
        "workflow_version": operation.workflow_version,
        "git_commit": operation.git_commit,
        "connection": operation.connection,
        "mode": operation.mode.as_str(),
        "trigger": operation.trigger.to_string(),
        "status": operation.status.as_str(),
        "state_code": operation.status.state_code(),
        "status_code": operation.status.status_code(),
        "counts": {
            "selected": counts.selected,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "skipped": counts.skipped,
        },
        "created_at": instant(operation.created_at),
        "started_at": operation.started_at.map(instant),
        "finished_at": operation.finished_at.map(instant),
        "updated_at": instant(operation.updated_at),
        "now": instant(operation.now),
        "error": operation.error.as_ref().map(|error| {
            json!({"code": error.code, "message": error.message})
        }),
        "cancel_requested": operation.cancel_requested,
        "retry_of": operation.retry_of,
        "location": location_of(&operation.id),
    })
}

/// Everything about one operation: [`operation_json`] plus `"vars"`, `"checkpoint": {"page",
/// "paging_cookie", "records_done", "batches_done"} | null`, `"lease": {"worker", "expires_at"}
/// | null`, `"record_filter": [record id...] | null` and `"deliveries"` ([`delivery_json`]).
pub fn operation_detail_json(operation: &Operation, deliveries: &[DeliveryLog]) -> Value {
    let mut document = operation_json(operation);
    if let Value::Object(map) = &mut document {
        map.insert("vars".into(), Value::Object(operation.vars.clone()));
        map.insert(
            "checkpoint".into(),
            operation
                .checkpoint
                .as_ref()
                .map_or(Value::Null, |checkpoint| {
                    json!({
                        "page": checkpoint.page,
                        "paging_cookie": checkpoint.paging_cookie,
                        "records_done": checkpoint.records_done,
                        "batches_done": checkpoint.batches_done,
                    })
                }),
        );
        map.insert(
            "lease".into(),
            operation.lease.as_ref().map_or(
                Value::Null,
                |lease| json!({"worker": lease.worker, "expires_at": instant(lease.expires_at)}),
            ),
        );
        map.insert("record_filter".into(), json!(operation.record_filter));
        map.insert(
            "deliveries".into(),
            deliveries.iter().map(delivery_json).collect(),
        );
    }
    document
}

/// A page of operations: `{"operations": [operation...], "next_cursor": string | null}`.
pub fn operation_page_json(page: &OperationPage) -> Value {
    json!({
        "operations": page.operations.iter().map(operation_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })
}

/// One per-record failure: `{"record_id", "action_index", "action", "code", "message",
/// "attempts", "at"}`.
pub fn failure_json(failure: &RecordFailure) -> Value {
    json!({
        "record_id": failure.record_id,
        "action_index": failure.action_index,
        "action": failure.action,
        "code": failure.code,
        "message": failure.message,
        "attempts": failure.attempts,
        "at": instant(failure.at),
    })
}

/// A page of an operation's failures: `{"operation_id", "failures": [failure...],
/// "next_cursor": string | null}`.
pub fn failure_page_json(operation_id: &str, page: &FailurePage) -> Value {
    json!({
        "operation_id": operation_id,
        "failures": page.failures.iter().map(failure_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })
}

/// A callback delivery with its attempt log: `{"id", "method", "url", "headers": [{"name",
/// "value"}], "body", "signed", "status", "attempts", "next_attempt_at", "last_error",
/// "delivered_at", "created_at", "attempt_log": [{"attempt", "at", "status_code", "error"}]}`,
/// secret parts redacted, the signature left out.
pub fn delivery_json(log: &DeliveryLog) -> Value {
    let shown = ShownDelivery { log };
    let delivery = &log.delivery;
    let attempts: Vec<Value> = log
        .attempts
        .iter()
        .map(|attempt| {
            let (status_code, error) = match &attempt.outcome {
                AttemptOutcome::Status(code) => (Some(*code), None),
                AttemptOutcome::Error(error) => (None, Some(shown.error(error))),
            };
            json!({
                "attempt": attempt.attempt,
                "at": instant(attempt.at),
                "status_code": status_code,
                "error": error,
            })
        })
        .collect();
    json!({
        "id": delivery.id,
        "method": delivery.method,
        "url": delivery.shown_url(),
        "headers": delivery
            .shown_headers()
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect::<Vec<_>>(),
        "body": shown.body(),
        "signed": delivery.signature.is_some(),
        "status": delivery.status.as_str(),
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.map(instant),
        "last_error": delivery.last_error.as_deref().map(|error| shown.error(error)),
        "delivered_at": delivery.delivered_at.map(instant),
        "created_at": instant(delivery.created_at),
        "attempt_log": attempts,
    })
}

/// A delivery as it may be shown: secret parts redacted, the signature left out.
pub struct ShownDelivery<'a> {
    pub log: &'a DeliveryLog,
}

impl ShownDelivery<'_> {
    /// The body as text, or `<redacted: N bytes>` when a secret rendered it.
    pub fn body(&self) -> String {
        let delivery = &self.log.delivery;
        if delivery.secret_parts.body {
            format!("<redacted: {} bytes>", delivery.body.len())
        } else {
            String::from_utf8_lossy(&delivery.body).into_owned()
        }
    }

    /// An error text with a secret URL taken out (transport errors often quote the URL).
    pub fn error(&self, text: &str) -> String {
        let delivery = &self.log.delivery;
        if delivery.secret_parts.url && !delivery.url.is_empty() {
            text.replace(&delivery.url, delivery.shown_url())
        } else {
            text.to_string()
        }
    }
}

/// The header line of failures as CSV (`ops failures --format csv`, the dashboard's download).
pub const FAILURES_CSV_HEADER: &str = "record_id,action_index,action,code,message,attempts\r\n";

/// Appends one failure as a CSV row (RFC 4180, CRLF line ends).
pub fn failure_csv_row(out: &mut String, failure: &RecordFailure) {
    let fields = [
        csv_field(&failure.record_id),
        failure.action_index.to_string(),
        csv_field(&failure.action),
        csv_field(&failure.code),
        csv_field(&failure.message),
        failure.attempts.to_string(),
    ];
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

/// RFC 4180: a field with a comma, a quote, CR or LF is quoted, its quotes doubled.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
