//! Schema version 2 of the state store: the source text of every workflow version an operation
//! was created from, so that any node, and any later start, runs an operation with exactly the
//! workflow it started with (issue 5: running operations keep their version across edits).
//!
//! Keyed by the version (the hex SHA-256 of the file's text, `operations.workflow_version`);
//! rows are never changed once written.

pub(super) const SQL: &str = r"
CREATE TABLE workflow_versions (
    version    TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    path       TEXT NOT NULL,
    source     TEXT NOT NULL,
    first_seen TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX ix_workflow_versions_name ON workflow_versions (name, first_seen);
";
