//! `fetchflow run` from the outside: a sync run refused above `sync.max_records` leaves the
//! org byte-for-byte unchanged, a small sync run prints its summary, an async run prints its
//! id and location, `run --wait` executes it here, and per-record failures are listed while
//! the other records succeed, within `max_failures`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::support::{fetchflow, org_checksum as checksum, text};
use serde_json::{Value, json};

fn tempdir(label: &str) -> PathBuf {
    let dir = super::support::tempdir(label);
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    dir
}

const USER: &str = "5e000000-0000-4000-8000-000000000001";
const NEW_OWNER: &str = "5e000000-0000-4000-8000-000000000002";
const CONTOSO: &str = "a0000000-0000-4000-8000-000000000001";
const FABRIKAM: &str = "a0000000-0000-4000-8000-000000000002";
const NORTHWIND: &str = "a0000000-0000-4000-8000-000000000003";

fn rows() -> Value {
    json!({
        "systemuser": [
            {"systemuserid": USER, "fullname": "Ada Lovelace"},
            {"systemuserid": NEW_OWNER, "fullname": "Grace Hopper"}
        ],
        "account": [
            {"accountid": CONTOSO, "name": "Contoso", "numberofemployees": 120,
             "address1_stateorprovince": "West", "description": "12",
             "ownerid": format!("systemuser:{USER}")},
            {"accountid": FABRIKAM, "name": "Fabrikam", "address1_stateorprovince": "West",
             "description": "not a number", "ownerid": format!("systemuser:{USER}")},
            {"accountid": NORTHWIND, "name": "Northwind", "address1_stateorprovince": "West",
             "description": "30", "ownerid": format!("systemuser:{USER}")},
            {"accountid": "a0000000-0000-4000-8000-000000000004", "name": "Litware",
             "address1_stateorprovince": "North"}
        ]
    })
}

/// Moves the West accounts: update, assign, set_state and a created task each.
const WORKFLOW: &str = r#"name: move-west
mode: sync
vars:
  territory: West
  new_owner: 5e000000-0000-4000-8000-000000000002
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <filter>
          <condition attribute="address1_stateorprovince" operator="eq" value="{{ vars.territory }}"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        address1_stateorprovince: "Pacific"
        description: "Moved {{ record.name }} from {{ vars.territory }}"
  - assign:
      owner: "{{ vars.new_owner }}"
  - set_state: {statecode: 1, statuscode: 2}
  - create:
      entity: task
      set:
        subject: "Review {{ record.name }}"
        regardingobjectid: "account:{{ id }}"
sync:
  max_records: 3
"#;

/// Copies description into numberofemployees: Fabrikam's does not convert.
const CONVERT: &str = r#"name: headcount
mode: async
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="description"/>
        <filter>
          <condition attribute="address1_stateorprovince" operator="eq" value="West"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        numberofemployees: "{{ record.description }}"
max_failures: 1
"#;

/// A project with a config whose `default` connection is an imported small org.
fn project(label: &str) -> PathBuf {
    let dir = tempdir(label);
    std::fs::write(
        dir.join("fetchflow.yaml"),
        "state: state.db\nconnections:\n  default:\n    local: org.db\n",
    )
    .unwrap();
    std::fs::write(dir.join("workflows/move-west.yaml"), WORKFLOW).unwrap();
    std::fs::write(dir.join("workflows/headcount.yaml"), CONVERT).unwrap();
    let output = fetchflow(&dir, &["org", "init", "--org", "org.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    std::fs::write(dir.join("rows.json"), rows().to_string()).unwrap();
    let output = fetchflow(&dir, &["org", "import", "rows.json", "--org", "org.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    dir
}

fn export(dir: &Path, entity: &str) -> String {
    let output = fetchflow(dir, &["org", "export", entity, "--org", "org.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    text(&output.stdout)
}

fn rows_of(dir: &Path, entity: &str) -> Vec<Value> {
    let exported: Value = serde_json::from_str(&export(dir, entity)).unwrap();
    exported[entity].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_sync_run_above_max_records_is_refused_and_writes_nothing() {
    let dir = project("refused");
    // The selection has 3 records: a copy of the workflow allows only 2.
    let tight = WORKFLOW
        .replace("name: move-west", "name: move-west-tight")
        .replace("max_records: 3", "max_records: 2");
    std::fs::write(dir.join("workflows/move-west-tight.yaml"), tight).unwrap();
    let before = checksum(&dir);
    let output = fetchflow(&dir, &["run", "move-west-tight", "--sync"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("more than 2 records"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert_eq!(checksum(&dir), before);
}

#[test]
fn a_small_sync_run_succeeds_and_prints_its_summary() {
    let dir = project("sync");
    let output = fetchflow(&dir, &["run", "move-west"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("succeeded (sync run of move-west)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("selected 3, succeeded 3, failed 0, skipped 0"),
        "{stdout}"
    );
    let accounts = rows_of(&dir, "account");
    let moved: Vec<&Value> = accounts
        .iter()
        .filter(|row| row["address1_stateorprovince"] == "Pacific")
        .collect();
    assert_eq!(moved.len(), 3);
    for row in moved {
        assert_eq!(row["ownerid"], format!("systemuser:{NEW_OWNER}"));
        assert_eq!(row["statecode"], 1);
    }
    assert_eq!(rows_of(&dir, "task").len(), 3);
    // Run again: nothing is West any more.
    let output = fetchflow(&dir, &["run", "move-west"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output.stdout).contains("selected 0"));
}

#[test]
fn an_async_run_prints_its_id_and_location_and_waits() {
    let dir = project("async");
    let before = checksum(&dir);
    let output = fetchflow(&dir, &["run", "move-west", "--async"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let id = stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_eq!(uuid_version(&id), Some('4'), "{stdout}");
    assert!(
        stdout.contains(&format!("location: /api/operations/{id}")),
        "{stdout}"
    );
    assert!(stdout.contains("(waiting)"), "{stdout}");
    assert_eq!(
        checksum(&dir),
        before,
        "an async run without --wait writes nothing now"
    );
}

fn uuid_version(id: &str) -> Option<char> {
    (id.len() == 36).then(|| id.chars().nth(14)).flatten()
}

#[test]
fn run_wait_executes_the_operation_here() {
    let dir = project("wait");
    let output = fetchflow(&dir, &["run", "move-west", "--async", "--wait"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("succeeded (async run of move-west)"),
        "{stdout}"
    );
    assert!(stdout.contains("selected 3, succeeded 3"), "{stdout}");
    assert_eq!(rows_of(&dir, "task").len(), 3);
}

#[test]
fn per_record_failures_are_listed_and_max_failures_is_respected() {
    let dir = project("failures");
    // max_failures 1: Fabrikam fails, the others succeed, the operation succeeds.
    let output = fetchflow(&dir, &["run", "headcount", "--wait"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("succeeded 2, failed 1"), "{stdout}");
    assert!(stdout.contains(FABRIKAM), "{stdout}");
    assert!(stdout.contains("actions[0] update"), "{stdout}");
    let accounts = rows_of(&dir, "account");
    let employees = |id: &str| {
        accounts
            .iter()
            .find(|row| row["accountid"] == id)
            .map(|row| row["numberofemployees"].clone())
    };
    assert_eq!(employees(CONTOSO), Some(json!(12)));
    assert_eq!(employees(NORTHWIND), Some(json!(30)));
    assert_eq!(employees(FABRIKAM), Some(Value::Null));

    // max_failures 0: the same failure fails the operation.
    let strict = CONVERT
        .replace("name: headcount", "name: headcount-strict")
        .replace("max_failures: 1", "max_failures: 0");
    std::fs::write(dir.join("workflows/headcount-strict.yaml"), strict).unwrap();
    let output = fetchflow(&dir, &["run", "headcount-strict", "--wait"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("failed (async run of headcount-strict)"),
        "{stdout}"
    );
    assert!(stdout.contains("MaxFailuresExceeded"), "{stdout}");
    assert!(stdout.contains(FABRIKAM), "{stdout}");
}

/// Updates every demo account, one record per batch (so the run takes long enough to stop).
const SLOW: &str = r#"name: slow
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
        description: "Reviewed {{ record.name }} on {{ now }}"
batch:
  size: 1
  concurrency: 1
"#;

#[test]
fn ctrl_c_checkpoints_and_a_second_run_wait_resumes() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;

    let dir = tempdir("interrupt");
    std::fs::write(
        dir.join("fetchflow.yaml"),
        "state: state.db\nconnections:\n  default:\n    local: org.db\n",
    )
    .unwrap();
    std::fs::write(dir.join("workflows/slow.yaml"), SLOW).unwrap();
    let output = fetchflow(&dir, &["org", "init", "--demo", "50000", "--org", "org.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let mut child = Command::new(env!("CARGO_BIN_EXE_fetchflow"))
        .args(["run", "slow", "--wait"])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.starts_with("operation "), "{first}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    assert!(
        rest.contains("resume it with `fetchflow run slow --wait`"),
        "{rest}"
    );

    let output = fetchflow(&dir, &["run", "slow", "--wait"]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("resuming the interrupted operation"),
        "{stderr}"
    );
    assert!(
        stdout.contains("selected 50000, succeeded 50000, failed 0"),
        "{stdout}"
    );
    let accounts = rows_of(&dir, "account");
    assert_eq!(accounts.len(), 50_000);
    assert!(
        accounts.iter().all(|row| row["description"]
            .as_str()
            .is_some_and(|text| text.starts_with("Reviewed "))),
        "an account was not updated"
    );
}
