//! `fetchflow plan`: a dry run against the workflow's connection. It renders the selection with
//! the run's vars, reads every page of it (by paging cookie, never by offset) to count the
//! records, and renders each action for the first N records to show its change. It writes
//! nothing, by construction: the only org calls are `Org::query_page` reads.
//!
//! Secrets: action and selection templates cannot call `secret()` (compile rejects it) and the
//! callback is never rendered, so nothing shown can carry a secret.
//!
//! `--format json` output (stable):
//! `{"workflow", "operation_id", "now", "selected", "records": [{"id", "actions": [...]}]}`;
//! a record whose actions cannot be rendered has `"error"` instead of `"actions"`. Each action
//! has `index` (position in the file's `actions`) and `action` (its kind), plus:
//! update / assign / set_state: `"changes": [{"column", "old", "new"}]`, where `old` is
//! present only when the selection reads the column (null = empty); create:
//! `"entity", "id", "values"`; delete: `"entity", "id"`; call: `"api", "params", "background",
//! "idempotency_key"`; an action whose `when` is false: `"skipped": true`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use crate::cli::{Cli, render};
use crate::compile::Workflow;
use crate::config::Connection;
use crate::diagnostics::Severity;
use crate::engine::{ActionPlan, RenderedAction, RunContext, render_selection, resolve_cli_vars};
use crate::fetchxml::SelectedColumns;
use crate::metadata::Catalogue;
use crate::org::local::LocalOrg;
use crate::org::{ApiCall, Org, OrgFuture, Page, PageRequest, RecordError, Row, Write};

/// Rows per page read while counting the selection (the Dataverse maximum).
const PAGE_SIZE: u32 = 5_000;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A workflow name (in the configured workflows directory) or a file path.
    pub workflow: String,
    /// Override a var: `--var name=value` (repeatable), parsed to the type of its default.
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// How many records to show the changes of.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub limit: usize,
    /// Output format: human, or json (stable, see `fetchflow plan --help`).
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
}

/// An input problem: printed as `error: …`, exit 1.
pub(super) struct Refusal(pub(super) String);

pub(crate) fn run(cli: &Cli, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    match plan(cli, args) {
        Ok(code) => Ok(code),
        Err(Outcome::Refused(Refusal(message))) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(1))
        }
        Err(Outcome::Failed(error)) => Err(error),
    }
}

pub(super) enum Outcome {
    Refused(Refusal),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Outcome {
    fn from(error: E) -> Self {
        Outcome::Failed(error.into())
    }
}

pub(super) fn refuse(message: impl Into<String>) -> Outcome {
    Outcome::Refused(Refusal(message.into()))
}

fn plan(cli: &Cli, args: &PlanArgs) -> Result<ExitCode, Outcome> {
    let (config, _) = crate::config::load_config(cli.config.as_deref())?;
    let workflow = load_workflow(&config, &args.workflow)?;
    let vars = resolve_cli_vars(&workflow.vars, &args.vars).map_err(|e| refuse(e.to_string()))?;
    let org = open_org(&config, &workflow.connection)?;

    // The only clock read and the only randomness of a plan: a fresh operation.
    let operation_id = uuid::Uuid::new_v4().to_string();
    let ctx = RunContext::new(&workflow, operation_id, Utc::now(), "manual", vars);
    let fetchxml = render_selection(&workflow, &ctx)
        .map_err(|error| refuse(format!("cannot render the selection: {error}")))?;
    let actions = ActionPlan::compile(&workflow, org.catalogue())
        .map_err(|error| refuse(format!("{}: {error}", workflow.file.display())))?;
    let query = crate::fetchxml::parse(&fetchxml).0;
    let selected_columns = query.as_ref().map(|query| query.selected_columns());
    let has_top = query.as_ref().is_some_and(|query| query.top.is_some());

    let (count, first) = read_selection(&org, &fetchxml, has_top, args.limit)?;
    let view = View {
        catalogue: org.catalogue(),
        selected: selected_columns.as_ref(),
    };
    let records: Vec<Value> = first
        .iter()
        .map(|record| view.record(&actions, &ctx, record))
        .collect();

    let mut stdout = std::io::stdout().lock();
    match args.format {
        PlanFormat::Json => {
            let document = json!({
                "workflow": workflow.name,
                "operation_id": ctx.operation_id,
                "now": crate::engine::rfc3339(ctx.now),
                "selected": count,
                "records": records,
            });
            writeln!(stdout, "{}", serde_json::to_string_pretty(&document)?)?;
        }
        PlanFormat::Human => {
            let text = human(&workflow, actions.entity(), count, &records);
            write!(stdout, "{text}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn load_workflow(
    config: &crate::config::Config,
    target: &str,
) -> Result<Workflow, Outcome> {
    let is_file = Path::new(target).is_file();
    let paths = if is_file {
        vec![PathBuf::from(target)]
    } else {
        crate::load::workflow_paths(std::slice::from_ref(&config.workflows))
            .map_err(|error| refuse(error.to_string()))?
    };
    let outcomes = super::compile_workflows(config, &paths);
    let outcome = outcomes.iter().find(|outcome| {
        is_file
            || outcome
                .name
                .as_ref()
                .is_some_and(|(name, _, _)| name == target)
    });
    let Some(outcome) = outcome else {
        let names: Vec<&str> = outcomes
            .iter()
            .filter_map(|outcome| outcome.name.as_ref().map(|(name, _, _)| name.as_str()))
            .collect();
        let hint = crate::diagnostics::did_you_mean(target, names.iter().copied())
            .map(|name| format!("; did you mean `{name}`?"))
            .unwrap_or_default();
        return Err(refuse(format!(
            "no workflow named `{target}` in {}{hint}",
            config.workflows.display()
        )));
    };
    match &outcome.workflow {
        Some(workflow) => Ok(workflow.clone()),
        None => {
            let mut stderr = std::io::stderr().lock();
            for diagnostic in outcome
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
            {
                writeln!(stderr, "{}", render::plain(diagnostic))?;
            }
            Err(refuse(format!(
                "{} is not valid; nothing was planned",
                outcome.source.display_name()
            )))
        }
    }
}

/// The org of a connection, local or Dataverse, for `plan` and `run`.
pub(super) enum ConnectedOrg {
    Local(LocalOrg),
    Dataverse(crate::org::dataverse::DataverseOrg),
}

impl ConnectedOrg {
    fn org(&self) -> &dyn Org {
        match self {
            ConnectedOrg::Local(org) => org,
            ConnectedOrg::Dataverse(org) => org,
        }
    }
}

impl Org for ConnectedOrg {
    fn catalogue(&self) -> &Catalogue {
        self.org().catalogue()
    }

    fn query_page<'a>(
        &'a self,
        fetchxml: &'a str,
        request: &'a PageRequest,
    ) -> OrgFuture<'a, Page> {
        self.org().query_page(fetchxml, request)
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write],
    ) -> OrgFuture<'a, Vec<Result<(), RecordError>>> {
        self.org().write_batch(writes)
    }

    fn call_batch<'a>(
        &'a self,
        calls: &'a [ApiCall],
    ) -> OrgFuture<'a, Vec<Result<Row, RecordError>>> {
        self.org().call_batch(calls)
    }

    fn with_plugins_bypassed(&self) -> Option<std::sync::Arc<dyn Org>> {
        self.org().with_plugins_bypassed()
    }
}

/// Opens the connection `name`. A Dataverse connection gets a token, checks access and loads
/// its metadata (from `<state dir>/metadata/<name>.json` when `metadata pull` wrote it), with
/// secrets from the environment.
pub(super) fn open_org(
    config: &crate::config::Config,
    name: &str,
) -> Result<ConnectedOrg, Outcome> {
    use crate::org::dataverse::{DataverseOptions, DataverseOrg, DataverseSettings};
    let connection = config
        .connections
        .iter()
        .find(|(declared, _)| declared == name)
        .map(|(_, connection)| connection);
    match connection {
        Some(Connection::Local { path }) if name == "default" => {
            Ok(ConnectedOrg::Local(super::org::open_default_org(path)?))
        }
        Some(Connection::Local { path }) => Ok(ConnectedOrg::Local(LocalOrg::open(path)?)),
        Some(declared @ Connection::Dataverse { .. }) => {
            let settings = DataverseSettings::from_connection(declared)
                .ok_or_else(|| refuse(format!("connection `{name}` is not a Dataverse one")))?;
            let options = DataverseOptions {
                metadata_cache: Some(crate::org::dataverse::metadata_cache_path(
                    &config.state,
                    name,
                )),
                ..DataverseOptions::default()
            };
            let secrets = std::sync::Arc::new(|key: &str| std::env::var(key).ok());
            DataverseOrg::connect_blocking(name, &settings, secrets, options)
                .map(ConnectedOrg::Dataverse)
                .map_err(|error| refuse(error.to_string()))
        }
        None => Err(refuse(format!("connection `{name}` is not defined"))),
    }
}

/// Reads every page of the selection by paging cookie; returns the count and the first rows.
fn read_selection(
    org: &ConnectedOrg,
    fetchxml: &str,
    has_top: bool,
    keep: usize,
) -> Result<(u64, Vec<Row>), Outcome> {
    let mut count = 0u64;
    let mut first = Vec::with_capacity(keep.min(1_000));
    let mut request = if has_top {
        // `top` cannot be combined with paging: one request returns at most `top` rows.
        PageRequest::default()
    } else {
        PageRequest {
            page: Some(1),
            count: Some(PAGE_SIZE),
            paging_cookie: None,
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    loop {
        let page = runtime
            .block_on(org.query_page(fetchxml, &request))
            .map_err(|error| refuse(format!("the selection failed: {error} ({})", error.code)))?;
        count += page.rows.len() as u64;
        let room = keep.saturating_sub(first.len());
        first.extend(page.rows.into_iter().take(room));
        if has_top || !page.more_records {
            break;
        }
        request = PageRequest {
            page: request.page.map(|page| page + 1),
            count: Some(PAGE_SIZE),
            paging_cookie: page.paging_cookie,
        };
    }
    Ok((count, first))
}

/// Turns rendered actions into the plan's JSON shape.
struct View<'a> {
    catalogue: &'a Catalogue,
    selected: Option<&'a SelectedColumns>,
}

impl View<'_> {
    fn record(&self, actions: &ActionPlan, ctx: &RunContext, record: &Row) -> Value {
        let Some(id) = record.get(actions.primary_id()).and_then(Value::as_str) else {
            return json!({
                "id": null,
                "error": "the selection returns no primary key (distinct or aggregate queries cannot be planned per record)",
            });
        };
        match actions.render(ctx, id, record) {
            Err(error) => json!({"id": id, "error": error.to_string()}),
            Ok(rendered) => {
                let list: Vec<Value> = rendered
                    .iter()
                    .zip(actions.actions())
                    .map(|(action, (index, kind))| self.action(index, kind, action, record))
                    .collect();
                json!({"id": id, "actions": list})
            }
        }
    }

    fn action(&self, index: usize, kind: &str, action: &RenderedAction, record: &Row) -> Value {
        let mut out = Map::new();
        out.insert("index".into(), json!(index));
        out.insert("action".into(), json!(kind));
        match action {
            RenderedAction::Skipped => {
                out.insert("skipped".into(), json!(true));
            }
            RenderedAction::Call {
                api,
                params,
                background,
                idempotency_key,
            } => {
                out.insert("api".into(), json!(api));
                out.insert("params".into(), Value::Object(params.clone()));
                out.insert("background".into(), json!(background));
                out.insert("idempotency_key".into(), json!(idempotency_key));
            }
            RenderedAction::Write(write) => match write {
                Write::Update { values, .. } => {
                    let changes = values
                        .iter()
                        .map(|(column, new)| self.change(column, new.clone(), record))
                        .collect();
                    out.insert("changes".into(), Value::Array(changes));
                }
                Write::Assign { owner, .. } => {
                    let new = json!(format!("{}:{}", owner.entity, owner.id));
                    let change = self.change("ownerid", new, record);
                    out.insert("changes".into(), json!([change]));
                }
                Write::SetState {
                    statecode,
                    statuscode,
                    ..
                } => {
                    let changes = vec![
                        self.change("statecode", json!(statecode), record),
                        self.change("statuscode", json!(statuscode), record),
                    ];
                    out.insert("changes".into(), Value::Array(changes));
                }
                Write::Create { entity, id, values } => {
                    out.insert("entity".into(), json!(entity));
                    out.insert("id".into(), json!(id));
                    out.insert("values".into(), Value::Object(values.clone()));
                }
                Write::Delete { entity, id } => {
                    out.insert("entity".into(), json!(entity));
                    out.insert("id".into(), json!(id));
                }
            },
        }
        Value::Object(out)
    }

    fn change(&self, column: &str, new: Value, record: &Row) -> Value {
        let mut change = Map::new();
        change.insert("column".into(), json!(column));
        let selected = self
            .selected
            .is_some_and(|selected| selected.allows(column, self.catalogue));
        if selected {
            change.insert(
                "old".into(),
                record.get(column).cloned().unwrap_or(Value::Null),
            );
        }
        change.insert("new".into(), new);
        Value::Object(change)
    }
}

fn human(workflow: &Workflow, entity: &str, count: u64, records: &[Value]) -> String {
    let mut out = format!(
        "plan of {} (dry run: nothing is written)\nselection: {count} {entity} record{}\n",
        workflow.name,
        if count == 1 { "" } else { "s" }
    );
    if records.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "changes of the first {} record{}:\n",
        records.len(),
        if records.len() == 1 { "" } else { "s" }
    ));
    for record in records {
        let id = record["id"].as_str().unwrap_or("(no id)");
        out.push_str(&format!("\n{entity} {id}\n"));
        if let Some(error) = record["error"].as_str() {
            out.push_str(&format!("  error: {error}\n"));
            continue;
        }
        for action in record["actions"].as_array().into_iter().flatten() {
            human_action(&mut out, action);
        }
    }
    out
}

fn human_action(out: &mut String, action: &Value) {
    let index = action["index"].as_u64().unwrap_or_default();
    let kind = action["action"].as_str().unwrap_or_default();
    let head = format!("  [{index}] {kind}");
    if action["skipped"] == json!(true) {
        out.push_str(&format!("{head}: skipped (`when` is false)\n"));
        return;
    }
    match kind {
        "update" | "assign" | "set_state" => {
            out.push_str(&format!("{head}\n"));
            for change in action["changes"].as_array().into_iter().flatten() {
                let old = match change.get("old") {
                    Some(old) => shown(old),
                    None => "(not selected)".to_string(),
                };
                let column = change["column"].as_str().unwrap_or_default();
                out.push_str(&format!(
                    "      {column}: {old} → {}\n",
                    shown(&change["new"])
                ));
            }
        }
        "create" => {
            out.push_str(&format!(
                "{head} {} {}\n",
                action["entity"].as_str().unwrap_or_default(),
                action["id"].as_str().unwrap_or_default()
            ));
            for (column, value) in action["values"].as_object().into_iter().flatten() {
                out.push_str(&format!("      {column}: {}\n", shown(value)));
            }
        }
        "delete" => out.push_str(&format!(
            "{head} {} {}\n",
            action["entity"].as_str().unwrap_or_default(),
            action["id"].as_str().unwrap_or_default()
        )),
        _ => {
            let background = if action["background"] == json!(true) {
                " (background)"
            } else {
                ""
            };
            out.push_str(&format!(
                "{head} {}{background} {}\n",
                action["api"].as_str().unwrap_or_default(),
                action["params"]
            ));
        }
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::Null => "(empty)".to_string(),
        other => other.to_string(),
    }
}
