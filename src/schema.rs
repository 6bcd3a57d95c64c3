//! JSON Schemas of the workflow and config files, generated from the raw model's serde types
//! so that the schema and the parser cannot disagree. `schemas/*.json` are these, committed.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

use crate::model::{RawConfig, RawWorkflow};

/// Where the committed schemas live, relative to the repository root.
pub const WORKFLOW_SCHEMA_PATH: &str = "schemas/workflow.schema.json";
pub const CONFIG_SCHEMA_PATH: &str = "schemas/config.schema.json";

/// The workflow file schema, as committed (pretty JSON with a trailing newline).
pub fn workflow_schema() -> String {
    generate::<RawWorkflow>("https://fetchflow.dev/schemas/workflow.schema.json")
}

/// The `fetchflow.yaml` schema, as committed.
pub fn config_schema() -> String {
    generate::<RawConfig>("https://fetchflow.dev/schemas/config.schema.json")
}

fn generate<T: JsonSchema>(id: &str) -> String {
    // Draft 7: the draft every editor plugin (yaml-language-server included) and validator reads.
    let generator = SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<T>();
    schema.insert("$id".to_string(), serde_json::Value::String(id.to_string()));
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
