//! The operations pages: the filterable, keyset-paged log (`/`, `/operations`), one operation
//! (`/operations/{id}`) with its failures and deliveries, its failures as CSV, its progress as
//! JSON for live updates, and the Cancel and "Retry failed" forms.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::serve::api::operations::{cancel as cancel_operation, parse_status, retry_failed};
use crate::serve::dashboard::session::{CheckedForm, Session};
use crate::serve::dashboard::{
    Dashboard, PageError, Shared, encode_component, given, query_string, see_other, shown_time,
    time_json,
};
use crate::store::{
    DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Operation, OperationFilter, OperationStatus, RecordFailure,
    StateStore, StoreError, Trigger,
};
use crate::view::{delivery_json, failure_json, operation_json};

/// Operations scanned at most for one page filtered by trigger (the store filters by status
/// and workflow itself; a trigger filter reads pages and keeps the matching operations).
const TRIGGER_SCAN_BUDGET: usize = 2_000;

/// The kinds of trigger the filter offers, as `Trigger` names them.
const TRIGGER_KINDS: [&str; 5] = ["cron", "manual", "webhook", "api", "retry"];

fn trigger_kind(trigger: &Trigger) -> &'static str {
    match trigger {
        Trigger::Cron { .. } => "cron",
        Trigger::Manual => "manual",
        Trigger::Webhook => "webhook",
        Trigger::Api => "api",
        Trigger::Retry { .. } => "retry",
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    workflow: Option<String>,
    status: Option<String>,
    trigger: Option<String>,
    cursor: Option<String>,
}

/// One page of the log, newest first, and the cursor of the next.
struct LogPage {
    operations: Vec<Operation>,
    next_cursor: Option<String>,
    /// A trigger filter stopped at its scan budget before the page was full.
    partial: bool,
}

/// Reads one page of at most [`DEFAULT_PAGE_SIZE`] operations. With a trigger filter, store
/// pages are read and filtered until the page is full, the log ends, or
/// [`TRIGGER_SCAN_BUDGET`] operations were read; each store page asks only for as many
/// operations as are still missing, so the store's cursor always continues right after the
/// last operation read.
fn read_log(
    store: &dyn StateStore,
    status: Option<OperationStatus>,
    workflow: Option<String>,
    trigger: Option<&str>,
    cursor: Option<String>,
) -> Result<LogPage, StoreError> {
    let mut filter = OperationFilter {
        status,
        workflow,
        limit: DEFAULT_PAGE_SIZE,
        cursor,
    };
    let Some(trigger) = trigger else {
        let page = store.list(&filter)?;
        return Ok(LogPage {
            operations: page.operations,
            next_cursor: page.next_cursor,
            partial: false,
        });
    };
    let wanted = DEFAULT_PAGE_SIZE as usize;
    let mut operations = Vec::new();
    let mut scanned = 0;
    loop {
        filter.limit = u32::try_from(wanted - operations.len())
            .unwrap_or(MAX_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE);
        let page = store.list(&filter)?;
        scanned += page.operations.len();
        operations.extend(
            page.operations
                .into_iter()
                .filter(|operation| trigger_kind(&operation.trigger) == trigger),
        );
        filter.cursor = page.next_cursor;
        if filter.cursor.is_none() || operations.len() >= wanted {
            return Ok(LogPage {
                operations,
                next_cursor: filter.cursor,
                partial: false,
            });
        }
        if scanned >= TRIGGER_SCAN_BUDGET {
            return Ok(LogPage {
                operations,
                next_cursor: filter.cursor,
                partial: true,
            });
        }
    }
}

/// `GET /` and `GET /operations?workflow=&status=&trigger=&cursor=`.
pub(super) async fn list(
    State(dashboard): State<Shared>,
    Extension(session): Extension<Session>,
    Query(query): Query<ListQuery>,
) -> Response {
    let result = list_page(&dashboard, &session, query);
    dashboard.respond(Some(&session), result)
}

fn list_page(
    dashboard: &Dashboard,
    session: &Session,
    query: ListQuery,
) -> Result<Response, PageError> {
    let workflow = given(query.workflow);
    let status_text = given(query.status);
    let trigger = given(query.trigger);
    let cursor = given(query.cursor);
    let status = status_text
        .as_deref()
        .map(parse_status)
        .transpose()
        .map_err(PageError::from)?;
    if let Some(trigger) = &trigger
        && !TRIGGER_KINDS.contains(&trigger.as_str())
    {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown trigger `{trigger}`; expected one of {}",
                TRIGGER_KINDS.join(", ")
            ),
        ));
    }
    let page = read_log(
        &*dashboard.serve.store,
        status,
        workflow.clone(),
        trigger.as_deref(),
        cursor.clone(),
    )?;
    let now = dashboard.serve.clock.now();
    let rows: Vec<Value> = page
        .operations
        .iter()
        .map(|operation| operation_row(operation, now))
        .collect();
    let status_value = status.map(OperationStatus::as_str);
    let filters = [
        ("workflow", workflow.as_deref()),
        ("status", status_value),
        ("trigger", trigger.as_deref()),
    ];
    let next_url = page.next_cursor.as_deref().map(|next| {
        let mut pairs = filters.to_vec();
        pairs.push(("cursor", Some(next)));
        format!("/operations{}", query_string(&pairs))
    });
    let first_url = cursor
        .is_some()
        .then(|| format!("/operations{}", query_string(&filters)));
    let snapshot = dashboard.serve.registry.snapshot();
    let statuses: Vec<Value> = OperationStatus::ALL
        .iter()
        .map(|candidate| {
            json!({"value": candidate.as_str(), "name": candidate.display_name(),
                   "selected": Some(*candidate) == status})
        })
        .collect();
    let triggers: Vec<Value> = TRIGGER_KINDS
        .iter()
        .map(|kind| json!({"value": kind, "selected": trigger.as_deref() == Some(*kind)}))
        .collect();
    let context = json!({
        "title": "Operations",
        "operations": rows,
        "next_url": next_url,
        "first_url": first_url,
        "partial": page.partial,
        "scan_budget": TRIGGER_SCAN_BUDGET,
        "filter": {"workflow": workflow, "status": status_value, "trigger": trigger},
        "filtered": filters.iter().any(|(_, value)| value.is_some()),
        "statuses": statuses,
        "triggers": triggers,
        "workflow_names": snapshot.workflows().map(|active| active.name()).collect::<Vec<_>>(),
    });
    Ok(dashboard.page("operations.html", Some(session), "operations", context))
}

/// An operation as a row of the log: its JSON view plus what the page shows.
fn operation_row(operation: &Operation, now: DateTime<Utc>) -> Value {
    let mut row = operation_json(operation);
    if let Value::Object(map) = &mut row {
        map.insert("url".into(), json!(operation_url(&operation.id)));
        map.insert("status_name".into(), json!(operation.status.display_name()));
        map.insert("live".into(), json!(!operation.status.is_final()));
        map.insert("created".into(), time_json(Some(operation.created_at)));
        map.insert("started".into(), time_json(operation.started_at));
        map.insert("finished".into(), time_json(operation.finished_at));
        map.insert("progress".into(), progress_json(operation, now));
        map.insert(
            "workflow_url".into(),
            json!(format!(
                "/operations{}",
                query_string(&[("workflow", Some(&operation.workflow))])
            )),
        );
    }
    row
}

fn operation_url(id: &str) -> String {
    format!("/operations/{}", encode_component(id))
}

/// Progress of an operation: `{"processed", "selected", "value", "max", "text", "percent",
/// "rate", "rate_text", "eta_seconds", "eta_text"}`, where processed = succeeded + failed +
/// skipped (as `ops list` counts it) and the rate is the average since the operation started.
fn progress_json(operation: &Operation, now: DateTime<Utc>) -> Value {
    let counts = operation.progress_counts();
    let processed = counts.succeeded + counts.failed + counts.skipped;
    let final_ = operation.status.is_final();
    let (value, max, text, percent) = match counts.selected {
        // A `<progress>` needs a positive max; an empty selection that finished is complete.
        Some(0) => (
            u64::from(final_),
            1,
            "0 of 0 records".to_string(),
            if final_ { 100 } else { 0 },
        ),
        Some(selected) => (
            processed.min(selected),
            selected,
            format!("{processed} of {selected} records"),
            processed.min(selected).saturating_mul(100) / selected,
        ),
        None => (
            processed,
            0,
            format!("{processed} records processed, selection not counted yet"),
            0,
        ),
    };
    let elapsed = operation.started_at.map(|started| {
        let end = operation.finished_at.unwrap_or(now);
        (end - started).num_milliseconds().max(0) as f64 / 1000.0
    });
    let rate = elapsed
        .filter(|seconds| *seconds > 0.0 && processed > 0)
        .map(|seconds| processed as f64 / seconds);
    let eta_seconds = match (rate, counts.selected) {
        (Some(rate), Some(selected)) if !final_ && rate > 0.0 => {
            Some((selected.saturating_sub(processed) as f64 / rate).ceil() as u64)
        }
        _ => None,
    };
    json!({
        "processed": processed,
        "selected": counts.selected,
        "succeeded": counts.succeeded,
        "failed": counts.failed,
        "skipped": counts.skipped,
        "determinate": counts.selected.is_some(),
        "value": value,
        "max": max,
        "text": text,
        "percent": percent,
        "rate": rate,
        "rate_text": rate.map_or_else(|| "–".to_string(), |rate| format!("{rate:.1} records/s")),
        "eta_seconds": eta_seconds,
        "eta_text": eta_seconds.map_or_else(|| "–".to_string(), duration_text),
    })
}

/// `1h 02m 03s`, `2m 05s`, `7s`.
fn duration_text(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h {minutes:02}m {seconds:02}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

/// What the live script needs about an operation: its status, progress and which buttons
/// apply.
fn live_json(operation: &Operation, now: DateTime<Utc>) -> Value {
    let mut live = progress_json(operation, now);
    if let Value::Object(map) = &mut live {
        let status = operation.status;
        map.insert("id".into(), json!(operation.id));
        map.insert("status".into(), json!(status.as_str()));
        map.insert("status_name".into(), json!(status.display_name()));
        map.insert("final".into(), json!(status.is_final()));
        map.insert(
            "can_cancel".into(),
            json!(matches!(
                status,
                OperationStatus::Waiting | OperationStatus::InProgress
            )),
        );
        map.insert(
            "can_retry".into(),
            json!(status.is_final() && operation.counts.failed > 0),
        );
        map.insert("cancel_requested".into(), json!(operation.cancel_requested));
        map.insert("started".into(), time_json(operation.started_at));
        map.insert("finished".into(), time_json(operation.finished_at));
    }
    live
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ShowQuery {
    /// The failures page's cursor.
    failures: Option<String>,
}

/// `GET /operations/{id}?failures=<cursor>`.
pub(super) async fn show(
    State(dashboard): State<Shared>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Response {
    let result = show_page(&dashboard, &session, &id, given(query.failures));
    dashboard.respond(Some(&session), result)
}

fn show_page(
    dashboard: &Dashboard,
    session: &Session,
    id: &str,
    failures_cursor: Option<String>,
) -> Result<Response, PageError> {
    let store = &*dashboard.serve.store;
    let operation = store.get(id)?;
    let deliveries = store.deliveries(&operation.id)?;
    let failures = store.failures(&operation.id, DEFAULT_PAGE_SIZE, failures_cursor.as_deref())?;
    let now = dashboard.serve.clock.now();
    let url = operation_url(&operation.id);
    let mut document = operation_json(&operation);
    if let Value::Object(map) = &mut document {
        map.insert("live".into(), live_json(&operation, now));
        map.insert("url".into(), json!(url));
        map.insert("short_id".into(), json!(short(&operation.id, 8)));
        map.insert(
            "short_version".into(),
            json!(short(&operation.workflow_version, 12)),
        );
        map.insert(
            "vars".into(),
            json!(
                operation
                    .vars
                    .iter()
                    .map(|(name, value)| json!({"name": name, "value": value.to_string()}))
                    .collect::<Vec<_>>()
            ),
        );
        map.insert("created".into(), time_json(Some(operation.created_at)));
        map.insert("started".into(), time_json(operation.started_at));
        map.insert("finished".into(), time_json(operation.finished_at));
        map.insert("updated".into(), time_json(Some(operation.updated_at)));
        map.insert("now_shown".into(), time_json(Some(operation.now)));
        map.insert(
            "checkpoint".into(),
            operation
                .checkpoint
                .as_ref()
                .map_or(Value::Null, |checkpoint| {
                    json!({
                        "page": checkpoint.page,
                        "records_done": checkpoint.records_done,
                        "batches_done": checkpoint.batches_done,
                        "has_cookie": checkpoint.paging_cookie.is_some(),
                    })
                }),
        );
        map.insert(
            "lease".into(),
            operation.lease.as_ref().map_or(Value::Null, |lease| {
                json!({"worker": lease.worker, "expires": time_json(Some(lease.expires_at))})
            }),
        );
        map.insert(
            "record_filter_len".into(),
            json!(operation.record_filter.as_ref().map(Vec::len)),
        );
        map.insert(
            "retry_of_url".into(),
            json!(operation.retry_of.as_deref().map(operation_url)),
        );
        map.insert(
            "workflow_url".into(),
            json!(format!(
                "/operations{}",
                query_string(&[("workflow", Some(&operation.workflow))])
            )),
        );
    }
    let failure_rows: Vec<Value> = failures.failures.iter().map(failure_row).collect();
    let next_failures_url = failures
        .next_cursor
        .as_deref()
        .map(|cursor| format!("{url}{}", query_string(&[("failures", Some(cursor))])));
    let delivery_views: Vec<Value> = deliveries
        .iter()
        .map(|log| {
            let mut view = delivery_json(log);
            if let Value::Object(map) = &mut view {
                map.insert("created".into(), time_json(Some(log.delivery.created_at)));
                map.insert("delivered".into(), time_json(log.delivery.delivered_at));
                map.insert(
                    "next_attempt".into(),
                    time_json(log.delivery.next_attempt_at),
                );
                map.insert(
                    "attempt_times".into(),
                    json!(
                        log.attempts
                            .iter()
                            .map(|attempt| shown_time(attempt.at))
                            .collect::<Vec<_>>()
                    ),
                );
            }
            view
        })
        .collect();
    let context = json!({
        "title": format!("Operation {}", short(&operation.id, 8)),
        "operation": document,
        "failures": failure_rows,
        "failures_first_url": failures_cursor.is_some().then(|| format!("{url}#failures")),
        "next_failures_url": next_failures_url,
        "csv_url": format!("{url}/failures.csv"),
        "deliveries": delivery_views,
    });
    Ok(dashboard.page("operation.html", Some(session), "operations", context))
}

fn failure_row(failure: &RecordFailure) -> Value {
    let mut row = failure_json(failure);
    if let Value::Object(map) = &mut row {
        map.insert("at_shown".into(), json!(shown_time(failure.at)));
    }
    row
}

/// The first `n` characters of an id or hash (ASCII).
fn short(text: &str, n: usize) -> &str {
    text.get(..n).unwrap_or(text)
}

/// `GET /operations/{id}/progress`: [`live_json`] of the operation, for the live script.
pub(super) async fn progress(State(dashboard): State<Shared>, Path(id): Path<String>) -> Response {
    match dashboard.serve.store.get(&id) {
        Ok(operation) => {
            axum::Json(live_json(&operation, dashboard.serve.clock.now())).into_response()
        }
        Err(error) => crate::serve::api::ApiError::from(error).into_response(),
    }
}

/// `GET /operations/{id}/failures.csv`: every failure of the operation, in the columns and
/// format of `fetchflow ops failures --format csv`.
pub(super) async fn csv(
    State(dashboard): State<Shared>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let result = (|| -> Result<Response, PageError> {
        let store = &*dashboard.serve.store;
        let operation = store.get(&id)?;
        let body = failures_csv(store, &operation.id)?;
        let disposition = format!(
            "attachment; filename=\"failures-{}.csv\"",
            encode_component(&operation.id)
        );
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            body,
        )
            .into_response())
    })();
    dashboard.respond(Some(&session), result)
}

/// Every failure of operation `id` as RFC 4180 CSV: the header row
/// `record_id,action_index,action,code,message,attempts` and one row per failure, CRLF line
/// ends, fields with `,` `"` CR or LF quoted and their quotes doubled — what `fetchflow ops
/// failures --format csv` writes. Read page by page.
pub(crate) fn failures_csv(store: &dyn StateStore, id: &str) -> Result<String, StoreError> {
    let mut out = String::from(crate::view::FAILURES_CSV_HEADER);
    let mut cursor = None;
    loop {
        let page = store.failures(id, MAX_PAGE_SIZE, cursor.as_deref())?;
        for failure in &page.failures {
            crate::view::failure_csv_row(&mut out, failure);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// `POST /operations/{id}/cancel`: the API's cancel, then back to the operation (303).
pub(super) async fn cancel(
    State(dashboard): State<Shared>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Response {
    let result = cancel_operation(&dashboard.serve, &id)
        .map(|operation| see_other(&operation_url(&operation.id)))
        .map_err(PageError::from);
    dashboard.respond(Some(&form.session), result)
}

/// `POST /operations/{id}/retry`: a new operation over the failed records (as `ops retry`),
/// then to the new operation (303).
pub(super) async fn retry(
    State(dashboard): State<Shared>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Response {
    let result = retry_failed(&dashboard.serve, &id)
        .map(|operation| see_other(&operation_url(&operation.id)))
        .map_err(PageError::from);
    dashboard.respond(Some(&form.session), result)
}
