//! Tests of the state store: status codes, paging, claims and leases, checkpoints, cancel,
//! finish with the outbox, deliveries, fire claims across processes and migrations.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rusqlite::Connection;

use crate::store::{
    AttemptOutcome, Checkpoint, Counts, DeliveryStatus, Mode, NewDelivery, NewOperation,
    OperationError, OperationFilter, OperationStatus, RecordFailure, SecretParts, SqliteStateStore,
    StateStore, StoreError, Trigger, WorkflowVersion,
};

const LEASE: Duration = Duration::from_secs(30);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(seconds)
}

fn temp_file(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fetchflow-store-{label}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("nested").join("state.db")
}

fn new_operation(id: &str) -> NewOperation {
    let mut vars = serde_json::Map::new();
    vars.insert("region".into(), serde_json::json!("north"));
    NewOperation {
        id: id.into(),
        // Its own workflow, so that operations do not wait for each other (see
        // `one_workflow_runs_one_operation_at_a_time`).
        workflow: format!("wf-{id}"),
        workflow_version: "sha256:abc".into(),
        git_commit: Some("0123abcd".into()),
        connection: "local".into(),
        mode: Mode::Async,
        trigger: Trigger::Manual,
        vars,
        now: t0(),
        retry_of: None,
        record_filter: None,
    }
}

fn create(store: &dyn StateStore, id: &str, seconds: i64) {
    store
        .create_operation(&new_operation(id), at(seconds))
        .unwrap();
}

fn create_in(store: &dyn StateStore, workflow: &str, id: &str, seconds: i64) {
    let operation = NewOperation {
        workflow: workflow.into(),
        ..new_operation(id)
    };
    store.create_operation(&operation, at(seconds)).unwrap();
}

fn failure(record_id: &str, seconds: i64) -> RecordFailure {
    RecordFailure {
        operation_id: String::new(),
        record_id: record_id.into(),
        action_index: 0,
        action: "update".into(),
        code: "0x80040237".into(),
        message: "duplicate key".into(),
        attempts: 1,
        at: at(seconds),
    }
}

fn delivery(id: &str) -> NewDelivery {
    NewDelivery {
        id: id.into(),
        url: "http://127.0.0.1:9/hook".into(),
        method: "POST".into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: br#"{"backgroundOperationId":"op"}"#.to_vec(),
        signature: Some("sha256=00".into()),
        secret_parts: SecretParts::default(),
    }
}

#[test]
fn statuses_have_the_dataverse_codes_and_names() {
    let expected = [
        (OperationStatus::Waiting, 0, 0, "waiting", false),
        (OperationStatus::InProgress, 2, 20, "in_progress", false),
        (OperationStatus::Canceling, 2, 22, "canceling", false),
        (OperationStatus::Succeeded, 3, 30, "succeeded", true),
        (OperationStatus::Failed, 3, 31, "failed", true),
        (OperationStatus::Canceled, 3, 32, "canceled", true),
    ];
    for (status, state_code, status_code, name, is_final) in expected {
        assert_eq!(status.state_code(), state_code, "{status}");
        assert_eq!(status.status_code(), status_code, "{status}");
        assert_eq!(status.as_str(), name);
        assert_eq!(status.is_final(), is_final, "{status}");
        assert_eq!(name.parse::<OperationStatus>().unwrap(), status);
    }
    assert!("done".parse::<OperationStatus>().is_err());
}

#[test]
fn triggers_round_trip_through_text() {
    let cases = [
        (Trigger::Cron { instant: t0() }, "cron@2026-11-26T09:00:00Z"),
        (Trigger::Manual, "manual"),
        (Trigger::Webhook, "webhook"),
        (Trigger::Api, "api"),
        (Trigger::Retry { of: "op-1".into() }, "retry:op-1"),
    ];
    for (trigger, text) in cases {
        assert_eq!(trigger.to_string(), text);
        assert_eq!(text.parse::<Trigger>().unwrap(), trigger);
    }
    for bad in ["cron", "cron@yesterday", "retry:", "timer"] {
        assert!(bad.parse::<Trigger>().is_err(), "{bad}");
    }
}

/// A cron operation claims its instant in the transaction that creates it: a second operation
/// for the instant, or one for an instant claimed by a skipped fire, is refused and nothing is
/// stored; the claim is the workflow's last fire.
#[test]
fn a_cron_operation_claims_its_fire_instant_with_it() {
    let store = SqliteStateStore::in_memory().unwrap();
    let mut first = new_operation("op-cron-1");
    first.trigger = Trigger::Cron { instant: at(-60) };
    store.create_operation(&first, at(0)).unwrap();
    assert_eq!(store.last_fire(&first.workflow).unwrap(), Some(at(-60)));
    assert!(!store.claim_fire(&first.workflow, at(-60), at(1)).unwrap());

    let mut again = new_operation("op-cron-2");
    again.workflow = first.workflow.clone();
    again.trigger = Trigger::Cron { instant: at(-60) };
    let refused = store.create_operation(&again, at(2)).unwrap_err();
    assert!(
        matches!(&refused, StoreError::FireClaimed { instant, .. } if *instant == at(-60)),
        "{refused:?}"
    );
    assert_eq!(refused.code(), "FireClaimed");
    assert!(matches!(
        store.get("op-cron-2"),
        Err(StoreError::OperationNotFound { .. })
    ));

    assert!(store.claim_fire(&first.workflow, at(0), at(3)).unwrap());
    let mut skipped = new_operation("op-cron-3");
    skipped.workflow = first.workflow.clone();
    skipped.trigger = Trigger::Cron { instant: at(0) };
    assert!(matches!(
        store.create_operation(&skipped, at(4)),
        Err(StoreError::FireClaimed { .. })
    ));
    // Other triggers claim nothing.
    store
        .create_operation(&new_operation("op-manual"), at(5))
        .unwrap();
    assert_eq!(store.last_fire(&first.workflow).unwrap(), Some(at(0)));
}

#[test]
fn an_operation_is_stored_as_created() {
    let store = SqliteStateStore::in_memory().unwrap();
    let mut new = new_operation("op-1");
    new.trigger = Trigger::Cron { instant: at(-60) };
    new.now = at(-60);
    let created = store.create_operation(&new, at(0)).unwrap();
    assert_eq!(created.status, OperationStatus::Waiting);
    assert_eq!(created.created_at, at(0));
    assert_eq!(created.updated_at, at(0));
    assert_eq!(created.now, at(-60));
    assert_eq!(created.trigger, Trigger::Cron { instant: at(-60) });
    assert_eq!(created.vars["region"], "north");
    assert_eq!(created.git_commit.as_deref(), Some("0123abcd"));
    assert_eq!(created.counts, Counts::default());
    assert!(created.lease.is_none() && created.checkpoint.is_none() && created.error.is_none());
    assert_eq!(store.get("op-1").unwrap(), created);
    assert!(matches!(
        store.create_operation(&new, at(1)),
        Err(StoreError::OperationExists { .. })
    ));
    let missing = store.get("nope").unwrap_err();
    assert!(matches!(&missing, StoreError::OperationNotFound { id } if id == "nope"));
    assert_eq!(missing.code(), "OperationNotFound");
    assert_eq!(missing.to_string(), "operation nope not found");
    assert!(!missing.is_retryable());
}

#[test]
fn list_pages_newest_first_without_duplicates_or_gaps() {
    let store = SqliteStateStore::in_memory().unwrap();
    // Several operations share a creation instant, so the id breaks ties.
    for index in 0..53 {
        create_in(
            &store,
            "territory-restructure",
            &format!("op-{index:02}"),
            index / 3,
        );
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list(&OperationFilter {
                limit: 10,
                cursor: cursor.clone(),
                ..OperationFilter::default()
            })
            .unwrap();
        assert!(page.operations.len() <= 10);
        seen.extend(page.operations.into_iter().map(|op| (op.created_at, op.id)));
        // An operation created while paging sorts before the cursor and does not disturb it.
        if seen.len() == 20 {
            create_in(&store, "territory-restructure", "op-late", 1000);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 53);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, ties by id");
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), 53);

    let exactly = store
        .list(&OperationFilter {
            limit: 54,
            ..OperationFilter::default()
        })
        .unwrap();
    assert_eq!(exactly.operations.len(), 54);
    assert_eq!(exactly.next_cursor, None);

    store.claim_next("w", at(2000), LEASE).unwrap();
    let waiting = store
        .list(&OperationFilter {
            status: Some(OperationStatus::Waiting),
            workflow: Some("territory-restructure".into()),
            ..OperationFilter::default()
        })
        .unwrap();
    assert_eq!(waiting.operations.len(), 50, "default page size");
    assert!(waiting.next_cursor.is_some());
    assert!(
        store
            .list(&OperationFilter {
                workflow: Some("other".into()),
                ..OperationFilter::default()
            })
            .unwrap()
            .operations
            .is_empty()
    );
    for bad in ["garbage", "2026-11-26T09:00:00Z,", "x,op-1"] {
        assert!(matches!(
            store.list(&OperationFilter {
                cursor: Some(bad.into()),
                ..OperationFilter::default()
            }),
            Err(StoreError::InvalidCursor { .. })
        ));
    }
}

#[test]
fn claims_take_the_oldest_waiting_async_operation() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-b", 1);
    create(&store, "op-a", 1);
    create(&store, "op-c", 0);
    let mut sync = new_operation("op-sync");
    sync.mode = Mode::Sync;
    store.create_operation(&sync, at(-10)).unwrap();

    let order: Vec<String> = (0..3)
        .map(|_| store.claim_next("w1", at(5), LEASE).unwrap().unwrap().id)
        .collect();
    assert_eq!(order, ["op-c", "op-a", "op-b"]);
    assert!(store.claim_next("w1", at(5), LEASE).unwrap().is_none());

    let claimed = store.get("op-c").unwrap();
    assert_eq!(claimed.status, OperationStatus::InProgress);
    assert_eq!(claimed.started_at, Some(at(5)));
    let lease = claimed.lease.unwrap();
    assert_eq!(lease.worker, "w1");
    assert_eq!(lease.expires_at, at(35));
    assert_eq!(
        store.get("op-sync").unwrap().status,
        OperationStatus::Waiting,
        "sync operations are run by their creator only"
    );
}

#[test]
fn an_expired_lease_is_resumed_by_another_worker_with_its_checkpoint() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    create(&store, "op-2", 1);
    store.claim_next("w1", at(10), LEASE).unwrap().unwrap();
    let checkpoint = Checkpoint {
        page: 4,
        paging_cookie: Some("<cookie page=\"3\" />".into()),
        records_done: 3000,
        batches_done: 3,
        progress: None,
    };
    let counts = Counts {
        selected: Some(10_000),
        succeeded: 2999,
        failed: 1,
        skipped: 0,
    };
    store
        .save_checkpoint(
            "op-1",
            "w1",
            &checkpoint,
            counts,
            &[failure("r-7", 12)],
            at(12),
        )
        .unwrap();

    // Still leased: w2 gets the waiting one instead.
    assert_eq!(
        store.claim_next("w2", at(20), LEASE).unwrap().unwrap().id,
        "op-2"
    );
    assert!(store.claim_next("w2", at(39), LEASE).unwrap().is_none());
    // w1 went silent; at 40 its lease (10 + 30) has expired.
    let resumed = store.claim_next("w2", at(40), LEASE).unwrap().unwrap();
    assert_eq!(resumed.id, "op-1");
    assert_eq!(resumed.status, OperationStatus::InProgress);
    assert_eq!(resumed.started_at, Some(at(10)), "started_at is kept");
    assert_eq!(resumed.lease.unwrap().worker, "w2");
    assert_eq!(resumed.checkpoint, Some(checkpoint));
    assert_eq!(resumed.counts, counts);
    assert_eq!(store.failed_record_ids("op-1").unwrap(), ["r-7"]);
}

#[test]
fn a_worker_that_lost_its_lease_cannot_write() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    store.claim_next("w1", at(0), LEASE).unwrap().unwrap();
    assert!(store.heartbeat("op-1", "w1", at(20), LEASE).unwrap());
    assert_eq!(store.get("op-1").unwrap().lease.unwrap().expires_at, at(50));
    assert!(store.claim_next("w2", at(49), LEASE).unwrap().is_none());
    store.claim_next("w2", at(50), LEASE).unwrap().unwrap();

    assert!(!store.heartbeat("op-1", "w1", at(51), LEASE).unwrap());
    let refused = store.save_checkpoint(
        "op-1",
        "w1",
        &Checkpoint::default(),
        Counts::default(),
        &[failure("r-1", 51)],
        at(51),
    );
    assert!(matches!(refused, Err(StoreError::LeaseLost { worker, .. }) if worker == "w1"));
    assert!(store.failures("op-1", 0, None).unwrap().failures.is_empty());
    let refused = store.finish("op-1", "w1", OperationStatus::Succeeded, None, None, at(52));
    assert!(matches!(refused, Err(StoreError::LeaseLost { .. })));
    assert!(matches!(
        store.heartbeat("nope", "w1", at(51), LEASE),
        Err(StoreError::OperationNotFound { .. })
    ));
    assert!(store.heartbeat("op-1", "w2", at(51), LEASE).unwrap());
}

#[test]
fn claim_by_id_respects_a_live_lease_and_release_hands_over_at_once() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    let mine = store.claim("op-1", "cli", at(1), LEASE).unwrap();
    assert_eq!(mine.status, OperationStatus::InProgress);
    assert!(matches!(
        store.claim("op-1", "serve", at(2), LEASE),
        Err(StoreError::LeaseHeld { holder, expires_at, .. }) if holder == "cli" && expires_at == at(31)
    ));
    // Re-claiming one's own operation renews the lease.
    assert_eq!(
        store
            .claim("op-1", "cli", at(3), LEASE)
            .unwrap()
            .lease
            .unwrap()
            .expires_at,
        at(33)
    );
    assert!(store.release("op-1", "cli", at(4)).unwrap());
    assert!(!store.release("op-1", "serve", at(4)).unwrap());
    let resumed = store.claim_next("serve", at(4), LEASE).unwrap().unwrap();
    assert_eq!(resumed.lease.unwrap().worker, "serve");

    store
        .finish(
            "op-1",
            "serve",
            OperationStatus::Succeeded,
            None,
            None,
            at(5),
        )
        .unwrap();
    assert!(matches!(
        store.claim("op-1", "cli", at(6), LEASE),
        Err(StoreError::AlreadyFinished {
            status: OperationStatus::Succeeded,
            ..
        })
    ));
}

#[test]
fn a_checkpoint_its_counts_and_its_failures_are_saved_together() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    store.claim_next("w1", at(0), LEASE).unwrap();
    let first = Checkpoint {
        page: 2,
        paging_cookie: None,
        records_done: 2,
        batches_done: 1,
        progress: None,
    };
    let counts = Counts {
        selected: None,
        succeeded: 1,
        failed: 1,
        skipped: 0,
    };
    store.set_selected("op-1", 4).unwrap();
    store
        .save_checkpoint("op-1", "w1", &first, counts, &[failure("r-1", 1)], at(1))
        .unwrap();

    // A batch whose failures cannot all be stored (a trigger plays the full disk) leaves the
    // previous checkpoint, counts and failures exactly as they were.
    store
        .connection()
        .execute_batch(
            "CREATE TEMP TRIGGER refuse AFTER INSERT ON record_failures \
             WHEN new.record_id = 'poison' BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .unwrap();
    let second = Checkpoint {
        page: 3,
        paging_cookie: Some("c".into()),
        records_done: 4,
        batches_done: 2,
        progress: None,
    };
    let broken = store.save_checkpoint(
        "op-1",
        "w1",
        &second,
        Counts {
            selected: None,
            succeeded: 2,
            failed: 2,
            skipped: 0,
        },
        &[failure("r-3", 2), failure("poison", 2)],
        at(2),
    );
    assert!(matches!(broken, Err(StoreError::Storage(_))), "{broken:?}");
    let stored = store.get("op-1").unwrap();
    assert_eq!(stored.checkpoint, Some(first));
    assert_eq!(
        stored.counts,
        Counts {
            selected: Some(4),
            ..counts
        }
    );
    assert_eq!(stored.updated_at, at(1));
    assert_eq!(store.failed_record_ids("op-1").unwrap(), ["r-1"]);

    // Replaying the same batch stores its failure once.
    let saved = store
        .save_checkpoint(
            "op-1",
            "w1",
            &second,
            counts,
            &[failure("r-3", 3), failure("r-3", 3)],
            at(3),
        )
        .unwrap();
    assert!(!saved.cancel_requested);
    assert_eq!(store.get("op-1").unwrap().checkpoint, Some(second));
    assert_eq!(store.failed_record_ids("op-1").unwrap(), ["r-1", "r-3"]);
    assert_eq!(store.failures("op-1", 0, None).unwrap().failures.len(), 2);
}

#[test]
fn failures_page_in_saved_order() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    store.claim_next("w1", at(0), LEASE).unwrap();
    let failures: Vec<RecordFailure> = (0..25).map(|n| failure(&format!("r-{n:02}"), n)).collect();
    for (batch_idx, batch) in failures.chunks(7).enumerate() {
        store
            .save_checkpoint(
                "op-1",
                "w1",
                &Checkpoint::default(),
                Counts::default(),
                batch,
                at(batch_idx as i64),
            )
            .unwrap();
    }
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.failures("op-1", 10, cursor.as_deref()).unwrap();
        listed.extend(page.failures);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<RecordFailure> = failures
        .into_iter()
        .map(|failure| RecordFailure {
            operation_id: "op-1".into(),
            ..failure
        })
        .collect();
    assert_eq!(listed, expected);
    assert!(matches!(
        store.failures("op-1", 10, Some("x")),
        Err(StoreError::InvalidCursor { .. })
    ));
    assert!(matches!(
        store.failures("nope", 10, None),
        Err(StoreError::OperationNotFound { .. })
    ));
}

#[test]
fn cancel_moves_each_status_as_designed() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "waiting", 0);
    let canceled = store.request_cancel("waiting", at(1)).unwrap();
    assert_eq!(canceled.status, OperationStatus::Canceled);
    assert_eq!(canceled.finished_at, Some(at(1)));
    assert!(canceled.cancel_requested);
    assert!(store.claim_next("w1", at(2), LEASE).unwrap().is_none());

    create(&store, "running", 2);
    store.claim_next("w1", at(2), LEASE).unwrap().unwrap();
    let canceling = store.request_cancel("running", at(3)).unwrap();
    assert_eq!(canceling.status, OperationStatus::Canceling);
    assert_eq!(
        (
            canceling.status.state_code(),
            canceling.status.status_code()
        ),
        (2, 22)
    );
    assert_eq!(store.request_cancel("running", at(4)).unwrap(), canceling);
    // The worker sees the request with its next checkpoint, then finishes as canceled.
    let seen = store
        .save_checkpoint(
            "running",
            "w1",
            &Checkpoint::default(),
            Counts::default(),
            &[],
            at(5),
        )
        .unwrap();
    assert!(seen.cancel_requested);
    assert!(store.heartbeat("running", "w1", at(5), LEASE).unwrap());
    let done = store
        .finish(
            "running",
            "w1",
            OperationStatus::Canceled,
            None,
            None,
            at(6),
        )
        .unwrap();
    assert_eq!(done.status, OperationStatus::Canceled);
    assert!(done.lease.is_none());

    for id in ["waiting", "running"] {
        assert!(matches!(
            store.request_cancel(id, at(7)),
            Err(StoreError::AlreadyFinished {
                status: OperationStatus::Canceled,
                ..
            })
        ));
    }
    assert!(matches!(
        store.request_cancel("nope", at(7)),
        Err(StoreError::OperationNotFound { .. })
    ));
}

#[test]
fn finish_stores_the_status_and_the_callback_together() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    store.claim_next("w1", at(0), LEASE).unwrap();
    assert!(matches!(
        store.finish("op-1", "w1", OperationStatus::Canceling, None, None, at(1)),
        Err(StoreError::StatusNotFinal { .. })
    ));
    // A delivery id that already exists makes the outbox insert fail: the status must not change.
    create(&store, "op-0", 0);
    store.claim("op-0", "w0", at(0), LEASE).unwrap();
    store
        .finish(
            "op-0",
            "w0",
            OperationStatus::Succeeded,
            None,
            Some(&delivery("d-1")),
            at(1),
        )
        .unwrap();
    let error = OperationError {
        code: "MaxFailuresExceeded".into(),
        message: "11 records failed (max_failures: 10)".into(),
    };
    let clash = store.finish(
        "op-1",
        "w1",
        OperationStatus::Failed,
        Some(&error),
        Some(&delivery("d-1")),
        at(2),
    );
    assert!(matches!(clash, Err(StoreError::Storage(_))), "{clash:?}");
    assert_eq!(
        store.get("op-1").unwrap().status,
        OperationStatus::InProgress
    );
    assert!(store.deliveries("op-1").unwrap().is_empty());

    let failed = store
        .finish(
            "op-1",
            "w1",
            OperationStatus::Failed,
            Some(&error),
            Some(&delivery("d-2")),
            at(3),
        )
        .unwrap();
    assert_eq!(failed.status, OperationStatus::Failed);
    assert_eq!(failed.error, Some(error));
    assert_eq!(failed.finished_at, Some(at(3)));
    let logs = store.deliveries("op-1").unwrap();
    assert_eq!(logs.len(), 1);
    let stored = &logs[0].delivery;
    assert_eq!(stored.id, "d-2");
    assert_eq!(stored.operation_id, "op-1");
    assert_eq!(stored.body, delivery("d-2").body);
    assert_eq!(stored.headers, delivery("d-2").headers);
    assert_eq!(stored.signature.as_deref(), Some("sha256=00"));
    assert_eq!(stored.status, DeliveryStatus::Pending);
    assert_eq!(stored.next_attempt_at, Some(at(3)));
    assert!(matches!(
        store.finish("op-1", "w1", OperationStatus::Succeeded, None, None, at(4)),
        Err(StoreError::AlreadyFinished {
            status: OperationStatus::Failed,
            ..
        })
    ));
}

#[test]
fn deliveries_log_every_attempt_until_delivered_or_abandoned() {
    let store = SqliteStateStore::in_memory().unwrap();
    for id in ["op-1", "op-2"] {
        create(&store, id, 0);
        store.claim(id, "w1", at(0), LEASE).unwrap();
    }
    store
        .finish(
            "op-1",
            "w1",
            OperationStatus::Succeeded,
            None,
            Some(&delivery("d-1")),
            at(10),
        )
        .unwrap();
    store
        .finish(
            "op-2",
            "w1",
            OperationStatus::Succeeded,
            None,
            Some(&delivery("d-2")),
            at(11),
        )
        .unwrap();
    assert!(store.due_deliveries(at(9), 10).unwrap().is_empty());
    let due: Vec<String> = store
        .due_deliveries(at(11), 10)
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(due, ["d-1", "d-2"]);

    let after_500 = store
        .record_attempt("d-1", &AttemptOutcome::Status(500), Some(at(20)), at(12))
        .unwrap();
    assert_eq!(after_500.attempts, 1);
    assert_eq!(after_500.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(after_500.next_attempt_at, Some(at(20)));
    store
        .record_attempt(
            "d-1",
            &AttemptOutcome::Error("connection refused".into()),
            Some(at(40)),
            at(21),
        )
        .unwrap();
    assert_eq!(
        store.due_deliveries(at(30), 10).unwrap().len(),
        1,
        "only d-2 is due"
    );
    let delivered = store.mark_delivered("d-1", 204, at(41)).unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.delivered_at, Some(at(41)));
    assert_eq!(delivered.attempts, 3);
    assert!(matches!(
        store.record_attempt("d-1", &AttemptOutcome::Status(500), Some(at(50)), at(42)),
        Err(StoreError::DeliveryClosed {
            status: "delivered",
            ..
        })
    ));
    let log = &store.deliveries("op-1").unwrap()[0];
    let outcomes: Vec<(u32, AttemptOutcome)> = log
        .attempts
        .iter()
        .map(|a| (a.attempt, a.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, AttemptOutcome::Status(500)),
            (2, AttemptOutcome::Error("connection refused".into())),
            (3, AttemptOutcome::Status(204)),
        ]
    );
    assert_eq!(log.attempts[1].at, at(21));

    let abandoned = store
        .record_attempt("d-2", &AttemptOutcome::Status(410), None, at(50))
        .unwrap();
    assert_eq!(abandoned.status, DeliveryStatus::Abandoned);
    assert!(store.due_deliveries(at(1000), 10).unwrap().is_empty());
    assert!(matches!(
        store.mark_delivered("d-9", 200, at(51)),
        Err(StoreError::DeliveryNotFound { .. })
    ));
}

#[test]
fn claimed_deliveries_are_held_back_from_other_senders() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    store.claim("op-1", "w1", at(0), LEASE).unwrap();
    store
        .finish(
            "op-1",
            "w1",
            OperationStatus::Succeeded,
            None,
            Some(&delivery("d-1")),
            at(1),
        )
        .unwrap();
    let hold = Duration::from_secs(60);
    let first = store.claim_due_deliveries(at(2), hold, 10).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].next_attempt_at, Some(at(62)));
    assert!(
        store
            .claim_due_deliveries(at(3), hold, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.claim_due_deliveries(at(62), hold, 10).unwrap().len(),
        1
    );
}

#[test]
fn a_retry_carries_its_origin_and_record_filter() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    let mut retry = new_operation("op-2");
    retry.trigger = Trigger::Retry { of: "op-1".into() };
    retry.retry_of = Some("op-1".into());
    retry.record_filter = Some(vec!["r-1".into(), "r-3".into()]);
    let stored = store.create_operation(&retry, at(1)).unwrap();
    assert_eq!(stored.retry_of.as_deref(), Some("op-1"));
    assert_eq!(
        stored.record_filter,
        Some(vec!["r-1".to_string(), "r-3".to_string()])
    );
    retry.id = "op-3".into();
    retry.retry_of = Some("nope".into());
    assert!(matches!(
        store.create_operation(&retry, at(2)),
        Err(StoreError::OperationNotFound { id }) if id == "nope"
    ));
}

#[test]
fn status_counts_cover_every_stored_status() {
    let store = SqliteStateStore::in_memory().unwrap();
    for index in 0..4 {
        create(&store, &format!("op-{index}"), index);
    }
    store.claim_next("w1", at(10), LEASE).unwrap();
    store.request_cancel("op-3", at(11)).unwrap();
    assert_eq!(
        store.status_counts().unwrap(),
        [
            (OperationStatus::Waiting, 2),
            (OperationStatus::InProgress, 1),
            (OperationStatus::Canceled, 1)
        ]
    );
}

#[test]
fn a_corrupt_column_is_an_error_not_a_panic() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    for corruption in [
        "UPDATE operations SET vars = '{not json'",
        "UPDATE operations SET vars = '[1, 2]'",
        "UPDATE operations SET checkpoint = '{\"page\": -1}'",
        "UPDATE operations SET trigger = 'timer'",
        "UPDATE operations SET created_at = 'yesterday'",
        "UPDATE operations SET succeeded = -5",
    ] {
        let guard = store.connection();
        guard.execute_batch("SAVEPOINT s").unwrap();
        guard.execute_batch(corruption).unwrap();
        drop(guard);
        let error = store.get("op-1").unwrap_err();
        assert!(
            matches!(error, StoreError::CorruptData { .. }),
            "{corruption}: {error}"
        );
        assert!(!error.is_retryable());
        store
            .connection()
            .execute_batch("ROLLBACK TO s; RELEASE s")
            .unwrap();
    }
    assert!(store.get("op-1").is_ok());
}

#[test]
fn two_stores_on_one_file_never_claim_an_operation_twice() {
    let path = temp_file("race");
    let first = Arc::new(SqliteStateStore::open(&path).unwrap());
    let second = Arc::new(SqliteStateStore::open(&path).unwrap());
    for index in 0..200 {
        create(first.as_ref(), &format!("op-{index:03}"), index);
    }
    let start = Arc::new(Barrier::new(2));
    let workers: Vec<_> = [(first, "node-a"), (second, "node-b")]
        .into_iter()
        .map(|(store, worker)| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let mut claimed = Vec::new();
                while let Some(operation) = store.claim_next(worker, at(500), LEASE).unwrap() {
                    assert_eq!(operation.lease.as_ref().unwrap().worker, worker);
                    claimed.push(operation.id);
                    // A worker runs what it claimed before claiming again.
                    std::thread::sleep(Duration::from_micros(500));
                }
                claimed
            })
        })
        .collect();
    let claims: Vec<Vec<String>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let all: Vec<&String> = claims.iter().flatten().collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        200,
        "claims per node: {}, {}",
        claims[0].len(),
        claims[1].len()
    );
    assert_eq!(distinct.len(), 200);
    assert!(
        claims.iter().all(|claimed| !claimed.is_empty()),
        "both nodes claimed"
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

#[test]
fn a_fire_instant_is_claimed_exactly_once_across_stores() {
    let path = temp_file("fires");
    let stores = [
        Arc::new(SqliteStateStore::open(&path).unwrap()),
        Arc::new(SqliteStateStore::open(&path).unwrap()),
    ];
    let nodes: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| {
            std::thread::spawn(move || {
                (0..100)
                    .filter(|minute| store.claim_fire("nightly", at(minute * 60), at(0)).unwrap())
                    .collect::<Vec<i64>>()
            })
        })
        .collect();
    let mut won: Vec<i64> = nodes
        .into_iter()
        .flat_map(|node| node.join().unwrap())
        .collect();
    won.sort_unstable();
    assert_eq!(won, (0..100).collect::<Vec<_>>());
    assert_eq!(stores[1].last_fire("nightly").unwrap(), Some(at(99 * 60)));
    assert_eq!(stores[0].last_fire("other").unwrap(), None);
    assert!(!stores[0].claim_fire("nightly", at(0), at(1)).unwrap());
    assert!(stores[0].claim_fire("other", at(0), at(1)).unwrap());
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

#[test]
fn migrations_are_idempotent_and_a_newer_schema_is_refused() {
    let path = temp_file("migrations");
    drop(SqliteStateStore::open(&path).unwrap());
    let reopened = SqliteStateStore::open(&path).unwrap();
    create(&reopened, "op-1", 0);
    drop(reopened);
    let store = SqliteStateStore::open(&path).unwrap();
    assert!(store.get("op-1").is_ok());
    let mode: String = store
        .connection()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let permissions = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(permissions.mode() & 0o777, 0o600);
    }
    let versions: Vec<i64> = store
        .connection()
        .prepare("SELECT version FROM schema_migrations")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, [1, 2]);
    drop(store);

    Connection::open(&path)
        .unwrap()
        .execute("INSERT INTO schema_migrations (version) VALUES (7)", [])
        .unwrap();
    let error = SqliteStateStore::open(&path).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::NewerSchema {
                found: 7,
                supported: 2
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("newer fetchflow"), "{error}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

#[test]
fn secret_parts_are_stored_and_never_shown() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    store.claim("op-1", "w1", at(0), LEASE).unwrap();
    let mut secret = delivery("d-1");
    secret.url = "https://hooks.example/t0ps3cret".into();
    secret
        .headers
        .push(("Authorization".into(), "Bearer t0ps3cret".into()));
    secret.body = b"{\"token\":\"t0ps3cret\"}".to_vec();
    secret.secret_parts = SecretParts {
        url: true,
        body: true,
        headers: vec!["authorization".into()],
    };
    assert!(!format!("{secret:?}").contains("t0ps3cret"));
    store
        .finish(
            "op-1",
            "w1",
            OperationStatus::Succeeded,
            None,
            Some(&secret),
            at(1),
        )
        .unwrap();
    let stored = store.deliveries("op-1").unwrap().remove(0).delivery;
    assert_eq!(stored.url, secret.url, "sent as rendered");
    assert_eq!(stored.body, secret.body);
    assert_eq!(stored.secret_parts, secret.secret_parts);
    let shown = format!("{stored:?}");
    assert!(!shown.contains("t0ps3cret"), "{shown}");
    assert!(shown.contains("<redacted: 21 bytes>"), "{shown}");
    assert_eq!(stored.shown_url(), "<redacted>");
    assert!(
        stored
            .shown_headers()
            .contains(&("Authorization", "<redacted>"))
    );
    assert!(
        stored
            .shown_headers()
            .contains(&("Content-Type", "application/json"))
    );
}

#[test]
fn a_file_that_is_not_a_state_store_is_left_alone() {
    let path = temp_file("foreign");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE account (accountid TEXT PRIMARY KEY)")
        .unwrap();
    let error = SqliteStateStore::open(&path).unwrap_err();
    assert!(
        matches!(error, StoreError::NotAStateStore { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("is not a fetchflow state store"),
        "{error}"
    );
    let tables: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1, "nothing was added");

    std::fs::write(
        &path,
        "plain text, long enough to look like a header of something else",
    )
    .unwrap();
    let error = SqliteStateStore::open(&path).unwrap_err();
    assert!(
        matches!(error, StoreError::NotAStateStore { .. }),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

#[test]
fn a_busy_database_is_a_retryable_error() {
    let path = temp_file("busy");
    let store = SqliteStateStore::open(&path).unwrap();
    create(&store, "op-1", 0);
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    store.connection().busy_timeout(Duration::ZERO).unwrap();
    let busy = store.claim_next("w1", at(1), LEASE).unwrap_err();
    assert!(busy.is_retryable(), "{busy}");
    assert_eq!(busy.code(), "StorageError");
    other.execute_batch("ROLLBACK").unwrap();
    assert!(store.claim_next("w1", at(1), LEASE).unwrap().is_some());
    drop(store);
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

#[test]
fn one_workflow_runs_one_operation_at_a_time() {
    let store = SqliteStateStore::in_memory().unwrap();
    create_in(&store, "nightly", "first", 0);
    create_in(&store, "nightly", "second", 1);
    create_in(&store, "hourly", "other", 2);
    let claimed = |now| {
        store
            .claim_next("w1", at(now), LEASE)
            .unwrap()
            .map(|operation| operation.id)
    };
    assert_eq!(claimed(3).as_deref(), Some("first"));
    // `second` queues behind `first`; another workflow's operation does not.
    assert_eq!(claimed(3).as_deref(), Some("other"));
    assert_eq!(claimed(3), None);
    assert!(matches!(
        store.claim("second", "cli", at(4), LEASE),
        Err(StoreError::WorkflowBusy { active, .. }) if active == "first"
    ));
    // Replace: cancel the running one; the queued one starts once it has finished.
    store.request_cancel("first", at(5)).unwrap();
    assert_eq!(claimed(6), None);
    store
        .finish("first", "w1", OperationStatus::Canceled, None, None, at(7))
        .unwrap();
    assert_eq!(claimed(8).as_deref(), Some("second"));
}

#[test]
fn an_operation_canceled_while_waiting_can_still_send_its_callback() {
    let store = SqliteStateStore::in_memory().unwrap();
    create(&store, "op-1", 0);
    assert!(matches!(
        store.enqueue_delivery("op-1", &delivery("d-1"), at(1)),
        Err(StoreError::StatusNotFinal {
            status: OperationStatus::Waiting,
            ..
        })
    ));
    store.request_cancel("op-1", at(2)).unwrap();
    let queued = store
        .enqueue_delivery("op-1", &delivery("d-1"), at(3))
        .unwrap();
    assert_eq!(queued.status, DeliveryStatus::Pending);
    assert_eq!(queued.next_attempt_at, Some(at(3)));
    assert_eq!(store.due_deliveries(at(3), 10).unwrap(), [queued]);
    assert!(matches!(
        store.enqueue_delivery("nope", &delivery("d-2"), at(3)),
        Err(StoreError::OperationNotFound { .. })
    ));
}

fn workflow_version(source: &str, seconds: i64) -> WorkflowVersion {
    WorkflowVersion {
        version: crate::compile::content_hash(source),
        name: "territory".into(),
        path: PathBuf::from("workflows/territory.yaml"),
        source: source.into(),
        first_seen: at(seconds),
    }
}

#[test]
fn workflow_versions_are_stored_once_and_read_back_byte_for_byte() {
    let store = SqliteStateStore::in_memory().unwrap();
    let first = workflow_version("name: territory\n# v1 \u{e9}\r\n", 0);
    assert_eq!(store.workflow_version(&first.version).unwrap(), None);
    store.save_workflow_version(&first).unwrap();
    // Saving again (another run of the same version, another node) keeps the first row.
    let again = WorkflowVersion {
        first_seen: at(60),
        path: PathBuf::from("elsewhere.yaml"),
        ..first.clone()
    };
    store.save_workflow_version(&again).unwrap();
    assert_eq!(
        store.workflow_version(&first.version).unwrap(),
        Some(first.clone())
    );
    let second = workflow_version("name: territory\n# v2\n", 120);
    store.save_workflow_version(&second).unwrap();
    assert_eq!(
        store.workflow_version(&second.version).unwrap(),
        Some(second)
    );
    assert_eq!(store.workflow_version(&first.version).unwrap(), Some(first));
}

#[test]
fn a_workflow_version_whose_source_does_not_match_its_hash_is_refused() {
    let store = SqliteStateStore::in_memory().unwrap();
    let mut wrong = workflow_version("name: territory\n", 0);
    wrong.source.push_str("# edited after hashing\n");
    let error = store.save_workflow_version(&wrong).unwrap_err();
    assert!(
        matches!(error, StoreError::WorkflowVersionMismatch { .. }),
        "{error}"
    );
    assert_eq!(error.code(), "WorkflowVersionMismatch");
    assert_eq!(store.workflow_version(&wrong.version).unwrap(), None);
}

#[test]
fn workflow_versions_survive_reopening_and_an_upgrade_from_schema_1() {
    let path = temp_file("versions-upgrade");
    // A store as version 1 left it: only migration 1 applied.
    drop(SqliteStateStore::open(&path).unwrap());
    {
        let connection = Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "DROP TABLE workflow_versions; DELETE FROM schema_migrations WHERE version = 2;",
            )
            .unwrap();
    }
    let store = SqliteStateStore::open(&path).unwrap();
    let version = workflow_version("name: territory\n", 0);
    store.save_workflow_version(&version).unwrap();
    drop(store);
    let reopened = SqliteStateStore::open(&path).unwrap();
    assert_eq!(
        reopened.workflow_version(&version.version).unwrap(),
        Some(version)
    );
    drop(reopened);
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}
