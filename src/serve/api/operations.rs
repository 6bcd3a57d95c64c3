//! `GET /api/operations` (filters and keyset pages), `GET /api/operations/{id}` (with its
//! callback deliveries and their attempts), `GET /api/operations/{id}/failures` (pages) and
//! `POST /api/operations/{id}/cancel` (the semantics of `fetchflow ops cancel`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::engine::launch::{RetryRefused, launch_retry};
use crate::engine::{CallbackRendering, enqueue_callback};
use crate::serve::ServeState;
use crate::serve::api::error::{ApiError, ApiPath, ApiQuery};
use crate::store::{MAX_PAGE_SIZE, Operation, OperationFilter, OperationStatus};
use crate::view::{failure_page_json, operation_detail_json, operation_json, operation_page_json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    status: Option<String>,
    workflow: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    pub(super) limit: Option<String>,
    pub(super) cursor: Option<String>,
}

/// `limit` as given: 1..=1000; absent = the store's default page size.
pub(super) fn page_limit(limit: Option<&str>) -> Result<u32, ApiError> {
    let Some(text) = limit else {
        return Ok(0);
    };
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|limit| (1..=MAX_PAGE_SIZE).contains(limit))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_limit",
                format!("invalid limit `{text}`: give a number from 1 to {MAX_PAGE_SIZE}"),
            )
        })
}

/// A status by its store name or its Dynamics display name (see
/// [`OperationStatus::parse_named`]).
pub(crate) fn parse_status(text: &str) -> Result<OperationStatus, ApiError> {
    OperationStatus::parse_named(text)
        .map_err(|message| ApiError::bad_request("invalid_status", message))
}

/// `GET /api/operations?status=&workflow=&limit=&cursor=`: `{"operations", "next_cursor"}`,
/// newest first.
pub(super) async fn list_operations(
    State(state): State<ServeState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = OperationFilter {
        status: query.status.as_deref().map(parse_status).transpose()?,
        workflow: query.workflow,
        limit: page_limit(query.limit.as_deref())?,
        cursor: query.cursor,
    };
    let page = state.store.list(&filter)?;
    Ok(Json(operation_page_json(&page)))
}

/// `GET /api/operations/{id}`: the operation with its vars, checkpoint, lease and deliveries.
pub(super) async fn show_operation(
    State(state): State<ServeState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let operation = state.store.get(&id)?;
    let deliveries = state.store.deliveries(&operation.id)?;
    Ok(Json(operation_detail_json(&operation, &deliveries)))
}

/// `GET /api/operations/{id}/failures?limit=&cursor=`: `{"operation_id", "failures",
/// "next_cursor"}`, in the order they were saved.
pub(super) async fn list_failures(
    State(state): State<ServeState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(query.limit.as_deref())?;
    let operation = state.store.get(&id)?;
    let page = state
        .store
        .failures(&operation.id, limit, query.cursor.as_deref())?;
    Ok(Json(failure_page_json(&operation.id, &page)))
}

/// `POST /api/operations/{id}/cancel`: a waiting operation is canceled at once (and its
/// callback stored, as no worker will end it); a running one becomes `canceling` and ends
/// after its current batch; a finished one is a 409. Answers with the operation after the
/// request.
pub(super) async fn cancel_operation(
    State(state): State<ServeState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let after = cancel(&state, &id)?;
    Ok(Json(operation_json(&after)))
}

/// Cancels operation `id` (the semantics of `POST /api/operations/{id}/cancel`, shared with
/// the dashboard's Cancel button) and returns the operation after the request.
pub(crate) fn cancel(state: &ServeState, id: &str) -> Result<Operation, ApiError> {
    let now = state.clock.now();
    let after = state.store.request_cancel(id, now).map_err(|error| {
        let mut error = ApiError::from(error);
        if error.code == "already_finished" {
            error.message = format!("{}; there is nothing to cancel", error.message);
        }
        error
    })?;
    if after.status == OperationStatus::Canceled {
        store_cancel_callback(state, &after, now);
    }
    state.work.notify_one();
    Ok(after)
}

/// Starts a new operation over the failed records of the finished operation `id`, as
/// `fetchflow ops retry` does: a `waiting` async operation with a new id, trigger
/// `retry:<id>`, `retry_of` the original and `record_filter` its failed record ids (in the
/// order they first failed), carrying the original's workflow, version, git commit,
/// connection and vars, with a new `now`. Refused (409) while the original has not finished
/// or when it has no failed records.
pub(crate) fn retry_failed(state: &ServeState, id: &str) -> Result<Operation, ApiError> {
    let original = state.store.get(id)?;
    let created =
        launch_retry(&*state.store, &original, state.clock.now()).map_err(
            |refused| match refused {
                RetryRefused::NotFinished { .. } => {
                    ApiError::new(StatusCode::CONFLICT, "not_finished", refused.to_string())
                }
                RetryRefused::NothingToRetry { .. } => ApiError::new(
                    StatusCode::CONFLICT,
                    "nothing_to_retry",
                    refused.to_string(),
                ),
                RetryRefused::Store(error) => ApiError::from(error),
            },
        )?;
    state.work.notify_one();
    Ok(created)
}

/// Stores the callback of an operation canceled before it started, rendered with the workflow
/// version that is active now (as `ops cancel` renders the file as it is now). Problems are
/// logged and never undo the cancel.
fn store_cancel_callback(
    state: &ServeState,
    operation: &Operation,
    now: chrono::DateTime<chrono::Utc>,
) {
    let snapshot = state.registry.snapshot();
    let Some(active) = snapshot.workflow(&operation.workflow) else {
        tracing::warn!(
            operation = %operation.id,
            workflow = %operation.workflow,
            "The callback of a canceled operation was not stored: its workflow is not loaded."
        );
        return;
    };
    let callback = active.workflow.callback.as_ref();
    match enqueue_callback(&*state.store, callback, operation, &*state.secrets, now) {
        Ok(CallbackRendering::Failed(error)) => tracing::warn!(
            operation = %operation.id,
            %error,
            "The callback of a canceled operation could not be rendered (recorded)."
        ),
        Ok(CallbackRendering::Rendered(_) | CallbackRendering::NotWanted) => {}
        Err(error) => tracing::warn!(
            operation = %operation.id,
            %error,
            "The callback of a canceled operation was not stored."
        ),
    }
}
