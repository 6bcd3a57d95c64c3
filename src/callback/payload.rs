//! How an operation ended ([`OperationOutcome`]), the callback template's `operation` value, and
//! the default callback body: the Dataverse background-operation callback payload plus
//! `workflow` and the counts (DESIGN.md 7.4).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::compile::{CallbackEvent, Mode};

/// The end of an operation; the statuses a callback can report (DESIGN.md 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinalStatus {
    Succeeded,
    Failed,
    Canceled,
}

impl FinalStatus {
    pub const ALL: [FinalStatus; 3] = [
        FinalStatus::Succeeded,
        FinalStatus::Failed,
        FinalStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FinalStatus::Succeeded => "succeeded",
            FinalStatus::Failed => "failed",
            FinalStatus::Canceled => "canceled",
        }
    }

    /// The Dataverse `backgroundoperationstatecode`: 3 (Completed) for every end.
    pub fn state_code(self) -> i32 {
        3
    }

    /// The Dataverse `backgroundoperationstatuscode`: 30 succeeded, 31 failed, 32 canceled.
    pub fn status_code(self) -> i32 {
        match self {
            FinalStatus::Succeeded => 30,
            FinalStatus::Failed => 31,
            FinalStatus::Canceled => 32,
        }
    }

    /// The `callback.on` entry that selects this end.
    pub fn event(self) -> CallbackEvent {
        match self {
            FinalStatus::Succeeded => CallbackEvent::Succeeded,
            FinalStatus::Failed => CallbackEvent::Failed,
            FinalStatus::Canceled => CallbackEvent::Canceled,
        }
    }
}

impl fmt::Display for FinalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status that is not an end (`waiting`, `in_progress`, ...) or not a status at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a final operation status (succeeded, failed, canceled)")]
pub struct NotFinal(pub String);

impl FromStr for FinalStatus {
    type Err = NotFinal;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        FinalStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| NotFinal(text.to_string()))
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationError {
    /// The Dataverse web-service error code (e.g. `-2147187707`); 0 when the error does not come
    /// from Dataverse (as Dataverse's own `errorcode` column does).
    pub code: i64,
    pub message: String,
}

/// Everything a callback reports about an ended operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationOutcome {
    /// The operation id (a UUID).
    pub id: String,
    /// The workflow name.
    pub workflow: String,
    pub status: FinalStatus,
    pub selected: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Set for a failed operation. A failed operation without one reports code 0 and
    /// [`UNKNOWN_FAILURE`] in the default payload.
    pub error: Option<OperationError>,
    /// The status resource of the operation, e.g. [`location_of`]`(id)`; absolute when the
    /// engine knows the public base URL of `serve`.
    pub location: String,
    pub mode: Mode,
    /// `cron@<instant>`, `manual`, `webhook` or `api`.
    pub trigger: String,
}

/// The message of a failed operation that carries no error.
pub const UNKNOWN_FAILURE: &str = "the operation failed";

/// The `serve` path of an operation: `/api/operations/<id>`.
pub fn location_of(id: &str) -> String {
    format!("/api/operations/{id}")
}

/// How instants are written in templates and payloads: RFC 3339 in UTC with `Z`, with fractional
/// seconds only when there are any (`2026-11-26T02:00:00Z`).
pub fn format_instant(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl OperationOutcome {
    pub fn state_code(&self) -> i32 {
        self.status.state_code()
    }

    pub fn status_code(&self) -> i32 {
        self.status.status_code()
    }

    /// The template context's `operation`: the fields every template sees (`id`, `mode`,
    /// `trigger`, `started_at`) and the callback-only ones. `error` is `null` or
    /// `{code, message}`, so `operation.error | tojson` always renders.
    pub fn template_value(&self) -> Value {
        json!({
            "id": self.id,
            "mode": self.mode.as_str(),
            "trigger": self.trigger,
            "started_at": format_instant(self.started_at),
            "status": self.status.as_str(),
            "status_code": self.status_code(),
            "state_code": self.state_code(),
            "selected": self.selected,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "finished_at": format_instant(self.finished_at),
            "error": self.error.as_ref().map(|error| json!({
                "code": error.code,
                "message": error.message,
            })),
            "location": self.location,
        })
    }

    /// The default callback body, compact JSON in this field order: `location`,
    /// `backgroundOperationId`, `backgroundOperationStateCode`, `backgroundOperationStatusCode`,
    /// for a failed operation `backgroundOperationErrorCode` and `backgroundOperationErrorMessage`
    /// (Dataverse sends them only on error), then `workflow`, `selected`, `succeeded`, `failed`,
    /// `skipped`.
    pub fn default_body(&self) -> Vec<u8> {
        let failure = match (&self.error, self.status) {
            (Some(error), FinalStatus::Failed) => Some((error.code, error.message.as_str())),
            (None, FinalStatus::Failed) => Some((0, UNKNOWN_FAILURE)),
            (_, FinalStatus::Succeeded | FinalStatus::Canceled) => None,
        };
        let payload = DefaultPayload {
            location: &self.location,
            background_operation_id: &self.id,
            background_operation_state_code: self.state_code(),
            background_operation_status_code: self.status_code(),
            background_operation_error_code: failure.map(|(code, _)| code),
            background_operation_error_message: failure.map(|(_, message)| message),
            workflow: &self.workflow,
            selected: self.selected,
            succeeded: self.succeeded,
            failed: self.failed,
            skipped: self.skipped,
        };
        // Strings, integers and options only: serializing to memory cannot fail.
        serde_json::to_vec(&payload).unwrap_or_default()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DefaultPayload<'a> {
    location: &'a str,
    background_operation_id: &'a str,
    background_operation_state_code: i32,
    background_operation_status_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    background_operation_error_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    background_operation_error_message: Option<&'a str>,
    workflow: &'a str,
    selected: u64,
    succeeded: u64,
    failed: u64,
    skipped: u64,
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::TimeZone;

    use super::*;

    pub(crate) const ID: &str = "3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b";

    pub(crate) fn succeeded() -> OperationOutcome {
        OperationOutcome {
            id: ID.to_string(),
            workflow: "territory-restructure".to_string(),
            status: FinalStatus::Succeeded,
            selected: 10_000,
            succeeded: 9_990,
            failed: 0,
            skipped: 10,
            started_at: Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap(),
            finished_at: Utc.with_ymd_and_hms(2026, 11, 26, 2, 3, 7).unwrap(),
            error: None,
            location: location_of(ID),
            mode: Mode::Async,
            trigger: "cron@2026-11-26T02:00:00Z".to_string(),
        }
    }

    pub(crate) fn failed() -> OperationOutcome {
        OperationOutcome {
            status: FinalStatus::Failed,
            succeeded: 40,
            failed: 1,
            skipped: 0,
            error: Some(OperationError {
                code: -2147187707,
                message: "Access is denied. \"account\" <West>".to_string(),
            }),
            ..succeeded()
        }
    }

    #[test]
    fn statuses_have_the_dataverse_codes() {
        let codes: Vec<_> = FinalStatus::ALL
            .iter()
            .map(|status| (status.as_str(), status.state_code(), status.status_code()))
            .collect();
        assert_eq!(
            codes,
            [("succeeded", 3, 30), ("failed", 3, 31), ("canceled", 3, 32)]
        );
        for status in FinalStatus::ALL {
            assert_eq!(status.as_str().parse::<FinalStatus>(), Ok(status));
        }
        assert_eq!(
            "in_progress".parse::<FinalStatus>(),
            Err(NotFinal("in_progress".into()))
        );
    }

    #[test]
    fn default_body_of_a_succeeded_operation() {
        let body = String::from_utf8(succeeded().default_body()).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"{"location":"/api/operations/3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b","#,
                r#""backgroundOperationId":"3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b","#,
                r#""backgroundOperationStateCode":3,"backgroundOperationStatusCode":30,"#,
                r#""workflow":"territory-restructure","#,
                r#""selected":10000,"succeeded":9990,"failed":0,"skipped":10}"#,
            )
        );
    }

    #[test]
    fn default_body_of_a_failed_operation() {
        let body = String::from_utf8(failed().default_body()).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"{"location":"/api/operations/3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b","#,
                r#""backgroundOperationId":"3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b","#,
                r#""backgroundOperationStateCode":3,"backgroundOperationStatusCode":31,"#,
                r#""backgroundOperationErrorCode":-2147187707,"#,
                r#""backgroundOperationErrorMessage":"Access is denied. \"account\" <West>","#,
                r#""workflow":"territory-restructure","#,
                r#""selected":10000,"succeeded":40,"failed":1,"skipped":0}"#,
            )
        );
    }

    #[test]
    fn error_fields_only_for_failures() {
        let without_error = OperationOutcome {
            error: None,
            ..failed()
        };
        let body: Value = serde_json::from_slice(&without_error.default_body()).unwrap();
        assert_eq!(body["backgroundOperationErrorCode"], 0);
        assert_eq!(body["backgroundOperationErrorMessage"], UNKNOWN_FAILURE);

        let canceled = OperationOutcome {
            status: FinalStatus::Canceled,
            ..succeeded()
        };
        let body: Value = serde_json::from_slice(&canceled.default_body()).unwrap();
        assert_eq!(body["backgroundOperationStatusCode"], 32);
        assert!(body.get("backgroundOperationErrorCode").is_none());
        assert!(body.get("backgroundOperationErrorMessage").is_none());
    }

    #[test]
    fn template_value_has_every_callback_field() {
        let value = failed().template_value();
        assert_eq!(
            value,
            json!({
                "id": ID,
                "mode": "async",
                "trigger": "cron@2026-11-26T02:00:00Z",
                "started_at": "2026-11-26T02:00:00Z",
                "status": "failed",
                "status_code": 31,
                "state_code": 3,
                "selected": 10000,
                "succeeded": 40,
                "failed": 1,
                "skipped": 0,
                "finished_at": "2026-11-26T02:03:07Z",
                "error": {"code": -2147187707i64, "message": "Access is denied. \"account\" <West>"},
                "location": "/api/operations/3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
            })
        );
        assert_eq!(succeeded().template_value()["error"], Value::Null);
    }

    #[test]
    fn instants_use_fractions_only_when_present() {
        let whole = Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap();
        assert_eq!(format_instant(whole), "2026-11-26T02:00:00Z");
        let fractional = whole + chrono::Duration::milliseconds(250);
        assert_eq!(format_instant(fractional), "2026-11-26T02:00:00.250Z");
    }
}
