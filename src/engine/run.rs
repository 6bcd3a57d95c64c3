//! Executing one claimed operation to its end ([`execute`]): the selection rendered once with
//! the operation's fixed `now` and vars, read page by page by paging cookie (never by offset),
//! each record's actions rendered and written in batches, `batch.concurrency` batches in
//! flight, a result per record, checkpoints, heartbeats, cancel, `max_failures`, shutdown.
//!
//! Pipeline: a reader task reads pages and splits them into batches of `batch.size` records,
//! sent on a bounded channel; `batch.concurrency` worker tasks render and write batches (so
//! rendering runs in parallel, and reading, rendering and writing overlap); the coordinator
//! (the caller's task) collects the results, saves checkpoints, heartbeats the lease and
//! decides when to stop. At most `2 × concurrency` batches wait in the channel, so memory does
//! not grow with the selection.
//!
//! Checkpoints sit on page boundaries. A page (up to [`ExecuteOptions::page_size`] rows) is
//! split into batches that may finish out of order; the checkpoint moves past a page only once
//! every batch of it and of every earlier page is committed, so it always points at a position
//! where every record before it is done. The stored counts and failures are those of the
//! records before the checkpoint, so a resumed run neither loses nor double-counts records. A
//! checkpoint is saved after every committed batch (which is also when a cancel request is
//! seen); a crash replays at most the batches of one page past it, which is harmless because
//! every write is idempotent: update, assign and set_state write the same values (`now` is the
//! operation's), a create uses a deterministic id (`DuplicateRecord` on replay counts as done)
//! and deleting a row that is already gone counts as done.
//!
//! The filtered-column trap: an update that makes a record stop matching the selection does not
//! shift later pages, because the next page is `WHERE (sort keys) > (last row read)` (the paging
//! cookie), not an offset; records behind the position no longer matching change nothing.
//!
//! Within a batch, actions are written in the workflow's order, one write request per action
//! (so each request is homogeneous, as `UpdateMultiple`/`CreateMultiple` need), and a record
//! whose action failed gets none of its later actions. `call` actions fail their record with
//! `NotSupported`: the `Org` trait has no custom-API call yet.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::Instant;

use crate::compile::{Callback, Workflow};
use crate::engine::clock::Clock;
use crate::engine::finish::{NoSecrets, finish_operation};
use crate::engine::render::{ActionPlan, RenderedAction, RunContext, render_selection};
use crate::org::{ApiCall, Org, OrgError, Page, PageRequest, RecordError, Row, Write};
use crate::store::{
    Checkpoint, Counts, Operation, OperationError, OperationStatus, RecordFailure, RunProgress,
    StateStore, StoreError,
};
use crate::template::SecretSource;

/// The largest page Dataverse returns, and the default read page size.
pub const MAX_PAGE_SIZE: u32 = 5_000;

/// How write and read requests are retried when the org says trying again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first one included, for errors without `Retry-After`.
    pub max_attempts: u32,
    /// The delay ceiling after the first failed try; it doubles with each try.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Tries in all for a request the org keeps throttling with `Retry-After`: waiting as told
    /// is how a bulk job gets through service protection limits, so it gets more patience.
    pub max_throttled_attempts: u32,
    /// The longest `Retry-After` honoured as given; a longer one is waited this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_throttled_attempts: 30,
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with equal jitter: `c/2 + random · c/2`, `c = base · 2^(tries-1)`.
    pub fn delay(&self, failed_tries: u32) -> Duration {
        let doublings = failed_tries.saturating_sub(1).min(20);
        let ceiling = self
            .base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay);
        let half = ceiling / 2;
        half + half.mul_f64(jitter())
    }

    /// The wait before trying again after `error`, or `None` when it is not worth another try:
    /// exactly the org's `Retry-After` when it gave one, the backoff otherwise. `tries` counts
    /// the failed tries of each kind so far.
    pub fn next_wait(&self, error: &OrgError, tries: &mut RetryCount) -> Option<Duration> {
        if !error.retryable {
            return None;
        }
        match error.retry_after {
            Some(wait) => {
                tries.throttled += 1;
                (tries.throttled < self.max_throttled_attempts)
                    .then(|| wait.min(self.max_retry_after))
            }
            None => {
                tries.other += 1;
                (tries.other < self.max_attempts).then(|| self.delay(tries.other))
            }
        }
    }
}

/// Failed tries of one request so far, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryCount {
    pub throttled: u32,
    pub other: u32,
}

impl RetryCount {
    /// Tries in all, the successful or last one included.
    pub fn attempts(self) -> u32 {
        self.throttled + self.other + 1
    }
}

/// Told about every retry: the error and the wait before the next try (metrics, logs).
pub type RetryObserver = Arc<dyn Fn(&OrgError, Duration) + Send + Sync>;

/// A retry policy with its observer, shared by the reader and the writers of a run.
#[derive(Clone)]
struct Retrier {
    policy: RetryPolicy,
    observer: Option<RetryObserver>,
}

impl Retrier {
    /// Sends a request until it succeeds, fails for good, or the tries run out; returns the
    /// last result and the number of tries.
    async fn send<T, F, Fut>(&self, mut request: F) -> (Result<T, OrgError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, OrgError>>,
    {
        let mut tries = RetryCount::default();
        loop {
            match request().await {
                Err(error) => match self.policy.next_wait(&error, &mut tries) {
                    Some(wait) => {
                        if let Some(observer) = &self.observer {
                            observer(&error, wait);
                        }
                        tokio::time::sleep(wait).await;
                    }
                    None => return (Err(error), tries.attempts()),
                },
                result => return (result, tries.attempts()),
            }
        }
    }
}

/// A uniform random number in `[0, 1)` (from the v4 UUID generator: no extra crate).
fn jitter() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() >> 75;
    bits as f64 / (1u64 << 53) as f64
}

/// What a run reports as it goes (for progress bars and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Records processed (succeeded, failed or skipped) in all, including earlier runs.
    pub done: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Records selected so far; the total once `selection_read` is true.
    pub selected: u64,
    pub selection_read: bool,
}

/// A progress callback: called after every committed batch.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How [`execute`] runs an operation.
#[derive(Clone)]
pub struct ExecuteOptions {
    /// How long a lease lasts; heartbeats renew it.
    pub lease: Duration,
    /// How often the lease is renewed (well below `lease`).
    pub heartbeat: Duration,
    /// Rows per page read (at most [`MAX_PAGE_SIZE`]); independent of `batch.size`.
    pub page_size: u32,
    pub retry: RetryPolicy,
    /// Stop between batches at this instant and fail the operation (sync runs' `timeout`).
    pub deadline: Option<Instant>,
    /// Becomes `true` on Ctrl-C or shutdown: stop after the current batches, save the
    /// checkpoint and release the lease, leaving the operation resumable.
    pub shutdown: Option<watch::Receiver<bool>>,
    /// Called after every committed batch.
    pub progress: Option<ProgressFn>,
    /// Where the callback's `secret('NAME')` values come from when the operation ends (the
    /// CLI passes the process environment); by default none, so only callbacks that read no
    /// secret render.
    pub secrets: Arc<dyn SecretSource>,
    /// Told about every retried org request (throttling, transient errors).
    pub on_retry: Option<RetryObserver>,
}

impl Default for ExecuteOptions {
    fn default() -> Self {
        ExecuteOptions {
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            page_size: MAX_PAGE_SIZE,
            retry: RetryPolicy::default(),
            deadline: None,
            shutdown: None,
            progress: None,
            secrets: Arc::new(NoSecrets),
            on_retry: None,
        }
    }
}

impl std::fmt::Debug for ExecuteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecuteOptions")
            .field("lease", &self.lease)
            .field("heartbeat", &self.heartbeat)
            .field("page_size", &self.page_size)
            .field("retry", &self.retry)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// How [`execute`] left the operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It ended: succeeded, failed or canceled.
    Finished(Box<Operation>),
    /// Shutdown: the checkpoint is saved and the lease released; any worker can resume it.
    Suspended { counts: Counts },
}

/// Why [`execute`] could not take the operation to an end or a saved checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("state store: {0}")]
    StoreFailed(#[from] StoreError),
    #[error("worker {worker} lost the lease on operation {id}; another worker resumes it")]
    LeaseLost { id: String, worker: String },
    #[error("operation {id} is {status}, not in progress; claim it before executing it")]
    OperationNotRunning { id: String, status: OperationStatus },
    #[error("a worker task of operation {id} panicked")]
    WorkerPanicked { id: String },
}

impl EngineError {
    /// Whether executing the operation again may succeed (it resumes from its checkpoint).
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::StoreFailed(error) => error.is_retryable(),
            EngineError::LeaseLost { .. } | EngineError::WorkerPanicked { .. } => true,
            EngineError::OperationNotRunning { .. } => false,
        }
    }
}

/// Runs the claimed operation `operation_id` (held by `worker`) to its end, or to a saved
/// checkpoint on shutdown. See the module documentation.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    org: Arc<dyn Org>,
    store: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    workflow: &Workflow,
    plan: Arc<ActionPlan>,
    operation_id: &str,
    worker: &str,
    options: ExecuteOptions,
) -> Result<Outcome, EngineError> {
    // Dataverse plug-ins are bypassed per workflow; an org without plug-ins stays as it is.
    let org = if workflow.batch.bypass_plugins {
        org.with_plugins_bypassed().unwrap_or(org)
    } else {
        org
    };
    let operation = store.get(operation_id)?;
    if !matches!(
        operation.status,
        OperationStatus::InProgress | OperationStatus::Canceling
    ) {
        return Err(EngineError::OperationNotRunning {
            id: operation.id,
            status: operation.status,
        });
    }
    let run = Coordinator {
        store: store.clone(),
        clock,
        id: operation.id.clone(),
        worker: worker.to_string(),
        max_failures: workflow.max_failures,
        callback: workflow.callback.clone(),
        options: options.clone(),
    };
    if operation.cancel_requested || operation.status == OperationStatus::Canceling {
        return run
            .finish(OperationStatus::Canceled, None)
            .map(|operation| Outcome::Finished(Box::new(operation)));
    }
    let ctx = Arc::new(
        RunContext::new(
            workflow,
            operation.id.clone(),
            operation.now,
            operation.trigger.to_string(),
            run_vars(workflow, &operation.vars),
        )
        .with_started_at(operation.started_at.unwrap_or(operation.now)),
    );
    let fetchxml = match render_selection(workflow, &ctx) {
        Ok(fetchxml) => fetchxml,
        Err(error) => {
            let error = operation_error("SelectionNotRendered", error.to_string());
            return run
                .finish(OperationStatus::Failed, Some(&error))
                .map(|operation| Outcome::Finished(Box::new(operation)));
        }
    };
    let start = operation.checkpoint.clone().unwrap_or(Checkpoint {
        page: 1,
        ..Checkpoint::default()
    });
    let counts = operation.counts;
    let pipeline = Pipeline {
        org,
        plan,
        ctx,
        selection: Selection {
            fetchxml,
            has_top: has_top(&workflow.selection.fetchxml),
            record_filter: operation
                .record_filter
                .map(|ids| ids.iter().map(|id| id.to_ascii_lowercase()).collect()),
        },
        batch_size: workflow.batch.size.max(1),
        concurrency: workflow.batch.concurrency.max(1),
    };
    run.run(pipeline, start, counts).await
}

/// The run vars in the workflow's order: stored values over defaults.
fn run_vars(workflow: &Workflow, stored: &serde_json::Map<String, Value>) -> Vec<(String, Value)> {
    let mut vars: Vec<(String, Value)> = workflow
        .vars
        .iter()
        .map(|(name, default)| {
            (
                name.clone(),
                stored.get(name).cloned().unwrap_or_else(|| default.clone()),
            )
        })
        .collect();
    for (name, value) in stored {
        if !vars.iter().any(|(declared, _)| declared == name) {
            vars.push((name.clone(), value.clone()));
        }
    }
    vars
}

/// `top` cannot be combined with paging: such a selection is one request.
fn has_top(fetchxml: &str) -> bool {
    crate::fetchxml::parse(fetchxml)
        .0
        .is_some_and(|query| query.top.is_some())
}

fn operation_error(code: &str, message: impl Into<String>) -> OperationError {
    OperationError {
        code: code.to_string(),
        message: message.into(),
    }
}

/// What the reader and the workers of one run share.
struct Pipeline {
    org: Arc<dyn Org>,
    plan: Arc<ActionPlan>,
    ctx: Arc<RunContext>,
    selection: Selection,
    batch_size: u32,
    concurrency: u32,
}

struct Selection {
    fetchxml: String,
    has_top: bool,
    record_filter: Option<HashSet<String>>,
}

/// One batch of records to render and write.
struct Batch {
    page_seq: u64,
    records: Vec<(String, Row)>,
}

/// What the reader and the workers tell the coordinator.
enum Event {
    /// A page was read and split into `batches` batches (sent before its batches).
    PageRead {
        page_seq: u64,
        batches: usize,
        selected: u64,
        next: Checkpoint,
    },
    /// The last page was read.
    SelectionRead,
    ReadFailed(OrgError),
    BatchDone {
        page_seq: u64,
        tally: Tally,
    },
}

/// Results of a set of records.
#[derive(Debug, Default)]
struct Tally {
    succeeded: u64,
    failed: u64,
    skipped: u64,
    batches: u64,
    failures: Vec<RecordFailure>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.batches += other.batches;
        self.failures.extend(other.failures);
    }

    fn records(&self) -> u64 {
        self.succeeded + self.failed + self.skipped
    }
}

/// A page whose batches are (partly) in flight.
struct PageState {
    batches: Option<usize>,
    done: usize,
    selected: u64,
    next: Checkpoint,
    tally: Tally,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Canceled,
    TooManyFailures,
    TimedOut,
    Shutdown,
}

struct Coordinator {
    store: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    id: String,
    worker: String,
    max_failures: u64,
    /// The workflow's callback, rendered into the outbox when the operation ends.
    callback: Option<Callback>,
    options: ExecuteOptions,
}

/// Where the run stands: the committed checkpoint and everything since.
struct Position {
    /// Before the checkpoint: every record done.
    checkpoint: Checkpoint,
    committed: Tally,
    /// Records selected before the checkpoint position.
    selected_before: u64,
    /// Pages past the checkpoint, oldest first; `first_seq` is the first one's number.
    pages: VecDeque<PageState>,
    first_seq: u64,
    /// Everything done in this run and earlier ones, checkpoint or not.
    total: Tally,
    selected: u64,
    selection_read: bool,
}

impl Coordinator {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    fn finish(
        &self,
        status: OperationStatus,
        error: Option<&OperationError>,
    ) -> Result<Operation, EngineError> {
        finish_operation(
            &*self.store,
            self.callback.as_ref(),
            &*self.options.secrets,
            &self.id,
            &self.worker,
            status,
            error,
            self.now(),
        )
        .map_err(|error| self.lease_error(error))
    }

    fn lease_error(&self, error: StoreError) -> EngineError {
        match error {
            StoreError::LeaseLost { id, worker } => EngineError::LeaseLost { id, worker },
            other => EngineError::StoreFailed(other),
        }
    }

    #[allow(clippy::too_many_lines)]
    async fn run(
        &self,
        pipeline: Pipeline,
        start: Checkpoint,
        counts: Counts,
    ) -> Result<Outcome, EngineError> {
        let Pipeline {
            org,
            plan,
            ctx,
            selection,
            batch_size,
            concurrency,
        } = pipeline;
        let stopping = Arc::new(AtomicBool::new(false));
        let (event_tx, mut events) = mpsc::unbounded_channel::<Event>();
        let (batch_tx, batch_rx) = mpsc::channel::<Batch>(2 * concurrency as usize);
        let batch_rx = Arc::new(Mutex::new(batch_rx));

        let retrier = Retrier {
            policy: self.options.retry,
            observer: self.options.on_retry.clone(),
        };
        let reader = tokio::spawn(read_selection(Reader {
            org: org.clone(),
            selection,
            primary_id: plan.primary_id().to_string(),
            start: start.clone(),
            page_size: self.options.page_size.clamp(1, MAX_PAGE_SIZE),
            batch_size: batch_size as usize,
            retry: retrier.clone(),
            stopping: stopping.clone(),
            batches: batch_tx,
            events: event_tx.clone(),
        }));
        let mut workers = Vec::with_capacity(concurrency as usize);
        for _ in 0..concurrency {
            workers.push(tokio::spawn(write_batches(Writer {
                org: org.clone(),
                plan: plan.clone(),
                ctx: ctx.clone(),
                operation_id: self.id.clone(),
                retry: retrier.clone(),
                stopping: stopping.clone(),
                batches: batch_rx.clone(),
                events: event_tx.clone(),
            })));
        }
        drop(event_tx);

        let committed = Tally {
            succeeded: counts.succeeded,
            failed: counts.failed,
            skipped: counts.skipped,
            batches: start.batches_done,
            failures: Vec::new(),
        };
        let mut position = Position {
            selected_before: start.records_done,
            total: Tally {
                succeeded: committed.succeeded,
                failed: committed.failed,
                skipped: committed.skipped,
                batches: committed.batches,
                failures: Vec::new(),
            },
            committed,
            checkpoint: start.clone(),
            pages: VecDeque::new(),
            first_seq: 0,
            selected: start.records_done,
            selection_read: false,
        };

        let mut heartbeat = tokio::time::interval(self.options.heartbeat);
        heartbeat.tick().await;
        let mut shutdown = self.options.shutdown.clone();
        let deadline = self.options.deadline;
        let mut stop: Option<Stop> = None;
        let mut read_error: Option<OrgError> = None;
        let mut fatal: Option<EngineError> = None;
        let stop_now = |stop: &mut Option<Stop>, reason: Stop| {
            if stop.is_none() {
                *stop = Some(reason);
            }
            stopping.store(true, Ordering::SeqCst);
        };

        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { break };
                    match event {
                        Event::PageRead { page_seq, batches, selected, next } => {
                            position.selected += selected;
                            let index = (page_seq - position.first_seq) as usize;
                            while position.pages.len() <= index {
                                position.pages.push_back(PageState {
                                    batches: None,
                                    done: 0,
                                    selected: 0,
                                    next: Checkpoint::default(),
                                    tally: Tally::default(),
                                });
                            }
                            let page = &mut position.pages[index];
                            page.batches = Some(batches);
                            page.selected = selected;
                            page.next = next;
                        }
                        Event::SelectionRead => position.selection_read = true,
                        Event::ReadFailed(error) => {
                            read_error = Some(error);
                            stopping.store(true, Ordering::SeqCst);
                        }
                        Event::BatchDone { page_seq, tally } => {
                            let index = (page_seq - position.first_seq) as usize;
                            position.total.succeeded += tally.succeeded;
                            position.total.failed += tally.failed;
                            position.total.skipped += tally.skipped;
                            position.total.batches += tally.batches;
                            let page = &mut position.pages[index];
                            page.done += 1;
                            page.tally.add(tally);
                            let failures = advance(&mut position);
                            if fatal.is_none() {
                                match self.save(&position, &failures) {
                                    Ok(cancel) => {
                                        if cancel {
                                            stop_now(&mut stop, Stop::Canceled);
                                        }
                                    }
                                    Err(error) => {
                                        fatal = Some(error);
                                        stopping.store(true, Ordering::SeqCst);
                                    }
                                }
                            }
                            if position.total.failed > self.max_failures {
                                stop_now(&mut stop, Stop::TooManyFailures);
                            }
                            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                                stop_now(&mut stop, Stop::TimedOut);
                            }
                            if let Some(progress) = &self.options.progress {
                                progress(&Progress {
                                    done: position.total.records(),
                                    succeeded: position.total.succeeded,
                                    failed: position.total.failed,
                                    skipped: position.total.skipped,
                                    selected: position.selected,
                                    selection_read: position.selection_read,
                                });
                            }
                        }
                    }
                }
                _ = heartbeat.tick(), if fatal.is_none() => {
                    match self.store.heartbeat(&self.id, &self.worker, self.now(), self.options.lease) {
                        Ok(true) => {}
                        Ok(false) => {
                            fatal = Some(EngineError::LeaseLost {
                                id: self.id.clone(),
                                worker: self.worker.clone(),
                            });
                            stopping.store(true, Ordering::SeqCst);
                        }
                        Err(error) => {
                            // A busy store is worth another heartbeat; anything else ends it.
                            if !error.is_retryable() {
                                fatal = Some(error.into());
                                stopping.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                }
                changed = wait_for_shutdown(&mut shutdown) => {
                    if changed {
                        stop_now(&mut stop, Stop::Shutdown);
                    }
                    shutdown = None;
                }
                () = sleep_until(deadline), if stop.is_none() => {
                    stop_now(&mut stop, Stop::TimedOut);
                }
            }
        }

        let mut panicked = reader.await.is_err();
        for worker in workers {
            panicked |= worker.await.is_err();
        }
        if let Some(error) = fatal {
            return Err(error);
        }
        if panicked {
            return Err(EngineError::WorkerPanicked {
                id: self.id.clone(),
            });
        }

        if stop == Some(Stop::Shutdown) {
            // Resumable: only the records before the checkpoint count; the rest is replayed.
            self.save(&position, &[])?;
            self.store
                .release(&self.id, &self.worker, self.now())
                .map_err(|error| self.lease_error(error))?;
            return Ok(Outcome::Suspended {
                counts: counts_of(&position.committed, Some(position.selected_before)),
            });
        }

        // Final: everything done counts, checkpoint or not.
        let mut remaining = Vec::new();
        for page in &mut position.pages {
            remaining.append(&mut page.tally.failures);
        }
        // The selection's size is known once it was read to the end, also when the run stopped
        // early (canceled, too many failures): a canceled run shows how far it got.
        let finished = stop.is_none() && read_error.is_none();
        let selected = if finished || (position.selection_read && read_error.is_none()) {
            Some(position.selected)
        } else {
            None
        };
        if let Some(selected) = selected {
            self.store.set_selected(&self.id, selected)?;
        }
        let checkpoint = Checkpoint {
            records_done: position.total.records(),
            batches_done: position.total.batches,
            ..position.checkpoint.clone()
        };
        self.store
            .save_checkpoint(
                &self.id,
                &self.worker,
                &checkpoint,
                counts_of(&position.total, selected),
                &remaining,
                self.now(),
            )
            .map_err(|error| self.lease_error(error))?;
        let (status, error) = match (stop, read_error) {
            (_, Some(error)) => (
                OperationStatus::Failed,
                Some(operation_error(
                    error.code,
                    format!("the selection failed: {}", error.message),
                )),
            ),
            (Some(Stop::Canceled), None) => (OperationStatus::Canceled, None),
            (Some(Stop::TooManyFailures), None) => (
                OperationStatus::Failed,
                Some(operation_error(
                    "MaxFailuresExceeded",
                    format!(
                        "{} records failed, more than max_failures ({})",
                        position.total.failed, self.max_failures
                    ),
                )),
            ),
            (Some(Stop::TimedOut), None) => (
                OperationStatus::Failed,
                Some(operation_error(
                    "SyncTimedOut",
                    "the sync run reached its timeout and stopped between batches",
                )),
            ),
            (None | Some(Stop::Shutdown), None) if position.total.failed > self.max_failures => (
                OperationStatus::Failed,
                Some(operation_error(
                    "MaxFailuresExceeded",
                    format!(
                        "{} records failed, more than max_failures ({})",
                        position.total.failed, self.max_failures
                    ),
                )),
            ),
            (None | Some(Stop::Shutdown), None) => (OperationStatus::Succeeded, None),
        };
        self.finish(status, error.as_ref())
            .map(|operation| Outcome::Finished(Box::new(operation)))
    }

    /// Saves the checkpoint, the counts before it and the failures it moved past; `true` when
    /// a cancel was requested.
    fn save(&self, position: &Position, failures: &[RecordFailure]) -> Result<bool, EngineError> {
        let checkpoint = Checkpoint {
            progress: Some(RunProgress {
                succeeded: position.total.succeeded,
                failed: position.total.failed,
                skipped: position.total.skipped,
                selected: position.selected,
                selection_read: position.selection_read,
            }),
            ..position.checkpoint.clone()
        };
        let saved = self
            .store
            .save_checkpoint(
                &self.id,
                &self.worker,
                &checkpoint,
                counts_of(&position.committed, None),
                failures,
                self.now(),
            )
            .map_err(|error| self.lease_error(error))?;
        Ok(saved.cancel_requested)
    }
}

/// Moves the checkpoint past every leading page whose batches are all committed; returns the
/// failures of those pages (to be saved with the checkpoint).
fn advance(position: &mut Position) -> Vec<RecordFailure> {
    let mut failures = Vec::new();
    while let Some(page) = position.pages.front() {
        if page.batches != Some(page.done) {
            break;
        }
        let Some(mut page) = position.pages.pop_front() else {
            break;
        };
        position.first_seq += 1;
        position.selected_before += page.selected;
        failures.append(&mut page.tally.failures);
        position.committed.add(page.tally);
        position.checkpoint = Checkpoint {
            records_done: position.selected_before,
            batches_done: position.committed.batches,
            ..page.next
        };
    }
    failures
}

fn counts_of(tally: &Tally, selected: Option<u64>) -> Counts {
    Counts {
        selected,
        succeeded: tally.succeeded,
        failed: tally.failed,
        skipped: tally.skipped,
    }
}

/// Resolves to `true` when shutdown is signalled, `false` when the sender is gone; never
/// without a receiver.
async fn wait_for_shutdown(shutdown: &mut Option<watch::Receiver<bool>>) -> bool {
    match shutdown {
        Some(receiver) => receiver.wait_for(|value| *value).await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

struct Reader {
    org: Arc<dyn Org>,
    selection: Selection,
    primary_id: String,
    start: Checkpoint,
    page_size: u32,
    batch_size: usize,
    retry: Retrier,
    stopping: Arc<AtomicBool>,
    batches: mpsc::Sender<Batch>,
    events: mpsc::UnboundedSender<Event>,
}

async fn read_selection(reader: Reader) {
    let mut request = if reader.selection.has_top {
        PageRequest::default()
    } else {
        PageRequest {
            page: Some(reader.start.page.max(1)),
            count: Some(reader.page_size),
            paging_cookie: reader.start.paging_cookie.clone(),
        }
    };
    let mut page_seq = 0u64;
    loop {
        if reader.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (page, _) = reader
            .retry
            .send(|| reader.org.query_page(&reader.selection.fetchxml, &request))
            .await;
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                let _ = reader.events.send(Event::ReadFailed(error));
                return;
            }
        };
        let Page {
            rows,
            more_records,
            paging_cookie,
            ..
        } = page;
        let last = reader.selection.has_top || !more_records;
        let next = Checkpoint {
            page: request.page.map_or(1, |page| page + 1),
            paging_cookie: paging_cookie.clone(),
            ..Checkpoint::default()
        };
        let mut records: Vec<(String, Row)> = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(id) = row.get(&reader.primary_id).and_then(Value::as_str) else {
                let _ = reader.events.send(Event::ReadFailed(OrgError::new(
                    "SelectionWithoutIds",
                    -1,
                    format!(
                        "the selection returned a row without its primary key `{}`",
                        reader.primary_id
                    ),
                )));
                return;
            };
            let id = id.to_ascii_lowercase();
            if reader
                .selection
                .record_filter
                .as_ref()
                .is_some_and(|filter| !filter.contains(&id))
            {
                continue;
            }
            records.push((id, row));
        }
        let selected = records.len() as u64;
        let n_batches = records.len().div_ceil(reader.batch_size);
        if reader
            .events
            .send(Event::PageRead {
                page_seq,
                batches: n_batches,
                selected,
                next,
            })
            .is_err()
        {
            return;
        }
        let mut records = records.into_iter();
        for _ in 0..n_batches {
            let batch = Batch {
                page_seq,
                records: records.by_ref().take(reader.batch_size).collect(),
            };
            if reader.batches.send(batch).await.is_err() {
                return;
            }
        }
        if last {
            let _ = reader.events.send(Event::SelectionRead);
            return;
        }
        page_seq += 1;
        request = PageRequest {
            page: request.page.map(|page| page + 1),
            count: Some(reader.page_size),
            paging_cookie,
        };
    }
}

struct Writer {
    org: Arc<dyn Org>,
    plan: Arc<ActionPlan>,
    ctx: Arc<RunContext>,
    operation_id: String,
    retry: Retrier,
    stopping: Arc<AtomicBool>,
    batches: Arc<Mutex<mpsc::Receiver<Batch>>>,
    events: mpsc::UnboundedSender<Event>,
}

async fn write_batches(writer: Writer) {
    loop {
        let batch = writer.batches.lock().await.recv().await;
        let Some(batch) = batch else { return };
        if writer.stopping.load(Ordering::SeqCst) {
            // Not started: its page never completes, so the checkpoint stays before it.
            continue;
        }
        let tally = write_batch(&writer, batch.records).await;
        if writer
            .events
            .send(Event::BatchDone {
                page_seq: batch.page_seq,
                tally,
            })
            .is_err()
        {
            return;
        }
    }
}

/// One record's state within a batch.
struct RecordRun {
    id: String,
    actions: Vec<RenderedAction>,
    /// At least one action was not skipped.
    acted: bool,
    failure: Option<RecordFailure>,
}

async fn write_batch(writer: &Writer, records: Vec<(String, Row)>) -> Tally {
    let plan = &*writer.plan;
    let now = writer.ctx.now;
    let action_names: Vec<(usize, &'static str)> = plan.actions().collect();
    let fail = |id: &str, index: usize, action: &str, code: &str, message: String, attempts| {
        RecordFailure {
            operation_id: writer.operation_id.clone(),
            record_id: id.to_string(),
            action_index: u32::try_from(index).unwrap_or(u32::MAX),
            action: action.to_string(),
            code: code.to_string(),
            message,
            attempts,
            at: now,
        }
    };
    let mut runs: Vec<RecordRun> = records
        .into_iter()
        .map(|(id, row)| match plan.render(&writer.ctx, &id, &row) {
            Ok(actions) => RecordRun {
                id,
                actions,
                acted: false,
                failure: None,
            },
            Err(error) => {
                let failure = fail(
                    &id,
                    error.action_index,
                    error.action,
                    "RenderFailed",
                    error.message,
                    1,
                );
                RecordRun {
                    id,
                    actions: Vec::new(),
                    acted: true,
                    failure: Some(failure),
                }
            }
        })
        .collect();

    for (position, (index, name)) in action_names.iter().copied().enumerate() {
        // One request per kind and action position: the batch's records in order.
        let mut writes = Vec::new();
        let mut write_owners = Vec::new();
        let mut calls = Vec::new();
        let mut call_owners = Vec::new();
        for (slot, run) in runs.iter_mut().enumerate() {
            if run.failure.is_some() {
                continue;
            }
            match std::mem::replace(&mut run.actions[position], RenderedAction::Skipped) {
                RenderedAction::Write(write) => {
                    writes.push(write);
                    write_owners.push(slot);
                }
                RenderedAction::Call {
                    api,
                    params,
                    background,
                    idempotency_key,
                } => {
                    calls.push(ApiCall {
                        api,
                        params,
                        idempotency_key,
                        background,
                    });
                    call_owners.push(slot);
                }
                RenderedAction::Skipped => {}
            }
        }
        if !writes.is_empty() {
            let (results, attempts) = send_batch(&writer.retry, writes.len(), || {
                writer.org.write_batch(&writes)
            })
            .await;
            for ((slot, write), result) in write_owners.iter().zip(&writes).zip(results) {
                let run = &mut runs[*slot];
                run.acted = true;
                if let Err(error) = result
                    && !is_replayed(write, &error)
                {
                    run.failure = Some(fail(
                        &run.id,
                        index,
                        name,
                        error.code,
                        error.message,
                        attempts,
                    ));
                }
            }
        }
        if !calls.is_empty() {
            let (results, attempts) =
                send_batch(&writer.retry, calls.len(), || writer.org.call_batch(&calls)).await;
            for (slot, result) in call_owners.iter().zip(results) {
                let run = &mut runs[*slot];
                run.acted = true;
                if let Err(error) = result {
                    run.failure = Some(fail(
                        &run.id,
                        index,
                        name,
                        error.code,
                        error.message,
                        attempts,
                    ));
                }
            }
        }
    }

    let mut tally = Tally {
        batches: 1,
        ..Tally::default()
    };
    for run in runs {
        if let Some(failure) = run.failure {
            tally.failed += 1;
            tally.failures.push(failure);
        } else if !run.acted {
            tally.skipped += 1;
        } else {
            tally.succeeded += 1;
        }
    }
    tally
}

/// A write whose error means "already done": a replay created or deleted it before.
fn is_replayed(write: &Write, error: &RecordError) -> bool {
    matches!(
        (write, error.code),
        (Write::Create { .. }, "DuplicateRecord") | (Write::Delete { .. }, "ObjectDoesNotExist")
    )
}

/// Sends one batch request (writes or calls) with retries. A request that still fails fails
/// each of its records with the request's error; so does an answer with the wrong number of
/// results.
async fn send_batch<T, F, Fut>(
    retry: &Retrier,
    expected: usize,
    request: F,
) -> (Vec<Result<T, RecordError>>, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Result<T, RecordError>>, OrgError>>,
{
    let (result, tries) = retry.send(request).await;
    let every_record = |code: &'static str, number: i64, message: String| {
        (0..expected)
            .map(|_| {
                Err(RecordError {
                    code,
                    number,
                    message: message.clone(),
                })
            })
            .collect()
    };
    match result {
        Ok(results) if results.len() == expected => (results, tries),
        Ok(results) => (
            every_record(
                "InvalidOrgResponse",
                -1,
                format!(
                    "the org answered {} results for {expected} requests",
                    results.len()
                ),
            ),
            tries,
        ),
        Err(error) => (every_record(error.code, error.number, error.message), tries),
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
