//! `WorkflowVersion`: the exact source text of one version of a workflow file, stored when an
//! operation of that version is created, so the operation runs with it wherever and whenever it
//! is executed (another node, a restart after the file was edited or deleted).

use std::path::PathBuf;

use chrono::{DateTime, Utc};

/// One stored workflow version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowVersion {
    /// The hex SHA-256 of `source` (`Workflow::version`, `Operation::workflow_version`).
    pub version: String,
    /// The workflow's name in this version.
    pub name: String,
    /// The file it was read from; diagnostics of a recompile point there.
    pub path: PathBuf,
    /// The file's text, byte for byte.
    pub source: String,
    /// When this version was first stored; saving it again keeps the first time.
    pub first_seen: DateTime<Utc>,
}
