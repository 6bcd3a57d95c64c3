//! `fetchflow plan` from the outside: the changes it shows on a small imported org (human and
//! JSON), var overrides of the wrong type, invalid workflows, and that it leaves the org
//! byte-for-byte unchanged.

use std::path::PathBuf;

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

fn rows() -> Value {
    json!({
        "systemuser": [
            {"systemuserid": USER, "fullname": "Ada Lovelace"},
            {"systemuserid": NEW_OWNER, "fullname": "Grace Hopper"}
        ],
        "account": [
            {"accountid": CONTOSO, "name": "Contoso", "numberofemployees": 120,
             "address1_stateorprovince": "West", "description": "old text",
             "ownerid": format!("systemuser:{USER}")},
            {"accountid": FABRIKAM, "name": "Fabrikam", "address1_stateorprovince": "West",
             "ownerid": format!("systemuser:{USER}")},
            {"accountid": "a0000000-0000-4000-8000-000000000003", "name": "Northwind",
             "address1_stateorprovince": "North"}
        ]
    })
}

const WORKFLOW: &str = r#"name: move-west
vars:
  territory: West
  new_owner: 5e000000-0000-4000-8000-000000000002
  bonus: 5
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <attribute name="description"/>
        <attribute name="ownerid"/>
        <attribute name="statecode"/>
        <filter>
          <condition attribute="address1_stateorprovince" operator="eq" value="{{ vars.territory }}"/>
        </filter>
        <order attribute="name"/>
      </entity>
    </fetch>
actions:
  - update:
      set:
        description: "Moved {{ record.name }} from {{ vars.territory }}"
        numberofemployees: "{{ vars.bonus }}"
  - assign:
      owner: "{{ vars.new_owner }}"
  - set_state: {statecode: 1, statuscode: 2}
  - create:
      entity: task
      set:
        subject: "Review {{ record.name }}"
        regardingobjectid: "account:{{ id }}"
  - delete: {}
    when: "record.name == 'Nobody'"
"#;

/// A project with a config whose `default` connection is an imported small org.
fn project(label: &str) -> PathBuf {
    let dir = tempdir(label);
    std::fs::write(
        dir.join("fetchflow.yaml"),
        "connections:\n  default:\n    local: org.db\n",
    )
    .unwrap();
    std::fs::write(dir.join("workflows/move-west.yaml"), WORKFLOW).unwrap();
    let output = fetchflow(&dir, &["org", "init", "--org", "org.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    std::fs::write(dir.join("rows.json"), rows().to_string()).unwrap();
    let output = fetchflow(&dir, &["org", "import", "rows.json", "--org", "org.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    dir
}

#[test]
fn plan_shows_every_change_as_json() {
    let dir = project("json");
    let output = fetchflow(&dir, &["plan", "move-west", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["workflow"], "move-west");
    assert_eq!(plan["selected"], 2);
    let operation = plan["operation_id"].as_str().unwrap();
    assert_eq!(operation.len(), 36);
    let records = plan["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    let contoso = &records[0];
    assert_eq!(contoso["id"], CONTOSO);
    let actions = contoso["actions"].as_array().unwrap();
    assert_eq!(
        actions[0],
        json!({"index": 0, "action": "update", "changes": [
            {"column": "description", "old": "old text", "new": "Moved Contoso from West"},
            {"column": "numberofemployees", "new": 5}
        ]})
    );
    assert_eq!(
        actions[1],
        json!({"index": 1, "action": "assign", "changes": [
            {"column": "ownerid", "old": USER, "new": format!("systemuser:{NEW_OWNER}")}
        ]})
    );
    assert_eq!(
        actions[2],
        json!({"index": 2, "action": "set_state", "changes": [
            {"column": "statecode", "old": 0, "new": 1},
            {"column": "statuscode", "new": 2}
        ]})
    );
    assert_eq!(actions[3]["action"], "create");
    assert_eq!(actions[3]["entity"], "task");
    assert_eq!(
        actions[3]["values"],
        json!({"subject": "Review Contoso", "regardingobjectid": format!("account:{CONTOSO}")})
    );
    let task_id = actions[3]["id"].as_str().unwrap();
    assert_eq!(task_id, task_id.to_lowercase());
    assert_eq!(&task_id[14..15], "5", "a UUIDv5: {task_id}");
    assert_eq!(
        actions[4],
        json!({"index": 4, "action": "delete", "skipped": true})
    );
    // Fabrikam has no description: selected but empty.
    assert_eq!(
        records[1]["actions"][0]["changes"][0],
        json!({"column": "description", "old": null, "new": "Moved Fabrikam from West"})
    );
}

#[test]
fn plan_prints_human_changes_and_honours_vars_and_limit() {
    let dir = project("human");
    let output = fetchflow(
        &dir,
        &[
            "plan",
            "move-west",
            "--var",
            "territory=North",
            "--limit",
            "1",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("selection: 1 account record\n"), "{stdout}");
    assert!(
        stdout.contains("account a0000000-0000-4000-8000-000000000003"),
        "{stdout}"
    );
    assert!(
        stdout.contains("description: (empty) → \"Moved Northwind from North\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("numberofemployees: (not selected) → 5"),
        "{stdout}"
    );
    assert!(stdout.contains("statecode: 0 → 1"), "{stdout}");
    assert!(stdout.contains("[2] set_state"), "{stdout}");
    assert!(stdout.contains("[3] create task "), "{stdout}");
    assert!(
        stdout.contains("[4] delete: skipped (`when` is false)"),
        "{stdout}"
    );

    // The workflow file path works as well as its name; --limit 0 only counts.
    let output = fetchflow(&dir, &["plan", "workflows/move-west.yaml", "--limit", "0"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("selection: 2 account records\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("[0] update"), "{stdout}");
}

#[test]
fn a_var_of_the_wrong_type_is_refused() {
    let dir = project("bad-var");
    let output = fetchflow(&dir, &["plan", "move-west", "--var", "bonus=lots"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(
        text(&output.stderr).trim(),
        "error: var `bonus` is a number (its default is 5), but the value `lots` is not; \
         give a number such as 5000 or 2.5"
    );
    let output = fetchflow(&dir, &["plan", "move-west", "--var", "teritory=East"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("unknown var `teritory`; did you mean `territory`?"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn unknown_and_invalid_workflows_are_refused() {
    let dir = project("invalid");
    let output = fetchflow(&dir, &["plan", "move-wst"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("did you mean `move-west`?"),
        "{}",
        text(&output.stderr)
    );
    std::fs::write(
        dir.join("workflows/broken.yaml"),
        WORKFLOW
            .replace("move-west", "broken")
            .replace("numberofemployees:", "numberofemployes:"),
    )
    .unwrap();
    let output = fetchflow(&dir, &["plan", "broken"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("numberofemployes"), "{stderr}");
    assert!(
        stderr.contains("is not valid; nothing was planned"),
        "{stderr}"
    );
}

#[test]
fn plan_leaves_the_org_byte_for_byte_unchanged() {
    let dir = project("unchanged");
    let before = checksum(&dir);
    for format in ["human", "json"] {
        let output = fetchflow(&dir, &["plan", "move-west", "--format", format]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    assert_eq!(before, checksum(&dir));
}
