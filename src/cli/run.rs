//! `fetchflow run WORKFLOW [--var k=v]... [--sync|--async] [--wait]`: runs a workflow as an
//! operation recorded in the state store (`state` in `fetchflow.yaml`).
//!
//! - sync (`--sync`, or `mode: sync`): counts the selection first and refuses, before writing
//!   anything, one larger than `sync.max_records`; then runs inline in this process, stops
//!   between batches at `sync.timeout`, and prints the summary. Exit 0 only on `succeeded`.
//! - async without `--wait`: creates the operation (`waiting`) and prints its id and location
//!   `/api/operations/<id>`; a `serve` on the same state store executes it. Exit 0.
//! - async with `--wait`: claims the operation and executes it in this process, with a
//!   progress bar on stderr (records/s, ETA; plain progress lines when stderr is not a
//!   terminal). Ctrl-C stops after the current batches, saves the checkpoint and releases the
//!   operation, which stays resumable (exit 130). Exit 0 only on `succeeded`, 1 otherwise.
//!
//! The operation's id is a UUIDv4 and its `now` is fixed when it is created. When the workflow
//! file sits unmodified in a git work tree, the operation records the commit (`git_commit`).
//!
//! Callbacks: the engine renders the workflow's callback into the outbox when the operation ends,
//! with secrets from this process's environment. A sync run or `--wait` then tries the due
//! deliveries once (bounded by the delivery timeout) and prints one line about its own; a
//! failed delivery is left to `fetchflow serve` and never changes the exit code.

use std::ffi::OsStr;
use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::callback::http::HttpSender;
use crate::cli::Cli;
use crate::cli::plan::{Outcome as Refusable, load_workflow, open_org, refuse};
use crate::compile::{Mode, Workflow};
use crate::engine::deliver::{AttemptResult, RandomJitter};
use crate::engine::{
    ActionPlan, DeliveryOptions, ExecuteOptions, NOT_RENDERED, Outcome, Progress, ProgressFn,
    RunContext, SystemClock, count_selection, deliver_due, execute, render_selection,
    resolve_cli_vars,
};
use crate::org::Org;
use crate::store::{
    NewOperation, Operation, OperationFilter, OperationStatus, SqliteStateStore, StateStore,
    StoreError, Trigger,
};

/// How long this process's lease on an operation lasts between heartbeats.
const LEASE: Duration = Duration::from_secs(30);
/// Exit code after Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;
/// How many failures the summary lists.
const SHOWN_FAILURES: u32 = 10;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A workflow name (in the configured workflows directory) or a file path.
    pub workflow: String,
    /// Override a var: `--var name=value` (repeatable), parsed to the type of its default.
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// Run inline in this process (refused above `sync.max_records`).
    #[arg(long, conflicts_with = "run_async")]
    pub sync: bool,
    /// Create a background operation (the default unless the workflow says `mode: sync`).
    #[arg(long = "async", conflicts_with = "sync")]
    pub run_async: bool,
    /// Execute the background operation in this process, with progress, until it ends.
    #[arg(long)]
    pub wait: bool,
}

pub(crate) fn run(cli: &Cli, args: &RunArgs) -> anyhow::Result<ExitCode> {
    match run_workflow(cli, args) {
        Ok(code) => Ok(code),
        Err(Refusable::Refused(refusal)) => {
            eprintln!("error: {}", refusal.0);
            Ok(ExitCode::from(1))
        }
        Err(Refusable::Failed(error)) => Err(error),
    }
}

fn run_workflow(cli: &Cli, args: &RunArgs) -> Result<ExitCode, Refusable> {
    let (config, _) = crate::config::load_config(cli.config.as_deref())?;
    let workflow = load_workflow(&config, &args.workflow)?;
    let source = workflow_source(&workflow)?;
    let vars = resolve_cli_vars(&workflow.vars, &args.vars).map_err(|e| refuse(e.to_string()))?;
    let mode = if args.sync {
        Mode::Sync
    } else if args.run_async {
        Mode::Async
    } else {
        workflow.mode
    };
    let org = Arc::new(open_org(&config, &workflow.connection)?);
    let plan = Arc::new(
        ActionPlan::compile(&workflow, org.catalogue())
            .map_err(|error| refuse(format!("{}: {error}", workflow.file.display())))?,
    );

    // The operation's identity and fixed `now`, decided once, here.
    let operation_id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let new_operation = NewOperation {
        id: operation_id.clone(),
        workflow: workflow.name.clone(),
        workflow_version: workflow.version.clone(),
        git_commit: git_commit(&workflow.file),
        connection: workflow.connection.clone(),
        mode,
        trigger: Trigger::Manual,
        vars: vars.iter().cloned().collect(),
        now,
        retry_of: None,
        record_filter: None,
    };

    if mode == Mode::Sync {
        let ctx = RunContext::new(&workflow, operation_id.clone(), now, "manual", vars);
        let fetchxml = render_selection(&workflow, &ctx)
            .map_err(|error| refuse(format!("cannot render the selection: {error}")))?;
        let limit = workflow.sync.max_records;
        let count = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(count_selection(&*org, &fetchxml, limit))
            .map_err(|error| refuse(format!("the selection failed: {error} ({})", error.code)))?;
        if count > limit {
            return Err(refuse(format!(
                "the selection has more than {limit} records (sync.max_records); nothing was \
                 written. Run it as a background operation: `fetchflow run {} --async --wait`",
                workflow.name
            )));
        }
    }

    let store: Arc<dyn StateStore> = Arc::new(SqliteStateStore::open(&config.state)?);
    let resumed = if mode == Mode::Async && args.wait {
        interrupted(&*store, &workflow.name)?
    } else {
        None
    };
    let operation = match resumed {
        Some(operation) => {
            let done =
                operation.counts.succeeded + operation.counts.failed + operation.counts.skipped;
            eprintln!(
                "resuming the interrupted operation {} of {} from its checkpoint ({done} records \
                 done){}",
                operation.id,
                workflow.name,
                if args.vars.is_empty() {
                    ""
                } else {
                    "; it keeps its own vars, --var is ignored"
                }
            );
            operation
        }
        None => {
            // The version's source goes in first: no operation exists without it, so any
            // `serve` runs exactly this version, whatever happens to the file meanwhile.
            crate::engine::launch::save_version(&*store, &workflow, &source, now)?;
            store.create_operation(&new_operation, now)?
        }
    };
    let location = format!("/api/operations/{}", operation.id);
    if mode == Mode::Async && !args.wait {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "operation {} created (waiting)", operation.id)?;
        writeln!(stdout, "location: {location}")?;
        writeln!(
            stdout,
            "a `fetchflow serve` on {} runs it; follow it with `fetchflow ops show {}`",
            config.state.display(),
            operation.id
        )?;
        return Ok(ExitCode::SUCCESS);
    }

    let worker = format!(
        "cli-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    if let Err(error) = store.claim(&operation.id, &worker, Utc::now(), LEASE) {
        return Err(not_claimed(&*store, &operation, mode, error));
    }
    eprintln!("operation {} ({location})", operation.id);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let done_before =
        operation.counts.succeeded + operation.counts.failed + operation.counts.skipped;
    let reporter = Reporter::new(mode, done_before);
    let outcome = runtime.block_on(async {
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = shutdown.send(true);
            }
        });
        let options = ExecuteOptions {
            lease: LEASE,
            deadline: (mode == Mode::Sync)
                .then(|| tokio::time::Instant::now() + workflow.sync.timeout),
            shutdown: Some(shutdown_rx),
            progress: reporter.callback(),
            secrets: Arc::new(|name: &str| std::env::var(name).ok()),
            ..ExecuteOptions::default()
        };
        let org: Arc<dyn Org> = org.clone();
        execute(
            org,
            store.clone(),
            Arc::new(SystemClock),
            &workflow,
            plan.clone(),
            &operation.id,
            &worker,
            options,
        )
        .await
    });
    reporter.finish();
    let elapsed = started.elapsed();
    match outcome? {
        Outcome::Finished(operation) => {
            print_summary(&*store, &workflow, &operation, elapsed, done_before)?;
            if workflow.callback.is_some() {
                // The delivery's outcome is reported, never reflected in the exit code.
                let line = runtime.block_on(deliver_callback(&*store, &operation.id));
                writeln!(std::io::stdout().lock(), "{line}")?;
            }
            Ok(if operation.status == OperationStatus::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Outcome::Suspended { counts } => {
            eprintln!(
                "interrupted: operation {} is checkpointed after {} records; resume it with \
                 `fetchflow run {} --wait` (or a `fetchflow serve` on {} picks it up)",
                operation.id,
                counts.succeeded + counts.failed + counts.skipped,
                args.workflow,
                config.state.display()
            );
            Ok(ExitCode::from(INTERRUPTED))
        }
    }
}

/// The text `workflow` was compiled from, read again from its file: refused when the file
/// changed in between (an editor saving at that moment), since the stored version must be the
/// exact text that hashes to `workflow.version`.
fn workflow_source(workflow: &Workflow) -> Result<String, Refusable> {
    let source = crate::load::read_source(&workflow.file).map_err(|unreadable| {
        refuse(format!(
            "cannot read {} again: {}",
            workflow.file.display(),
            unreadable.diagnostic.message
        ))
    })?;
    if crate::compile::content_hash(&source.text) != workflow.version {
        return Err(refuse(format!(
            "{} changed while it was being loaded; nothing was started, run it again",
            workflow.file.display()
        )));
    }
    Ok(source.text)
}

/// The commit of `file` when it sits unmodified (and neither untracked nor ignored) in a git
/// work tree: `git rev-parse HEAD` in its directory, and an empty
/// `git status --porcelain --ignored -- <file>`. No git, no repository, or a changed file: `None`.
fn git_commit(file: &Path) -> Option<String> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = file.file_name()?;
    let git = |args: &[&OsStr]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let head = git(&[OsStr::new("rev-parse"), OsStr::new("HEAD")])?;
    let status = git(&[
        OsStr::new("status"),
        OsStr::new("--porcelain"),
        OsStr::new("--ignored"),
        OsStr::new("--"),
        name,
    ])?;
    (status.is_empty() && !head.is_empty()).then_some(head)
}

/// One attempt, right after the operation ended, to deliver its callback (and any other due
/// delivery), bounded by the delivery timeout; a one-line report. What is not delivered now is
/// retried by `fetchflow serve`.
async fn deliver_callback(store: &dyn StateStore, operation_id: &str) -> String {
    const RETRIED: &str = "will be retried by `fetchflow serve`";
    let logs = match store.deliveries(operation_id) {
        Ok(logs) => logs,
        Err(error) => return format!("callback delivery failed: {error}, {RETRIED}"),
    };
    if logs.is_empty() {
        return "callback: not sent (its `on` leaves this ending out)".to_string();
    }
    if let Some(error) = logs
        .iter()
        .filter_map(|log| log.delivery.last_error.as_deref())
        .find(|error| error.starts_with(NOT_RENDERED))
    {
        return format!("callback not sent: {error} (see `fetchflow ops show {operation_id}`)");
    }
    let sender = match HttpSender::new() {
        Ok(sender) => sender,
        Err(error) => return format!("callback delivery failed: {error}, {RETRIED}"),
    };
    let options = DeliveryOptions::default();
    let pass = deliver_due(store, &sender, &SystemClock, &RandomJitter, &options);
    let report = match tokio::time::timeout(options.timeout + Duration::from_secs(1), pass).await {
        Ok(Ok(report)) => report,
        Ok(Err(error)) => return format!("callback delivery failed: {error}, {RETRIED}"),
        Err(_) => {
            return format!("callback delivery failed: no answer in time, {RETRIED}");
        }
    };
    let ours = report
        .attempts
        .iter()
        .find(|attempt| attempt.operation_id == operation_id);
    match ours.map(|attempt| &attempt.result) {
        Some(AttemptResult::Delivered { status }) => {
            format!("callback delivered (HTTP {status})")
        }
        Some(AttemptResult::Retrying { outcome, .. }) => {
            format!("callback delivery failed: {outcome}, {RETRIED}")
        }
        Some(AttemptResult::Abandoned { outcome }) => format!(
            "callback delivery failed: {outcome}; given up (see `fetchflow ops show \
             {operation_id}`)"
        ),
        Some(AttemptResult::NotRecorded { outcome, .. }) => {
            format!("callback delivery failed: {outcome}, {RETRIED}")
        }
        None => format!("callback queued (another sender holds it), {RETRIED}"),
    }
}

/// Why this process could not take the operation it just created; a sync run that cannot
/// start is canceled, so it does not wait forever (only its creator runs a sync operation).
fn not_claimed(
    store: &dyn StateStore,
    operation: &Operation,
    mode: Mode,
    error: StoreError,
) -> Refusable {
    if let StoreError::WorkflowBusy { active, .. } = &error {
        if mode == Mode::Sync {
            let _ = store.request_cancel(&operation.id, Utc::now());
            return refuse(format!(
                "operation {active} of workflow {} is running; the sync run was not started",
                operation.workflow
            ));
        }
        return refuse(format!(
            "operation {} was created but waits: operation {active} of workflow {} is still \
             running; a `fetchflow serve` runs it afterwards",
            operation.id, operation.workflow
        ));
    }
    Refusable::Failed(error.into())
}

/// An async operation of `workflow` that is in progress but held by no live lease: it was
/// interrupted (Ctrl-C, a crash) and resumes from its checkpoint.
fn interrupted(store: &dyn StateStore, workflow: &str) -> Result<Option<Operation>, StoreError> {
    let now = Utc::now();
    let page = store.list(&OperationFilter {
        status: Some(OperationStatus::InProgress),
        workflow: Some(workflow.to_string()),
        limit: 10,
        cursor: None,
    })?;
    Ok(page.operations.into_iter().find(|operation| {
        operation.mode == Mode::Async
            && operation
                .lease
                .as_ref()
                .is_none_or(|lease| lease.expires_at <= now)
    }))
}

fn print_summary(
    store: &dyn StateStore,
    workflow: &Workflow,
    operation: &Operation,
    elapsed: Duration,
    done_before: u64,
) -> anyhow::Result<()> {
    let counts = operation.counts;
    // The rate of this process: records done by an earlier, interrupted run do not count.
    let done = (counts.succeeded + counts.failed + counts.skipped).saturating_sub(done_before);
    let seconds = elapsed.as_secs_f64();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "operation {} {} ({} run of {})",
        operation.id,
        operation.status,
        operation.mode.as_str(),
        workflow.name
    )?;
    let selected = counts
        .selected
        .map_or_else(|| "unknown".to_string(), |n| n.to_string());
    writeln!(
        out,
        "selected {selected}, succeeded {}, failed {}, skipped {}",
        counts.succeeded, counts.failed, counts.skipped
    )?;
    #[allow(clippy::cast_precision_loss)]
    let rate = if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    };
    writeln!(out, "took {seconds:.2} s ({rate:.0} records/s)")?;
    if let Some(error) = &operation.error {
        writeln!(out, "error: {}: {}", error.code, error.message)?;
    }
    if counts.failed > 0 {
        let page = store.failures(&operation.id, SHOWN_FAILURES, None)?;
        writeln!(
            out,
            "failures ({} shown of {}; all: `fetchflow ops failures {}`):",
            page.failures.len(),
            counts.failed,
            operation.id
        )?;
        for failure in &page.failures {
            writeln!(
                out,
                "  {} actions[{}] {}: {}: {}",
                failure.record_id,
                failure.action_index,
                failure.action,
                failure.code,
                failure.message
            )?;
        }
    }
    Ok(())
}

/// Progress on stderr: a bar on a terminal, a line every few seconds otherwise, nothing for
/// sync runs (they are short).
struct Reporter {
    bar: Option<ProgressBar>,
    lines: Option<Arc<Mutex<LineState>>>,
}

struct LineState {
    started: Instant,
    last: Instant,
    done_before: u64,
}

impl Reporter {
    fn new(mode: Mode, done_before: u64) -> Reporter {
        if mode == Mode::Sync {
            return Reporter {
                bar: None,
                lines: None,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(done_before), ProgressDrawTarget::stderr());
            // A resumed run starts where the last one stopped; its rate counts from here.
            bar.set_position(done_before);
            bar.reset_eta();
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {human_pos}/{human_len} records  {rate}  ETA {eta}  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{:.0} records/s", state.per_sec());
                    },
                ),
            );
            Reporter {
                bar: Some(bar),
                lines: None,
            }
        } else {
            let now = Instant::now();
            Reporter {
                bar: None,
                lines: Some(Arc::new(Mutex::new(LineState {
                    started: now,
                    last: now,
                    done_before,
                }))),
            }
        }
    }

    fn callback(&self) -> Option<ProgressFn> {
        if let Some(bar) = &self.bar {
            let bar = bar.clone();
            return Some(Arc::new(move |progress: &Progress| {
                bar.set_length(progress.selected.max(progress.done));
                bar.set_position(progress.done);
                let failed = if progress.failed > 0 {
                    format!("{} failed", progress.failed)
                } else {
                    String::new()
                };
                let reading = if progress.selection_read {
                    ""
                } else {
                    " (still reading the selection)"
                };
                bar.set_message(format!("{failed}{reading}"));
            }));
        }
        let lines = self.lines.clone()?;
        Some(Arc::new(move |progress: &Progress| {
            let mut state = lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            if now.duration_since(state.last) < Duration::from_secs(2) {
                return;
            }
            state.last = now;
            let seconds = now.duration_since(state.started).as_secs_f64();
            #[allow(clippy::cast_precision_loss)]
            let rate = progress.done.saturating_sub(state.done_before) as f64 / seconds.max(0.001);
            let total = if progress.selection_read {
                format!("of {}", progress.selected)
            } else {
                format!("of {}+ selected so far", progress.selected)
            };
            eprintln!(
                "progress: {} {total} records done ({} failed), {rate:.0} records/s",
                progress.done, progress.failed
            );
        }))
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
