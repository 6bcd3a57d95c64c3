//! Schema version 1 of the state store: operations, record failures, the callback outbox with
//! its attempt log, and fire claims.
//!
//! Conventions: instants are `TEXT` in RFC 3339 UTC with microseconds
//! (`2026-11-26T17:30:45.123456Z`), fixed width so text order is time order; JSON columns hold
//! a document written by the store itself.

pub(super) const SQL: &str = r"
CREATE TABLE operations (
    id               TEXT PRIMARY KEY NOT NULL,
    workflow         TEXT NOT NULL,
    workflow_version TEXT NOT NULL,
    git_commit       TEXT,
    connection       TEXT NOT NULL,
    mode             TEXT NOT NULL CHECK (mode IN ('async', 'sync')),
    trigger          TEXT NOT NULL,
    vars             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                         ('waiting', 'in_progress', 'canceling', 'succeeded', 'failed', 'canceled')),
    selected         INTEGER,
    succeeded        INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    skipped          INTEGER NOT NULL DEFAULT 0,
    checkpoint       TEXT,
    error_code       TEXT,
    error_message    TEXT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    updated_at       TEXT NOT NULL,
    now              TEXT NOT NULL,
    lease_worker     TEXT,
    lease_expires_at TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    retry_of         TEXT REFERENCES operations (id),
    record_filter    TEXT
);
-- claim_next: the oldest waiting operation, and list filtered by status.
CREATE INDEX ix_operations_queue ON operations (status, created_at, id);
-- claim_next: running operations whose lease expired.
CREATE INDEX ix_operations_lease ON operations (status, lease_expires_at);
-- list: newest first, keyset on (created_at, id), optionally by workflow.
CREATE INDEX ix_operations_created ON operations (created_at, id);
CREATE INDEX ix_operations_workflow ON operations (workflow, created_at, id);
-- claim_next, claim: is another operation of this workflow running?
CREATE INDEX ix_operations_active ON operations (workflow, status);

CREATE TABLE record_failures (
    seq          INTEGER PRIMARY KEY,
    operation_id TEXT NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    record_id    TEXT NOT NULL,
    action_index INTEGER NOT NULL,
    action       TEXT NOT NULL,
    code         TEXT NOT NULL,
    message      TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    at           TEXT NOT NULL,
    UNIQUE (operation_id, record_id, action_index)
);
CREATE INDEX ix_record_failures_operation ON record_failures (operation_id, seq);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    operation_id    TEXT NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    method          TEXT NOT NULL,
    headers         TEXT NOT NULL,
    body            BLOB NOT NULL,
    signature       TEXT,
    secret_parts    TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT,
    delivered_at    TEXT,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'abandoned')),
    created_at      TEXT NOT NULL
);
CREATE INDEX ix_deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX ix_deliveries_operation ON deliveries (operation_id, created_at);

CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    status_code INTEGER,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;

CREATE TABLE fire_claims (
    workflow   TEXT NOT NULL,
    instant    TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (workflow, instant)
) WITHOUT ROWID;
";
