//! The compiled workflow: the plan the engine runs. Only `compile` builds it, so every value
//! in it has been checked; nothing here is optional that a run needs.

use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use serde_json::Value;

use crate::schedule::Schedule;

/// A checked workflow, ready to plan and run.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    pub file: PathBuf,
    /// SHA-256 of the file's bytes, hex: the workflow version recorded on every operation.
    pub version: String,
    pub connection: String,
    pub mode: Mode,
    pub triggers: Vec<Trigger>,
    /// Default run variables, in file order.
    pub vars: Vec<(String, Value)>,
    pub selection: Selection,
    pub actions: Vec<Action>,
    pub batch: Batch,
    pub max_failures: u64,
    pub overlap: Overlap,
    pub callback: Option<Callback>,
    pub sync: SyncLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Async,
    Sync,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Async => "async",
            Mode::Sync => "sync",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Cron(Box<CronTrigger>),
    Webhook(WebhookTrigger),
}

#[derive(Debug, Clone)]
pub struct CronTrigger {
    /// The expression as written.
    pub expression: String,
    pub timezone: Tz,
    pub missed: Missed,
    pub schedule: Schedule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    RunOnce,
    Skip,
}

#[derive(Debug, Clone)]
pub struct WebhookTrigger {
    /// Template of the HMAC key (usually `{{ secret('NAME') }}`), rendered at request time.
    pub secret: Option<String>,
}

/// The FetchXML selection: a template rendered once per run with the run's vars.
#[derive(Debug, Clone)]
pub struct Selection {
    pub fetchxml: String,
    /// Logical name of the root entity, as found when validating with the default vars.
    pub entity: String,
}

#[derive(Debug, Clone)]
pub struct Action {
    /// Position in the file's `actions` list.
    pub index: usize,
    /// Expression template; the action is skipped for records where it is false.
    pub when: Option<String>,
    pub kind: ActionKind,
}

#[derive(Debug, Clone)]
pub enum ActionKind {
    Update {
        set: Vec<FieldValue>,
    },
    Assign {
        owner: String,
    },
    SetState {
        statecode: i32,
        statuscode: i32,
    },
    Create {
        entity: String,
        set: Vec<FieldValue>,
    },
    Delete,
    Call {
        api: String,
        params: Vec<FieldValue>,
        background: bool,
    },
}

impl ActionKind {
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::Update { .. } => "update",
            ActionKind::Assign { .. } => "assign",
            ActionKind::SetState { .. } => "set_state",
            ActionKind::Create { .. } => "create",
            ActionKind::Delete => "delete",
            ActionKind::Call { .. } => "call",
        }
    }
}

/// One column (or parameter) and the value to write: a literal, or a template rendered per record.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldValue {
    pub name: String,
    pub value: ValueSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    Literal(Value),
    Template(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub size: u32,
    pub concurrency: u32,
    pub bypass_plugins: bool,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            size: 100,
            concurrency: 4,
            bypass_plugins: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    Skip,
    Queue,
    Replace,
}

#[derive(Debug, Clone)]
pub struct Callback {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    /// `None` = the default Dataverse-compatible payload.
    pub body: Option<String>,
    pub secret: Option<String>,
    pub on: Vec<CallbackEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackEvent {
    Succeeded,
    Failed,
    Canceled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncLimits {
    pub max_records: u64,
    pub timeout: Duration,
}

impl Default for SyncLimits {
    fn default() -> Self {
        SyncLimits {
            max_records: 500,
            timeout: Duration::from_secs(120),
        }
    }
}
