//! Raw workflow file (DESIGN section 2): what serde reads, with positions, before any check.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::model::SpannedMap;

/// A workflow file: triggers, a FetchXML selection, per-record actions and how to run them.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Workflow")]
#[serde(deny_unknown_fields)]
#[schemars(title = "fetchflow workflow")]
pub struct RawWorkflow {
    /// Unique name of the workflow in its directory; used in the API, the CLI and webhook URLs.
    #[schemars(with = "String", regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub name: Spanned<String>,
    /// What the workflow does, for people.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub description: Option<Spanned<String>>,
    /// A connection name from fetchflow.yaml; default `default`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub connection: Option<Spanned<String>>,
    /// `async` (a durable background operation, the default) or `sync` (inline, small, quick).
    #[serde(default)]
    #[schemars(with = "Option<RawMode>")]
    pub mode: Option<Spanned<RawMode>>,
    /// What starts a run besides a manual run (CLI, API).
    #[serde(default)]
    #[schemars(with = "Vec<RawTrigger>")]
    pub triggers: Vec<Spanned<RawTrigger>>,
    /// Defaults of the run variables; a run can override them.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Value>")]
    pub vars: SpannedMap<Spanned<Value>>,
    /// The FetchXML selection of records to act on.
    #[schemars(with = "RawSelect")]
    pub select: Spanned<RawSelect>,
    /// Applied to each selected record, in order.
    #[schemars(with = "Vec<RawAction>", length(min = 1))]
    pub actions: Spanned<Vec<Spanned<RawAction>>>,
    /// How writes are grouped and sent.
    #[serde(default)]
    #[schemars(with = "Option<RawBatch>")]
    pub batch: Option<Spanned<RawBatch>>,
    /// Failed records tolerated before the operation fails (0 = the first failure fails it).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub max_failures: Option<Spanned<i64>>,
    /// What a trigger does while a run of this workflow is active.
    #[serde(default)]
    #[schemars(with = "Option<RawOverlap>")]
    pub overlap: Option<Spanned<RawOverlap>>,
    /// Notification sent when the operation ends.
    #[serde(default)]
    #[schemars(with = "Option<RawCallback>")]
    pub callback: Option<Spanned<RawCallback>>,
    /// Limits of sync runs.
    #[serde(default)]
    #[schemars(with = "Option<RawSync>")]
    pub sync: Option<Spanned<RawSync>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(rename = "Mode")]
#[serde(rename_all = "snake_case")]
pub enum RawMode {
    Async,
    Sync,
}

/// One trigger: exactly one of `cron` or `webhook`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Trigger")]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["cron"]}, {"required": ["webhook"]}]))]
pub struct RawTrigger {
    /// Crontab expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub cron: Option<Spanned<String>>,
    /// IANA time zone of the cron expression; default UTC.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// After downtime: `run_once` (default, one run for all missed fires) or `skip`.
    #[serde(default)]
    #[schemars(with = "Option<RawMissed>")]
    pub missed: Option<Spanned<RawMissed>>,
    /// `POST /hooks/<name>` starts a run with the JSON body as vars.
    #[serde(default)]
    #[schemars(with = "Option<RawWebhook>")]
    pub webhook: Option<Spanned<RawWebhook>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(rename = "Missed")]
#[serde(rename_all = "snake_case")]
pub enum RawMissed {
    RunOnce,
    Skip,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Webhook")]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// HMAC-SHA256 key; the body must be signed in `X-Fetchflow-Signature: sha256=<hex>`.
    /// Usually `{{ secret('NAME') }}`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub secret: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Select")]
#[serde(deny_unknown_fields)]
pub struct RawSelect {
    /// The FetchXML query, rendered once per run with vars (inserted values are XML-escaped).
    #[schemars(with = "String")]
    pub fetchxml: Spanned<String>,
}

/// One per-record action: exactly one of the six kinds, optionally guarded by `when`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Action")]
#[schemars(extend("oneOf" = [
    {"required": ["update"]}, {"required": ["assign"]}, {"required": ["set_state"]},
    {"required": ["create"]}, {"required": ["delete"]}, {"required": ["call"]}
]))]
pub struct RawAction {
    /// A minijinja expression over the record context; false = the action is skipped for the record.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub when: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<RawUpdate>")]
    pub update: Option<Spanned<RawUpdate>>,
    #[serde(default)]
    #[schemars(with = "Option<RawAssign>")]
    pub assign: Option<Spanned<RawAssign>>,
    #[serde(default)]
    #[schemars(with = "Option<RawSetState>")]
    pub set_state: Option<Spanned<RawSetState>>,
    #[serde(default)]
    #[schemars(with = "Option<RawCreate>")]
    pub create: Option<Spanned<RawCreate>>,
    #[serde(default)]
    #[schemars(with = "Option<RawDelete>")]
    pub delete: Option<Spanned<RawDelete>>,
    #[serde(default)]
    #[schemars(with = "Option<RawCall>")]
    pub call: Option<Spanned<RawCall>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Update")]
#[serde(deny_unknown_fields)]
pub struct RawUpdate {
    /// Column logical name → new value (a literal or a template).
    #[schemars(with = "BTreeMap<String, ScalarValue>")]
    pub set: SpannedMap<Spanned<Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Assign")]
#[serde(deny_unknown_fields)]
pub struct RawAssign {
    /// A systemuser id, or `team:<id>`; may be a template.
    #[schemars(with = "String")]
    pub owner: Spanned<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "SetState")]
#[serde(deny_unknown_fields)]
pub struct RawSetState {
    #[schemars(with = "i64")]
    pub statecode: Spanned<i64>,
    #[schemars(with = "i64")]
    pub statuscode: Spanned<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Create")]
#[serde(deny_unknown_fields)]
pub struct RawCreate {
    /// Logical name of the table to create a row in.
    #[schemars(with = "String")]
    pub entity: Option<Spanned<String>>,
    /// Column logical name → value (a literal or a template).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ScalarValue>")]
    pub set: SpannedMap<Spanned<Value>>,
}

/// Deletes the record. Written `delete: {}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Delete")]
#[serde(deny_unknown_fields)]
pub struct RawDelete {}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Call")]
#[serde(deny_unknown_fields)]
pub struct RawCall {
    /// Unique name of the custom API (or action).
    #[schemars(with = "String")]
    pub api: Spanned<String>,
    /// Request parameters; values may be templates; lookups as `<entity>:<id>`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ScalarValue>")]
    pub params: SpannedMap<Spanned<Value>>,
    /// Run the custom API as a Dataverse background operation.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub background: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Batch")]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    /// Records per write request (1..1000); default 100.
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1, max = 1000))]
    pub size: Option<Spanned<i64>>,
    /// Write requests in flight (1..52); default 4.
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1, max = 52))]
    pub concurrency: Option<Spanned<i64>>,
    /// Dataverse: send the BypassCustomPluginExecution header.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub bypass_plugins: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(rename = "Overlap")]
#[serde(rename_all = "snake_case")]
pub enum RawOverlap {
    Skip,
    Queue,
    Replace,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Callback")]
#[serde(deny_unknown_fields)]
pub struct RawCallback {
    /// http or https URL; may be a template (`{{ operation.id }}`).
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    /// HTTP method; default POST.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub method: Option<Spanned<String>>,
    /// Extra request headers; values may be templates.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: SpannedMap<Spanned<String>>,
    /// Request body template; default is the Dataverse-compatible payload.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub body: Option<Spanned<String>>,
    /// HMAC-SHA256 key for `X-Fetchflow-Signature`; usually `{{ secret('NAME') }}`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub secret: Option<Spanned<String>>,
    /// Which endings are reported; default all three.
    #[serde(default)]
    #[schemars(with = "Option<Vec<RawCallbackEvent>>")]
    pub on: Option<Spanned<Vec<Spanned<RawCallbackEvent>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(rename = "CallbackEvent")]
#[serde(rename_all = "snake_case")]
pub enum RawCallbackEvent {
    Succeeded,
    Failed,
    Canceled,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Sync")]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    /// A sync run refuses a larger selection before writing anything; default 500.
    #[serde(default)]
    #[schemars(with = "Option<u64>", range(min = 1))]
    pub max_records: Option<Spanned<i64>>,
    /// A sync run stops between batches after this long, e.g. `2m`, `30s`; default 2m.
    #[serde(default)]
    #[schemars(
        with = "Option<String>",
        regex(pattern = r"^\s*(\d+\s*(ms|s|m|h|d)\s*)+$")
    )]
    pub timeout: Option<Spanned<String>>,
}

/// Schema-only: a value in `set`/`params`: a literal of the column's type, a template string, or null.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
enum ScalarValue {
    String(String),
    Number(f64),
    Bool(bool),
    Null(()),
}
