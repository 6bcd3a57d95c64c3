//! The committed JSON Schemas match the Rust types, work with a standard validator, and
//! accept every example workflow.

use std::path::Path;

use fetchflow::schema::{CONFIG_SCHEMA_PATH, WORKFLOW_SCHEMA_PATH, config_schema, workflow_schema};

/// Fails when a committed schema differs from the generated one. Run with
/// `FETCHFLOW_UPDATE_SCHEMAS=1 cargo test --test schema` to rewrite them.
#[test]
fn committed_schemas_match_the_rust_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, generated) in [
        (WORKFLOW_SCHEMA_PATH, workflow_schema()),
        (CONFIG_SCHEMA_PATH, config_schema()),
    ] {
        let path = root.join(path);
        if std::env::var_os("FETCHFLOW_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is out of date with the Rust types; run `FETCHFLOW_UPDATE_SCHEMAS=1 cargo test --test schema` and commit it",
            path.display()
        );
    }
}

fn yaml_to_json(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap()
}

fn validator(schema: &str) -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn every_example_workflow_satisfies_the_schema_and_names_it_for_editors() {
    let validator = validator(&workflow_schema());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/workflow.schema.json"),
            "{} lacks the yaml-language-server modeline",
            path.display()
        );
        let instance = yaml_to_json(&text);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        count += 1;
    }
    assert!(
        count >= 5,
        "expected at least five example workflows, found {count}"
    );
}

#[test]
fn the_schema_rejects_what_the_parser_rejects() {
    let validator = validator(&workflow_schema());
    let base = "name: x\nselect: {fetchxml: \"<fetch/>\"}\n";
    let cases = [
        (
            "unknown top-level key",
            format!("{base}actions: [{{delete: {{}}}}]\nfoo: 1\n"),
        ),
        (
            "two kinds in one action",
            format!("{base}actions: [{{delete: {{}}, assign: {{owner: x}}}}]\n"),
        ),
        ("no actions", format!("{base}actions: []\n")),
        (
            "bad mode",
            format!("{base}actions: [{{delete: {{}}}}]\nmode: later\n"),
        ),
        (
            "batch size over 1000",
            format!("{base}actions: [{{delete: {{}}}}]\nbatch: {{size: 1001}}\n"),
        ),
        (
            "bad name",
            "name: Bad Name\nselect: {fetchxml: x}\nactions: [{delete: {}}]\n".to_string(),
        ),
        (
            "trigger with nothing",
            format!("{base}actions: [{{delete: {{}}}}]\ntriggers: [{{timezone: UTC}}]\n"),
        ),
    ];
    for (what, text) in cases {
        assert!(
            !validator.is_valid(&yaml_to_json(&text)),
            "schema accepted: {what}"
        );
    }
    assert!(validator.is_valid(&yaml_to_json(&format!(
        "{base}actions: [{{delete: {{}}}}]\n"
    ))));
}

#[test]
fn the_config_schema_accepts_the_documented_example() {
    let validator = validator(&config_schema());
    let text = r#"
workflows: workflows
state: .fetchflow/state.db
connections:
  default:
    local: .fetchflow/org.db
  prod:
    dataverse:
      url: https://contoso.crm.dynamics.com
      tenant: 00000000-0000-0000-0000-000000000000
      client_id: 00000000-0000-0000-0000-000000000000
      client_secret: "{{ secret('DATAVERSE_CLIENT_SECRET') }}"
      authority: https://login.microsoftonline.com
server:
  listen: 127.0.0.1:8080
  token: "{{ secret('FETCHFLOW_TOKEN') }}"
"#;
    assert!(validator.is_valid(&yaml_to_json(text)));
    assert!(!validator.is_valid(&yaml_to_json("connections: {a: {local: x, dataverse: {url: u, tenant: t, client_id: c, client_secret: s}}}")));
}
