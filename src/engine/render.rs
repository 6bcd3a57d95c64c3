//! Rendering a run: the template context of DESIGN 2 ([`RunContext`]), the selection rendered
//! once per run with XML-escaped values ([`render_selection`]), and the actions compiled once
//! ([`ActionPlan::compile`]) and rendered per record into writes and calls
//! ([`ActionPlan::render`]). Pure: time, the operation id and the vars come in as parameters.
//!
//! Replays render the same values: `now` is the operation's, and a created row's id (and a
//! call's idempotency key) is the UUIDv5 of `"{operation_id}/{record_id}/{action_index}"` in
//! [`ID_NAMESPACE`], so update, assign, set_state, create and delete have exactly-once effects.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::Value as Jinja;
use minijinja::value::{Enumerator, Object};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::compile::{ActionKind, FieldValue, Mode, ValueSource, Workflow};
use crate::engine::convert::{convert_literal, convert_rendered, normalize_guid, parse_owner};
use crate::metadata::{AttributeMeta, Catalogue, EntityMeta};
use crate::org::{OwnerRef, Row, Write};
use crate::template::{
    Analysis, RenderError, TemplateSet, analyze, analyze_expression, value_from_json,
};

/// The namespace of the deterministic ids fetchflow derives (created rows, idempotency keys).
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a7e_4b3d_5e8f_9a10_2c3d_4e5f_6a7b);

/// The template key of the selection.
const SELECTION_KEY: &str = "select.fetchxml";

/// Everything fixed for one operation that templates can read.
#[derive(Debug)]
pub struct RunContext {
    pub operation_id: String,
    /// The operation's `now`, fixed for the whole operation (replays render the same values).
    pub now: DateTime<Utc>,
    pub mode: Mode,
    /// `manual`, `api`, `webhook` or `cron@<instant>`.
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub workflow_name: String,
    pub workflow_version: String,
    /// The resolved run vars, in file order.
    pub vars: Vec<(String, Value)>,
    base: OnceLock<Arc<BTreeMap<String, Jinja>>>,
}

impl RunContext {
    /// The context of an operation of `workflow`; `now` is also its `started_at`.
    pub fn new(
        workflow: &Workflow,
        operation_id: impl Into<String>,
        now: DateTime<Utc>,
        trigger: impl Into<String>,
        vars: Vec<(String, Value)>,
    ) -> Self {
        RunContext {
            operation_id: operation_id.into(),
            now,
            mode: workflow.mode,
            trigger: trigger.into(),
            started_at: now,
            workflow_name: workflow.name.clone(),
            workflow_version: workflow.version.clone(),
            vars,
            base: OnceLock::new(),
        }
    }

    /// Replaces `started_at` (a resumed operation keeps its first start).
    #[must_use]
    pub fn with_started_at(mut self, started_at: DateTime<Utc>) -> Self {
        self.started_at = started_at;
        self.base = OnceLock::new();
        self
    }

    /// The run-level context as JSON: `vars`, `workflow`, `now` and `operation`.
    pub fn to_json(&self) -> Value {
        let vars: Map<String, Value> = self.vars.iter().cloned().collect();
        serde_json::json!({
            "vars": vars,
            "workflow": {"name": self.workflow_name, "version": self.workflow_version},
            "now": rfc3339(self.now),
            "operation": {
                "id": self.operation_id,
                "mode": self.mode.as_str(),
                "trigger": self.trigger,
                "started_at": rfc3339(self.started_at),
            },
        })
    }

    /// The run-level values, built once and shared by every record's context.
    fn base(&self) -> &Arc<BTreeMap<String, Jinja>> {
        self.base.get_or_init(|| {
            Arc::new(match self.to_json() {
                Value::Object(map) => map
                    .iter()
                    .map(|(key, value)| (key.clone(), value_from_json(value)))
                    .collect(),
                _ => BTreeMap::new(),
            })
        })
    }

    /// The run-level template context (selection).
    pub fn context(&self) -> Jinja {
        Jinja::from(BTreeMap::clone(self.base()))
    }

    /// The per-record context: the run-level one plus `record` and `id`. The run-level values
    /// are shared, not copied, and the record's column names are interned, so a record costs
    /// one map of its values.
    pub fn record_context(&self, record_id: &str, record: &Row) -> Jinja {
        let record: BTreeMap<Arc<str>, Jinja> = COLUMN_NAMES.with(|names| {
            let mut names = names.borrow_mut();
            record
                .iter()
                .map(|(key, value)| (names.intern(key), value_from_json(value)))
                .collect()
        });
        Jinja::from_object(RecordContext {
            base: Arc::clone(self.base()),
            record: Jinja::from(record),
            id: Jinja::from(record_id),
        })
    }
}

/// The keys of a record's context, in the order a map of them would enumerate.
const RECORD_CONTEXT_KEYS: &[&str] = &["id", "now", "operation", "record", "vars", "workflow"];

/// A record's template context: `record` and `id` over the shared run-level values. It reads
/// as the map `{id, now, operation, record, vars, workflow}`.
#[derive(Debug)]
struct RecordContext {
    base: Arc<BTreeMap<String, Jinja>>,
    record: Jinja,
    id: Jinja,
}

impl Object for RecordContext {
    fn get_value(self: &Arc<Self>, key: &Jinja) -> Option<Jinja> {
        match key.as_str()? {
            "record" => Some(self.record.clone()),
            "id" => Some(self.id.clone()),
            other => self.base.get(other).cloned(),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(RECORD_CONTEXT_KEYS)
    }
}

/// Interned column names, so that a record's context does not allocate its keys.
#[derive(Default)]
struct Interner(HashSet<Arc<str>>);

impl Interner {
    /// More distinct names than this are not kept (they are allocated per use instead).
    const MAX: usize = 4096;

    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(name) = self.0.get(name) {
            return Arc::clone(name);
        }
        let name: Arc<str> = Arc::from(name);
        if self.0.len() < Interner::MAX {
            self.0.insert(Arc::clone(&name));
        }
        name
    }
}

thread_local! {
    static COLUMN_NAMES: RefCell<Interner> = RefCell::default();
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The deterministic id of what action `action_index` does for `record_id` in an operation:
/// lower-case UUIDv5 of `"{operation_id}/{record_id}/{action_index}"`.
pub fn deterministic_id(operation_id: &str, record_id: &str, action_index: usize) -> String {
    let name = format!("{operation_id}/{record_id}/{action_index}");
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

/// Renders the selection with the run's vars; inserted values are XML-escaped.
pub fn render_selection(workflow: &Workflow, ctx: &RunContext) -> Result<String, RenderError> {
    let mut set = TemplateSet::new();
    set.add_xml(SELECTION_KEY, &workflow.selection.fetchxml)
        .map_err(|problem| RenderError::Failed {
            key: SELECTION_KEY.to_string(),
            message: problem.message,
        })?;
    set.render(SELECTION_KEY, &ctx.context())
}

/// Why the actions of a workflow cannot be compiled against an org's catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct PlanError {
    /// Where in the workflow, e.g. `actions[0].update.set.revenue`.
    pub key: String,
    pub message: String,
}

/// Why one record's actions could not be rendered: that record's error, never the run's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("actions[{action_index}] ({action}): {message}")]
pub struct RecordRenderError {
    /// The action's position in the file's `actions` list.
    pub action_index: usize,
    pub action: &'static str,
    pub message: String,
}

/// One action's outcome for one record.
#[derive(Debug, Clone, PartialEq)]
pub enum RenderedAction {
    /// update, assign, set_state, create or delete.
    Write(Write),
    /// A custom API call (at-least-once; the key lets the receiver drop repeats).
    Call {
        api: String,
        params: Row,
        background: bool,
        idempotency_key: String,
    },
    /// Its `when` was false for this record.
    Skipped,
}

/// The actions of a workflow, every template compiled once, ready to render per record.
pub struct ActionPlan {
    entity: String,
    primary_id: String,
    catalogue: Catalogue,
    templates: TemplateSet,
    /// The record columns each template key reads, to name an empty one when a render fails.
    record_columns: HashMap<String, Vec<String>>,
    actions: Vec<PlannedAction>,
}

impl std::fmt::Debug for ActionPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionPlan")
            .field("entity", &self.entity)
            .field("actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

struct PlannedAction {
    index: usize,
    name: &'static str,
    when: Option<String>,
    kind: PlannedKind,
}

enum PlannedKind {
    Update(Vec<PlannedField>),
    Assign(Source<OwnerRef>),
    SetState {
        statecode: i32,
        statuscode: i32,
    },
    Create {
        entity: String,
        fields: Vec<PlannedField>,
    },
    Delete,
    Call {
        api: String,
        params: Vec<PlannedField>,
        background: bool,
    },
}

/// A value known at compile time, or a template key.
enum Source<T> {
    Fixed(T),
    Template(String),
}

struct PlannedField {
    name: String,
    /// `None` for call parameters (no column type).
    attribute: Option<AttributeMeta>,
    source: Source<Value>,
}

impl ActionPlan {
    /// Compiles every action template of `workflow` once, checking columns against `catalogue`
    /// (the org's, which may differ from the one the workflow was validated with).
    pub fn compile(workflow: &Workflow, catalogue: &Catalogue) -> Result<ActionPlan, PlanError> {
        let root = entity(catalogue, &workflow.selection.entity, "select.fetchxml")?;
        let mut templates = Templates::default();
        let mut actions = Vec::with_capacity(workflow.actions.len());
        for action in &workflow.actions {
            let prefix = format!("actions[{}]", action.index);
            let when = match &action.when {
                Some(expression) => {
                    let key = format!("{prefix}.when");
                    templates.add_condition(&key, expression)?;
                    Some(key)
                }
                None => None,
            };
            let path = format!("{prefix}.{}", action.kind.name());
            let kind = match &action.kind {
                ActionKind::Update { set } => PlannedKind::Update(fields(
                    &mut templates,
                    &format!("{path}.set"),
                    set,
                    Some(root),
                )?),
                ActionKind::Assign { owner } => {
                    let key = format!("{path}.owner");
                    if crate::template::is_literal(owner) {
                        PlannedKind::Assign(Source::Fixed(
                            parse_owner(owner).map_err(|message| plan_error(&key, message))?,
                        ))
                    } else {
                        templates.add(&key, owner)?;
                        PlannedKind::Assign(Source::Template(key))
                    }
                }
                ActionKind::SetState {
                    statecode,
                    statuscode,
                } => PlannedKind::SetState {
                    statecode: *statecode,
                    statuscode: *statuscode,
                },
                ActionKind::Create { entity: name, set } => {
                    let target = entity(catalogue, name, &format!("{path}.entity"))?;
                    PlannedKind::Create {
                        entity: name.clone(),
                        fields: fields(&mut templates, &format!("{path}.set"), set, Some(target))?,
                    }
                }
                ActionKind::Delete => PlannedKind::Delete,
                ActionKind::Call {
                    api,
                    params,
                    background,
                } => PlannedKind::Call {
                    api: api.clone(),
                    params: fields(&mut templates, &format!("{path}.params"), params, None)?,
                    background: *background,
                },
            };
            actions.push(PlannedAction {
                index: action.index,
                name: action.kind.name(),
                when,
                kind,
            });
        }
        Ok(ActionPlan {
            entity: root.logical_name.clone(),
            primary_id: root.primary_id.clone(),
            catalogue: catalogue.clone(),
            templates: templates.set,
            record_columns: templates.record_columns,
            actions,
        })
    }

    /// The selected table.
    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// The selected table's primary key column (the record id in each row).
    pub fn primary_id(&self) -> &str {
        &self.primary_id
    }

    /// (position in the file's `actions`, kind) of each action, in the order `render` returns.
    pub fn actions(&self) -> impl Iterator<Item = (usize, &'static str)> + '_ {
        self.actions
            .iter()
            .map(|action| (action.index, action.name))
    }

    /// Renders every action for one record: one entry per action, in the workflow's order.
    pub fn render(
        &self,
        ctx: &RunContext,
        record_id: &str,
        record: &Row,
    ) -> Result<Vec<RenderedAction>, RecordRenderError> {
        let record_id = normalize_guid(record_id);
        let context = ctx.record_context(&record_id, record);
        self.actions
            .iter()
            .map(|action| {
                self.render_action(action, ctx, &record_id, record, &context)
                    .map_err(|message| RecordRenderError {
                        action_index: action.index,
                        action: action.name,
                        message,
                    })
            })
            .collect()
    }

    fn render_action(
        &self,
        action: &PlannedAction,
        ctx: &RunContext,
        record_id: &str,
        record: &Row,
        context: &Jinja,
    ) -> Result<RenderedAction, String> {
        if let Some(key) = &action.when
            && !self
                .templates
                .eval_condition(key, context)
                .map_err(|error| self.explain(error, key, record))?
        {
            return Ok(RenderedAction::Skipped);
        }
        let entity = self.entity.clone();
        let id = record_id.to_string();
        let write = match &action.kind {
            PlannedKind::Update(fields) => Write::Update {
                entity,
                id,
                values: self.values(fields, context, record)?,
            },
            PlannedKind::Assign(owner) => Write::Assign {
                entity,
                id,
                owner: match owner {
                    Source::Fixed(owner) => owner.clone(),
                    Source::Template(key) => {
                        let text = self.render_template(key, context, record)?;
                        parse_owner(&text).map_err(|message| format!("`{key}`: {message}"))?
                    }
                },
            },
            PlannedKind::SetState {
                statecode,
                statuscode,
            } => Write::SetState {
                entity,
                id,
                statecode: *statecode,
                statuscode: *statuscode,
            },
            PlannedKind::Create {
                entity: target,
                fields,
            } => Write::Create {
                entity: target.clone(),
                id: deterministic_id(&ctx.operation_id, record_id, action.index),
                values: self.values(fields, context, record)?,
            },
            PlannedKind::Delete => Write::Delete { entity, id },
            PlannedKind::Call {
                api,
                params,
                background,
            } => {
                return Ok(RenderedAction::Call {
                    api: api.clone(),
                    params: self.values(params, context, record)?,
                    background: *background,
                    idempotency_key: deterministic_id(&ctx.operation_id, record_id, action.index),
                });
            }
        };
        Ok(RenderedAction::Write(write))
    }

    fn render_template(&self, key: &str, context: &Jinja, record: &Row) -> Result<String, String> {
        self.templates
            .render(key, context)
            .map_err(|error| self.explain(error, key, record))
    }

    fn explain(&self, error: RenderError, key: &str, record: &Row) -> String {
        explain(error, self.record_columns.get(key), record)
    }

    fn values(
        &self,
        fields: &[PlannedField],
        context: &Jinja,
        record: &Row,
    ) -> Result<Row, String> {
        let mut row = Row::new();
        for field in fields {
            let value = match (&field.source, &field.attribute) {
                (Source::Fixed(value), Some(attribute)) => {
                    convert_literal(attribute, value, &self.catalogue)?
                }
                (Source::Fixed(value), None) => value.clone(),
                (Source::Template(key), attribute) => {
                    let text = self.render_template(key, context, record)?;
                    match attribute {
                        Some(attribute) => convert_rendered(attribute, &text, &self.catalogue)?,
                        None => Value::String(text),
                    }
                }
            };
            row.insert(field.name.clone(), value);
        }
        Ok(row)
    }
}

fn entity<'a>(
    catalogue: &'a Catalogue,
    name: &str,
    key: &str,
) -> Result<&'a EntityMeta, PlanError> {
    catalogue
        .entity(name)
        .ok_or_else(|| plan_error(key, format!("the org has no table `{name}`")))
}

fn plan_error(key: &str, message: impl Into<String>) -> PlanError {
    PlanError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// The templates of a plan being compiled, with the record columns each one reads.
#[derive(Default)]
struct Templates {
    set: TemplateSet,
    record_columns: HashMap<String, Vec<String>>,
}

impl Templates {
    fn add(&mut self, key: &str, text: &str) -> Result<(), PlanError> {
        let analysis = analyze(text).map_err(|problem| plan_error(key, problem.message))?;
        self.set
            .add(key, text)
            .map_err(|problem| plan_error(key, problem.message))?;
        self.note(key, &analysis);
        Ok(())
    }

    fn add_condition(&mut self, key: &str, expression: &str) -> Result<(), PlanError> {
        let analysis =
            analyze_expression(expression).map_err(|problem| plan_error(key, problem.message))?;
        self.set
            .add_condition(key, expression)
            .map_err(|problem| plan_error(key, problem.message))?;
        self.note(key, &analysis);
        Ok(())
    }

    fn note(&mut self, key: &str, analysis: &Analysis) {
        let mut columns: Vec<String> = analysis
            .references
            .iter()
            .filter(|reference| reference.root == "record")
            .filter_map(|reference| reference.path.first().cloned())
            .collect();
        columns.dedup();
        self.record_columns.insert(key.to_string(), columns);
    }
}

fn fields(
    templates: &mut Templates,
    path: &str,
    set: &[FieldValue],
    entity: Option<&EntityMeta>,
) -> Result<Vec<PlannedField>, PlanError> {
    let mut planned = Vec::with_capacity(set.len());
    for field in set {
        let key = format!("{path}.{}", field.name);
        let attribute = match entity {
            Some(entity) => Some(entity.attribute(&field.name).cloned().ok_or_else(|| {
                plan_error(
                    &key,
                    format!(
                        "the org's `{}` table has no column `{}`",
                        entity.logical_name, field.name
                    ),
                )
            })?),
            None => None,
        };
        let source = match &field.value {
            ValueSource::Literal(value) => Source::Fixed(value.clone()),
            ValueSource::Template(text) => {
                templates.add(&key, text)?;
                Source::Template(key)
            }
        };
        planned.push(PlannedField {
            name: field.name.clone(),
            attribute,
            source,
        });
    }
    Ok(planned)
}

/// A render failure in the workflow author's terms: when the template reads a column this
/// record has no value for (Dataverse omits empty columns), the failure names it.
fn explain(error: RenderError, columns: Option<&Vec<String>>, record: &Row) -> String {
    let (key, expr) = match &error {
        RenderError::Undefined { key, expr } => (key, Some(expr.clone())),
        RenderError::Failed { key, .. } => (key, None),
        _ => return error.to_string(),
    };
    let missing = columns
        .into_iter()
        .flatten()
        .find(|column| !record.contains_key(column.as_str()))
        .map(|column| {
            if column.contains('.') {
                format!("record[\"{column}\"]")
            } else {
                format!("record.{column}")
            }
        });
    match missing.or(expr.filter(|expr| expr.starts_with("record"))) {
        Some(expr) => format!(
            "`{expr}` has no value for this record in `{key}` (the column is empty or not \
             selected); select it, or write `{expr} | default('')` or `{expr} is defined`"
        ),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::compile::{CompileContext, compile_source};
    use crate::source::SourceFile;

    const ACCOUNT: &str = "a0000000-0000-4000-8000-000000000001";

    fn compiled(yaml: &str) -> Workflow {
        let catalogue = Catalogue::builtin();
        let context = CompileContext {
            catalogue: &catalogue,
            connections: None,
        };
        let outcome = compile_source(
            SourceFile::new(std::path::PathBuf::from("test.yaml"), yaml.to_string()),
            &context,
        );
        outcome
            .workflow
            .unwrap_or_else(|| panic!("{:#?}", outcome.diagnostics))
    }

    const WORKFLOW: &str = r#"
name: test-flow
vars:
  territory: West
  owner: 5e000000-0000-4000-8000-000000000002
  bonus: 10
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <attribute name="numberofemployees"/>
        <attribute name="description"/>
        <filter>
          <condition attribute="address1_stateorprovince" operator="eq" value="{{ vars.territory }}"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        description: "Moved from {{ vars.territory }} on {{ now }} by {{ operation.trigger }}"
        numberofemployees: "{{ record.numberofemployees + vars.bonus }}"
        creditonhold: true
  - assign:
      owner: "{{ vars.owner }}"
  - set_state: {statecode: 1, statuscode: 2}
  - create:
      entity: task
      set:
        subject: "Review {{ record.name }}"
        regardingobjectid: "account:{{ id }}"
  - delete: {}
    when: "record.name == 'Remove me'"
  - call: {api: sample_Recalculate, params: {Target: "account:{{ id }}", Force: true}}
"#;

    fn ctx(workflow: &Workflow, vars: Vec<(String, Value)>) -> RunContext {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap();
        RunContext::new(workflow, "op-1", now, "manual", vars)
    }

    fn row(value: Value) -> Row {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn context_has_the_design_shape() {
        let workflow = compiled(WORKFLOW);
        let ctx = ctx(&workflow, workflow.vars.clone());
        let json = ctx.to_json();
        assert_eq!(json["now"], "2026-11-26T02:00:00Z");
        assert_eq!(json["vars"]["bonus"], 10);
        assert_eq!(json["workflow"]["name"], "test-flow");
        assert_eq!(json["workflow"]["version"], workflow.version.as_str());
        assert_eq!(
            json["operation"],
            json!({"id": "op-1", "mode": "async", "trigger": "manual",
                   "started_at": "2026-11-26T02:00:00Z"})
        );
    }

    #[test]
    fn selection_values_are_xml_escaped() {
        let workflow = compiled(WORKFLOW);
        let ctx = ctx(&workflow, vec![("territory".into(), json!("W\"est <&>"))]);
        let xml = render_selection(&workflow, &ctx).unwrap();
        assert!(xml.contains(r#"value="W&quot;est &lt;&amp;&gt;""#), "{xml}");
    }

    #[test]
    fn renders_every_kind_of_action() {
        let workflow = compiled(WORKFLOW);
        let plan = ActionPlan::compile(&workflow, &Catalogue::builtin()).unwrap();
        assert_eq!(plan.entity(), "account");
        assert_eq!(plan.primary_id(), "accountid");
        let ctx = ctx(&workflow, workflow.vars.clone());
        let record = row(json!({"accountid": ACCOUNT, "name": "Contoso", "numberofemployees": 5}));
        let rendered = plan.render(&ctx, &ACCOUNT.to_uppercase(), &record).unwrap();
        assert_eq!(rendered.len(), 6);
        assert_eq!(
            rendered[0],
            RenderedAction::Write(Write::Update {
                entity: "account".into(),
                id: ACCOUNT.into(),
                values: row(json!({
                    "description": "Moved from West on 2026-11-26T02:00:00Z by manual",
                    "numberofemployees": 15,
                    "creditonhold": true,
                })),
            })
        );
        assert_eq!(
            rendered[1],
            RenderedAction::Write(Write::Assign {
                entity: "account".into(),
                id: ACCOUNT.into(),
                owner: OwnerRef {
                    entity: "systemuser".into(),
                    id: "5e000000-0000-4000-8000-000000000002".into()
                },
            })
        );
        assert!(matches!(
            rendered[2],
            RenderedAction::Write(Write::SetState {
                statecode: 1,
                statuscode: 2,
                ..
            })
        ));
        let task_id = deterministic_id("op-1", ACCOUNT, 3);
        assert_eq!(
            rendered[3],
            RenderedAction::Write(Write::Create {
                entity: "task".into(),
                id: task_id.clone(),
                values: row(json!({
                    "subject": "Review Contoso",
                    "regardingobjectid": format!("account:{ACCOUNT}"),
                })),
            })
        );
        assert_eq!(rendered[4], RenderedAction::Skipped);
        assert_eq!(
            rendered[5],
            RenderedAction::Call {
                api: "sample_Recalculate".into(),
                params: row(json!({"Target": format!("account:{ACCOUNT}"), "Force": true})),
                background: false,
                idempotency_key: deterministic_id("op-1", ACCOUNT, 5),
            }
        );
        // `when` true → the delete is rendered.
        let record = row(json!({"name": "Remove me", "numberofemployees": 1}));
        let rendered = plan.render(&ctx, ACCOUNT, &record).unwrap();
        assert_eq!(
            rendered[4],
            RenderedAction::Write(Write::Delete {
                entity: "account".into(),
                id: ACCOUNT.into()
            })
        );
    }

    #[test]
    fn deterministic_ids_are_stable_and_distinct() {
        let id = deterministic_id("op-1", ACCOUNT, 3);
        assert_eq!(id, deterministic_id("op-1", ACCOUNT, 3));
        assert_eq!(id, id.to_lowercase());
        assert_eq!(Uuid::parse_str(&id).unwrap().get_version_num(), 5);
        assert_ne!(id, deterministic_id("op-2", ACCOUNT, 3));
        assert_ne!(id, deterministic_id("op-1", ACCOUNT, 4));
        assert_ne!(
            id,
            deterministic_id("op-1", "a0000000-0000-4000-8000-000000000002", 3)
        );
    }

    #[test]
    fn an_empty_column_fails_that_record_by_name() {
        let workflow = compiled(WORKFLOW);
        let plan = ActionPlan::compile(&workflow, &Catalogue::builtin()).unwrap();
        let ctx = ctx(&workflow, workflow.vars.clone());
        let err = plan
            .render(&ctx, ACCOUNT, &row(json!({"name": "Contoso"})))
            .unwrap_err();
        assert_eq!(err.action_index, 0);
        assert_eq!(err.action, "update");
        assert!(
            err.to_string()
                .contains("`record.numberofemployees` has no value for this record"),
            "{err}"
        );
    }

    #[test]
    fn a_value_that_does_not_convert_fails_the_record() {
        let yaml = WORKFLOW.replace(
            "numberofemployees: \"{{ record.numberofemployees + vars.bonus }}\"",
            "numberofemployees: \"{{ record.name }}\"",
        );
        let workflow = compiled(&yaml);
        let plan = ActionPlan::compile(&workflow, &Catalogue::builtin()).unwrap();
        let ctx = ctx(&workflow, workflow.vars.clone());
        let err = plan
            .render(&ctx, ACCOUNT, &row(json!({"name": "Contoso"})))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "actions[0] (update): `numberofemployees` is a whole-number column, but the \
             rendered value is \"Contoso\""
        );
        // An empty rendering clears a non-text column.
        let yaml = WORKFLOW.replace(
            "numberofemployees: \"{{ record.numberofemployees + vars.bonus }}\"",
            "numberofemployees: \"{{ '' }}\"",
        );
        let workflow = compiled(&yaml);
        let plan = ActionPlan::compile(&workflow, &Catalogue::builtin()).unwrap();
        let rendered = plan
            .render(&ctx, ACCOUNT, &row(json!({"name": "Contoso"})))
            .unwrap();
        let RenderedAction::Write(Write::Update { values, .. }) = &rendered[0] else {
            panic!("{rendered:?}");
        };
        assert_eq!(values["numberofemployees"], Value::Null);
    }

    #[test]
    fn a_bad_owner_fails_the_record() {
        let workflow = compiled(WORKFLOW);
        let plan = ActionPlan::compile(&workflow, &Catalogue::builtin()).unwrap();
        let ctx = ctx(
            &workflow,
            vec![
                ("territory".into(), json!("West")),
                ("owner".into(), json!("nobody")),
                ("bonus".into(), json!(1)),
            ],
        );
        let err = plan
            .render(
                &ctx,
                ACCOUNT,
                &row(json!({"name": "x", "numberofemployees": 1})),
            )
            .unwrap_err();
        assert_eq!(err.action_index, 1);
        assert!(err.message.contains("is not an owner"), "{err}");
        let ctx = RunContext::new(
            &workflow,
            "op-1",
            ctx.now,
            "manual",
            vec![
                ("territory".into(), json!("West")),
                (
                    "owner".into(),
                    json!("team:5E000000-0000-4000-8000-000000000003"),
                ),
                ("bonus".into(), json!(1)),
            ],
        );
        let rendered = plan
            .render(
                &ctx,
                ACCOUNT,
                &row(json!({"name": "x", "numberofemployees": 1})),
            )
            .unwrap();
        let RenderedAction::Write(Write::Assign { owner, .. }) = &rendered[1] else {
            panic!("{rendered:?}");
        };
        assert_eq!(owner.entity, "team");
        assert_eq!(owner.id, "5e000000-0000-4000-8000-000000000003");
    }

    #[test]
    fn compile_checks_the_org_catalogue() {
        let workflow = compiled(WORKFLOW);
        let mut catalogue = Catalogue::builtin();
        let mut task = catalogue.entity("task").unwrap().clone();
        task.attributes.retain(|a| a.logical_name != "subject");
        catalogue.add_entity(task);
        let err = ActionPlan::compile(&workflow, &catalogue).unwrap_err();
        assert_eq!(err.key, "actions[3].create.set.subject");
        assert!(err.message.contains("no column `subject`"), "{err}");
    }
}
