//! The end of an operation and its callback (DESIGN 7.4, issue 4 item 8): when an operation
//! ends and its workflow's `callback.on` includes that ending, the callback is rendered once
//! (with a fresh delivery id) and stored in the outbox — in the same transaction as the
//! operation's end for a worker ([`finish_operation`]), or right after the cancel for an
//! operation canceled while waiting ([`enqueue_callback`]).
//!
//! Rendering can fail (a secret the environment does not hold, a template error); the
//! operation's result never depends on it. The problem is recorded as an abandoned delivery
//! whose last error says why, so `ops show` reports it; the error messages of
//! [`CallbackError`] never carry a rendered value, so no secret reaches the store. Secrets come
//! from the caller's [`SecretSource`]: the engine never reads the environment.

use chrono::{DateTime, Utc};

use crate::callback::{
    self, CallbackError, FinalStatus, OperationOutcome, location_of, render_delivery, should_send,
};
use crate::compile::Callback;
use crate::engine::deliver::new_delivery;
use crate::store::{
    AttemptOutcome, NewDelivery, Operation, OperationError, OperationStatus, SecretParts,
    StateStore, StoreError,
};
use crate::template::SecretSource;

/// A [`SecretSource`] that holds no secret: callbacks that read none still render.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn secret(&self, _name: &str) -> Option<String> {
        None
    }
}

/// What became of an ended operation's callback.
#[derive(Debug)]
pub enum CallbackRendering {
    /// The workflow has no callback, or its `on` leaves this ending out.
    NotWanted,
    /// Rendered: the outbox row to store with the operation's end.
    Rendered(Box<NewDelivery>),
    /// Rendering failed; the operation ends without a delivery.
    Failed(CallbackError),
}

/// The final status of a store status, `None` while the operation has not ended.
pub fn final_status(status: OperationStatus) -> Option<FinalStatus> {
    match status {
        OperationStatus::Succeeded => Some(FinalStatus::Succeeded),
        OperationStatus::Failed => Some(FinalStatus::Failed),
        OperationStatus::Canceled => Some(FinalStatus::Canceled),
        _ => None,
    }
}

/// What a callback reports about `operation` ending with `status` (and `error`) at `now`.
pub fn outcome_of(
    operation: &Operation,
    status: FinalStatus,
    error: Option<&OperationError>,
    now: DateTime<Utc>,
) -> OperationOutcome {
    let counts = operation.counts;
    let done = counts.succeeded + counts.failed + counts.skipped;
    OperationOutcome {
        id: operation.id.clone(),
        workflow: operation.workflow.clone(),
        status,
        selected: counts.selected.unwrap_or(done).max(done),
        succeeded: counts.succeeded,
        failed: counts.failed,
        skipped: counts.skipped,
        started_at: operation.started_at.unwrap_or(operation.now),
        finished_at: now,
        // The store's codes are names (`MaxFailuresExceeded`); Dataverse's are numbers. A name
        // reports code 0, as Dataverse does for errors that are not its own, and leads the
        // message so the receiver still sees it.
        error: error.map(|error| match error.code.parse::<i64>() {
            Ok(code) => callback::OperationError {
                code,
                message: error.message.clone(),
            },
            Err(_) => callback::OperationError {
                code: 0,
                message: format!("{}: {}", error.code, error.message),
            },
        }),
        location: location_of(&operation.id),
        mode: operation.mode,
        trigger: operation.trigger.to_string(),
    }
}

/// Renders the workflow's `callback` for `operation` ending with `status` at `now`, once, with
/// a new delivery id (UUIDv4).
pub fn render_callback(
    callback: Option<&Callback>,
    operation: &Operation,
    status: OperationStatus,
    error: Option<&OperationError>,
    secrets: &dyn SecretSource,
    now: DateTime<Utc>,
) -> CallbackRendering {
    let (Some(callback), Some(status)) = (callback, final_status(status)) else {
        return CallbackRendering::NotWanted;
    };
    if !should_send(callback, status) {
        return CallbackRendering::NotWanted;
    }
    let outcome = outcome_of(operation, status, error, now);
    let run = callback::RunContext {
        vars: &operation.vars,
        workflow_version: &operation.workflow_version,
        now: operation.now,
    };
    let delivery_id = uuid::Uuid::new_v4().to_string();
    match render_delivery(callback, &outcome, &run, secrets, &delivery_id) {
        Ok(rendered) => CallbackRendering::Rendered(Box::new(new_delivery(&rendered))),
        Err(error) => CallbackRendering::Failed(error),
    }
}

/// Ends the operation held by `worker` with `status`, storing its workflow's rendered
/// `callback` (if it wants this ending) in the same transaction. A callback that cannot be
/// rendered does not change the operation's end: it is recorded with
/// [`record_render_failure`] after the operation has ended.
#[allow(clippy::too_many_arguments)]
pub fn finish_operation(
    store: &dyn StateStore,
    callback: Option<&Callback>,
    secrets: &dyn SecretSource,
    id: &str,
    worker: &str,
    status: OperationStatus,
    error: Option<&OperationError>,
    now: DateTime<Utc>,
) -> Result<Operation, StoreError> {
    let rendering = if callback.is_some() {
        let operation = store.get(id)?;
        render_callback(callback, &operation, status, error, secrets, now)
    } else {
        CallbackRendering::NotWanted
    };
    let delivery = match &rendering {
        CallbackRendering::Rendered(delivery) => Some(&**delivery),
        CallbackRendering::NotWanted | CallbackRendering::Failed(_) => None,
    };
    let finished = store.finish(id, worker, status, error, delivery, now)?;
    if let CallbackRendering::Failed(problem) = &rendering {
        // Best effort: the operation has ended either way, and its result stands.
        let _ = record_render_failure(store, callback, id, problem, now);
    }
    Ok(finished)
}

/// Stores the `callback` of an operation that ended without a worker (canceled while waiting):
/// rendered once and due at once, or recorded as not rendered. Returns what happened.
pub fn enqueue_callback(
    store: &dyn StateStore,
    callback: Option<&Callback>,
    operation: &Operation,
    secrets: &dyn SecretSource,
    now: DateTime<Utc>,
) -> Result<CallbackRendering, StoreError> {
    let rendering = render_callback(
        callback,
        operation,
        operation.status,
        operation.error.as_ref(),
        secrets,
        now,
    );
    match &rendering {
        CallbackRendering::Rendered(delivery) => {
            store.enqueue_delivery(&operation.id, delivery, now)?;
        }
        CallbackRendering::Failed(problem) => {
            record_render_failure(store, callback, &operation.id, problem, now)?;
        }
        CallbackRendering::NotWanted => {}
    }
    Ok(rendering)
}

/// The prefix of the last error of a delivery whose callback could not be rendered.
pub const NOT_RENDERED: &str = "the callback could not be rendered";

/// Records a callback that could not be rendered as an abandoned delivery of the (ended)
/// operation, with no URL and no body, whose last error says why: what `ops show` lists.
pub fn record_render_failure(
    store: &dyn StateStore,
    callback: Option<&Callback>,
    operation_id: &str,
    problem: &CallbackError,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let method = callback.map_or_else(|| "POST".to_string(), |callback| callback.method.clone());
    let placeholder = NewDelivery {
        id: uuid::Uuid::new_v4().to_string(),
        url: String::new(),
        method,
        headers: Vec::new(),
        body: Vec::new(),
        signature: None,
        secret_parts: SecretParts::default(),
    };
    let delivery = store.enqueue_delivery(operation_id, &placeholder, now)?;
    let outcome = AttemptOutcome::Error(format!("{NOT_RENDERED}: {problem}"));
    store.record_attempt(&delivery.id, &outcome, None, now)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::compile::{CompileContext, Mode, compile_source};
    use crate::metadata::Catalogue;
    use crate::source::SourceFile;
    use crate::store::{Counts, DeliveryStatus, NewOperation, SqliteStateStore, Trigger};

    const WORKER: &str = "worker-1";
    const SECRET: &str = "unit-test-callback-secret";

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap()
    }

    fn callback(on: &str) -> Callback {
        let text = format!(
            r#"name: west
select:
  fetchxml: <fetch><entity name="account"><attribute name="name"/></entity></fetch>
actions:
  - update:
      set:
        description: "x"
callback:
  url: "https://hooks.example.com/{{{{ operation.id }}}}"
  secret: "{{{{ secret('CB_SECRET') }}}}"
  on: {on}
"#
        );
        let catalogue = Catalogue::builtin();
        let context = CompileContext {
            catalogue: &catalogue,
            connections: None,
        };
        let outcome = compile_source(SourceFile::new("west.yaml", &text), &context);
        let workflow = outcome
            .workflow
            .unwrap_or_else(|| panic!("{:#?}", outcome.diagnostics));
        workflow.callback.expect("a callback")
    }

    /// An in-progress operation held by [`WORKER`], 2 records done.
    fn running(store: &dyn StateStore) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let operation = NewOperation {
            id: id.clone(),
            workflow: "west".into(),
            workflow_version: "v1".into(),
            git_commit: None,
            connection: "default".into(),
            mode: Mode::Async,
            trigger: Trigger::Manual,
            vars: serde_json::Map::new(),
            now: start(),
            retry_of: None,
            record_filter: None,
        };
        store.create_operation(&operation, start()).unwrap();
        store
            .claim(&id, WORKER, start(), Duration::from_secs(60))
            .unwrap();
        let counts = Counts {
            selected: Some(2),
            succeeded: 2,
            failed: 0,
            skipped: 0,
        };
        store
            .save_checkpoint(&id, WORKER, &Default::default(), counts, &[], start())
            .unwrap();
        id
    }

    fn secrets(name: &str) -> Option<String> {
        (name == "CB_SECRET").then(|| SECRET.to_string())
    }

    #[test]
    fn the_rendered_callback_is_stored_with_the_end() {
        let store = SqliteStateStore::in_memory().unwrap();
        let id = running(&store);
        let callback = callback("[succeeded]");
        let finished = finish_operation(
            &store,
            Some(&callback),
            &secrets,
            &id,
            WORKER,
            OperationStatus::Succeeded,
            None,
            start(),
        )
        .unwrap();
        assert_eq!(finished.status, OperationStatus::Succeeded);
        let logs = store.deliveries(&id).unwrap();
        assert_eq!(logs.len(), 1);
        let delivery = &logs[0].delivery;
        assert_eq!(delivery.status, DeliveryStatus::Pending);
        assert_eq!(delivery.url, format!("https://hooks.example.com/{id}"));
        let signature = delivery.signature.as_deref().unwrap();
        assert!(crate::callback::verify_signature(
            SECRET.as_bytes(),
            &delivery.body,
            signature
        ));
    }

    #[test]
    fn an_unrendered_callback_leaves_the_end_alone_and_is_recorded_without_secrets() {
        let store = SqliteStateStore::in_memory().unwrap();
        let id = running(&store);
        let callback = callback("[succeeded, failed]");
        let error = OperationError {
            code: "MaxFailuresExceeded".into(),
            message: "too many".into(),
        };
        let finished = finish_operation(
            &store,
            Some(&callback),
            &NoSecrets,
            &id,
            WORKER,
            OperationStatus::Failed,
            Some(&error),
            start(),
        )
        .unwrap();
        assert_eq!(finished.status, OperationStatus::Failed);
        assert_eq!(finished.error.as_ref(), Some(&error));
        let logs = store.deliveries(&id).unwrap();
        assert_eq!(logs.len(), 1);
        let delivery = &logs[0].delivery;
        assert_eq!(delivery.status, DeliveryStatus::Abandoned);
        let last_error = delivery.last_error.as_deref().unwrap();
        assert!(last_error.starts_with(NOT_RENDERED), "{last_error}");
        assert!(last_error.contains("CB_SECRET"), "{last_error}");
        assert!(store.due_deliveries(start(), 10).unwrap().is_empty());
    }

    #[test]
    fn an_ending_left_out_of_on_stores_nothing() {
        let store = SqliteStateStore::in_memory().unwrap();
        let id = running(&store);
        let callback = callback("[failed]");
        finish_operation(
            &store,
            Some(&callback),
            &secrets,
            &id,
            WORKER,
            OperationStatus::Succeeded,
            None,
            start(),
        )
        .unwrap();
        assert!(store.deliveries(&id).unwrap().is_empty());
    }

    #[test]
    fn a_named_error_reports_code_zero_and_leads_the_message() {
        let store = SqliteStateStore::in_memory().unwrap();
        let id = running(&store);
        let operation = store.get(&id).unwrap();
        let named = OperationError {
            code: "SyncTimedOut".into(),
            message: "stopped".into(),
        };
        let outcome = outcome_of(&operation, FinalStatus::Failed, Some(&named), start());
        let error = outcome.error.unwrap();
        assert_eq!(
            (error.code, error.message.as_str()),
            (0, "SyncTimedOut: stopped")
        );
        let numeric = OperationError {
            code: "-2147187707".into(),
            message: "denied".into(),
        };
        let outcome = outcome_of(&operation, FinalStatus::Failed, Some(&numeric), start());
        assert_eq!(outcome.error.unwrap().code, -2_147_187_707);
        assert_eq!((outcome.selected, outcome.succeeded), (2, 2));
    }
}
