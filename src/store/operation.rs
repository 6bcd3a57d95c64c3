//! `Operation`: the durable record of one run of a workflow, its `OperationStatus` state machine
//! with the Dataverse codes of DESIGN 7.1, its `Trigger`, counts, checkpoint and lease.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

pub use crate::compile::Mode;

/// Where an operation is in its life. `Waiting → InProgress → (Canceling →) final`; a waiting
/// operation can also be canceled at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationStatus {
    Waiting,
    InProgress,
    Canceling,
    Succeeded,
    Failed,
    Canceled,
}

impl OperationStatus {
    /// The name Dynamics shows for this status of a system job (`In Progress`, `Succeeded`).
    pub fn display_name(self) -> &'static str {
        match self {
            OperationStatus::Waiting => "Waiting",
            OperationStatus::InProgress => "In Progress",
            OperationStatus::Canceling => "Canceling",
            OperationStatus::Succeeded => "Succeeded",
            OperationStatus::Failed => "Failed",
            OperationStatus::Canceled => "Canceled",
        }
    }

    /// A status as people write it: the store names, and the Dynamics display names in any
    /// case, with spaces or hyphens (`In Progress`, `in-progress`). Anything else is an error
    /// with a did-you-mean; words people use for a status (`running`, `queued`) are suggested,
    /// not accepted, so that scripts stay exact.
    pub fn parse_named(text: &str) -> Result<OperationStatus, String> {
        let normalized = text.trim().to_lowercase().replace([' ', '-'], "_");
        normalized.parse().map_err(|_| {
            let names = OperationStatus::ALL.map(OperationStatus::as_str);
            let aliases = [
                ("running", "in_progress"),
                ("started", "in_progress"),
                ("pending", "waiting"),
                ("queued", "waiting"),
                ("cancelled", "canceled"),
                ("cancelling", "canceling"),
            ];
            let candidates = names
                .iter()
                .copied()
                .chain(aliases.iter().map(|(alias, _)| *alias));
            let hint = crate::diagnostics::did_you_mean(&normalized, candidates)
                .map(|found| {
                    let name = aliases
                        .iter()
                        .find(|(alias, _)| *alias == found)
                        .map_or(found, |(_, name)| name);
                    format!("did you mean `{name}`? ")
                })
                .unwrap_or_default();
            format!(
                "unknown status `{text}`; {hint}expected one of {}",
                names.join(", ")
            )
        })
    }

    pub const ALL: [OperationStatus; 6] = [
        OperationStatus::Waiting,
        OperationStatus::InProgress,
        OperationStatus::Canceling,
        OperationStatus::Succeeded,
        OperationStatus::Failed,
        OperationStatus::Canceled,
    ];

    /// Dataverse `backgroundOperationStateCode`: 0 not started, 2 running, 3 completed.
    pub fn state_code(self) -> u8 {
        match self {
            OperationStatus::Waiting => 0,
            OperationStatus::InProgress | OperationStatus::Canceling => 2,
            OperationStatus::Succeeded | OperationStatus::Failed | OperationStatus::Canceled => 3,
        }
    }

    /// Dataverse `backgroundOperationStatusCode`.
    pub fn status_code(self) -> u8 {
        match self {
            OperationStatus::Waiting => 0,
            OperationStatus::InProgress => 20,
            OperationStatus::Canceling => 22,
            OperationStatus::Succeeded => 30,
            OperationStatus::Failed => 31,
            OperationStatus::Canceled => 32,
        }
    }

    /// The stable name used in the store, the API and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Waiting => "waiting",
            OperationStatus::InProgress => "in_progress",
            OperationStatus::Canceling => "canceling",
            OperationStatus::Succeeded => "succeeded",
            OperationStatus::Failed => "failed",
            OperationStatus::Canceled => "canceled",
        }
    }

    /// Succeeded, failed or canceled: nothing will change any more.
    pub fn is_final(self) -> bool {
        self.state_code() == 3
    }
}

impl fmt::Display for OperationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`OperationStatus::as_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown operation status `{0}` (expected waiting, in_progress, canceling, succeeded, failed or canceled)"
)]
pub struct UnknownStatus(pub String);

impl FromStr for OperationStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        OperationStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_string()))
    }
}

/// What started an operation. Stored as text: `cron@<instant>`, `manual`, `webhook`, `api`,
/// `retry:<operation id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A schedule fired at this instant (UTC, whole seconds).
    Cron { instant: DateTime<Utc> },
    /// `fetchflow run` from the command line.
    Manual,
    /// `POST /hooks/{name}`.
    Webhook,
    /// `POST /api/workflows/{name}/runs`.
    Api,
    /// `fetchflow ops retry` of an earlier operation.
    Retry { of: String },
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Cron { instant } => write!(
                f,
                "cron@{}",
                instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            ),
            Trigger::Manual => f.write_str("manual"),
            Trigger::Webhook => f.write_str("webhook"),
            Trigger::Api => f.write_str("api"),
            Trigger::Retry { of } => write!(f, "retry:{of}"),
        }
    }
}

/// A trigger text that is not one of the forms of [`Trigger`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown trigger `{0}` (expected cron@<instant>, manual, webhook, api or retry:<operation id>)"
)]
pub struct UnknownTrigger(pub String);

impl FromStr for Trigger {
    type Err = UnknownTrigger;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownTrigger(text.to_string());
        match text {
            "manual" => Ok(Trigger::Manual),
            "webhook" => Ok(Trigger::Webhook),
            "api" => Ok(Trigger::Api),
            _ => {
                if let Some(instant) = text.strip_prefix("cron@") {
                    let instant = DateTime::parse_from_rfc3339(instant).map_err(|_| unknown())?;
                    Ok(Trigger::Cron {
                        instant: instant.with_timezone(&Utc),
                    })
                } else if let Some(of) = text.strip_prefix("retry:")
                    && !of.is_empty()
                {
                    Ok(Trigger::Retry { of: of.to_string() })
                } else {
                    Err(unknown())
                }
            }
        }
    }
}

/// Record counts of an operation. `selected` is unknown until the selection has been counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub selected: Option<u64>,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// Where a run stands after its last committed batch; a resumed run starts from here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The next page to read (1-based, as Dataverse's `page`).
    pub page: u32,
    /// The paging cookie that reads the next page, if the org gave one.
    pub paging_cookie: Option<String>,
    pub records_done: u64,
    pub batches_done: u64,
    /// What the run has done so far, including batches committed after this position (they are
    /// replayed on resume, so they are not in the operation's counts yet). For progress displays
    /// only: a resumed run starts from the position above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
}

/// Records processed by a run so far (see [`Checkpoint::progress`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProgress {
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Records selected so far; the whole selection once `selection_read`.
    pub selected: u64,
    pub selection_read: bool,
}

/// Why an operation failed: a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationError {
    pub code: String,
    pub message: String,
}

/// A worker's claim on an operation it executes, renewed by heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub worker: String,
    pub expires_at: DateTime<Utc>,
}

/// One run of a workflow, sync or async, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// A UUID, generated by whoever creates the operation.
    pub id: String,
    pub workflow: String,
    /// The content hash of the workflow file the operation runs.
    pub workflow_version: String,
    /// The commit of the workflow file, when it sat in a clean git work tree.
    pub git_commit: Option<String>,
    pub connection: String,
    pub mode: Mode,
    pub trigger: Trigger,
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub status: OperationStatus,
    pub counts: Counts,
    pub checkpoint: Option<Checkpoint>,
    pub error: Option<OperationError>,
    pub created_at: DateTime<Utc>,
    /// When a worker first claimed it.
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The last change of status, lease holder, checkpoint or counts.
    pub updated_at: DateTime<Utc>,
    /// The operation's fixed `now` for templates, the same on every replay.
    pub now: DateTime<Utc>,
    pub lease: Option<Lease>,
    pub cancel_requested: bool,
    /// The operation this one retries.
    pub retry_of: Option<String>,
    /// When set, only these records of the selection are processed (a retry of failed ones).
    pub record_filter: Option<Vec<String>>,
}

impl Operation {
    /// The counts to show: while it runs, what its last batch reported (checkpoints move on
    /// page boundaries, so the stored counts lag behind by up to a page); once final, the
    /// stored counts.
    pub fn progress_counts(&self) -> Counts {
        match self
            .checkpoint
            .as_ref()
            .and_then(|checkpoint| checkpoint.progress)
        {
            Some(progress) if !self.status.is_final() => Counts {
                selected: progress
                    .selection_read
                    .then_some(progress.selected)
                    .or(self.counts.selected),
                succeeded: progress.succeeded.max(self.counts.succeeded),
                failed: progress.failed.max(self.counts.failed),
                skipped: progress.skipped.max(self.counts.skipped),
            },
            _ => self.counts,
        }
    }
}

/// What the caller decides when creating an operation; the store fills in the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOperation {
    pub id: String,
    pub workflow: String,
    pub workflow_version: String,
    pub git_commit: Option<String>,
    pub connection: String,
    pub mode: Mode,
    pub trigger: Trigger,
    pub vars: serde_json::Map<String, serde_json::Value>,
    /// The fixed `now` of the run (for a cron fire, usually the fire instant).
    pub now: DateTime<Utc>,
    pub retry_of: Option<String>,
    pub record_filter: Option<Vec<String>>,
}
