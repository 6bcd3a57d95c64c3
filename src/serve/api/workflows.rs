//! `GET /api/workflows`, `GET /api/workflows/{name}` (each file as last loaded: status,
//! diagnostics, the version that runs, triggers with their next fires, the last run) and
//! `POST /api/workflows/{name}/runs` (an async operation, or a sync run executed inline).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::compile::{Missed, Mode, Trigger as WorkflowTrigger, Workflow};
use crate::diagnostics::did_you_mean;
use crate::engine::launch::save_version;
use crate::engine::{
    ActionPlan, ExecuteOptions, LaunchRequest, Outcome, RunContext, count_selection, execute,
    launch, render_selection, resolve_json_vars,
};
use crate::serve::ServeState;
use crate::serve::api::SYNC_LEASE;
use crate::serve::api::error::{ApiError, ApiPath, ApiQuery, RawBody, parse_json_body};
use crate::serve::api::operations::{PageQuery, page_limit};
use crate::serve::registry::{ActiveWorkflow, FileEntry, FileStatus, Snapshot};
use crate::store::{
    NewOperation, Operation, OperationFilter, OperationStatus, StateStore, StoreError, Trigger,
};
use crate::view::{instant, operation_detail_json, operation_json};

/// How many next fire instants a cron trigger shows.
const NEXT_FIRES: usize = 3;

/// `GET /api/workflows?limit=&cursor=`: `{"workflows": [file...], "next_cursor"}`, by path.
/// Without `limit`, every file; with it (1..=1000), pages whose `next_cursor` (the last file's
/// path) reads the next one.
pub(super) async fn list_workflows(
    State(state): State<ServeState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(query.limit.as_deref())? as usize;
    let snapshot = state.registry.snapshot();
    let now = state.clock.now();
    let after = query.cursor.as_deref().map(std::path::Path::new);
    let mut entries = snapshot
        .files()
        .filter(|entry| after.is_none_or(|after| entry.path.as_path() > after));
    let page: Vec<_> = if limit == 0 {
        entries.by_ref().collect()
    } else {
        entries.by_ref().take(limit).collect()
    };
    let next_cursor = match (limit, page.last(), entries.next()) {
        (1.., Some(last), Some(_)) => Some(last.path.display().to_string()),
        _ => None,
    };
    let files = page
        .into_iter()
        .map(|entry| file_json(entry, &*state.store, now))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(
        json!({ "workflows": files, "next_cursor": next_cursor }),
    ))
}

/// `GET /api/workflows/{name}`: one file, found by the name of the workflow it runs, or by its
/// file name when it never compiled.
pub(super) async fn show_workflow(
    State(state): State<ServeState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = state.registry.snapshot();
    let entry = snapshot
        .file_of(&name)
        .or_else(|| {
            snapshot
                .files()
                .find(|entry| entry.active.is_none() && file_stem(entry) == name)
        })
        .ok_or_else(|| unknown_workflow(&snapshot, &name))?;
    Ok(Json(file_json(entry, &*state.store, state.clock.now())?))
}

/// The active workflow called `name`, or a 404 that suggests a near name.
pub(crate) fn active_workflow(
    snapshot: &Snapshot,
    name: &str,
) -> Result<Arc<ActiveWorkflow>, ApiError> {
    snapshot
        .workflow(name)
        .cloned()
        .ok_or_else(|| unknown_workflow(snapshot, name))
}

fn unknown_workflow(snapshot: &Snapshot, name: &str) -> ApiError {
    let hint = did_you_mean(name, snapshot.workflows().map(|active| active.name()))
        .map(|found| format!("; did you mean `{found}`?"))
        .unwrap_or_default();
    ApiError::not_found(
        "workflow_not_found",
        format!("no workflow named `{name}` is loaded{hint}"),
    )
}

fn file_stem(entry: &FileEntry) -> String {
    entry
        .path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One workflow file: `{"name", "path", "status": "ok" | "error", "diagnostics", "checked_at",
/// "version", "active_version", "activated_at", "description", "connection", "mode",
/// "triggers", "last_run"}`. `version` is the current content's (null when it does not
/// compile); `active_version` is the version that runs, which after an invalid edit is the
/// last valid one (null when the file never compiled). The other workflow fields describe the
/// active version.
pub(crate) fn file_json(
    entry: &FileEntry,
    store: &dyn StateStore,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let active = entry.active.as_deref();
    let name = active.map_or_else(|| file_stem(entry), |active| active.name().to_string());
    let version = active
        .filter(|_| entry.status == FileStatus::Ok)
        .map(ActiveWorkflow::version);
    let diagnostics = serde_json::to_value(&entry.diagnostics)
        .map_err(|error| ApiError::internal("internal_error", error.to_string()))?;
    let workflow = active.map(|active| &*active.workflow);
    let triggers: Vec<Value> = match active {
        Some(active) => {
            // Schedules are anchored at activation and never fire for the past.
            let from = active.activated_at.max(now);
            active
                .workflow
                .triggers
                .iter()
                .map(|trigger| trigger_json(&active.workflow, trigger, from))
                .collect()
        }
        None => Vec::new(),
    };
    let last_run = store
        .list(&OperationFilter {
            workflow: Some(name.clone()),
            limit: 1,
            ..OperationFilter::default()
        })?
        .operations
        .first()
        .map(operation_json);
    Ok(json!({
        "name": name,
        "path": entry.path.display().to_string(),
        "status": entry.status.as_str(),
        "diagnostics": diagnostics,
        "checked_at": instant(entry.checked_at),
        "version": version,
        "active_version": active.map(ActiveWorkflow::version),
        "activated_at": active.map(|active| instant(active.activated_at)),
        "description": workflow.and_then(|workflow| workflow.description.clone()),
        "connection": workflow.map(|workflow| workflow.connection.clone()),
        "mode": workflow.map(|workflow| workflow.mode.as_str()),
        "triggers": triggers,
        "last_run": last_run,
    }))
}

/// A cron trigger with its next fires (UTC and the trigger's wall clock), or a webhook trigger
/// with its path and whether it checks a signature.
fn trigger_json(workflow: &Workflow, trigger: &WorkflowTrigger, from: DateTime<Utc>) -> Value {
    match trigger {
        WorkflowTrigger::Cron(cron) => {
            let fires: Vec<Value> = cron
                .schedule
                .next_fires(from, NEXT_FIRES)
                .into_iter()
                .map(|fire| {
                    json!({
                        "utc": fire.utc.to_rfc3339_opts(SecondsFormat::Secs, true),
                        "local": fire.local.to_rfc3339_opts(SecondsFormat::Secs, false),
                    })
                })
                .collect();
            json!({
                "type": "cron",
                "cron": cron.expression,
                "timezone": cron.timezone.name(),
                "missed": match cron.missed {
                    Missed::RunOnce => "run_once",
                    Missed::Skip => "skip",
                },
                "next_fires": fires,
            })
        }
        WorkflowTrigger::Webhook(webhook) => json!({
            "type": "webhook",
            "path": format!("/hooks/{}", workflow.name),
            "signed": webhook.secret.is_some(),
        }),
    }
}

/// The body of `POST /api/workflows/{name}/runs`; both fields are optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    /// Overrides of the workflow's vars, each of its default's JSON type.
    #[serde(default)]
    vars: Option<Map<String, Value>>,
    /// `async` (a background operation) or `sync` (run inline); default: the workflow's mode.
    #[serde(default)]
    mode: Option<RunMode>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RunMode {
    Async,
    Sync,
}

/// `POST /api/workflows/{name}/runs`: async → 202 with `Location` and the waiting operation;
/// sync → the selection is counted first and refused above `sync.max_records` before anything
/// is written, then the run executes in this request and the finished operation comes back
/// (200).
pub(super) async fn start_run(
    State(state): State<ServeState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let active = active_workflow(&state.registry.snapshot(), &name)?;
    let request: RunRequest = parse_json_body(&headers, &body)?.unwrap_or_default();
    let workflow = &*active.workflow;
    let vars = resolve_json_vars(&workflow.vars, &request.vars.unwrap_or_default())
        .map_err(|error| ApiError::unprocessable("invalid_vars", error.to_string()))?;
    let mode = match request.mode {
        Some(RunMode::Async) => Mode::Async,
        Some(RunMode::Sync) => Mode::Sync,
        None => workflow.mode,
    };
    match mode {
        Mode::Async => {
            let operation = start_async_run(&state, &active, vars)?;
            Ok(created(&operation.id, operation_json(&operation)))
        }
        Mode::Sync => run_sync(&state, &active, vars).await,
    }
}

/// Creates a waiting async operation of `active` with trigger `api` (what `POST
/// /api/workflows/{name}/runs` does for an async run, and the dashboard's "Run now") and wakes
/// the workers.
pub(crate) fn start_async_run(
    state: &ServeState,
    active: &ActiveWorkflow,
    vars: Vec<(String, Value)>,
) -> Result<Operation, ApiError> {
    let launched = launch(
        &*state.store,
        &LaunchRequest {
            workflow: &active.workflow,
            source: &active.source,
            vars,
            trigger: Trigger::Api,
            mode: Mode::Async,
            git_commit: None,
            now: state.clock.now(),
            apply_overlap: false,
        },
    )?;
    state.work.notify_one();
    launched.operation().cloned().ok_or_else(|| {
        ApiError::internal(
            "internal_error",
            "the run was skipped without an overlap policy",
        )
    })
}

/// 202 Accepted with `Location: /api/operations/{id}` and `body`.
pub(super) fn created(operation_id: &str, body: Value) -> Response {
    let location = crate::callback::location_of(operation_id);
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A sync run in this request: the same checks and order as `fetchflow run --sync`.
async fn run_sync(
    state: &ServeState,
    active: &Arc<ActiveWorkflow>,
    vars: Vec<(String, Value)>,
) -> Result<Response, ApiError> {
    let workflow = &*active.workflow;
    // Opening a Dataverse connection blocks (token, metadata): not on the runtime's threads.
    let orgs = state.orgs.clone();
    let connection = workflow.connection.clone();
    let org = tokio::task::spawn_blocking(move || orgs.get(&connection))
        .await
        .map_err(|error| ApiError::internal("internal_error", error.to_string()))?
        .map_err(|error| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "org_unavailable",
                error.to_string(),
            )
        })?;
    let plan = ActionPlan::compile(workflow, org.catalogue()).map_err(|error| {
        ApiError::unprocessable(
            "workflow_not_runnable",
            format!("{}: {error}", workflow.name),
        )
    })?;
    // The store would refuse the claim anyway; checking first keeps the common case from
    // creating an operation only to cancel it.
    if let Some(running) = running_operation(&*state.store, &workflow.name)? {
        return Err(busy(&workflow.name, &running));
    }
    let now = state.clock.now();
    let operation_id = uuid::Uuid::new_v4().to_string();
    let ctx = RunContext::new(workflow, operation_id.clone(), now, "api", vars.clone());
    let fetchxml = render_selection(workflow, &ctx).map_err(|error| {
        ApiError::unprocessable(
            "selection_not_rendered",
            format!("cannot render the selection: {error}"),
        )
    })?;
    let limit = workflow.sync.max_records;
    let count = count_selection(&*org, &fetchxml, limit)
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "selection_failed",
                format!("the selection failed: {} ({})", error.message, error.code),
            )
        })?;
    if count > limit {
        return Err(ApiError::unprocessable(
            "selection_too_large",
            format!(
                "the selection has more than {limit} records (sync.max_records); nothing was \
                 written. Start it as a background operation: {{\"mode\": \"async\"}}"
            ),
        ));
    }

    // As for every operation, its version's source is stored first (see `launch`).
    save_version(&*state.store, workflow, &active.source, now)?;
    let operation = state.store.create_operation(
        &NewOperation {
            id: operation_id,
            workflow: workflow.name.clone(),
            workflow_version: workflow.version.clone(),
            git_commit: None,
            connection: workflow.connection.clone(),
            mode: Mode::Sync,
            trigger: Trigger::Api,
            vars: vars.into_iter().collect(),
            now,
            retry_of: None,
            record_filter: None,
        },
        now,
    )?;
    let worker = format!(
        "api-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    if let Err(error) = state
        .store
        .claim(&operation.id, &worker, state.clock.now(), SYNC_LEASE)
    {
        // Only its creator runs a sync operation: one that cannot start now is canceled so it
        // does not wait forever.
        let _ = state.store.request_cancel(&operation.id, state.clock.now());
        return Err(match error {
            StoreError::WorkflowBusy { active, .. } => busy(&workflow.name, &active),
            error => error.into(),
        });
    }
    let options = ExecuteOptions {
        lease: SYNC_LEASE,
        deadline: Some(tokio::time::Instant::now() + workflow.sync.timeout),
        secrets: state.secrets.clone(),
        on_retry: Some(state.metrics.retry_observer()),
        ..ExecuteOptions::default()
    };
    // Executed in its own task: a client that hangs up must not stop the run half-way, since
    // no worker would ever resume a sync operation.
    let run = {
        let active = active.clone();
        let store = state.store.clone();
        let clock = state.clock.clone();
        let operation_id = operation.id.clone();
        tokio::spawn(async move {
            execute(
                org,
                store,
                clock,
                &active.workflow,
                Arc::new(plan),
                &operation_id,
                &worker,
                options,
            )
            .await
        })
    };
    let outcome = run.await.map_err(|error| {
        ApiError::internal(
            "execution_failed",
            format!("operation {}: the run stopped: {error}", operation.id),
        )
    })?;
    // The run released or finished its operation: a waiting one of the workflow may start.
    state.work.notify_one();
    match outcome {
        Ok(Outcome::Finished(finished)) => {
            // A sync operation is only ever run here, from its start: all its records are ours.
            let counts = finished.counts;
            let metrics = &state.metrics;
            metrics
                .records_succeeded
                .fetch_add(counts.succeeded, Ordering::Relaxed);
            metrics
                .records_failed
                .fetch_add(counts.failed, Ordering::Relaxed);
            metrics
                .records_skipped
                .fetch_add(counts.skipped, Ordering::Relaxed);
            let deliveries = state.store.deliveries(&finished.id)?;
            Ok((
                StatusCode::OK,
                Json(operation_detail_json(&finished, &deliveries)),
            )
                .into_response())
        }
        Ok(Outcome::Suspended { .. }) => {
            let operation = state.store.get(&operation.id)?;
            Ok(created(&operation.id, operation_json(&operation)))
        }
        Err(error) => Err(ApiError::internal(
            "execution_failed",
            format!("operation {}: {error}", operation.id),
        )),
    }
}

/// The operation of `workflow` that is in progress or canceling, if any.
fn running_operation(store: &dyn StateStore, workflow: &str) -> Result<Option<String>, ApiError> {
    for status in [OperationStatus::InProgress, OperationStatus::Canceling] {
        let page = store.list(&OperationFilter {
            status: Some(status),
            workflow: Some(workflow.to_string()),
            limit: 1,
            cursor: None,
        })?;
        if let Some(operation) = page.operations.first() {
            return Ok(Some(operation.id.clone()));
        }
    }
    Ok(None)
}

fn busy(workflow: &str, running: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "workflow_busy",
        format!(
            "operation {running} of workflow {workflow} is running; the sync run was not started"
        ),
    )
}
