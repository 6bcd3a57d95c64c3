//! Crash test (issue 4): `fetchflow run --wait` over a 100,000-account org, an async workflow
//! that updates every account and creates one task per account, SIGKILLed at several points
//! (before its first checkpoint and at three points of progress) and restarted each time. It
//! must resume the same operation, which ends `succeeded` with succeeded == selected, every
//! account updated and exactly one created task per account.
//!
//! A killed worker's lease stays live for its 30 s; instead of waiting, the test lets it run out
//! by moving its expiry into the past, as the clock would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::support::text;
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

/// Accounts in the org.
const ACCOUNTS: i64 = 100_000;

/// Updates each account with a value of its own and creates a task regarding it.
const WORKFLOW: &str = r#"name: crash-check
mode: async
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
      </entity>
    </fetch>
actions:
  - update:
      set:
        description: "checked {{ id }}"
  - create:
      entity: task
      set:
        subject: "crash check {{ record.name }}"
        regardingobjectid: "account:{{ id }}"
batch:
  size: 100
  concurrency: 4
"#;

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fetchflow"));
    command.args(args).current_dir(dir).env("NO_COLOR", "1");
    command
}

fn fetchflow(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

fn project() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fetchflow-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::write(
        dir.join("fetchflow.yaml"),
        "state: state.db\nconnections:\n  default:\n    local: org.db\n",
    )
    .unwrap();
    std::fs::write(dir.join("workflows/crash-check.yaml"), WORKFLOW).unwrap();
    let demo = ACCOUNTS.to_string();
    let output = fetchflow(&dir, &["org", "init", "--demo", &demo, "--org", "org.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    dir
}

fn open(path: &Path) -> Connection {
    let connection = Connection::open(path).unwrap();
    connection.busy_timeout(Duration::from_secs(10)).unwrap();
    fetchflow::org::local::register_functions(&connection).unwrap();
    connection
}

/// The workflow's operation as the state store has it: (id, status, succeeded), if created.
fn operation(dir: &Path) -> Option<(String, String, i64)> {
    let path = dir.join("state.db");
    if !path.exists() {
        return None;
    }
    open(&path)
        .query_row(
            "SELECT id, status, succeeded FROM operations WHERE workflow = 'crash-check' \
             ORDER BY created_at LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .unwrap_or(None)
}

/// Starts `run --wait`, waits until `until` says so (or the process ends), then SIGKILLs it.
/// Returns whether the process was still running when killed.
fn run_and_kill(dir: &Path, until: impl Fn(Duration, i64) -> bool) -> bool {
    let mut child: Child = command(dir, &["run", "crash-check", "--wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        // Only once the operation runs (and this process holds its lease) is there something
        // to crash.
        if let Some((_, status, done)) = operation(dir)
            && status == "in_progress"
            && until(started.elapsed(), done)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress to kill at"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // `Child::kill` sends SIGKILL on Unix: no checkpoint, no lease release.
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// Lets the killed worker's lease run out, as 30 s would.
fn expire_lease(dir: &Path) {
    open(&dir.join("state.db"))
        .execute(
            "UPDATE operations SET lease_expires_at = '2000-01-01T00:00:00.000000Z' \
             WHERE status = 'in_progress' AND lease_expires_at IS NOT NULL",
            [],
        )
        .unwrap();
}

fn count(connection: &Connection, sql: &str) -> i64 {
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn a_killed_run_resumes_and_every_record_is_done_exactly_once() {
    let dir = project();
    let tasks_before = count(&open(&dir.join("org.db")), "SELECT count(*) FROM task");

    // Kill once before the first checkpoint, then at three points of progress.
    let kill_points: [Box<dyn Fn(Duration, i64) -> bool>; 4] = [
        Box::new(|elapsed, _| elapsed >= Duration::from_millis(300)),
        Box::new(|_, done| done >= ACCOUNTS / 5),
        Box::new(|_, done| done >= ACCOUNTS * 2 / 5),
        Box::new(|_, done| done >= ACCOUNTS * 3 / 5),
    ];
    let mut first_id: Option<String> = None;
    let mut progress = Vec::new();
    for until in kill_points {
        let killed = run_and_kill(&dir, until);
        assert!(killed, "the run ended before it could be killed");
        let (id, status, succeeded) = operation(&dir).expect("the operation was created");
        assert_eq!(status, "in_progress", "killed mid-run");
        assert_eq!(first_id.get_or_insert_with(|| id.clone()), &id);
        progress.push(succeeded);
        expire_lease(&dir);
    }
    assert!(
        progress.windows(2).all(|pair| pair[0] <= pair[1]),
        "{progress:?}"
    );

    // The last restart resumes the same operation and runs it to its end.
    let output = fetchflow(&dir, &["run", "crash-check", "--wait"]);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{stderr}",
        text(&output.stdout)
    );
    assert!(
        stderr.contains("resuming the interrupted operation"),
        "{stderr}"
    );
    let id = first_id.unwrap();
    let output = fetchflow(&dir, &["ops", "show", &id, "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["status"], "succeeded", "{shown:#}");
    assert_eq!(shown["counts"]["selected"], ACCOUNTS, "{shown:#}");
    assert_eq!(shown["counts"]["succeeded"], ACCOUNTS, "{shown:#}");
    assert_eq!(shown["counts"]["failed"], 0, "{shown:#}");
    let state = open(&dir.join("state.db"));
    assert_eq!(
        count(&state, "SELECT count(*) FROM operations"),
        1,
        "every restart resumed the one operation"
    );

    let org = open(&dir.join("org.db"));
    assert_eq!(count(&org, "SELECT count(*) FROM account"), ACCOUNTS);
    assert_eq!(
        count(
            &org,
            "SELECT count(*) FROM account WHERE description = 'checked ' || accountid"
        ),
        ACCOUNTS,
        "every account updated"
    );
    assert_eq!(
        count(&org, "SELECT count(*) FROM task") - tasks_before,
        ACCOUNTS,
        "one task created per account, none twice"
    );
    assert_eq!(
        count(
            &org,
            "SELECT count(DISTINCT t.regardingobjectid) FROM task t \
             JOIN account a ON a.accountid = t.regardingobjectid \
             WHERE t.subject LIKE 'crash check %' AND t.\"regardingobjectid@target\" = 'account'"
        ),
        ACCOUNTS,
        "every account has its created task"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
