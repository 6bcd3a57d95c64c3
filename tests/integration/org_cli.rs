//! `fetchflow org …` from the outside: init (empty, demo, custom metadata, --force), import
//! (all or nothing, located errors), export, query (json, table, errors, stdin), and the demo
//! org a fresh clone gets on first use of the default connection.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::support::{tempdir, text};
use serde_json::{Value, json};

fn fetchflow(dir: &Path, args: &[&str]) -> Output {
    fetchflow_with_stdin(dir, args, "")
}

fn fetchflow_with_stdin(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fetchflow"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn json_stdout(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", text(&output.stdout)))
}

const ROWS: &str = r#"{
  "systemuser": [{"systemuserid": "5e000000-0000-4000-8000-000000000001", "fullname": "Ada Lovelace"}],
  "account": [
    {"accountid": "a0000000-0000-4000-8000-000000000001", "name": "Contoso", "revenue": 1500000,
     "ownerid": "systemuser:5e000000-0000-4000-8000-000000000001", "createdon": "2025-01-01"},
    {"accountid": "a0000000-0000-4000-8000-000000000002", "name": "Fabrikam", "address1_stateorprovince": "West"}
  ]
}"#;

#[test]
fn init_import_export_round_trip() {
    let dir = tempdir("round-trip");
    let output = fetchflow(&dir, &["org", "init", "--org", "my.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("created an empty local org at my.db"),
        "{}",
        text(&output.stderr)
    );
    std::fs::write(dir.join("rows.json"), ROWS).unwrap();
    let output = fetchflow(&dir, &["org", "import", "rows.json", "--org", "my.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("imported 3 rows into my.db: account 2, systemuser 1"),
        "{}",
        text(&output.stderr)
    );
    let output = fetchflow(&dir, &["org", "export", "account", "--org", "my.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let exported = json_stdout(&output);
    let rows = exported["account"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], json!("Contoso"));
    assert_eq!(
        rows[0]["ownerid"],
        json!("systemuser:5e000000-0000-4000-8000-000000000001")
    );
    assert_eq!(rows[0]["createdon"], json!("2025-01-01T00:00:00Z"));
    assert_eq!(rows[1]["statecode"], json!(0));
    assert!(rows[1].get("revenue").is_none(), "nulls are omitted");

    // The export imports into another org unchanged.
    std::fs::write(dir.join("accounts.json"), &output.stdout).unwrap();
    assert_eq!(
        fetchflow(&dir, &["org", "init", "--org", "copy.db"])
            .status
            .code(),
        Some(0)
    );
    let output = fetchflow(
        &dir,
        &["org", "import", "accounts.json", "--org", "copy.db"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let again = fetchflow(&dir, &["org", "export", "account", "--org", "copy.db"]);
    assert_eq!(json_stdout(&again), exported);
}

#[test]
fn a_bad_import_names_the_place_and_writes_nothing() {
    let dir = tempdir("bad-import");
    assert_eq!(
        fetchflow(&dir, &["org", "init", "--org", "o.db"])
            .status
            .code(),
        Some(0)
    );
    let bad = ROWS.replace("\"revenue\": 1500000", "\"revenue\": \"lots\"");
    std::fs::write(dir.join("rows.json"), bad).unwrap();
    let output = fetchflow(&dir, &["org", "import", "rows.json", "--org", "o.db"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("error: rows.json: account[0].revenue: expected a number, found \"lots\""),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    let users = fetchflow(&dir, &["org", "export", "systemuser", "--org", "o.db"]);
    assert_eq!(json_stdout(&users), json!({"systemuser": []}));

    std::fs::write(
        dir.join("broken.json"),
        "{\"account\": [\n  {\"name\": \"a\",}\n]}",
    )
    .unwrap();
    let output = fetchflow(&dir, &["org", "import", "broken.json", "--org", "o.db"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("error: broken.json:2:"),
        "{}",
        text(&output.stderr)
    );

    let output = fetchflow(&dir, &["org", "import", "missing.json", "--org", "o.db"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("cannot read missing.json"));
}

#[test]
fn init_refuses_to_overwrite_unless_forced_and_never_a_foreign_file() {
    let dir = tempdir("force");
    assert_eq!(
        fetchflow(&dir, &["org", "init", "--org", "o.db"])
            .status
            .code(),
        Some(0)
    );
    let output = fetchflow(&dir, &["org", "init", "--org", "o.db"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("already exists; pass --force"));
    let output = fetchflow(
        &dir,
        &["org", "init", "--org", "o.db", "--force", "--demo", "50"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("with 50 demo accounts"),
        "{}",
        text(&output.stderr)
    );
    std::fs::write(dir.join("notes.txt"), "precious notes, not an org").unwrap();
    let output = fetchflow(&dir, &["org", "init", "--org", "notes.txt", "--force"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("is not a fetchflow org; refusing"));
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "precious notes, not an org"
    );
    let output = fetchflow(&dir, &["org", "export", "account", "--org", "notes.txt"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("is not a fetchflow org"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn custom_metadata_adds_tables_that_import_and_export() {
    let dir = tempdir("metadata");
    std::fs::write(
        dir.join("meta.yaml"),
        "- logical_name: new_project\n  attributes:\n    - {logical_name: new_budget, kind: Money}\n    - {logical_name: new_accountid, kind: Lookup, targets: [account]}\n- logical_name: account\n  attributes:\n    - {logical_name: new_score, kind: Decimal}\n",
    )
    .unwrap();
    let output = fetchflow(
        &dir,
        &["org", "init", "--org", "o.db", "--metadata", "meta.yaml"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    std::fs::write(
        dir.join("rows.json"),
        r#"{"new_project": [{"new_name": "Apollo", "new_budget": 12.5}], "account": [{"name": "A", "new_score": 0.5}]}"#,
    )
    .unwrap();
    let output = fetchflow(&dir, &["org", "import", "rows.json", "--org", "o.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let output = fetchflow(&dir, &["org", "export", "new_project", "--org", "o.db"]);
    let rows = json_stdout(&output);
    assert_eq!(rows["new_project"][0]["new_name"], json!("Apollo"));
    assert_eq!(rows["new_project"][0]["new_budget"], json!(12.5));

    std::fs::write(
        dir.join("bad.yaml"),
        "- logical_name: new_thing\n  attributes:\n    - {logical_name: new_accountid, kind: Lookup, targets: [acount]}\n",
    )
    .unwrap();
    let output = fetchflow(
        &dir,
        &["org", "init", "--org", "bad.db", "--metadata", "bad.yaml"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("target `acount` is not a table (did you mean `account`?)"),
        "{}",
        text(&output.stderr)
    );
    assert!(!dir.join("bad.db").exists());
}

#[test]
fn export_of_an_unknown_entity_suggests_a_name() {
    let dir = tempdir("unknown");
    assert_eq!(
        fetchflow(&dir, &["org", "init", "--org", "o.db"])
            .status
            .code(),
        Some(0)
    );
    let output = fetchflow(&dir, &["org", "export", "acount", "--org", "o.db"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("unknown entity `acount` (did you mean `account`?)"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn query_prints_rows_tables_and_errors() {
    let dir = tempdir("query");
    assert_eq!(
        fetchflow(&dir, &["org", "init", "--org", "o.db"])
            .status
            .code(),
        Some(0)
    );
    std::fs::write(dir.join("rows.json"), ROWS).unwrap();
    assert_eq!(
        fetchflow(&dir, &["org", "import", "rows.json", "--org", "o.db"])
            .status
            .code(),
        Some(0)
    );
    let fetch = r#"<fetch><entity name="account"><attribute name="name"/><attribute name="revenue"/><order attribute="name"/></entity></fetch>"#;
    std::fs::write(dir.join("q.xml"), fetch).unwrap();
    let output = fetchflow(&dir, &["org", "query", "q.xml", "--org", "o.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let rows = json_stdout(&output);
    let names: Vec<&Value> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["name"])
        .collect();
    assert_eq!(names, [&json!("Contoso"), &json!("Fabrikam")]);
    assert!(rows.get("morerecords").is_none());

    let output = fetchflow_with_stdin(
        &dir,
        &["org", "query", "-", "--format", "table", "--org", "o.db"],
        fetch,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    assert!(
        table.lines().next().unwrap_or_default().contains("name"),
        "{table}"
    );
    assert!(table.contains("Fabrikam"), "{table}");
    assert!(text(&output.stderr).contains("2 rows"));

    std::fs::write(
        dir.join("bad.xml"),
        r#"<fetch><entity name="acount"><attribute name="name"/></entity></fetch>"#,
    )
    .unwrap();
    let output = fetchflow(&dir, &["org", "query", "bad.xml", "--org", "o.db"]);
    assert_eq!(output.status.code(), Some(1));
    let error = json_stdout(&output);
    assert!(error["error"]["code"].is_string(), "{error}");
    assert!(error["error"]["number"].is_i64(), "{error}");
    assert!(error["error"]["message"].is_string(), "{error}");

    let output = fetchflow(
        &dir,
        &["org", "query", "q.xml", "--org", "o.db", "--caller", "nope"],
    );
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn the_default_connection_gets_a_demo_org_on_first_use() {
    let dir = tempdir("first-use");
    let output = fetchflow(&dir, &["org", "export", "team"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr)
            .contains("created the local org at .fetchflow/org.db with 10,000 demo accounts"),
        "{}",
        text(&output.stderr)
    );
    assert!(dir.join(".fetchflow/org.db").is_file());
    let teams = json_stdout(&output);
    assert!(
        teams["team"]
            .as_array()
            .unwrap()
            .iter()
            .any(|team| team["teamid"] == json!("5e000000-0000-4000-8000-000000000101"))
    );
    let output = fetchflow(&dir, &["org", "export", "businessunit"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        !text(&output.stderr).contains("created"),
        "only the first use creates it: {}",
        text(&output.stderr)
    );

    // A config's default connection decides where the org lives.
    let configured = tempdir("configured");
    std::fs::write(
        configured.join("fetchflow.yaml"),
        "connections:\n  default:\n    local: data/demo.db\n",
    )
    .unwrap();
    let output = fetchflow(&configured, &["org", "init", "--demo", "20"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(configured.join("data/demo.db").is_file());
}
