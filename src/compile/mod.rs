//! `compile`: raw workflow → checked `Workflow`, reporting every problem of a file in one pass.
//!
//! Pure: no file, network or clock access; `load::compile_files` reads the files and calls
//! `compile_source` for each, then `check_unique_names` for the checks that span files.

mod checker;
mod selection;
mod templates;
pub mod values;
mod workflow;

use serde_json::Value;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

pub use workflow::{
    Action, ActionKind, Batch, Callback, CallbackEvent, CronTrigger, FieldValue, Missed, Mode,
    Overlap, Selection, SyncLimits, Trigger, ValueSource, WebhookTrigger, Workflow,
};

use crate::diagnostics::{Diagnostic, Problem, did_you_mean};
use crate::metadata::{Catalogue, EntityMeta};
use crate::model::{
    RawAction, RawCallback, RawCallbackEvent, RawMissed, RawMode, RawOverlap, RawTrigger,
    RawWorkflow, SpannedMap, offset_of,
};
use crate::source::SourceFile;
use checker::Checker;
use templates::{Names, Scope};

/// What compile checks names against: the table metadata and the configured connections.
#[derive(Debug, Clone, Copy)]
pub struct CompileContext<'a> {
    pub catalogue: &'a Catalogue,
    /// Connection names from fetchflow.yaml; `None` when there is no config file, in which
    /// case only the implicit `default` connection exists.
    pub connections: Option<&'a [String]>,
}

/// The outcome for one file: its source, the compiled workflow when there were no errors,
/// and every diagnostic (warnings travel with a successful compile too).
#[derive(Debug)]
pub struct FileOutcome {
    pub source: SourceFile,
    pub workflow: Option<Workflow>,
    pub diagnostics: Vec<Diagnostic>,
    /// The declared name and where it is, when the file parsed far enough to have one.
    pub name: Option<(String, usize, usize)>,
}

/// Parses and compiles text already read.
pub fn compile_source(source: SourceFile, context: &CompileContext<'_>) -> FileOutcome {
    match crate::model::parse_yaml::<RawWorkflow>(&source) {
        Ok(raw) => {
            let name = Some((
                raw.name.value.clone(),
                offset_of(&raw.name),
                crate::model::len_of(&raw.name),
            ));
            let (workflow, diagnostics) = compile(&source, &raw, context);
            FileOutcome {
                source,
                workflow,
                diagnostics,
                name,
            }
        }
        Err(diagnostic) => FileOutcome {
            source,
            workflow: None,
            diagnostics: vec![*diagnostic],
            name: None,
        },
    }
}

/// A workflow name declared in a file that is not being compiled (a sibling of a file given
/// on the command line), as `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredName {
    pub name: String,
    pub location: String,
}

/// Two files declaring one name: each compiled file gets an error naming the others, whether
/// they were compiled too or only declared in `elsewhere`.
pub fn check_unique_names(outcomes: &mut [FileOutcome], elsewhere: &[DeclaredName]) {
    let mut declarations: Vec<(String, String, Option<usize>)> = elsewhere
        .iter()
        .map(|declared| (declared.name.clone(), declared.location.clone(), None))
        .collect();
    for (idx, outcome) in outcomes.iter().enumerate() {
        if let Some((name, offset, _)) = &outcome.name {
            let (line, column) = outcome.source.line_column(*offset);
            let location = format!("{}:{line}:{column}", outcome.source.display_name());
            declarations.push((name.clone(), location, Some(idx)));
        }
    }
    for (idx, outcome) in outcomes.iter_mut().enumerate() {
        let Some((name, offset, len)) = outcome.name.clone() else {
            continue;
        };
        let others: Vec<&str> = declarations
            .iter()
            .filter(|(other, _, other_idx)| *other == name && *other_idx != Some(idx))
            .map(|(_, location, _)| location.as_str())
            .collect();
        if others.is_empty() {
            continue;
        }
        let problem = Problem::error(
            "duplicate-name",
            offset,
            len,
            format!(
                "workflow name `{name}` is also declared in {}",
                others.join(", ")
            ),
        )
        .with_help(
            "names identify workflows in the CLI, the API and webhook URLs; rename one of them",
        );
        outcome.diagnostics.push(Diagnostic::at(
            &outcome.source,
            offset,
            len,
            "name",
            problem,
        ));
        outcome.workflow = None;
    }
}

/// Compiles one parsed workflow file: every check runs, every problem is reported.
pub fn compile(
    source: &SourceFile,
    raw: &RawWorkflow,
    context: &CompileContext<'_>,
) -> (Option<Workflow>, Vec<Diagnostic>) {
    let mut checker = Checker::new(source);
    let catalogue = context.catalogue;

    check_name(&mut checker, &raw.name);
    let connection = check_connection(&mut checker, raw.connection.as_ref(), context.connections);
    let mode = match raw.mode.as_ref().map(|mode| mode.value) {
        Some(RawMode::Sync) => Mode::Sync,
        Some(RawMode::Async) | None => Mode::Async,
    };
    let vars = check_vars(&mut checker, &raw.vars);
    let var_names: Vec<&str> = raw.vars.keys().collect();
    let plain_names = Names {
        vars: var_names.clone(),
        record: None,
        catalogue,
    };
    let triggers = check_triggers(&mut checker, &raw.triggers, &plain_names);

    let selected = selection::check_selection(&mut checker, raw, &vars, catalogue);
    let record_names = Names {
        vars: var_names,
        record: selected.as_ref().map(|selected| selected.scope.clone()),
        catalogue,
    };
    let root_entity = selected
        .as_ref()
        .and_then(|selected| catalogue.entity(&selected.entity));
    let actions = check_actions(
        &mut checker,
        &raw.actions,
        &record_names,
        root_entity,
        catalogue,
    );

    let batch = check_batch(&mut checker, raw);
    let max_failures = match &raw.max_failures {
        Some(node) if node.value < 0 => {
            checker.at_node(
                node,
                "max_failures",
                Problem::error("out-of-range", 0, 0, "max_failures cannot be negative")
                    .with_help("0 fails the operation at the first failed record"),
            );
            0
        }
        Some(node) => node.value.unsigned_abs(),
        None => 0,
    };
    let overlap = match raw.overlap.as_ref().map(|overlap| overlap.value) {
        Some(RawOverlap::Queue) => Overlap::Queue,
        Some(RawOverlap::Replace) => Overlap::Replace,
        Some(RawOverlap::Skip) | None => Overlap::Skip,
    };
    let callback = raw
        .callback
        .as_ref()
        .and_then(|callback| check_callback(&mut checker, callback, &plain_names));
    let sync = check_sync(&mut checker, raw);

    let has_errors = checker.has_errors();
    let diagnostics = checker.diagnostics;
    if has_errors {
        return (None, diagnostics);
    }
    let Some(selected) = selected else {
        return (None, diagnostics);
    };
    let workflow = Workflow {
        name: raw.name.value.clone(),
        description: raw.description.as_ref().map(|d| d.value.clone()),
        file: source.path.clone(),
        version: content_hash(&source.text),
        connection,
        mode,
        triggers,
        vars,
        selection: Selection {
            fetchxml: raw.select.value.fetchxml.value.clone(),
            entity: selected.entity,
        },
        actions,
        batch,
        max_failures,
        overlap,
        callback,
        sync,
    };
    (Some(workflow), diagnostics)
}

/// Hex SHA-256 of the workflow file's text: the version recorded on every operation.
pub fn content_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn check_name(checker: &mut Checker<'_>, name: &Spanned<String>) {
    let value = &name.value;
    let valid = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        let suggestion = suggest_name(value);
        let mut problem = Problem::error(
            "invalid-name",
            0,
            0,
            format!("`{value}` is not a valid workflow name"),
        );
        problem.help = Some(match suggestion {
            Some(suggestion) => format!(
                "use 1-63 lower-case letters, digits, `-` or `_`, starting with a letter or digit, e.g. `{suggestion}`"
            ),
            None => {
                "use 1-63 lower-case letters, digits, `-` or `_`, starting with a letter or digit"
                    .to_string()
            }
        });
        checker.at_node(name, "name", problem);
    }
}

fn suggest_name(value: &str) -> Option<String> {
    let mut suggestion = String::new();
    for c in value.trim().chars() {
        match c {
            'a'..='z' | '0'..='9' | '_' | '-' => suggestion.push(c),
            'A'..='Z' => suggestion.push(c.to_ascii_lowercase()),
            ' ' | '.' => suggestion.push('-'),
            _ => {}
        }
    }
    let suggestion = suggestion.trim_start_matches(['-', '_']).to_string();
    let suggestion: String = suggestion.chars().take(63).collect();
    (!suggestion.is_empty() && suggestion != value).then_some(suggestion)
}

fn check_connection(
    checker: &mut Checker<'_>,
    connection: Option<&Spanned<String>>,
    configured: Option<&[String]>,
) -> String {
    let Some(node) = connection else {
        return "default".to_string();
    };
    let name = &node.value;
    let known: Vec<&str> = match configured {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => vec!["default"],
    };
    if !known.contains(&name.as_str()) {
        let mut problem = Problem::error(
            "unknown-connection",
            0,
            0,
            format!("connection `{name}` is not defined"),
        );
        problem.help = Some(match (did_you_mean(name, known.iter().copied()), configured) {
            (Some(suggestion), _) => format!("did you mean `{suggestion}`?"),
            (None, None) => {
                "without a fetchflow.yaml only the `default` local org exists; define the connection under `connections:` in fetchflow.yaml".to_string()
            }
            (None, Some(_)) => format!("defined connections: {}", known.join(", ")),
        });
        checker.at_node(node, "connection", problem);
    }
    name.clone()
}

fn check_vars(
    checker: &mut Checker<'_>,
    vars: &SpannedMap<Spanned<Value>>,
) -> Vec<(String, Value)> {
    let mut checked = Vec::with_capacity(vars.len());
    for (key, value) in vars.iter() {
        let name = &key.value;
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            checker.at_node(
                key,
                &format!("vars.{name}"),
                Problem::error(
                    "invalid-var-name",
                    0,
                    0,
                    format!("`{name}` is not a valid variable name"),
                )
                .with_help(
                    "use letters, digits and `_`, starting with a letter, so templates can write `vars.name`",
                ),
            );
        }
        if value.value.is_object() {
            checker.at_node(
                value,
                &format!("vars.{name}"),
                Problem::error(
                    "invalid-var-value",
                    0,
                    0,
                    format!("variable `{name}` is a mapping"),
                )
                .with_help(
                    "a variable default is a string, number, boolean, null or a list of them",
                ),
            );
        }
        checked.push((name.clone(), value.value.clone()));
    }
    checked
}

fn check_triggers(
    checker: &mut Checker<'_>,
    triggers: &[Spanned<RawTrigger>],
    names: &Names<'_>,
) -> Vec<crate::compile::Trigger> {
    let mut compiled = Vec::new();
    let mut webhooks = 0;
    let mut expressions: Vec<(String, String)> = Vec::new();
    for (idx, node) in triggers.iter().enumerate() {
        let path = format!("triggers[{idx}]");
        let trigger = &node.value;
        match (&trigger.cron, &trigger.webhook) {
            (Some(_), Some(_)) | (None, None) => {
                checker.at_node(
                    node,
                    &path,
                    Problem::error(
                        "invalid-trigger",
                        0,
                        0,
                        "a trigger needs exactly one of `cron` or `webhook`",
                    )
                    .with_help(
                        "write `- cron: \"0 2 * * *\"` or `- webhook: {}` as separate list items",
                    ),
                );
            }
            (Some(cron), None) => {
                if let Some(cron_trigger) = check_cron_trigger(checker, trigger, cron, &path) {
                    let key = (
                        cron.value.trim().to_string(),
                        cron_trigger.timezone.name().to_string(),
                    );
                    if expressions.contains(&key) {
                        checker.at_node(
                            cron,
                            &format!("{path}.cron"),
                            Problem::warning(
                                "duplicate-trigger",
                                0,
                                0,
                                "this schedule is declared twice; it fires once",
                            ),
                        );
                    } else {
                        expressions.push(key);
                        compiled.push(crate::compile::Trigger::Cron(Box::new(cron_trigger)));
                    }
                }
            }
            (None, Some(webhook)) => {
                webhooks += 1;
                for (key, field) in [("timezone", &trigger.timezone)] {
                    if let Some(field) = field {
                        checker.at_node(
                            field,
                            &format!("{path}.{key}"),
                            Problem::error(
                                "invalid-trigger",
                                0,
                                0,
                                format!("`{key}` applies to cron triggers, not webhooks"),
                            ),
                        );
                    }
                }
                if let Some(missed) = &trigger.missed {
                    checker.at_node(
                        missed,
                        &format!("{path}.missed"),
                        Problem::error(
                            "invalid-trigger",
                            0,
                            0,
                            "`missed` applies to cron triggers, not webhooks",
                        ),
                    );
                }
                if webhooks > 1 {
                    checker.at_node(
                        webhook,
                        &format!("{path}.webhook"),
                        Problem::error(
                            "duplicate-trigger",
                            0,
                            0,
                            "a workflow has at most one webhook trigger (POST /hooks/<name>)",
                        ),
                    );
                }
                let secret = webhook.value.secret.as_ref().map(|secret| {
                    checker.check_template(
                        secret,
                        &format!("{path}.webhook.secret"),
                        Scope::Secret,
                        names,
                    );
                    secret.value.clone()
                });
                compiled.push(crate::compile::Trigger::Webhook(WebhookTrigger { secret }));
            }
        }
    }
    compiled
}

fn check_cron_trigger(
    checker: &mut Checker<'_>,
    trigger: &RawTrigger,
    cron: &Spanned<String>,
    path: &str,
) -> Option<CronTrigger> {
    let timezone = match &trigger.timezone {
        None => Some(chrono_tz::UTC),
        Some(zone) => match crate::schedule::parse_timezone(&zone.value) {
            Ok(tz) => Some(tz),
            Err(problem) => {
                checker.in_scalar(zone, &format!("{path}.timezone"), problem);
                None
            }
        },
    };
    let spec = match crate::schedule::parse_cron(&cron.value) {
        Ok(spec) => Some(spec),
        Err(problem) => {
            checker.in_scalar(cron, &format!("{path}.cron"), problem);
            None
        }
    };
    let (spec, timezone) = (spec?, timezone?);
    if let Some(problem) = spec.never_fires_warning() {
        checker.in_scalar(cron, &format!("{path}.cron"), problem);
    }
    let schedule = crate::schedule::Schedule::new(spec, timezone);
    let missed = match trigger.missed.as_ref().map(|missed| missed.value) {
        Some(RawMissed::Skip) => Missed::Skip,
        Some(RawMissed::RunOnce) | None => Missed::RunOnce,
    };
    Some(CronTrigger {
        expression: cron.value.clone(),
        timezone,
        missed,
        schedule,
    })
}

fn check_actions(
    checker: &mut Checker<'_>,
    actions: &Spanned<Vec<Spanned<RawAction>>>,
    names: &Names<'_>,
    root_entity: Option<&EntityMeta>,
    catalogue: &Catalogue,
) -> Vec<Action> {
    if actions.value.is_empty() {
        checker.at_node(
            actions,
            "actions",
            Problem::error("no-actions", 0, 0, "a workflow needs at least one action")
                .with_help("add e.g. `- update: {set: {description: \"...\"}}`"),
        );
    }
    let mut compiled = Vec::new();
    for (index, node) in actions.value.iter().enumerate() {
        let path = format!("actions[{index}]");
        let action = &node.value;
        let kinds: Vec<&str> = [
            action.update.as_ref().map(|_| "update"),
            action.assign.as_ref().map(|_| "assign"),
            action.set_state.as_ref().map(|_| "set_state"),
            action.create.as_ref().map(|_| "create"),
            action.delete.as_ref().map(|_| "delete"),
            action.call.as_ref().map(|_| "call"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if kinds.len() != 1 {
            let message = if kinds.is_empty() {
                "an action needs one of update, assign, set_state, create, delete or call"
                    .to_string()
            } else {
                format!(
                    "an action has exactly one kind, this one has {}",
                    kinds.join(" and ")
                )
            };
            checker.at_node(
                node,
                &path,
                Problem::error("invalid-action", 0, 0, message).with_help(
                    "split it into separate list items; they run in order for each record",
                ),
            );
            continue;
        }
        if let Some(when) = &action.when {
            checker.check_expression(when, &format!("{path}.when"), names);
        }
        let kind = actions_kind(checker, action, &path, names, root_entity, catalogue);
        if let Some(kind) = kind {
            compiled.push(Action {
                index,
                when: action.when.as_ref().map(|when| when.value.clone()),
                kind,
            });
        }
    }
    compiled
}

fn actions_kind(
    checker: &mut Checker<'_>,
    action: &RawAction,
    path: &str,
    names: &Names<'_>,
    entity: Option<&EntityMeta>,
    catalogue: &Catalogue,
) -> Option<ActionKind> {
    if let Some(update) = &action.update {
        let path = format!("{path}.update");
        if update.value.set.is_empty() {
            checker.at_node(
                update,
                &path,
                Problem::error("empty-update", 0, 0, "`update.set` names no columns")
                    .with_help("add `set: {column: value}`"),
            );
        }
        let set = checker.check_columns(
            &update.value.set,
            &format!("{path}.set"),
            entity,
            names,
            catalogue,
            Write::Update,
        );
        return Some(ActionKind::Update { set });
    }
    if let Some(assign) = &action.assign {
        let owner = &assign.value.owner;
        let path = format!("{path}.assign.owner");
        if crate::template::is_literal(&owner.value) {
            let value = owner.value.trim();
            let (kind, id) = match value.split_once(':') {
                Some((kind, id)) => (kind, id),
                None => ("systemuser", value),
            };
            if !matches!(kind, "systemuser" | "team") || !values::is_guid(id) {
                checker.at_node(
                    owner,
                    &path,
                    Problem::error(
                        "invalid-owner",
                        0,
                        0,
                        format!("`{value}` is not an owner"),
                    )
                    .with_help("write a systemuser id, or `team:<id>` for a team, e.g. \"team:5e000000-0000-4000-8000-000000000003\""),
                );
            }
        } else {
            checker.check_template(owner, &path, Scope::Action, names);
        }
        if let Some(entity) = entity
            && entity.attribute("ownerid").is_none()
        {
            checker.at_node(
                assign,
                &path,
                Problem::error(
                    "not-assignable",
                    0,
                    0,
                    format!(
                        "`{}` rows have no owner, so they cannot be assigned",
                        entity.logical_name
                    ),
                ),
            );
        }
        return Some(ActionKind::Assign {
            owner: owner.value.trim().to_string(),
        });
    }
    if let Some(set_state) = &action.set_state {
        let path = format!("{path}.set_state");
        let state = &set_state.value.statecode;
        let status = &set_state.value.statuscode;
        let (Ok(statecode), Ok(statuscode)) =
            (i32::try_from(state.value), i32::try_from(status.value))
        else {
            checker.at_node(
                set_state,
                &path,
                Problem::error(
                    "out-of-range",
                    0,
                    0,
                    "statecode and statuscode are small integers",
                ),
            );
            return None;
        };
        if let Some(entity) = entity {
            if entity.states.is_empty() {
                checker.at_node(
                    set_state,
                    &path,
                    Problem::error(
                        "no-state",
                        0,
                        0,
                        format!("`{}` rows have no state to set", entity.logical_name),
                    ),
                );
            } else if entity.state(statecode).is_none() {
                let states: Vec<String> = entity
                    .states
                    .iter()
                    .map(|s| format!("{} ({})", s.value, s.label))
                    .collect();
                checker.at_node(
                    state,
                    &format!("{path}.statecode"),
                    Problem::error(
                        "invalid-state",
                        0,
                        0,
                        format!(
                            "`{statecode}` is not a statecode of `{}`",
                            entity.logical_name
                        ),
                    )
                    .with_help(format!("use one of: {}", states.join(", "))),
                );
            } else if let Err(message) = entity.valid_status(statecode, statuscode) {
                checker.at_node(
                    status,
                    &format!("{path}.statuscode"),
                    Problem::error("invalid-status", 0, 0, message),
                );
            }
        }
        return Some(ActionKind::SetState {
            statecode,
            statuscode,
        });
    }
    if let Some(create) = &action.create {
        let path = format!("{path}.create");
        let Some(entity_node) = &create.value.entity else {
            checker.at_node(
                create,
                &path,
                Problem::error(
                    "create-needs-entity",
                    0,
                    0,
                    "`create` needs `entity`: the table to create rows in",
                )
                .with_help(
                    "e.g. `create: {entity: task, set: {subject: \"Review {{ record.name }}\"}}`",
                ),
            );
            return None;
        };
        let target = catalogue.entity(&entity_node.value);
        if target.is_none() {
            let mut problem = Problem::error(
                "unknown-entity",
                0,
                0,
                format!("table `{}` does not exist", entity_node.value),
            );
            if let Some(suggestion) = did_you_mean(&entity_node.value, catalogue.entity_names()) {
                problem = problem.with_help(format!("did you mean `{suggestion}`?"));
            }
            checker.at_node(entity_node, &format!("{path}.entity"), problem);
        }
        let set = checker.check_columns(
            &create.value.set,
            &format!("{path}.set"),
            target,
            names,
            catalogue,
            Write::Create,
        );
        return Some(ActionKind::Create {
            entity: entity_node.value.clone(),
            set,
        });
    }
    if action.delete.is_some() {
        return Some(ActionKind::Delete);
    }
    if let Some(call) = &action.call {
        let path = format!("{path}.call");
        let api = &call.value.api;
        let valid = api
            .value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && api
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid {
            checker.at_node(
                api,
                &format!("{path}.api"),
                Problem::error(
                    "invalid-api-name",
                    0,
                    0,
                    format!("`{}` is not a custom API unique name", api.value),
                )
                .with_help(
                    "use the API's unique name, e.g. `sample_Recalculate` (letters, digits, `_`)",
                ),
            );
        }
        let params = checker.check_params(&call.value.params, &format!("{path}.params"), names);
        return Some(ActionKind::Call {
            api: api.value.clone(),
            params,
            background: call.value.background.as_ref().is_some_and(|b| b.value),
        });
    }
    None
}

/// Whether columns are written by an update of the selected rows or a create of new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Update,
    Create,
}

impl Checker<'_> {
    fn check_columns(
        &mut self,
        set: &SpannedMap<Spanned<Value>>,
        path: &str,
        entity: Option<&EntityMeta>,
        names: &Names<'_>,
        catalogue: &Catalogue,
        write: Write,
    ) -> Vec<FieldValue> {
        let mut fields = Vec::with_capacity(set.len());
        for (key, value) in set.iter() {
            let column = &key.value;
            let column_path = format!("{path}.{column}");
            let template = value
                .value
                .as_str()
                .filter(|text| !crate::template::is_literal(text));
            if let Some(entity) = entity {
                match entity.attribute(column) {
                    None => {
                        let mut problem = Problem::error(
                            "unknown-column",
                            0,
                            0,
                            format!("`{}` has no column `{column}`", entity.logical_name),
                        );
                        if let Some(suggestion) = did_you_mean(column, entity.attribute_names()) {
                            problem = problem.with_help(format!("did you mean `{suggestion}`?"));
                        }
                        self.at_node(key, &column_path, problem);
                    }
                    Some(attribute) => {
                        let writable = match write {
                            Write::Update => attribute.valid_for_update,
                            Write::Create => attribute.valid_for_create,
                        };
                        if !writable {
                            let help = if matches!(column.as_str(), "statecode" | "statuscode") {
                                "use a `set_state: {statecode: .., statuscode: ..}` action"
                                    .to_string()
                            } else if column == "ownerid" {
                                "use an `assign: {owner: ..}` action".to_string()
                            } else if *column == entity.primary_id {
                                "created rows get a deterministic id from (operation, record, action); the primary key is not written".to_string()
                            } else {
                                "Dataverse sets this column itself".to_string()
                            };
                            let verb = match write {
                                Write::Update => "updated",
                                Write::Create => "set on create",
                            };
                            self.at_node(
                                key,
                                &column_path,
                                Problem::error(
                                    "not-writable",
                                    0,
                                    0,
                                    format!("`{}.{column}` cannot be {verb}", entity.logical_name),
                                )
                                .with_help(help),
                            );
                        } else if template.is_none()
                            && let Err(mismatch) =
                                values::check_literal(attribute, &value.value, catalogue)
                        {
                            let mut problem = Problem::error("value-type", 0, 0, mismatch.message);
                            problem.help = mismatch.help;
                            self.at_node(value, &column_path, problem);
                        }
                    }
                }
            }
            let source = match template {
                Some(_) => {
                    let text_node = Spanned {
                        value: value.value.as_str().unwrap_or_default().to_string(),
                        referenced: value.referenced,
                        defined: value.defined,
                    };
                    self.check_template(&text_node, &column_path, Scope::Action, names);
                    ValueSource::Template(text_node.value)
                }
                None => {
                    if matches!(value.value, Value::Array(_) | Value::Object(_)) {
                        self.at_node(
                            value,
                            &column_path,
                            Problem::error(
                                "value-type",
                                0,
                                0,
                                format!("`{column}` takes a single value, not a list or mapping"),
                            ),
                        );
                    }
                    ValueSource::Literal(value.value.clone())
                }
            };
            fields.push(FieldValue {
                name: column.clone(),
                value: source,
            });
        }
        fields
    }

    fn check_params(
        &mut self,
        params: &SpannedMap<Spanned<Value>>,
        path: &str,
        names: &Names<'_>,
    ) -> Vec<FieldValue> {
        params
            .iter()
            .map(|(key, value)| {
                let param_path = format!("{path}.{}", key.value);
                let source = match value.value.as_str() {
                    Some(text) if !crate::template::is_literal(text) => {
                        let text_node = Spanned {
                            value: text.to_string(),
                            referenced: value.referenced,
                            defined: value.defined,
                        };
                        self.check_template(&text_node, &param_path, Scope::Action, names);
                        ValueSource::Template(text.to_string())
                    }
                    _ => ValueSource::Literal(value.value.clone()),
                };
                FieldValue {
                    name: key.value.clone(),
                    value: source,
                }
            })
            .collect()
    }
}

fn check_batch(checker: &mut Checker<'_>, raw: &RawWorkflow) -> Batch {
    let mut batch = Batch::default();
    let Some(node) = &raw.batch else {
        return batch;
    };
    if let Some(size) = &node.value.size {
        match u32::try_from(size.value) {
            Ok(value @ 1..=1000) => batch.size = value,
            _ => checker.at_node(
                size,
                "batch.size",
                Problem::error(
                    "out-of-range",
                    0,
                    0,
                    format!("batch.size must be between 1 and 1000, not {}", size.value),
                )
                .with_help("1000 is the most records Dataverse accepts in one UpdateMultiple/$batch request"),
            ),
        }
    }
    if let Some(concurrency) = &node.value.concurrency {
        match u32::try_from(concurrency.value) {
            Ok(value @ 1..=52) => batch.concurrency = value,
            _ => checker.at_node(
                concurrency,
                "batch.concurrency",
                Problem::error(
                    "out-of-range",
                    0,
                    0,
                    format!(
                        "batch.concurrency must be between 1 and 52, not {}",
                        concurrency.value
                    ),
                )
                .with_help("Dataverse allows at most 52 concurrent requests per user"),
            ),
        }
    }
    batch.bypass_plugins = node.value.bypass_plugins.as_ref().is_some_and(|b| b.value);
    batch
}

fn check_callback(
    checker: &mut Checker<'_>,
    node: &Spanned<RawCallback>,
    names: &Names<'_>,
) -> Option<Callback> {
    let callback = &node.value;
    checker.check_template(&callback.url, "callback.url", Scope::Callback, names);
    check_callback_url(checker, &callback.url);
    let method = match &callback.method {
        None => "POST".to_string(),
        Some(method) => {
            let upper = method.value.to_ascii_uppercase();
            const METHODS: [&str; 4] = ["POST", "PUT", "PATCH", "GET"];
            if !METHODS.contains(&upper.as_str()) {
                let mut problem = Problem::error(
                    "invalid-method",
                    0,
                    0,
                    format!("`{}` is not a callback method", method.value),
                );
                problem.help = Some(match did_you_mean(&upper, METHODS) {
                    Some(suggestion) => format!("did you mean `{suggestion}`?"),
                    None => format!("use one of: {}", METHODS.join(", ")),
                });
                checker.at_node(method, "callback.method", problem);
            }
            upper
        }
    };
    let mut headers = Vec::new();
    for (key, value) in callback.headers.iter() {
        let name = &key.value;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            checker.at_node(
                key,
                &format!("callback.headers.{name}"),
                Problem::error(
                    "invalid-header",
                    0,
                    0,
                    format!("`{name}` is not a valid HTTP header name"),
                ),
            );
        }
        if name.eq_ignore_ascii_case("x-fetchflow-signature")
            || name.eq_ignore_ascii_case("x-fetchflow-delivery")
        {
            checker.at_node(
                key,
                &format!("callback.headers.{name}"),
                Problem::error(
                    "invalid-header",
                    0,
                    0,
                    format!("`{name}` is set by fetchflow itself"),
                )
                .with_help("set `callback.secret` to sign deliveries"),
            );
        }
        checker.check_template(
            value,
            &format!("callback.headers.{name}"),
            Scope::Callback,
            names,
        );
        headers.push((name.clone(), value.value.clone()));
    }
    if let Some(body) = &callback.body {
        checker.check_template(body, "callback.body", Scope::Callback, names);
    }
    if let Some(secret) = &callback.secret {
        checker.check_template(secret, "callback.secret", Scope::Secret, names);
    }
    let on = match &callback.on {
        None => vec![
            CallbackEvent::Succeeded,
            CallbackEvent::Failed,
            CallbackEvent::Canceled,
        ],
        Some(list) => {
            if list.value.is_empty() {
                checker.at_node(
                    list,
                    "callback.on",
                    Problem::error(
                        "empty-on",
                        0,
                        0,
                        "`callback.on` lists no endings, so the callback never runs",
                    )
                    .with_help(
                        "list some of succeeded, failed, canceled, or remove `on` for all three",
                    ),
                );
            }
            let mut events = Vec::new();
            for event in &list.value {
                let event_value = match event.value {
                    RawCallbackEvent::Succeeded => CallbackEvent::Succeeded,
                    RawCallbackEvent::Failed => CallbackEvent::Failed,
                    RawCallbackEvent::Canceled => CallbackEvent::Canceled,
                };
                if events.contains(&event_value) {
                    checker.at_node(
                        event,
                        "callback.on",
                        Problem::warning("duplicate-value", 0, 0, "this ending is listed twice"),
                    );
                } else {
                    events.push(event_value);
                }
            }
            events
        }
    };
    Some(Callback {
        url: callback.url.value.clone(),
        method,
        headers,
        body: callback.body.as_ref().map(|body| body.value.clone()),
        secret: callback.secret.as_ref().map(|secret| secret.value.clone()),
        on,
    })
}

fn check_callback_url(checker: &mut Checker<'_>, url: &Spanned<String>) {
    let text = url.value.trim();
    // A template can only decide the part after its first `{{`; the scheme must be written out.
    let literal_prefix = text.split("{{").next().unwrap_or_default();
    let lower = literal_prefix.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    if !scheme_ok {
        let problem = if literal_prefix.len() < text.len()
            && !lower.contains(':')
            && "https://".starts_with(&lower)
        {
            Problem::error(
                "invalid-url",
                0,
                0,
                "the callback URL must start with http:// or https:// before any template",
            )
            .with_help("write the scheme and host literally, e.g. https://hooks.example.com/{{ operation.id }}")
        } else {
            Problem::error(
                "invalid-url",
                0,
                0,
                format!("`{text}` is not an http or https URL"),
            )
            .with_help(
                "callbacks are delivered over HTTP; write e.g. https://hooks.example.com/fetchflow",
            )
        };
        checker.at_node(url, "callback.url", problem);
        return;
    }
    let after_scheme = &literal_prefix[literal_prefix.find("//").map_or(0, |i| i + 2)..];
    let host_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let host = &after_scheme[..host_end];
    if host.is_empty() && literal_prefix.len() == text.len() {
        checker.at_node(
            url,
            "callback.url",
            Problem::error("invalid-url", 0, 0, format!("`{text}` has no host")),
        );
    } else if host.contains(char::is_whitespace) {
        checker.at_node(
            url,
            "callback.url",
            Problem::error("invalid-url", 0, 0, "the callback URL host contains spaces"),
        );
    }
}

fn check_sync(checker: &mut Checker<'_>, raw: &RawWorkflow) -> SyncLimits {
    let mut limits = SyncLimits::default();
    let Some(node) = &raw.sync else {
        return limits;
    };
    if let Some(max) = &node.value.max_records {
        if max.value < 1 {
            checker.at_node(
                max,
                "sync.max_records",
                Problem::error(
                    "out-of-range",
                    0,
                    0,
                    format!("sync.max_records must be at least 1, not {}", max.value),
                ),
            );
        } else {
            limits.max_records = max.value.unsigned_abs();
        }
    }
    if let Some(timeout) = &node.value.timeout {
        match values::parse_duration(&timeout.value) {
            Ok(duration) if duration.is_zero() => checker.at_node(
                timeout,
                "sync.timeout",
                Problem::error(
                    "invalid-duration",
                    0,
                    0,
                    "sync.timeout must be longer than zero",
                ),
            ),
            Ok(duration) => limits.timeout = duration,
            Err(message) => checker.at_node(
                timeout,
                "sync.timeout",
                Problem::error(
                    "invalid-duration",
                    0,
                    0,
                    format!("`{}` is not a duration: {message}", timeout.value),
                )
                .with_help("write e.g. 30s, 2m, 1h30m"),
            ),
        }
    }
    limits
}
