//! `fetchflow ops` from the outside, over a state store filled through `SqliteStateStore`:
//! list order, filters and pagination, show with callback deliveries, failures as human, JSON
//! and CSV, cancel transitions, retry of failed records, and the exit codes of refusals.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::support::{fetchflow, tempdir, text};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

use fetchflow::store::{
    AttemptOutcome, Checkpoint, Counts, Mode, NewDelivery, NewOperation, OperationError,
    OperationStatus, RecordFailure, SecretParts, SqliteStateStore, StateStore, Trigger,
};

const FAILED: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const SUCCEEDED: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const WAITING: &str = "cccccccc-0000-4000-8000-000000000003";
const RUNNING: &str = "dddddddd-0000-4000-8000-000000000004";
const REC1: &str = "a0000000-0000-4000-8000-000000000001";
const REC2: &str = "a0000000-0000-4000-8000-000000000002";
const SECRET_TOKEN: &str = "s3cr3t-token";
const TRICKY: &str = "value \"x\" is too long, max 100";
const LEASE: Duration = Duration::from_secs(300);

fn ok(dir: &Path, args: &[&str]) -> String {
    let output = fetchflow(dir, args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let stdout = ok(dir, args);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// Runs a command that must fail with `code`; returns its stderr.
fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    let output = fetchflow(dir, args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "{args:?}\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    text(&output.stderr)
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap() + TimeDelta::seconds(seconds)
}

fn new_operation(id: &str, workflow: &str, seconds: i64) -> NewOperation {
    let mut vars = serde_json::Map::new();
    vars.insert("territory".into(), json!("West"));
    NewOperation {
        id: id.into(),
        workflow: workflow.into(),
        workflow_version: "sha256:abc123".into(),
        git_commit: Some("0123abcd".into()),
        connection: "default".into(),
        mode: Mode::Async,
        trigger: Trigger::Manual,
        vars,
        now: at(seconds),
        retry_of: None,
        record_filter: None,
    }
}

fn failure(record_id: &str, action_index: u32, action: &str, message: &str) -> RecordFailure {
    RecordFailure {
        operation_id: String::new(),
        record_id: record_id.into(),
        action_index,
        action: action.into(),
        code: "0x80040237".into(),
        message: message.into(),
        attempts: 3,
        at: at(10),
    }
}

/// A project directory with `fetchflow.yaml` (`state: state.db`) and four operations: a failed
/// one with failures and a retried callback, a succeeded one, a waiting one and a running one.
fn project(label: &str) -> PathBuf {
    let dir = tempdir(label);
    std::fs::write(dir.join("fetchflow.yaml"), "state: state.db\n").unwrap();
    let store = SqliteStateStore::open(&dir.join("state.db")).unwrap();

    store
        .create_operation(&new_operation(FAILED, "move-west", 0), at(0))
        .unwrap();
    store.claim(FAILED, "w1", at(1), LEASE).unwrap();
    store
        .save_checkpoint(
            FAILED,
            "w1",
            &Checkpoint {
                page: 2,
                paging_cookie: None,
                records_done: 5,
                batches_done: 1,
                progress: None,
            },
            Counts {
                selected: Some(5),
                succeeded: 3,
                failed: 2,
                skipped: 0,
            },
            &[
                failure(REC1, 0, "update", TRICKY),
                failure(REC2, 1, "assign", "owner not found"),
                failure(REC1, 1, "assign", "owner not found"),
            ],
            at(10),
        )
        .unwrap();
    let delivery = NewDelivery {
        id: "de000000-0000-4000-8000-000000000001".into(),
        url: "https://hooks.example.com/fetchflow".into(),
        method: "POST".into(),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Authorization".into(), format!("Bearer {SECRET_TOKEN}")),
        ],
        body: br#"{"backgroundOperationId":"op"}"#.to_vec(),
        signature: Some("sha256=00".into()),
        secret_parts: SecretParts {
            url: false,
            body: false,
            headers: vec!["Authorization".into()],
        },
    };
    store
        .finish(
            FAILED,
            "w1",
            OperationStatus::Failed,
            Some(&OperationError {
                code: "MaxFailuresExceeded".into(),
                message: "2 records failed".into(),
            }),
            Some(&delivery),
            at(11),
        )
        .unwrap();
    store
        .record_attempt(
            &delivery.id,
            &AttemptOutcome::Status(500),
            Some(at(20)),
            at(12),
        )
        .unwrap();
    store
        .record_attempt(
            &delivery.id,
            &AttemptOutcome::Error("connection refused".into()),
            Some(at(40)),
            at(21),
        )
        .unwrap();

    store
        .create_operation(&new_operation(SUCCEEDED, "move-west", 60), at(60))
        .unwrap();
    store.claim(SUCCEEDED, "w1", at(61), LEASE).unwrap();
    store
        .finish(
            SUCCEEDED,
            "w1",
            OperationStatus::Succeeded,
            None,
            None,
            at(62),
        )
        .unwrap();

    store
        .create_operation(&new_operation(WAITING, "cleanup", 120), at(120))
        .unwrap();

    store
        .create_operation(&new_operation(RUNNING, "recalculate", 180), at(180))
        .unwrap();
    store.claim(RUNNING, "w2", at(181), LEASE).unwrap();
    dir
}

fn ids(document: &Value) -> Vec<String> {
    document["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|operation| operation["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn list_shows_operations_newest_first_in_an_aligned_table() {
    let dir = project("list");
    let stdout = ok(&dir, &["ops", "list"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{stdout}");
    for column in ["WORKFLOW", "STATUS", "TRIGGER", "CREATED", "PROGRESS"] {
        assert!(lines[0].contains(column), "{stdout}");
    }
    let order: Vec<&str> = lines[1..]
        .iter()
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(order, [RUNNING, WAITING, SUCCEEDED, FAILED], "{stdout}");
    // Aligned: every row's status starts in the header's STATUS column.
    let status_column = lines[0].find("STATUS").unwrap();
    assert_eq!(
        lines[1].find("In Progress"),
        Some(status_column),
        "{stdout}"
    );
    assert_eq!(lines[2].find("Waiting"), Some(status_column), "{stdout}");
    assert_eq!(lines[4].find("Failed"), Some(status_column), "{stdout}");
    assert!(lines[4].contains("5/5 (100%)"), "{stdout}");
    assert!(lines[4].contains("2026-11-26 09:00:00Z"), "{stdout}");
    assert!(lines[1].contains("manual"), "{stdout}");
    assert!(!stdout.contains("next page"), "{stdout}");

    let document = ok_json(&dir, &["ops", "list", "--format", "json"]);
    assert_eq!(ids(&document), [RUNNING, WAITING, SUCCEEDED, FAILED]);
    assert_eq!(document["next_cursor"], Value::Null);
    let failed = &document["operations"][3];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["state_code"], 3);
    assert_eq!(failed["status_code"], 31);
    assert_eq!(
        failed["counts"],
        json!({"selected": 5, "succeeded": 3, "failed": 2, "skipped": 0})
    );
    assert_eq!(failed["location"], format!("/api/operations/{FAILED}"));
    assert_eq!(failed["created_at"], "2026-11-26T09:00:00Z");
    assert_eq!(failed["trigger"], "manual");
    let mut keys: Vec<&str> = failed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cancel_requested",
            "connection",
            "counts",
            "created_at",
            "error",
            "finished_at",
            "git_commit",
            "id",
            "location",
            "mode",
            "now",
            "retry_of",
            "started_at",
            "state_code",
            "status",
            "status_code",
            "trigger",
            "updated_at",
            "workflow",
            "workflow_version",
        ]
    );
    assert_eq!(document["operations"][1]["started_at"], Value::Null);
}

#[test]
fn list_filters_by_status_and_workflow() {
    let dir = project("filters");
    let by = |args: &[&str]| {
        let mut all = vec!["ops", "list", "--format", "json"];
        all.extend_from_slice(args);
        ids(&ok_json(&dir, &all))
    };
    assert_eq!(by(&["--status", "failed"]), [FAILED]);
    assert_eq!(by(&["--status", "in_progress"]), [RUNNING]);
    assert_eq!(by(&["--status", "In Progress"]), [RUNNING]);
    assert_eq!(by(&["--workflow", "move-west"]), [SUCCEEDED, FAILED]);
    assert_eq!(
        by(&["--workflow", "move-west", "--status", "succeeded"]),
        [SUCCEEDED]
    );
    assert!(by(&["--status", "canceling"]).is_empty());
    assert_eq!(
        ok(&dir, &["ops", "list", "--workflow", "nothing"]),
        "no operations\n"
    );
}

#[test]
fn an_unknown_status_is_a_usage_error_with_a_suggestion() {
    let dir = project("bad-status");
    let stderr = fails(&dir, &["ops", "list", "--status", "faild"], 2);
    assert!(stderr.contains("unknown status `faild`"), "{stderr}");
    assert!(stderr.contains("did you mean `failed`?"), "{stderr}");
    let stderr = fails(&dir, &["ops", "list", "--status", "done"], 2);
    assert!(
        stderr.contains("waiting, in_progress, canceling"),
        "{stderr}"
    );
}

#[test]
fn list_pages_with_a_cursor_without_gaps_or_duplicates() {
    let dir = project("pages");
    let first = ok_json(&dir, &["ops", "list", "--limit", "3", "--format", "json"]);
    assert_eq!(ids(&first), [RUNNING, WAITING, SUCCEEDED]);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let second = ok_json(
        &dir,
        &[
            "ops", "list", "--limit", "3", "--cursor", &cursor, "--format", "json",
        ],
    );
    assert_eq!(ids(&second), [FAILED]);
    assert_eq!(second["next_cursor"], Value::Null);

    let human = ok(&dir, &["ops", "list", "--limit", "3"]);
    assert!(
        human.ends_with(&format!("next page: --cursor {cursor}\n")),
        "{human}"
    );
    let stderr = fails(&dir, &["ops", "list", "--cursor", "garbage"], 2);
    assert!(stderr.contains("invalid --cursor `garbage`"), "{stderr}");
    fails(&dir, &["ops", "list", "--limit", "0"], 2);
}

#[test]
fn show_prints_everything_with_deliveries_and_redacts_secrets() {
    let dir = project("show");
    let document = ok_json(&dir, &["ops", "show", FAILED, "--format", "json"]);
    assert_eq!(document["id"], FAILED);
    assert_eq!(document["workflow"], "move-west");
    assert_eq!(document["workflow_version"], "sha256:abc123");
    assert_eq!(document["git_commit"], "0123abcd");
    assert_eq!(document["connection"], "default");
    assert_eq!(document["mode"], "async");
    assert_eq!(document["vars"], json!({"territory": "West"}));
    assert_eq!(
        document["error"],
        json!({"code": "MaxFailuresExceeded", "message": "2 records failed"})
    );
    assert_eq!(
        document["checkpoint"],
        json!({"page": 2, "paging_cookie": null, "records_done": 5, "batches_done": 1})
    );
    assert_eq!(document["lease"], Value::Null);
    assert_eq!(document["record_filter"], Value::Null);
    assert_eq!(document["started_at"], "2026-11-26T09:00:01Z");
    assert_eq!(document["finished_at"], "2026-11-26T09:00:11Z");
    let deliveries = document["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    let delivery = &deliveries[0];
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["last_error"], "connection refused");
    assert_eq!(delivery["next_attempt_at"], "2026-11-26T09:00:40Z");
    assert_eq!(delivery["signed"], true);
    assert_eq!(delivery["url"], "https://hooks.example.com/fetchflow");
    assert_eq!(
        delivery["headers"],
        json!([
            {"name": "Content-Type", "value": "application/json"},
            {"name": "Authorization", "value": "<redacted>"}
        ])
    );
    assert_eq!(
        delivery["attempt_log"],
        json!([
            {"attempt": 1, "at": "2026-11-26T09:00:12Z", "status_code": 500, "error": null},
            {"attempt": 2, "at": "2026-11-26T09:00:21Z", "status_code": null,
             "error": "connection refused"}
        ])
    );
    assert!(!document.to_string().contains(SECRET_TOKEN));
    assert!(!document.to_string().contains("sha256=00"));

    let human = ok(&dir, &["ops", "show", FAILED]);
    for expected in [
        "workflow:",
        "move-west",
        "sha256:abc123 (git 0123abcd)",
        "Failed (state 3, status 31)",
        "5 selected, 3 succeeded, 2 failed, 0 skipped (100% done)",
        "MaxFailuresExceeded: 2 records failed",
        "territory=\"West\"",
        "page 2, 5 records and 1 batch done",
        "callback delivery de000000-0000-4000-8000-000000000001: pending, 2 attempts",
        "POST https://hooks.example.com/fetchflow",
        "Authorization: <redacted>",
        "attempt 1 at 2026-11-26 09:00:12Z: HTTP 500",
        "attempt 2 at 2026-11-26 09:00:21Z: connection refused",
        "last error: connection refused",
    ] {
        assert!(human.contains(expected), "missing `{expected}` in\n{human}");
    }
    assert!(!human.contains(SECRET_TOKEN), "{human}");

    let running = ok(&dir, &["ops", "show", RUNNING]);
    assert!(
        running.contains("In Progress (state 2, status 20)"),
        "{running}"
    );
    assert!(running.contains("lease:"), "{running}");
    assert!(running.contains("w2 until"), "{running}");
    assert!(running.contains("callback deliveries: none"), "{running}");
}

#[test]
fn show_takes_a_unique_id_prefix_and_refuses_unknown_ids() {
    let dir = project("prefix");
    let document = ok_json(&dir, &["ops", "show", "bbbbbbbb", "--format", "json"]);
    assert_eq!(document["id"], SUCCEEDED);
    let stderr = fails(
        &dir,
        &["ops", "show", "eeeeeeee-0000-4000-8000-000000000009"],
        1,
    );
    assert_eq!(
        stderr,
        "error: no operation eeeeeeee-0000-4000-8000-000000000009\n"
    );
    // Too short to be a prefix.
    let stderr = fails(&dir, &["ops", "show", "aaaa"], 1);
    assert!(stderr.contains("no operation aaaa"), "{stderr}");
    for command in ["failures", "cancel", "retry"] {
        let stderr = fails(&dir, &["ops", command, "nope"], 1);
        assert!(stderr.contains("no operation nope"), "{command}: {stderr}");
    }
}

#[test]
fn an_ambiguous_prefix_is_refused() {
    let dir = tempdir("ambiguous");
    std::fs::write(dir.join("fetchflow.yaml"), "state: state.db\n").unwrap();
    let store = SqliteStateStore::open(&dir.join("state.db")).unwrap();
    for (index, id) in [
        "12345678-0000-4000-8000-000000000001",
        "12345678-0000-4000-8000-000000000002",
    ]
    .into_iter()
    .enumerate()
    {
        let operation = new_operation(id, &format!("wf-{index}"), 0);
        store.create_operation(&operation, at(0)).unwrap();
    }
    drop(store);
    let stderr = fails(&dir, &["ops", "show", "12345678"], 1);
    assert!(stderr.contains("is ambiguous"), "{stderr}");
    ok(
        &dir,
        &["ops", "show", "12345678-0000-4000-8000-000000000002"],
    );
}

#[test]
fn failures_come_as_a_table_as_json_and_as_csv() {
    let dir = project("failures");
    let human = ok(&dir, &["ops", "failures", FAILED]);
    let lines: Vec<&str> = human.lines().collect();
    assert!(lines[0].starts_with("RECORD"), "{human}");
    assert_eq!(lines.len(), 4, "{human}");
    assert!(lines[1].starts_with(REC1), "{human}");
    assert!(lines[1].contains("[0] update"), "{human}");
    assert!(lines[1].contains("0x80040237"), "{human}");
    assert!(lines[1].ends_with(TRICKY), "{human}");
    assert!(lines[2].starts_with(REC2), "{human}");
    assert!(lines[2].contains("[1] assign"), "{human}");

    let document = ok_json(&dir, &["ops", "failures", FAILED, "--format", "json"]);
    assert_eq!(document["operation_id"], FAILED);
    assert_eq!(document["next_cursor"], Value::Null);
    assert_eq!(
        document["failures"][0],
        json!({
            "record_id": REC1, "action_index": 0, "action": "update", "code": "0x80040237",
            "message": TRICKY, "attempts": 3, "at": "2026-11-26T09:00:10Z"
        })
    );
    assert_eq!(document["failures"].as_array().unwrap().len(), 3);

    let csv = ok(&dir, &["ops", "failures", FAILED, "--format", "csv"]);
    assert_eq!(
        csv,
        format!(
            "record_id,action_index,action,code,message,attempts\r\n\
             {REC1},0,update,0x80040237,\"value \"\"x\"\" is too long, max 100\",3\r\n\
             {REC2},1,assign,0x80040237,owner not found,3\r\n\
             {REC1},1,assign,0x80040237,owner not found,3\r\n"
        )
    );

    let page = ok_json(
        &dir,
        &[
            "ops", "failures", FAILED, "--limit", "2", "--format", "json",
        ],
    );
    assert_eq!(page["failures"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest = ok_json(
        &dir,
        &[
            "ops", "failures", FAILED, "--cursor", &cursor, "--format", "json",
        ],
    );
    assert_eq!(rest["failures"][0]["record_id"], REC1);
    assert_eq!(rest["failures"][0]["action_index"], 1);
    assert_eq!(rest["next_cursor"], Value::Null);

    assert_eq!(
        ok(&dir, &["ops", "failures", SUCCEEDED]),
        format!("operation {SUCCEEDED} has no failed records\n")
    );
    assert_eq!(
        ok(&dir, &["ops", "failures", SUCCEEDED, "--format", "csv"]),
        "record_id,action_index,action,code,message,attempts\r\n"
    );
}

#[test]
fn cancel_stops_waiting_operations_at_once_and_running_ones_after_their_batch() {
    let dir = project("cancel");
    let stdout = ok(&dir, &["ops", "cancel", WAITING]);
    assert_eq!(
        stdout,
        format!("operation {WAITING}: Canceled (it had not started)\n")
    );
    let stdout = ok(&dir, &["ops", "cancel", RUNNING]);
    assert_eq!(
        stdout,
        format!("operation {RUNNING}: Canceling (the current batch finishes, then canceled)\n")
    );
    let again = ok_json(&dir, &["ops", "cancel", RUNNING, "--format", "json"]);
    assert_eq!(again["status"], "canceling");
    assert_eq!(again["status_code"], 22);
    assert_eq!(again["cancel_requested"], true);

    let stderr = fails(&dir, &["ops", "cancel", SUCCEEDED], 1);
    assert!(stderr.contains("already finished (Succeeded)"), "{stderr}");
    let stderr = fails(&dir, &["ops", "cancel", WAITING], 1);
    assert!(stderr.contains("already finished (Canceled)"), "{stderr}");

    let store = SqliteStateStore::open(&dir.join("state.db")).unwrap();
    assert_eq!(
        store.get(WAITING).unwrap().status,
        OperationStatus::Canceled
    );
    assert_eq!(
        store.get(RUNNING).unwrap().status,
        OperationStatus::Canceling
    );
}

#[test]
fn retry_creates_a_waiting_operation_over_the_failed_records() {
    let dir = project("retry");
    let stdout = ok(&dir, &["ops", "retry", FAILED]);
    let first = stdout.lines().next().unwrap();
    let id = first
        .strip_prefix("operation ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        first.ends_with(&format!("retry of {FAILED} over 2 failed records, waiting")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("location: /api/operations/{id}\n")),
        "{stdout}"
    );
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    assert_eq!(uuid.get_version_num(), 4);

    let store = SqliteStateStore::open(&dir.join("state.db")).unwrap();
    let retry = store.get(&id).unwrap();
    let original = store.get(FAILED).unwrap();
    assert_eq!(retry.status, OperationStatus::Waiting);
    assert_eq!(
        retry.record_filter,
        Some(store.failed_record_ids(FAILED).unwrap())
    );
    assert_eq!(
        retry.record_filter,
        Some(vec![REC1.to_string(), REC2.to_string()])
    );
    assert_eq!(retry.retry_of.as_deref(), Some(FAILED));
    assert_eq!(
        retry.trigger,
        Trigger::Retry {
            of: FAILED.to_string()
        }
    );
    assert_eq!(retry.workflow, original.workflow);
    assert_eq!(retry.workflow_version, original.workflow_version);
    assert_eq!(retry.git_commit, original.git_commit);
    assert_eq!(retry.connection, original.connection);
    assert_eq!(retry.vars, original.vars);
    assert_eq!(retry.mode, Mode::Async);
    assert!(retry.now > original.now, "a retry gets its own `now`");
    drop(store);

    let document = ok_json(&dir, &["ops", "retry", FAILED, "--format", "json"]);
    assert_eq!(document["trigger"], format!("retry:{FAILED}"));
    assert_eq!(document["retry_of"], FAILED);
    assert_eq!(document["status"], "waiting");
    assert_ne!(document["id"], id.as_str());

    let shown = ok_json(&dir, &["ops", "show", &id, "--format", "json"]);
    assert_eq!(shown["record_filter"], json!([REC1, REC2]));

    let stderr = fails(&dir, &["ops", "retry", SUCCEEDED], 1);
    assert!(stderr.contains("nothing to retry"), "{stderr}");
    let stderr = fails(&dir, &["ops", "retry", RUNNING], 1);
    assert!(stderr.contains("is In Progress"), "{stderr}");
}

#[test]
fn a_missing_state_store_reads_as_empty_and_is_not_created() {
    let dir = tempdir("empty");
    std::fs::write(dir.join("fetchflow.yaml"), "state: state.db\n").unwrap();
    assert_eq!(ok(&dir, &["ops", "list"]), "no operations\n");
    let document = ok_json(&dir, &["ops", "list", "--format", "json"]);
    assert_eq!(document, json!({"operations": [], "next_cursor": null}));
    fails(&dir, &["ops", "show", FAILED], 1);
    assert!(!dir.join("state.db").exists());
}
