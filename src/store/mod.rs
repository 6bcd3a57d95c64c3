//! The state store: where operations, their checkpoints, per-record failures, fire claims and
//! the callback outbox live (DESIGN 7). `StateStore` is the trait the engine, the scheduler and
//! the callback sender use; `SqliteStateStore` implements it over one SQLite file.
//!
//! Contract:
//! - The store never reads a clock: every method that needs "now" takes it as a parameter.
//! - Methods are synchronous and may be called from any thread; each is one transaction.
//! - A worker executes an operation only while it holds the operation's lease. A lease is held
//!   by its worker until another worker takes it over, which `claim_next` and `claim` do only
//!   once it has expired; checkpoints and the final status are refused to a worker whose lease
//!   was taken over ([`StoreError::LeaseLost`]). Worker names must be unique across processes
//!   (host, process id and a counter, say).
//! - Claims use immediate transactions, so several processes on one file (several `serve`
//!   nodes, or `run --wait` next to `serve`) never claim the same operation or fire twice.
//! - One workflow runs one operation at a time (every `overlap` policy implies it): a waiting
//!   operation starts only once no other operation of its workflow is `in_progress` or
//!   `canceling`, so queued runs start in creation order.
//! - A checkpoint, the counts and the batch's failures are written together; the final status
//!   and the callback's outbox row are written together.
//! - Every workflow version an operation is created from has its source stored
//!   ([`WorkflowVersion`]), so an operation runs with its own version on any node, after any
//!   restart, whatever happened to the file since.

mod codec;
mod delivery;
mod error;
mod failure;
mod migrations;
mod operation;
mod sqlite;
#[cfg(test)]
mod tests;
mod workflow_version;

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use delivery::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryLog, DeliveryStatus, NewDelivery,
    SecretParts,
};
pub use error::StoreError;
pub use failure::RecordFailure;
pub use operation::{
    Checkpoint, Counts, Lease, Mode, NewOperation, Operation, OperationError, OperationStatus,
    RunProgress, Trigger, UnknownStatus, UnknownTrigger,
};
pub use sqlite::SqliteStateStore;
pub use workflow_version::WorkflowVersion;

/// The page size when a filter asks for none, and the largest page a caller gets.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which operations `list` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    pub status: Option<OperationStatus>,
    pub workflow: Option<String>,
    /// Page size; 0 means [`DEFAULT_PAGE_SIZE`]; at most [`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of operations, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationPage {
    pub operations: Vec<Operation>,
    /// Present when more operations follow; pass it back as [`OperationFilter::cursor`].
    pub next_cursor: Option<String>,
}

/// One page of an operation's failures, in the order they were saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailurePage {
    pub failures: Vec<RecordFailure>,
    pub next_cursor: Option<String>,
}

/// What a worker learns when its checkpoint is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointSaved {
    /// Someone asked to cancel: stop after this batch and finish as `canceled`.
    pub cancel_requested: bool,
}

/// The state store. See the module documentation for the contract.
pub trait StateStore: Send + Sync {
    /// Stores a new `waiting` operation created at `now`. A cron operation (`Trigger::Cron`)
    /// claims its fire instant in the same transaction, and is refused with
    /// [`StoreError::FireClaimed`] when the instant was claimed before.
    fn create_operation(
        &self,
        operation: &NewOperation,
        now: DateTime<Utc>,
    ) -> Result<Operation, StoreError>;

    fn get(&self, id: &str) -> Result<Operation, StoreError>;

    /// Operations newest first, keyset-paged on (created_at, id): no duplicates or gaps across
    /// pages, even while operations are created.
    fn list(&self, filter: &OperationFilter) -> Result<OperationPage, StoreError>;

    /// Atomically takes the next operation to execute for `worker`: first an async operation
    /// whose lease expired (to resume from its checkpoint), else the oldest `waiting` async
    /// one whose workflow has no running operation, which becomes `in_progress`. Sync
    /// operations are only ever run by their creator.
    fn claim_next(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Operation>, StoreError>;

    /// Takes this operation for `worker` (`run --wait`, sync runs); refused with
    /// [`StoreError::LeaseHeld`] while another worker's lease is live, with
    /// [`StoreError::WorkflowBusy`] while another operation of its workflow runs, and with
    /// [`StoreError::AlreadyFinished`] for a final operation.
    fn claim(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Operation, StoreError>;

    /// Extends the lease to `now + lease`; `false` when `worker` no longer holds it.
    fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up at `now` (Ctrl-C, shutdown), so another worker resumes the operation
    /// from its checkpoint at once. `false` when `worker` did not hold it.
    fn release(&self, id: &str, worker: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// After a committed batch: the checkpoint, the counts (totals, not increments) and the
    /// batch's failures, in one transaction, only while `worker` holds the lease. The failures'
    /// `operation_id` is taken from `id`; saving a failure again (a replayed batch) replaces it.
    /// Cheap: the operation row is not decoded.
    fn save_checkpoint(
        &self,
        id: &str,
        worker: &str,
        checkpoint: &Checkpoint,
        counts: Counts,
        failures: &[RecordFailure],
        now: DateTime<Utc>,
    ) -> Result<CheckpointSaved, StoreError>;

    /// Records the size of the selection once it is known.
    fn set_selected(&self, id: &str, selected: u64) -> Result<(), StoreError>;

    /// `waiting` → `canceled` at once; `in_progress` → `canceling` (the worker finishes its
    /// batch, then finishes as `canceled`); `canceling` stays; a final operation is refused.
    fn request_cancel(&self, id: &str, now: DateTime<Utc>) -> Result<Operation, StoreError>;

    /// Ends the operation with a final status, and stores its rendered callback in the outbox,
    /// in one transaction; only while `worker` holds the lease. The lease is dropped.
    fn finish(
        &self,
        id: &str,
        worker: &str,
        status: OperationStatus,
        error: Option<&OperationError>,
        delivery: Option<&NewDelivery>,
        now: DateTime<Utc>,
    ) -> Result<Operation, StoreError>;

    /// An operation's failures, in the order they were saved; `limit` 0 means the default.
    fn failures(
        &self,
        id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<FailurePage, StoreError>;

    /// The distinct ids of the records that failed, for a retry's record filter.
    fn failed_record_ids(&self, id: &str) -> Result<Vec<String>, StoreError>;

    /// How many operations have each status (statuses without operations are left out).
    fn status_counts(&self) -> Result<Vec<(OperationStatus, u64)>, StoreError>;

    /// Stores the callback of an operation that ended without a worker (canceled while
    /// waiting): rendered once, due at once. Refused while the operation is not final.
    fn enqueue_delivery(
        &self,
        operation_id: &str,
        delivery: &NewDelivery,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError>;

    /// Pending deliveries due at `now`, most overdue first.
    fn due_deliveries(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Delivery>, StoreError>;

    /// Like [`StateStore::due_deliveries`], but also pushes each returned delivery's
    /// `next_attempt_at` to `now + hold`, atomically, so another node does not send it
    /// meanwhile. A sender that dies mid-attempt lets it become due again after `hold`.
    fn claim_due_deliveries(
        &self,
        now: DateTime<Utc>,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Logs a failed attempt. With `next_attempt_at` the delivery stays pending until then;
    /// without, it is abandoned.
    fn record_attempt(
        &self,
        delivery_id: &str,
        outcome: &AttemptOutcome,
        next_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError>;

    /// Logs the successful attempt (the receiver's status) and marks the delivery delivered.
    fn mark_delivered(
        &self,
        delivery_id: &str,
        status: u16,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError>;

    /// An operation's deliveries with their attempt logs.
    fn deliveries(&self, operation_id: &str) -> Result<Vec<DeliveryLog>, StoreError>;

    /// Claims one fire instant of a workflow's schedule: `true` for exactly one caller, even
    /// across processes sharing the store.
    fn claim_fire(
        &self,
        workflow: &str,
        instant: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The latest claimed fire instant of a workflow.
    fn last_fire(&self, workflow: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Stores a workflow version's source text, if not stored yet (idempotent: saving a
    /// version again keeps the first row and its `first_seen`). Refused with
    /// [`StoreError::WorkflowVersionMismatch`] when `source` does not hash to `version`.
    fn save_workflow_version(&self, version: &WorkflowVersion) -> Result<(), StoreError>;

    /// The stored source of a workflow version, if any.
    fn workflow_version(&self, version: &str) -> Result<Option<WorkflowVersion>, StoreError>;
}
