//! `StoreError`: what can go wrong in the state store, each variant named as the fact it reports.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::store::OperationStatus;

/// An error of the state store. Messages are lower-case without a trailing period.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("operation {id} not found")]
    OperationNotFound { id: String },

    #[error("operation {id} already exists")]
    OperationExists { id: String },

    #[error("delivery {id} not found")]
    DeliveryNotFound { id: String },

    #[error("delivery {id} is already {status}")]
    DeliveryClosed { id: String, status: &'static str },

    #[error("worker {worker} no longer holds the lease on operation {id}")]
    LeaseLost { id: String, worker: String },

    #[error("operation {id} is held by worker {holder} until {expires_at}")]
    LeaseHeld {
        id: String,
        holder: String,
        expires_at: DateTime<Utc>,
    },

    #[error("operation {id} waits: operation {active} of workflow {workflow} is still running")]
    WorkflowBusy {
        id: String,
        workflow: String,
        active: String,
    },

    /// A cron operation's fire instant was already claimed (by another scheduler, or by a
    /// skipped fire): the operation was not created.
    #[error("the fire of workflow {workflow} at {instant} was already claimed")]
    FireClaimed {
        workflow: String,
        instant: DateTime<Utc>,
    },

    #[error("operation {id} has already finished ({})", status.as_str())]
    AlreadyFinished { id: String, status: OperationStatus },

    #[error("operation {id} cannot finish as {}: not a final status", status.as_str())]
    StatusNotFinal { id: String, status: OperationStatus },

    #[error(
        "workflow {name}: the source given for version {version} has another content hash; pass the text the version was compiled from"
    )]
    WorkflowVersionMismatch { name: String, version: String },

    #[error("invalid page cursor `{cursor}`")]
    InvalidCursor { cursor: String },

    #[error("corrupt state store data in {what}: {detail}")]
    CorruptData { what: String, detail: String },

    #[error("{name} is not a fetchflow state store ({detail}); point `state` at another file")]
    NotAStateStore { name: String, detail: String },

    #[error(
        "the state store was written by a newer fetchflow (schema version {found}, this build supports up to {supported}); upgrade fetchflow or use another state file"
    )]
    NewerSchema { found: i64, supported: i64 },

    #[error("cannot create {}: {source}", path.display())]
    CreateDirectory {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot create {}: {source}", path.display())]
    CreateFile {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("state store storage error: {0}")]
    Storage(#[from] rusqlite::Error),
}

impl StoreError {
    /// A stable machine code (the variant's name), for JSON output and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::OperationNotFound { .. } => "OperationNotFound",
            StoreError::OperationExists { .. } => "OperationExists",
            StoreError::DeliveryNotFound { .. } => "DeliveryNotFound",
            StoreError::DeliveryClosed { .. } => "DeliveryClosed",
            StoreError::LeaseLost { .. } => "LeaseLost",
            StoreError::LeaseHeld { .. } => "LeaseHeld",
            StoreError::WorkflowBusy { .. } => "WorkflowBusy",
            StoreError::FireClaimed { .. } => "FireClaimed",
            StoreError::AlreadyFinished { .. } => "AlreadyFinished",
            StoreError::StatusNotFinal { .. } => "StatusNotFinal",
            StoreError::WorkflowVersionMismatch { .. } => "WorkflowVersionMismatch",
            StoreError::InvalidCursor { .. } => "InvalidCursor",
            StoreError::CorruptData { .. } => "CorruptData",
            StoreError::NotAStateStore { .. } => "NotAStateStore",
            StoreError::NewerSchema { .. } => "NewerSchema",
            StoreError::CreateDirectory { .. } => "CreateDirectory",
            StoreError::CreateFile { .. } => "CreateFile",
            StoreError::Storage(_) => "StorageError",
        }
    }

    /// Whether trying again later may succeed: the database was busy or locked by another
    /// connection for longer than the busy timeout.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Storage(error) => matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> StoreError {
        StoreError::CorruptData {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}
