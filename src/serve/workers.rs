//! The workers of `serve`: tasks that claim operations from the state store (waiting ones, and
//! those whose lease expired because their node died) and execute each with exactly the
//! workflow version it was created with; and the callback delivery loop beside them.
//!
//! Which workflow runs: the registry's active workflow when its version is the operation's
//! (the common case, no compile), else the version's source stored in the state store,
//! compiled again. A file edited, broken or deleted since the operation was created changes
//! nothing for it.
//!
//! An operation whose connection cannot be opened, whose version cannot be found or compiled,
//! or whose actions cannot be planned against the org's metadata is finished `failed` with the
//! reason, rather than released: these are configuration problems that another try on another
//! worker would hit again, and a released operation would be claimed again at once, forever,
//! while blocking every later operation of its workflow.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::{debug, error, info, warn};

use crate::callback::http::HttpSender;
use crate::compile::Workflow;
use crate::engine::{
    ActionPlan, DeliveryLoop, EngineError, ExecuteOptions, Outcome, Progress, ProgressFn, execute,
    finish_operation,
};
use crate::metadata::Catalogue;
use crate::serve::ServeState;
use crate::source::SourceFile;
use crate::store::{Counts, Operation, OperationError, OperationStatus};

/// How long a worker's lease on an operation lasts; heartbeats renew it every
/// [`HEARTBEAT`]. A node that dies leaves its operations to others after this long.
pub const LEASE: Duration = Duration::from_secs(30);
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often an idle worker looks for work it was not told about: operations created by other
/// processes (`fetchflow run`, another node) and leases that expired.
pub const POLL: Duration = Duration::from_secs(1);

/// Runs `count` workers and the callback delivery loop until `shutdown` becomes `true` (or its
/// sender is dropped). On shutdown, workers stop claiming; an operation in flight finishes its
/// current batches, saves its checkpoint and releases its lease (see
/// [`ExecuteOptions::shutdown`]), so the next start, or another node, resumes it. Returns once
/// every worker has stopped.
pub async fn run_workers(state: ServeState, count: usize, shutdown: watch::Receiver<bool>) {
    let deliveries = delivery_loop(&state);
    let delivery_waker = deliveries
        .as_ref()
        .map_or_else(|| Arc::new(Notify::new()), DeliveryLoop::waker);
    let mut tasks = Vec::with_capacity(count + 1);
    if let Some(deliveries) = deliveries {
        let metrics = state.metrics.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            deliveries
                .run(shutdown, move |result| match result {
                    Ok(report) => {
                        let failed = report.retrying() + report.abandoned() + report.unrecorded();
                        metrics
                            .deliveries_delivered
                            .fetch_add(report.delivered() as u64, Ordering::Relaxed);
                        metrics
                            .deliveries_failed
                            .fetch_add(failed as u64, Ordering::Relaxed);
                        if failed > 0 {
                            warn!(
                                delivered = report.delivered(),
                                retrying = report.retrying(),
                                abandoned = report.abandoned(),
                                "Callback deliveries failed."
                            );
                        }
                    }
                    Err(error) => warn!(%error, "Callback delivery pass failed."),
                })
                .await;
        }));
    }
    for _ in 0..count {
        let worker = Worker {
            name: worker_name(),
            state: state.clone(),
            shutdown: shutdown.clone(),
            delivery_waker: delivery_waker.clone(),
        };
        tasks.push(tokio::spawn(worker.run()));
    }
    for task in tasks {
        if let Err(error) = task.await {
            error!(%error, "A worker task ended abnormally.");
        }
    }
}

/// The delivery loop over the HTTP sender; `None` (logged) when no HTTP client can be built,
/// so operations still run and their callbacks wait in the outbox.
fn delivery_loop(state: &ServeState) -> Option<DeliveryLoop> {
    match HttpSender::new() {
        Ok(sender) => Some(DeliveryLoop::new(
            state.store.clone(),
            Arc::new(sender),
            state.clock.clone(),
        )),
        Err(error) => {
            error!(%error, "Callbacks are not delivered: no HTTP client.");
            None
        }
    }
}

/// A name unique across processes and hosts: host, process id and a counter (the store's
/// lease contract), plus a random tag in case two hosts share a name and a process id
/// (containers).
pub fn worker_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_string())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{host}/{}/{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        &tag[..6]
    )
}

/// Whether shutdown was signalled, or can no longer be (its sender is gone).
fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Resolves once shutdown is signalled or can no longer be.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

struct Worker {
    name: String,
    state: ServeState,
    shutdown: watch::Receiver<bool>,
    delivery_waker: Arc<Notify>,
}

impl Worker {
    async fn run(mut self) {
        debug!(worker = %self.name, "Worker started.");
        loop {
            if stopping(&self.shutdown) {
                break;
            }
            // Registered before looking, so a signal sent while the store is read is not lost.
            let work = self.state.work.clone();
            let mut notified = pin!(work.notified());
            notified.as_mut().enable();
            match self.claim_next().await {
                Ok(Some(operation)) => {
                    self.execute(operation).await;
                    // Others may wait for this workflow's operation to end.
                    self.state.work.notify_waiters();
                }
                Ok(None) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(POLL) => {}
                        () = stopped(&mut self.shutdown) => {}
                    }
                }
                Err(error) => {
                    warn!(worker = %self.name, %error, "Claiming an operation failed.");
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        () = stopped(&mut self.shutdown) => {}
                    }
                }
            }
        }
        debug!(worker = %self.name, "Worker stopped.");
    }

    /// The next operation to execute, if any. Off the async threads: a claim waits for the
    /// store's write lock when other processes hold it.
    async fn claim_next(&self) -> Result<Option<Operation>, String> {
        let store = self.state.store.clone();
        let name = self.name.clone();
        let now = self.state.clock.now();
        match tokio::task::spawn_blocking(move || store.claim_next(&name, now, LEASE)).await {
            Ok(claimed) => claimed.map_err(|error| error.to_string()),
            Err(join_error) => Err(join_error.to_string()),
        }
    }

    /// Executes one claimed operation to its end, or to a checkpoint on shutdown. Runs in a
    /// task of its own, so a panic fails this operation's run, never the worker.
    async fn execute(&self, operation: Operation) {
        let id = operation.id.clone();
        info!(
            operation = %id,
            workflow = %operation.workflow,
            version = %operation.workflow_version,
            worker = %self.name,
            resumed = operation.checkpoint.is_some(),
            "Operation claimed."
        );
        let run = tokio::spawn(execute_claimed(
            self.state.clone(),
            operation,
            self.name.clone(),
            self.shutdown.clone(),
        ));
        let result = match run.await {
            Ok(result) => result,
            Err(join_error) => {
                error!(operation = %id, error = %join_error, "Executing the operation panicked.");
                Err(RunError::Engine(EngineError::WorkerPanicked {
                    id: id.clone(),
                }))
            }
        };
        match result {
            Ok(Outcome::Finished(finished)) => {
                info!(
                    operation = %id,
                    status = %finished.status,
                    succeeded = finished.counts.succeeded,
                    failed = finished.counts.failed,
                    skipped = finished.counts.skipped,
                    "Operation finished."
                );
                self.delivery_waker.notify_one();
            }
            Ok(Outcome::Suspended { counts }) => {
                info!(
                    operation = %id,
                    done = counts.succeeded + counts.failed + counts.skipped,
                    "Operation checkpointed for shutdown; the next start resumes it."
                );
            }
            Err(RunError::Unrunnable(finished)) => {
                let error = finished.error.as_ref();
                warn!(
                    operation = %id,
                    code = error.map_or("", |error| error.code.as_str()),
                    error = error.map_or("", |error| error.message.as_str()),
                    "Operation failed before it started."
                );
                self.delivery_waker.notify_one();
            }
            Err(RunError::Engine(EngineError::LeaseLost { .. })) => {
                warn!(operation = %id, worker = %self.name, "Lost the lease; another worker resumes the operation.");
            }
            Err(RunError::Engine(error)) => {
                warn!(operation = %id, %error, "Executing the operation failed; it is released to be resumed.");
                self.release(&id);
                // A store that keeps failing should not be hammered by an immediate re-claim.
                let mut shutdown = self.shutdown.clone();
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    () = stopped(&mut shutdown) => {}
                }
            }
        }
    }

    fn release(&self, id: &str) {
        if let Err(error) = self
            .state
            .store
            .release(id, &self.name, self.state.clock.now())
        {
            warn!(operation = %id, %error, "Releasing the operation failed; its lease runs out instead.");
        }
    }
}

/// Why a claimed operation did not run to an outcome.
enum RunError {
    /// It could not start (no org, no workflow version, no plan) and was finished `failed`.
    Unrunnable(Box<Operation>),
    Engine(EngineError),
}

impl From<EngineError> for RunError {
    fn from(error: EngineError) -> Self {
        RunError::Engine(error)
    }
}

async fn execute_claimed(
    state: ServeState,
    operation: Operation,
    worker: String,
    shutdown: watch::Receiver<bool>,
) -> Result<Outcome, RunError> {
    let workflow = match workflow_of(&state, &operation) {
        Ok(workflow) => workflow,
        Err(error) => return Err(fail(&state, &operation, &worker, None, &error)),
    };
    let orgs = state.orgs.clone();
    let connection = operation.connection.clone();
    // Opening an org may create the demo org (seconds of work): off the async threads.
    let org = match tokio::task::spawn_blocking(move || orgs.get(&connection)).await {
        Ok(Ok(org)) => org,
        Ok(Err(unavailable)) => {
            let error = OperationError {
                code: "ConnectionUnavailable".to_string(),
                message: unavailable.to_string(),
            };
            return Err(fail(&state, &operation, &worker, Some(&workflow), &error));
        }
        Err(join_error) => {
            let error = OperationError {
                code: "ConnectionUnavailable".to_string(),
                message: format!(
                    "connection `{}`: opening it panicked: {join_error}",
                    operation.connection
                ),
            };
            return Err(fail(&state, &operation, &worker, Some(&workflow), &error));
        }
    };
    let plan = match ActionPlan::compile(&workflow, org.catalogue()) {
        Ok(plan) => Arc::new(plan),
        Err(error) => {
            let error = OperationError {
                code: "PlanFailed".to_string(),
                message: format!("{}: {error}", workflow.file.display()),
            };
            return Err(fail(&state, &operation, &worker, Some(&workflow), &error));
        }
    };
    let options = ExecuteOptions {
        lease: LEASE,
        heartbeat: HEARTBEAT,
        shutdown: Some(shutdown),
        progress: Some(count_records(&state, operation.counts)),
        secrets: state.secrets.clone(),
        on_retry: Some(state.metrics.retry_observer()),
        ..ExecuteOptions::default()
    };
    Ok(execute(
        org,
        state.store.clone(),
        state.clock.clone(),
        &workflow,
        plan,
        &operation.id,
        &worker,
        options,
    )
    .await?)
}

/// Ends an operation that cannot run as `failed` with `error` (its callback, when the workflow
/// is known, renders as for any other ending).
fn fail(
    state: &ServeState,
    operation: &Operation,
    worker: &str,
    workflow: Option<&Workflow>,
    error: &OperationError,
) -> RunError {
    let callback = workflow.and_then(|workflow| workflow.callback.as_ref());
    match finish_operation(
        &*state.store,
        callback,
        &*state.secrets,
        &operation.id,
        worker,
        OperationStatus::Failed,
        Some(error),
        state.clock.now(),
    ) {
        Ok(finished) => RunError::Unrunnable(Box::new(finished)),
        Err(store_error) => RunError::Engine(EngineError::StoreFailed(store_error)),
    }
}

/// Why the workflow of an operation cannot be had; becomes the operation's error.
fn version_error(code: &str, message: String) -> OperationError {
    OperationError {
        code: code.to_string(),
        message,
    }
}

/// The workflow of exactly the operation's version: the registry's active one when it is that
/// version, else the stored source compiled again.
pub fn workflow_of(
    state: &ServeState,
    operation: &Operation,
) -> Result<Arc<Workflow>, OperationError> {
    if let Some(active) = state.registry.snapshot().workflow(&operation.workflow)
        && active.version() == operation.workflow_version
    {
        return Ok(active.workflow.clone());
    }
    let stored = state
        .store
        .workflow_version(&operation.workflow_version)
        .map_err(|error| {
            version_error(
                "WorkflowVersionUnavailable",
                format!("reading workflow version {}: {error}", operation.workflow_version),
            )
        })?
        .ok_or_else(|| {
            version_error(
                "WorkflowVersionUnavailable",
                format!(
                    "version {} of workflow {} is neither loaded nor stored; run the workflow again",
                    operation.workflow_version, operation.workflow
                ),
            )
        })?;
    let declared = state.config.declared_connections();
    let (catalogues, _) = crate::load::connection_catalogues(&state.config);
    let outcome = crate::load::compile_source_by_connection(
        SourceFile::new(stored.path, stored.source),
        &Catalogue::builtin(),
        &catalogues,
        declared.as_deref(),
    );
    match outcome.workflow {
        Some(workflow) if workflow.version == operation.workflow_version => Ok(Arc::new(workflow)),
        Some(workflow) => Err(version_error(
            "WorkflowVersionUnavailable",
            format!(
                "the stored source of version {} of workflow {} hashes to {}",
                operation.workflow_version, operation.workflow, workflow.version
            ),
        )),
        None => {
            let first = outcome
                .diagnostics
                .iter()
                .find(|diagnostic| diagnostic.severity == crate::diagnostics::Severity::Error)
                .map_or_else(String::new, |diagnostic| {
                    format!(": {} ({})", diagnostic.message, diagnostic.code)
                });
            Err(version_error(
                "WorkflowVersionInvalid",
                format!(
                    "version {} of workflow {} no longer compiles{first}",
                    operation.workflow_version, operation.workflow
                ),
            ))
        }
    }
}

/// A progress callback adding this run's records to the metrics. Progress reports totals
/// including earlier runs of the operation, so only the growth since the last report counts.
fn count_records(state: &ServeState, start: Counts) -> ProgressFn {
    let metrics = state.metrics.clone();
    let last = Mutex::new((start.succeeded, start.failed, start.skipped));
    Arc::new(move |progress: &Progress| {
        let mut last = last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (succeeded, failed, skipped) = *last;
        metrics.records_succeeded.fetch_add(
            progress.succeeded.saturating_sub(succeeded),
            Ordering::Relaxed,
        );
        metrics
            .records_failed
            .fetch_add(progress.failed.saturating_sub(failed), Ordering::Relaxed);
        metrics
            .records_skipped
            .fetch_add(progress.skipped.saturating_sub(skipped), Ordering::Relaxed);
        *last = (
            succeeded.max(progress.succeeded),
            failed.max(progress.failed),
            skipped.max(progress.skipped),
        );
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use crate::compile::CompileContext;

    use chrono::Utc;

    use super::*;
    use crate::config::Config;
    use crate::engine::{LaunchRequest, SystemClock, launch};
    use crate::org::Org;
    use crate::org::local::{DemoSize, LocalOrg};
    use crate::serve::{Metrics, Orgs, Registry};
    use crate::store::{Mode, NewOperation, SqliteStateStore, Trigger};

    const ACCOUNTS: u64 = 40;

    fn source(marker: &str) -> String {
        format!(
            "name: stamp\nselect:\n  fetchxml: |\n    <fetch>\n      <entity name=\"account\">\n\
             \x20       <attribute name=\"name\"/>\n      </entity>\n    </fetch>\nactions:\n\
             \x20 - update:\n      set:\n        description: \"{marker} {{{{ id }}}}\"\n\
             batch:\n  size: 7\n"
        )
    }

    fn compiled(source: &str) -> Workflow {
        let catalogue = Catalogue::builtin();
        let context = CompileContext {
            catalogue: &catalogue,
            connections: None,
        };
        let outcome = crate::compile::compile_source(
            SourceFile::new("workflows/stamp.yaml", source.to_string()),
            &context,
        );
        outcome
            .workflow
            .unwrap_or_else(|| panic!("{:#?}", outcome.diagnostics))
    }

    /// A state with the demo org as `default` (or no org at all) and `registry`.
    fn state(registry: Registry, with_org: bool) -> ServeState {
        let mut orgs: Vec<(String, Arc<dyn Org>)> = Vec::new();
        if with_org {
            let org = LocalOrg::in_memory(Catalogue::builtin()).unwrap();
            org.populate_demo(DemoSize {
                accounts: ACCOUNTS as usize,
            })
            .unwrap();
            orgs.push(("default".to_string(), Arc::new(org)));
        }
        ServeState {
            config: Arc::new(Config::defaults(Path::new(""))),
            registry: Arc::new(registry),
            store: Arc::new(SqliteStateStore::in_memory().unwrap()),
            orgs: Arc::new(Orgs::fixed(orgs)),
            clock: Arc::new(SystemClock),
            metrics: Arc::new(Metrics::default()),
            secrets: Arc::new(|_: &str| None),
            token: None,
            work: Arc::new(Notify::new()),
        }
    }

    fn launch_version(state: &ServeState, workflow: &Workflow, source: &str) -> String {
        let launched = launch(
            &*state.store,
            &LaunchRequest {
                workflow,
                source,
                vars: Vec::new(),
                trigger: Trigger::Api,
                mode: Mode::Async,
                git_commit: None,
                now: Utc::now(),
                apply_overlap: false,
            },
        )
        .unwrap();
        launched.operation().unwrap().id.clone()
    }

    /// Runs one worker until the operation is final, then shuts it down.
    async fn run_until_final(state: &ServeState, id: &str) -> Operation {
        let (stop, stopping) = watch::channel(false);
        let workers = tokio::spawn(run_workers(state.clone(), 1, stopping));
        state.work.notify_one();
        let started = Instant::now();
        let operation = loop {
            let operation = state.store.get(id).unwrap();
            if operation.status.is_final() {
                break operation;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not finished: {operation:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), workers)
            .await
            .expect("workers stop on shutdown")
            .unwrap();
        operation
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operation_runs_with_its_stored_version_when_another_is_active() {
        let old_source = source("old");
        let old = compiled(&old_source);
        let new_source = source("new");
        let new = compiled(&new_source);
        let registry = Registry::from_workflows([(new.clone(), new_source)], Utc::now());
        let state = state(registry, true);
        let id = launch_version(&state, &old, &old_source);

        let chosen = workflow_of(&state, &state.store.get(&id).unwrap()).unwrap();
        assert_eq!(chosen.version, old.version);
        assert_ne!(chosen.version, new.version);

        let finished = run_until_final(&state, &id).await;
        assert_eq!(finished.status, OperationStatus::Succeeded, "{finished:?}");
        assert_eq!(finished.workflow_version, old.version);
        assert_eq!(finished.counts.succeeded, ACCOUNTS);
        assert_eq!(
            state.metrics.records_succeeded.load(Ordering::Relaxed),
            ACCOUNTS,
            "every record counted once"
        );
        let org = state.orgs.get("default").unwrap();
        let page = org
            .query_page(
                "<fetch><entity name=\"account\"><attribute name=\"description\"/>\
                 </entity></fetch>",
                &crate::org::PageRequest::default(),
            )
            .await
            .unwrap();
        assert_eq!(page.rows.len() as u64, ACCOUNTS);
        for row in &page.rows {
            let description = row
                .get("description")
                .and_then(|value| value.as_str())
                .unwrap_or_default();
            assert!(description.starts_with("old "), "{row:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_active_workflow_runs_when_it_is_the_operations_version() {
        let source = source("same");
        let workflow = compiled(&source);
        let registry = Registry::from_workflows([(workflow.clone(), source.clone())], Utc::now());
        let state = state(registry, true);
        let id = launch_version(&state, &workflow, &source);
        let chosen = workflow_of(&state, &state.store.get(&id).unwrap()).unwrap();
        let active = state.registry.snapshot().workflow("stamp").unwrap().clone();
        assert!(Arc::ptr_eq(&chosen, &active.workflow), "no recompile");
        let finished = run_until_final(&state, &id).await;
        assert_eq!(finished.status, OperationStatus::Succeeded, "{finished:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unavailable_connection_fails_the_operation_with_the_reason() {
        let source = source("x");
        let workflow = compiled(&source);
        let state = state(Registry::default(), false);
        let id = launch_version(&state, &workflow, &source);
        let finished = run_until_final(&state, &id).await;
        assert_eq!(finished.status, OperationStatus::Failed);
        let error = finished.error.unwrap();
        assert_eq!(error.code, "ConnectionUnavailable");
        assert!(error.message.contains("connection `default`"), "{error:?}");
        assert!(finished.lease.is_none(), "{:?}", finished.lease);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operation_whose_version_is_nowhere_fails_with_the_reason() {
        let state = state(Registry::default(), true);
        let operation = state
            .store
            .create_operation(
                &NewOperation {
                    id: "op-lost".to_string(),
                    workflow: "stamp".to_string(),
                    workflow_version: "0".repeat(64),
                    git_commit: None,
                    connection: "default".to_string(),
                    mode: Mode::Async,
                    trigger: Trigger::Manual,
                    vars: serde_json::Map::new(),
                    now: Utc::now(),
                    retry_of: None,
                    record_filter: None,
                },
                Utc::now(),
            )
            .unwrap();
        let finished = run_until_final(&state, &operation.id).await;
        assert_eq!(finished.status, OperationStatus::Failed);
        let error = finished.error.unwrap();
        assert_eq!(error.code, "WorkflowVersionUnavailable");
        assert!(
            error.message.contains("neither loaded nor stored"),
            "{error:?}"
        );
    }

    #[test]
    fn worker_names_are_unique_within_a_process() {
        let names: std::collections::HashSet<String> = (0..100).map(|_| worker_name()).collect();
        assert_eq!(names.len(), 100);
        let pid = format!("/{}/", std::process::id());
        assert!(names.iter().all(|name| name.contains(&pid)), "{names:?}");
    }
}
