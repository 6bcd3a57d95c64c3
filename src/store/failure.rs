//! `RecordFailure`: one record an operation could not process, with the action and the error.

use chrono::{DateTime, Utc};

/// A per-record failure, kept and listable (DESIGN 7.1). At most one per (operation, record,
/// action): saving the same one again replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    pub operation_id: String,
    /// The primary key of the source record.
    pub record_id: String,
    /// The index of the failing action in the workflow's `actions`.
    pub action_index: u32,
    /// The action's kind or name, as shown to users (`update`, `assign`, ...).
    pub action: String,
    /// The org's error code (a Dataverse error name or number).
    pub code: String,
    pub message: String,
    /// How many times the write was tried before giving up.
    pub attempts: u32,
    pub at: DateTime<Utc>,
}
