//! The `fetchflow` binary from the outside: exit codes, output formats, config handling.

use std::path::Path;
use std::process::Command;

use super::diagnostics::BASE;
use super::support::{fetchflow, tempdir, text};

fn project(files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = tempdir("cli");
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

#[test]
fn the_example_workflows_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = fetchflow(root, &["validate", "--deny-warnings"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("files valid"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn human_output_points_at_the_line_with_a_caret_and_exits_1() {
    let bad = BASE.replacen("operator=\"eq\"", "operator=\"gte\"", 1);
    let dir = project(&[("workflows/demo.yaml", &bad)]);
    let output = fetchflow(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("workflows/demo.yaml:13:"), "{stderr}");
    assert!(stderr.contains("unknown operator `gte`"), "{stderr}");
    assert!(
        stderr.contains("operator=\"gte\""),
        "source line missing: {stderr}"
    );
    assert!(stderr.contains("use `ge`"), "{stderr}");
    assert!(stderr.contains("1 error"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn json_output_is_a_stable_array() {
    let bad = BASE.replacen("Europe/London", "Europe/Londn", 1);
    let dir = project(&[("workflows/demo.yaml", &bad)]);
    let output = fetchflow(&dir, &["validate", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let expected = serde_json::json!([{
        "file": "workflows/demo.yaml",
        "line": 4,
        "column": 15,
        "path": "triggers[0].timezone",
        "severity": "error",
        "code": "timezone-unknown",
        "message": "unknown time zone `Europe/Londn`",
        "help": "did you mean `Europe/London`?",
    }]);
    assert_eq!(value, expected);
    let stdout = text(&output.stdout);
    let keys: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.trim().split('"').nth(1))
        .collect();
    assert_eq!(
        keys,
        [
            "file", "line", "column", "path", "severity", "code", "message", "help"
        ]
    );
}

#[test]
fn github_output_is_workflow_commands() {
    let bad = BASE.replacen("\"0 2 * * *\"", "\"0 0 30 2 *\"", 1);
    let dir = project(&[("workflows/demo.yaml", &bad)]);
    let output = fetchflow(&dir, &["validate", "--format", "github"]);
    assert_eq!(output.status.code(), Some(0), "warnings alone pass");
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with(
            "::warning file=workflows/demo.yaml,line=3,col=16,title=fetchflow cron-never-fires::"
        ),
        "{stdout}"
    );
    let denied = fetchflow(&dir, &["validate", "--format", "github", "--deny-warnings"]);
    assert_eq!(denied.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2() {
    let dir = project(&[]);
    let missing = fetchflow(&dir, &["validate", "nope.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("nope.yaml: no such file"),
        "{}",
        text(&missing.stderr)
    );
    assert_eq!(
        fetchflow(&dir, &["validate", "--format", "xml"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(fetchflow(&dir, &["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        fetchflow(&dir, &["--config", "absent.yaml", "validate"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(fetchflow(&dir, &["--help"]).status.code(), Some(0));
}

#[test]
fn validate_takes_files_and_directories_and_checks_names_across_them() {
    let dir = project(&[
        ("a/one.yaml", BASE),
        ("b/two.yml", BASE),
        ("b/notes.txt", "not a workflow"),
    ]);
    let output = fetchflow(&dir, &["validate", "a", "b/two.yml", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let codes: Vec<&str> = value
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["duplicate-name", "duplicate-name"]);
    let single = fetchflow(&dir, &["validate", "a/one.yaml"]);
    assert_eq!(single.status.code(), Some(0), "{}", text(&single.stderr));
    // A changed file is checked against the unchanged files beside it (pre-commit passes only
    // the changed ones).
    std::fs::write(dir.join("a/three.yaml"), BASE).unwrap();
    let changed = fetchflow(&dir, &["validate", "a/one.yaml", "--format", "json"]);
    assert_eq!(changed.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&changed.stdout).unwrap();
    assert_eq!(value[0]["file"], "a/one.yaml");
    assert_eq!(
        value[0]["message"],
        "workflow name `demo` is also declared in a/three.yaml:1:7"
    );
}

#[test]
fn the_config_file_sets_the_directory_and_the_connections() {
    let config = "workflows: jobs\nconnections:\n  prod:\n    dataverse:\n      url: https://contoso.crm.dynamics.com\n      tenant: 00000000-0000-0000-0000-000000000000\n      client_id: 00000000-0000-0000-0000-000000000000\n      client_secret: \"{{ secret('DV_SECRET') }}\"\n";
    let workflow = BASE.replacen("name: demo\n", "name: demo\nconnection: prod\n", 1);
    let dir = project(&[("fetchflow.yaml", config), ("jobs/demo.yaml", &workflow)]);
    let output = fetchflow(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let wrong = BASE.replacen("name: demo\n", "name: demo\nconnection: prd\n", 1);
    std::fs::write(dir.join("jobs/demo.yaml"), wrong).unwrap();
    let output = fetchflow(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("did you mean `prod`?"),
        "{}",
        text(&output.stderr)
    );

    std::fs::write(
        dir.join("fetchflow.yaml"),
        "workflows: jobs\nconections: {}\n",
    )
    .unwrap();
    let output = fetchflow(&dir, &["validate", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value[0]["file"], "fetchflow.yaml");
    assert_eq!(value[0]["code"], "unknown-key");
    assert_eq!(value[0]["help"], "did you mean `connections`?");
}

#[test]
fn schedule_lists_fires_in_utc_and_local_time_across_dst() {
    let london = BASE.replacen("\"0 2 * * *\"", "\"30 1 * * *\"", 1);
    let dir = project(&[("workflows/demo.yaml", &london)]);
    let output = fetchflow(
        &dir,
        &[
            "schedule",
            "demo",
            "--from",
            "2026-03-28T00:00:00Z",
            "--next",
            "3",
            "--format",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let fires: Vec<(&str, &str)> = value[0]["fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|fire| {
            (
                fire["utc"].as_str().unwrap(),
                fire["local"].as_str().unwrap(),
            )
        })
        .collect();
    // 28 March: 01:30 GMT. 29 March: 01:30 does not exist (01:00 GMT → 02:00 BST), so it
    // fires once at the next valid instant, 02:00 BST. 30 March: 01:30 BST.
    assert_eq!(
        fires,
        [
            ("2026-03-28T01:30:00Z", "2026-03-28T01:30:00+00:00"),
            ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00+01:00"),
            ("2026-03-30T00:30:00Z", "2026-03-30T01:30:00+01:00"),
        ]
    );
    let human = fetchflow(
        &dir,
        &["schedule", "--from", "2026-10-24T12:00:00Z", "--next", "2"],
    );
    let stdout = text(&human.stdout);
    // 25 October: 01:30 happens twice (BST then GMT); it fires once, at the first.
    assert!(
        stdout.contains("2026-10-25T00:30:00Z  2026-10-25T01:30:00+01:00"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2026-10-26T01:30:00Z  2026-10-26T01:30:00+00:00"),
        "{stdout}"
    );
    let unknown = fetchflow(&dir, &["schedule", "dem"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("did you mean `demo`?"));
    let bad_from = fetchflow(&dir, &["schedule", "--from", "yesterday"]);
    assert_eq!(bad_from.status.code(), Some(2));
}

#[test]
fn the_pre_commit_hook_runs_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hooks = std::fs::read_to_string(root.join(".pre-commit-hooks.yaml")).unwrap();
    let hooks: serde_json::Value = serde_saphyr::from_str(&hooks).unwrap();
    let hook = hooks
        .as_array()
        .unwrap()
        .iter()
        .find(|hook| hook["id"] == "fetchflow-validate")
        .expect("a fetchflow-validate hook");
    assert!(
        hook["entry"]
            .as_str()
            .unwrap()
            .contains("fetchflow validate")
    );
}

/// Hostile files are refused within a 128 MiB address-space limit: memory stays bounded
/// whatever the input (an allocation past the limit would abort the process instead).
#[test]
fn hostile_files_are_refused_in_bounded_memory() {
    let mut bomb = String::from("name: bomb\nvars:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..10 {
        let refs = vec![format!("*a{}", level - 1); 10].join(", ");
        bomb.push_str(&format!("  a{level}: &a{level} [{refs}]\n"));
    }
    bomb.push_str("select: {fetchxml: x}\nactions: [{delete: {}}]\n");
    let big = format!(
        "name: big\n{}",
        format!("# {}\n", "x".repeat(80)).repeat(130_000)
    );
    let deep = format!("name: deep\nvars:\n  x: {}\n", "[".repeat(100_000));
    let laughs = BASE.replacen(
        "    <fetch>",
        "    <!DOCTYPE fetch [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>\n    <fetch>",
        1,
    );
    let dir = project(&[
        ("bomb.yaml", &bomb),
        ("big.yaml", &big),
        ("deep.yaml", &deep),
        ("laughs.yaml", &laughs),
    ]);
    for (file, code) in [
        ("bomb.yaml", "yaml-limit"),
        ("big.yaml", "file-too-large"),
        ("deep.yaml", "yaml-limit"),
        ("laughs.yaml", "fetchxml-dtd"),
    ] {
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "ulimit -v 131072 && exec '{}' validate {file} --format json",
                env!("CARGO_BIN_EXE_fetchflow")
            ))
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{file}: {}",
            text(&output.stderr)
        );
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let codes: Vec<&str> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&code), "{file}: {codes:?}");
    }
}

/// A workflow on a `dataverse:` connection is validated against the metadata `metadata pull`
/// cached for that connection (a custom table and column), and against the built-in tables
/// when there is no cache (where that table does not exist).
#[test]
fn validate_checks_dataverse_workflows_against_the_pulled_metadata() {
    use fetchflow::metadata::{AttributeMeta, AttributeType, Catalogue, EntityMeta};
    let config = r#"connections:
  prod:
    dataverse:
      url: https://contoso.crm.dynamics.com
      tenant: 00000000-0000-0000-0000-000000000000
      client_id: 00000000-0000-0000-0000-000000000000
      client_secret: "{{ secret('DATAVERSE_CLIENT_SECRET') }}"
"#;
    let workflow = r#"name: close-projects
connection: prod
select:
  fetchxml: |
    <fetch>
      <entity name="new_project">
        <attribute name="new_name"/>
      </entity>
    </fetch>
actions:
  - update:
      set:
        new_budget: 0
"#;
    let dir = project(&[
        ("fetchflow.yaml", config),
        ("workflows/close-projects.yaml", workflow),
    ]);
    let without = fetchflow(&dir, &["validate"]);
    assert_eq!(without.status.code(), Some(1), "{}", text(&without.stderr));
    assert!(
        text(&without.stderr).contains("new_project"),
        "{}",
        text(&without.stderr)
    );

    let mut catalogue = Catalogue::builtin();
    let mut entity = EntityMeta::new("new_project", "new_projects", "new_projectid", "new_name");
    entity.add_attribute(AttributeMeta::string("new_name", 100));
    entity.add_attribute(AttributeMeta::new("new_budget", AttributeType::Money));
    catalogue.add_entity(entity);
    fetchflow::org::dataverse::write_cache(
        &dir.join(".fetchflow/metadata/prod.json"),
        "prod",
        "https://contoso.crm.dynamics.com",
        &catalogue,
    )
    .unwrap();
    let with = fetchflow(&dir, &["validate"]);
    assert_eq!(with.status.code(), Some(0), "{}", text(&with.stderr));

    // A column the environment does not have is still caught, by its real name.
    let wrong = workflow.replace("new_budget", "new_budgte");
    std::fs::write(dir.join("workflows/close-projects.yaml"), wrong).unwrap();
    let output = fetchflow(&dir, &["validate"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("new_budget"),
        "{}",
        text(&output.stderr)
    );
}
