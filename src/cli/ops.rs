//! `fetchflow ops`: the background operations in the state store (`config.state`) — list them,
//! show one, list its per-record failures, cancel it, retry its failed records.
//!
//! Exit codes: 0 ok; 1 an unknown operation id, or a request the operation's status refuses
//! (cancel of a finished one, retry of an unfinished one or of one without failures); 2 usage
//! (bad arguments, an unknown `--status`, an invalid `--cursor`). Data goes to stdout, errors
//! to stderr. A state store that does not exist yet reads as an empty one (it is not created).
//!
//! An `ID` is a full operation id, or a unique prefix of at least 8 characters of one.
//!
//! `--format json` output (stable; instants are RFC 3339 UTC, absent values are `null`):
//! - An *operation*: `{"id", "workflow", "workflow_version", "git_commit", "connection",
//!   "mode", "trigger", "status", "state_code", "status_code", "counts": {"selected",
//!   "succeeded", "failed", "skipped"}, "created_at", "started_at", "finished_at",
//!   "updated_at", "now", "error": {"code", "message"} | null, "cancel_requested", "retry_of",
//!   "location"}`. `status` is the store name (`waiting`, `in_progress`, `canceling`,
//!   `succeeded`, `failed`, `canceled`); the codes are Dataverse's (DESIGN 7.1).
//! - `ops list`: `{"operations": [operation...], "next_cursor": string | null}`, newest first.
//! - `ops show`: the operation plus `"vars"`, `"checkpoint": {"page", "paging_cookie",
//!   "records_done", "batches_done"} | null`, `"lease": {"worker", "expires_at"} | null`,
//!   `"record_filter": [record id...] | null` and `"deliveries": [{"id", "method", "url",
//!   "headers": [{"name", "value"}], "body", "signed", "status", "attempts", "next_attempt_at",
//!   "last_error", "delivered_at", "created_at", "attempt_log": [{"attempt", "at",
//!   "status_code", "error"}]}]`. Parts of a callback rendered from a secret are shown as
//!   `<redacted>` (the body as `<redacted: N bytes>`); the signature itself is never shown.
//! - `ops failures`: `{"operation_id", "failures": [{"record_id", "action_index", "action",
//!   "code", "message", "attempts", "at"}], "next_cursor"}`; `--format csv`: the header row
//!   `record_id,action_index,action,code,message,attempts` and one row per failure (RFC 4180:
//!   CRLF line ends, fields with `,` `"` CR or LF quoted, quotes doubled). Without `--limit`
//!   and `--cursor`, CSV holds every failure; human and JSON output one page.
//! - `ops cancel` and `ops retry`: the operation after the request (for retry, the new one).
//!
//! Retry creates a new `waiting` operation with a new UUIDv4 id, trigger `retry:<id>`,
//! `retry_of` the original and `record_filter` the original's failed record ids, in the order
//! they first failed. It carries the original's workflow, workflow version, git commit,
//! connection and vars: it redoes the same job on the records that failed. It gets a new `now`
//! (its creation time): it is a new operation, run later, and templates such as
//! `scheduledend: now + 7 days` should count from when it runs. It is always `async`: a
//! background worker (`serve`, or `run --wait`) picks it up.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use crate::callback::location_of;
use crate::cli::Cli;
use crate::engine::launch::{RetryRefused, launch_retry};
use crate::engine::{CallbackRendering, enqueue_callback};
use crate::store::{
    AttemptOutcome, DeliveryLog, FailurePage, MAX_PAGE_SIZE, Operation, OperationFilter,
    OperationStatus, SqliteStateStore, StateStore, StoreError,
};
use crate::view::{
    ShownDelivery, failure_page_json, operation_detail_json, operation_json, operation_page_json,
};

/// The shortest id prefix `ops` resolves.
const MIN_PREFIX: usize = 8;

#[derive(Debug, Args)]
pub struct OpsArgs {
    #[command(subcommand)]
    pub command: OpsCommand,
}

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// List operations, newest first.
    List(ListArgs),
    /// Everything about one operation, with its callback deliveries.
    Show(ShowArgs),
    /// The records an operation could not process, with their errors.
    Failures(FailuresArgs),
    /// Cancel an operation: at once while waiting; while running, after the current batch.
    Cancel(ShowArgs),
    /// Start a new operation over the failed records of a finished one.
    Retry(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only operations with this status: waiting, in_progress, canceling, succeeded, failed or
    /// canceled.
    #[arg(long, value_name = "S", value_parser = parse_status)]
    pub status: Option<OperationStatus>,
    /// Only operations of this workflow.
    #[arg(long, value_name = "W")]
    pub workflow: Option<String>,
    /// Operations per page (default 50, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE)))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[arg(long, value_name = "C")]
    pub cursor: Option<String>,
    #[arg(long, value_enum, default_value_t = OpsFormat::Human)]
    pub format: OpsFormat,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// An operation id, or a unique prefix of at least 8 characters.
    pub id: String,
    #[arg(long, value_enum, default_value_t = OpsFormat::Human)]
    pub format: OpsFormat,
}

#[derive(Debug, Args)]
pub struct FailuresArgs {
    /// An operation id, or a unique prefix of at least 8 characters.
    pub id: String,
    /// Failures per page (default 50, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE)))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[arg(long, value_name = "C")]
    pub cursor: Option<String>,
    /// human, json, or csv (every failure unless --limit or --cursor is given).
    #[arg(long, value_enum, default_value_t = FailuresFormat::Human)]
    pub format: FailuresFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OpsFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailuresFormat {
    Human,
    Json,
    Csv,
}

/// Accepts the store names, and the Dynamics display names (`In Progress`, `in-progress`).
fn parse_status(text: &str) -> Result<OperationStatus, String> {
    OperationStatus::parse_named(text)
}

/// Why a command did not do what was asked, with its exit code.
enum Outcome {
    /// Exit 1: an unknown id, or a request the operation's status refuses.
    Refused(String),
    /// Exit 2: a bad argument the parser could not catch (a cursor).
    Usage(String),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Outcome {
    fn from(error: E) -> Self {
        Outcome::Failed(error.into())
    }
}

/// Maps the store's errors that are about the request rather than the store.
fn store_error(error: StoreError) -> Outcome {
    match error {
        StoreError::OperationNotFound { id } => Outcome::Refused(format!("no operation {id}")),
        StoreError::InvalidCursor { cursor } => Outcome::Usage(format!(
            "invalid --cursor `{cursor}`: pass the `next_cursor` of the previous page as is"
        )),
        error @ StoreError::AlreadyFinished { .. } => Outcome::Refused(error.to_string()),
        error => Outcome::Failed(error.into()),
    }
}

pub(crate) fn run(cli: &Cli, args: &OpsArgs) -> anyhow::Result<ExitCode> {
    let result = open_store(cli).and_then(|store| match &args.command {
        OpsCommand::List(args) => list(&store, args),
        OpsCommand::Show(args) => show(&store, args),
        OpsCommand::Failures(args) => failures(&store, args),
        OpsCommand::Cancel(args) => cancel(cli, &store, args),
        OpsCommand::Retry(args) => retry(&store, args),
    });
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Outcome::Refused(message)) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(1))
        }
        Err(Outcome::Usage(message)) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(2))
        }
        Err(Outcome::Failed(error)) => Err(error),
    }
}

/// The configured store; one that does not exist yet is read as empty, not created.
fn open_store(cli: &Cli) -> Result<SqliteStateStore, Outcome> {
    let (config, _) = crate::config::load_config(cli.config.as_deref())?;
    if config.state.exists() {
        Ok(SqliteStateStore::open(&config.state)?)
    } else {
        Ok(SqliteStateStore::in_memory()?)
    }
}

/// Whether `id` may be the beginning of a UUID: at least [`MIN_PREFIX`] characters, shorter
/// than a whole one, hex digits and dashes only.
fn is_prefix(id: &str) -> bool {
    (MIN_PREFIX..36).contains(&id.len()) && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// An operation by full id, or by a unique prefix of at least [`MIN_PREFIX`] characters.
fn resolve(store: &dyn StateStore, id: &str) -> Result<Operation, Outcome> {
    match store.get(id) {
        Err(StoreError::OperationNotFound { .. }) if is_prefix(id) => {}
        other => return other.map_err(store_error),
    }
    let mut matches = Vec::new();
    let mut filter = OperationFilter {
        limit: MAX_PAGE_SIZE,
        ..OperationFilter::default()
    };
    loop {
        let page = store.list(&filter).map_err(store_error)?;
        matches.extend(
            page.operations
                .into_iter()
                .filter(|operation| operation.id.starts_with(id)),
        );
        if matches.len() > 1 {
            return Err(Outcome::Refused(format!(
                "operation id prefix {id} is ambiguous (it matches {} at least); give more characters",
                matches
                    .iter()
                    .map(|operation| operation.id.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            )));
        }
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }
    matches
        .pop()
        .ok_or_else(|| Outcome::Refused(format!("no operation {id}")))
}

fn list(store: &dyn StateStore, args: &ListArgs) -> Result<(), Outcome> {
    let filter = OperationFilter {
        status: args.status,
        workflow: args.workflow.clone(),
        limit: args.limit.unwrap_or(0),
        cursor: args.cursor.clone(),
    };
    let page = store.list(&filter).map_err(store_error)?;
    let mut out = String::new();
    match args.format {
        OpsFormat::Json => {
            let document = operation_page_json(&page);
            writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        }
        OpsFormat::Human => {
            if page.operations.is_empty() {
                out.push_str(if filter.cursor.is_some() {
                    "no more operations\n"
                } else {
                    "no operations\n"
                });
            } else {
                let header = ["ID", "WORKFLOW", "STATUS", "TRIGGER", "CREATED", "PROGRESS"]
                    .map(String::from);
                let rows = page.operations.iter().map(|operation| {
                    [
                        operation.id.clone(),
                        operation.workflow.clone(),
                        OperationStatus::display_name(operation.status).to_string(),
                        operation.trigger.to_string(),
                        human_time(operation.created_at),
                        progress(operation),
                    ]
                });
                out.push_str(&table(std::iter::once(header).chain(rows)));
            }
            if let Some(cursor) = &page.next_cursor {
                writeln!(out, "next page: --cursor {cursor}")?;
            }
        }
    }
    print(&out)
}

fn show(store: &dyn StateStore, args: &ShowArgs) -> Result<(), Outcome> {
    let operation = resolve(store, &args.id)?;
    let deliveries = store.deliveries(&operation.id).map_err(store_error)?;
    let text = match args.format {
        OpsFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&operation_detail_json(&operation, &deliveries))?
        ),
        OpsFormat::Human => show_human(&operation, &deliveries)?,
    };
    print(&text)
}

fn failures(store: &dyn StateStore, args: &FailuresArgs) -> Result<(), Outcome> {
    let operation = resolve(store, &args.id)?;
    let id = operation.id.as_str();
    let limit = args.limit.unwrap_or(0);
    let mut page = store
        .failures(id, limit, args.cursor.as_deref())
        .map_err(store_error)?;
    let mut out = String::new();
    match args.format {
        FailuresFormat::Csv => {
            out.push_str(crate::view::FAILURES_CSV_HEADER);
            let export_all = args.limit.is_none() && args.cursor.is_none();
            loop {
                for failure in &page.failures {
                    crate::view::failure_csv_row(&mut out, failure);
                }
                match page.next_cursor.take() {
                    Some(cursor) if export_all => {
                        page = store
                            .failures(id, MAX_PAGE_SIZE, Some(&cursor))
                            .map_err(store_error)?;
                    }
                    Some(cursor) => {
                        eprintln!("next page: --cursor {cursor}");
                        break;
                    }
                    None => break,
                }
            }
        }
        FailuresFormat::Json => {
            let document = failure_page_json(id, &page);
            writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        }
        FailuresFormat::Human => failures_human(&mut out, &operation, &page)?,
    }
    print(&out)
}

fn cancel(cli: &Cli, store: &dyn StateStore, args: &ShowArgs) -> Result<(), Outcome> {
    let operation = resolve(store, &args.id)?;
    let before = operation.status;
    let now = Utc::now();
    let after = match store.request_cancel(&operation.id, now) {
        Ok(after) => {
            if after.status == OperationStatus::Canceled {
                // Canceled while waiting: no worker ends it, so its callback is stored here.
                cancel_callback(cli, store, &after, now);
            }
            after
        }
        Err(StoreError::AlreadyFinished { id, status }) => {
            return Err(Outcome::Refused(format!(
                "operation {id} has already finished ({}); there is nothing to cancel",
                OperationStatus::display_name(status)
            )));
        }
        Err(error) => return Err(store_error(error)),
    };
    let text = match args.format {
        OpsFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&operation_json(&after))?
        ),
        OpsFormat::Human => {
            let detail = match (before, after.status) {
                (_, OperationStatus::Canceled) => "it had not started",
                (OperationStatus::Canceling, _) => {
                    "cancel was already requested: the current batch finishes, then canceled"
                }
                _ => "the current batch finishes, then canceled",
            };
            format!(
                "operation {}: {} ({detail})\n",
                after.id,
                OperationStatus::display_name(after.status)
            )
        }
    };
    print(&text)
}

/// Stores the callback of an operation canceled before it started, rendered with the secrets of
/// this process's environment; `serve` delivers it. Problems are reported on stderr and do not
/// undo the cancel.
fn cancel_callback(cli: &Cli, store: &dyn StateStore, operation: &Operation, now: DateTime<Utc>) {
    let workflow = crate::config::load_config(cli.config.as_deref())
        .map_err(|error| error.to_string())
        .and_then(|(config, _)| {
            crate::cli::plan::load_workflow(&config, &operation.workflow).map_err(|outcome| {
                match outcome {
                    crate::cli::plan::Outcome::Refused(refusal) => refusal.0,
                    crate::cli::plan::Outcome::Failed(error) => error.to_string(),
                }
            })
        });
    let workflow = match workflow {
        Ok(workflow) => workflow,
        Err(error) => {
            eprintln!(
                "warning: the callback of operation {} was not stored: {error}",
                operation.id
            );
            return;
        }
    };
    let secrets = |name: &str| std::env::var(name).ok();
    match enqueue_callback(store, workflow.callback.as_ref(), operation, &secrets, now) {
        Ok(CallbackRendering::Failed(error)) => eprintln!(
            "warning: the callback of operation {} could not be rendered: {error} (recorded; see \
             `fetchflow ops show {}`)",
            operation.id, operation.id
        ),
        Ok(CallbackRendering::Rendered(_) | CallbackRendering::NotWanted) => {}
        Err(error) => eprintln!(
            "warning: the callback of operation {} was not stored: {error}",
            operation.id
        ),
    }
}

fn retry(store: &dyn StateStore, args: &ShowArgs) -> Result<(), Outcome> {
    let original = resolve(store, &args.id)?;
    let created = launch_retry(store, &original, Utc::now()).map_err(|refused| match refused {
        RetryRefused::Store(error) => store_error(error),
        refused => Outcome::Refused(refused.to_string()),
    })?;
    let records = created.record_filter.as_ref().map_or(0, Vec::len);
    let text = match args.format {
        OpsFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&operation_json(&created))?
        ),
        OpsFormat::Human => format!(
            "operation {} created: retry of {} over {records} failed record{}, waiting\n\
             location: {}\n",
            created.id,
            original.id,
            plural(records),
            location_of(&created.id)
        ),
    };
    print(&text)
}

fn print(text: &str) -> Result<(), Outcome> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// The status as Dynamics names it.
fn human_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn optional_time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_string(), human_time)
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// `done/selected` where done = succeeded + failed + skipped; `?` while the selection is
/// not counted yet.
fn progress(operation: &Operation) -> String {
    let counts = operation.counts;
    let done = counts.succeeded + counts.failed + counts.skipped;
    match counts.selected {
        Some(0) => "0/0".to_string(),
        Some(selected) => format!(
            "{done}/{selected} ({}%)",
            done.saturating_mul(100) / selected
        ),
        None => format!("{done}/?"),
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table<const N: usize>(rows: impl Iterator<Item = [String; N]>) -> String {
    let rows: Vec<[String; N]> = rows.collect();
    let mut widths = [0usize; N];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn show_human(operation: &Operation, deliveries: &[DeliveryLog]) -> Result<String, Outcome> {
    let mut out = String::new();
    let status = operation.status;
    let version = match &operation.git_commit {
        Some(commit) => format!("{} (git {commit})", operation.workflow_version),
        None => operation.workflow_version.clone(),
    };
    let counts = operation.counts;
    let mut fields: Vec<(&str, String)> = vec![
        ("operation", operation.id.clone()),
        ("workflow", operation.workflow.clone()),
        ("version", version),
        ("connection", operation.connection.clone()),
        ("mode", operation.mode.as_str().to_string()),
        ("trigger", operation.trigger.to_string()),
        (
            "status",
            format!(
                "{} (state {}, status {})",
                OperationStatus::display_name(status),
                status.state_code(),
                status.status_code()
            ),
        ),
        (
            "records",
            format!(
                "{} selected, {} succeeded, {} failed, {} skipped{}",
                counts
                    .selected
                    .map_or_else(|| "?".to_string(), |n| n.to_string()),
                counts.succeeded,
                counts.failed,
                counts.skipped,
                match counts.selected {
                    Some(selected) if selected > 0 => format!(
                        " ({}% done)",
                        (counts.succeeded + counts.failed + counts.skipped).saturating_mul(100)
                            / selected
                    ),
                    _ => String::new(),
                }
            ),
        ),
        ("now", human_time(operation.now)),
        ("created", human_time(operation.created_at)),
        ("started", optional_time(operation.started_at)),
        ("finished", optional_time(operation.finished_at)),
        ("updated", human_time(operation.updated_at)),
        ("location", location_of(&operation.id)),
    ];
    if !operation.vars.is_empty() {
        let vars = operation
            .vars
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(", ");
        fields.push(("vars", vars));
    }
    if let Some(checkpoint) = &operation.checkpoint {
        fields.push((
            "checkpoint",
            format!(
                "page {}, {} record{} and {} batch{} done{}",
                checkpoint.page,
                checkpoint.records_done,
                plural(usize::try_from(checkpoint.records_done).unwrap_or(usize::MAX)),
                checkpoint.batches_done,
                if checkpoint.batches_done == 1 {
                    ""
                } else {
                    "es"
                },
                if checkpoint.paging_cookie.is_some() {
                    ", with a paging cookie"
                } else {
                    ""
                }
            ),
        ));
    }
    if let Some(error) = &operation.error {
        fields.push(("error", format!("{}: {}", error.code, error.message)));
    }
    if let Some(lease) = &operation.lease {
        fields.push((
            "lease",
            format!("{} until {}", lease.worker, human_time(lease.expires_at)),
        ));
    }
    if operation.cancel_requested {
        fields.push(("cancel", "requested".to_string()));
    }
    if let Some(retry_of) = &operation.retry_of {
        fields.push(("retry of", retry_of.clone()));
    }
    if let Some(filter) = &operation.record_filter {
        fields.push((
            "record filter",
            format!("only {} record{}", filter.len(), plural(filter.len())),
        ));
    }
    let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, value) in &fields {
        writeln!(
            out,
            "{:width$}  {value}",
            format!("{name}:"),
            width = width + 1
        )?;
    }
    if deliveries.is_empty() {
        out.push_str("callback deliveries: none\n");
    }
    for log in deliveries {
        delivery_human(&mut out, log)?;
    }
    Ok(out)
}

/// One callback delivery with its attempt log, secrets redacted.
fn delivery_human(out: &mut String, log: &DeliveryLog) -> std::fmt::Result {
    let shown = ShownDelivery { log };
    let delivery = &log.delivery;
    writeln!(
        out,
        "\ncallback delivery {}: {}, {} attempt{}",
        delivery.id,
        delivery.status,
        delivery.attempts,
        plural(delivery.attempts as usize)
    )?;
    writeln!(out, "  {} {}", delivery.method, delivery.shown_url())?;
    for (name, value) in delivery.shown_headers() {
        writeln!(out, "  {name}: {value}")?;
    }
    writeln!(
        out,
        "  body: {} bytes{}",
        delivery.body.len(),
        if delivery.signature.is_some() {
            ", signed"
        } else {
            ""
        }
    )?;
    if let Some(next) = delivery.next_attempt_at {
        writeln!(out, "  next attempt: {}", human_time(next))?;
    }
    if let Some(at) = delivery.delivered_at {
        writeln!(out, "  delivered: {}", human_time(at))?;
    }
    if let Some(error) = &delivery.last_error {
        writeln!(out, "  last error: {}", shown.error(error))?;
    }
    for attempt in &log.attempts {
        let outcome = match &attempt.outcome {
            AttemptOutcome::Status(code) => format!("HTTP {code}"),
            AttemptOutcome::Error(error) => shown.error(error),
        };
        writeln!(
            out,
            "  attempt {} at {}: {outcome}",
            attempt.attempt,
            human_time(attempt.at)
        )?;
    }
    Ok(())
}

fn failures_human(
    out: &mut String,
    operation: &Operation,
    page: &FailurePage,
) -> Result<(), Outcome> {
    if page.failures.is_empty() {
        writeln!(out, "operation {} has no failed records", operation.id)?;
        return Ok(());
    }
    let header = ["RECORD", "ACTION", "CODE", "ATTEMPTS", "MESSAGE"].map(String::from);
    let rows = page.failures.iter().map(|failure| {
        [
            failure.record_id.clone(),
            format!("[{}] {}", failure.action_index, failure.action),
            failure.code.clone(),
            failure.attempts.to_string(),
            // One line per failure: a multi-line message would break the table.
            failure.message.replace(['\r', '\n'], " "),
        ]
    });
    out.push_str(&table(std::iter::once(header).chain(rows)));
    if let Some(cursor) = &page.next_cursor {
        writeln!(out, "next page: --cursor {cursor}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_from_store_and_display_names() {
        assert_eq!(parse_status("in_progress"), Ok(OperationStatus::InProgress));
        assert_eq!(parse_status("In Progress"), Ok(OperationStatus::InProgress));
        assert_eq!(parse_status("Failed"), Ok(OperationStatus::Failed));
        let error = parse_status("faild").unwrap_err();
        assert!(error.contains("did you mean `failed`?"), "{error}");
        let error = parse_status("runing").unwrap_err();
        assert!(error.contains("did you mean `in_progress`?"), "{error}");
        assert!(parse_status("running").is_err());
    }

    #[test]
    fn tables_align_columns_and_do_not_pad_the_last() {
        let rows = [
            ["a", "bb", "c", "d", "e", "f"].map(String::from),
            ["aaa", "b", "c", "d", "e", "ff"].map(String::from),
        ];
        assert_eq!(
            table(rows.into_iter()),
            "a    bb  c  d  e  f\naaa  b   c  d  e  ff\n"
        );
    }
}
