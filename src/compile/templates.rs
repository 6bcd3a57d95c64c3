//! Template checks for `compile`: syntax, and names that cannot exist where the template is
//! rendered (an undeclared `vars.x`, a `record.x` the selection does not return, `secret()`
//! outside callbacks and connection settings).

use serde_saphyr::Spanned;

use crate::compile::checker::Checker;
use crate::diagnostics::{Problem, did_you_mean};
use crate::fetchxml::SelectedColumns;
use crate::metadata::Catalogue;
use crate::template::{Analysis, Reference};

/// Where a template is rendered, which decides the names it can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `select.fetchxml`: once per run, before any record is read.
    Selection,
    /// Action values and `when`: once per record.
    Action,
    /// `callback` url, headers and body: once when the operation ends.
    Callback,
    /// Signing keys (`callback.secret`, `webhook.secret`).
    Secret,
}

const OPERATION_FIELDS: &[&str] = &["id", "mode", "trigger", "started_at"];
const CALLBACK_OPERATION_FIELDS: &[&str] = &[
    "id",
    "mode",
    "trigger",
    "started_at",
    "status",
    "status_code",
    "state_code",
    "selected",
    "succeeded",
    "failed",
    "skipped",
    "finished_at",
    "error",
    "location",
];
const WORKFLOW_FIELDS: &[&str] = &["name", "version"];

impl Scope {
    fn roots(self) -> &'static [&'static str] {
        match self {
            Scope::Selection | Scope::Callback | Scope::Secret => {
                &["vars", "workflow", "now", "operation"]
            }
            Scope::Action => &["record", "id", "vars", "workflow", "now", "operation"],
        }
    }

    fn allows_secret(self) -> bool {
        matches!(self, Scope::Callback | Scope::Secret)
    }

    fn operation_fields(self) -> &'static [&'static str] {
        match self {
            Scope::Callback | Scope::Secret => CALLBACK_OPERATION_FIELDS,
            Scope::Selection | Scope::Action => OPERATION_FIELDS,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scope::Selection => "the selection is rendered once per run, before any record is read",
            Scope::Callback | Scope::Secret => {
                "callbacks are rendered once, when the operation ends"
            }
            Scope::Action => "actions are rendered once per record",
        }
    }
}

/// The names templates can refer to in one workflow.
pub(crate) struct Names<'a> {
    pub(crate) vars: Vec<&'a str>,
    /// The columns the selection returns; `None` when the selection did not compile (record
    /// references are then not checked, to avoid a second error for the same cause).
    pub(crate) record: Option<RecordScope>,
    pub(crate) catalogue: &'a Catalogue,
}

/// What `record` holds for each selected row.
#[derive(Debug, Clone)]
pub(crate) struct RecordScope {
    pub(crate) selected: SelectedColumns,
    /// (result alias, table) of each column-returning link-entity.
    pub(crate) links: Vec<(String, String)>,
}

impl Checker<'_> {
    /// Checks a template scalar; returns false when it has an error.
    pub(crate) fn check_template(
        &mut self,
        node: &Spanned<String>,
        path: &str,
        scope: Scope,
        names: &Names<'_>,
    ) -> bool {
        match crate::template::analyze(&node.value) {
            Ok(analysis) => self.check_analysis(node, path, scope, names, &analysis),
            Err(problem) => {
                self.in_scalar(node, path, problem);
                false
            }
        }
    }

    /// Checks a `when:` expression.
    pub(crate) fn check_expression(
        &mut self,
        node: &Spanned<String>,
        path: &str,
        names: &Names<'_>,
    ) -> bool {
        match crate::template::analyze_expression(&node.value) {
            Ok(analysis) => self.check_analysis(node, path, Scope::Action, names, &analysis),
            Err(problem) => {
                self.in_scalar(node, path, problem);
                false
            }
        }
    }

    fn check_analysis(
        &mut self,
        node: &Spanned<String>,
        path: &str,
        scope: Scope,
        names: &Names<'_>,
        analysis: &Analysis,
    ) -> bool {
        let before = self.diagnostics.len();
        for secret in &analysis.secrets {
            if !scope.allows_secret() {
                self.in_scalar(
                    node,
                    path,
                    Problem::error(
                        "secret-not-allowed",
                        secret.offset,
                        secret.len,
                        "secret() is only allowed in `callback` and connection settings",
                    )
                    .with_help(format!(
                        "secret values must never reach records, plans or logs ({}); pass non-secret values through `vars`",
                        scope.describe()
                    )),
                );
            } else if secret.name.is_none() {
                self.in_scalar(
                    node,
                    path,
                    Problem::error(
                        "secret-name",
                        secret.offset,
                        secret.len,
                        "secret() takes the environment variable name as a string literal",
                    )
                    .with_help("write e.g. {{ secret('CALLBACK_SECRET') }}"),
                );
            }
        }
        for reference in &analysis.references {
            if let Some(problem) = check_reference(reference, scope, names) {
                self.in_scalar(node, path, problem);
            }
        }
        self.diagnostics[before..]
            .iter()
            .all(|diagnostic| !diagnostic.is_error())
    }
}

fn check_reference(reference: &Reference, scope: Scope, names: &Names<'_>) -> Option<Problem> {
    let (offset, len) = (reference.offset, reference.len);
    let first = reference.path.first().map(String::as_str);
    match reference.root.as_str() {
        "vars" => {
            let name = first?;
            if names.vars.contains(&name) {
                return None;
            }
            let problem = Problem::error(
                "unknown-var",
                offset,
                len,
                format!("`vars.{name}` is not declared"),
            );
            Some(match did_you_mean(name, names.vars.iter().copied()) {
                Some(suggestion) => problem.with_help(format!("did you mean `vars.{suggestion}`?")),
                None => problem.with_help(format!(
                    "declare it with a default value under `vars:`, e.g. `vars: {{{name}: ...}}`"
                )),
            })
        }
        "record" | "id" if !scope.roots().contains(&reference.root.as_str()) => Some(
            Problem::error(
                "record-not-available",
                offset,
                len,
                format!("`{}` is not available here", reference.root),
            )
            .with_help(format!(
                "{}; use `vars`, `workflow`, `now` or `operation`",
                scope.describe()
            )),
        ),
        "record" => check_record_reference(first?, offset, len, names),
        "workflow" => {
            let field = first?;
            (!WORKFLOW_FIELDS.contains(&field))
                .then(|| unknown_field("workflow", field, WORKFLOW_FIELDS, offset, len))
        }
        "operation" => {
            let field = first?;
            let fields = scope.operation_fields();
            (!fields.contains(&field)).then(|| {
                let mut problem = unknown_field("operation", field, fields, offset, len);
                if CALLBACK_OPERATION_FIELDS.contains(&field) {
                    problem.help = Some(format!(
                        "`operation.{field}` is known only when the operation ends, in `callback`"
                    ));
                }
                problem
            })
        }
        "id" | "now" => None,
        other => {
            let roots = scope.roots();
            let problem = Problem::error(
                "unknown-name",
                offset,
                len,
                format!("`{other}` is not defined"),
            );
            Some(match did_you_mean(other, roots.iter().copied()) {
                Some(suggestion) => problem.with_help(format!("did you mean `{suggestion}`?")),
                None => problem.with_help(format!("names available here: {}", roots.join(", "))),
            })
        }
    }
}

fn unknown_field(root: &str, field: &str, fields: &[&str], offset: usize, len: usize) -> Problem {
    let problem = Problem::error(
        "unknown-name",
        offset,
        len,
        format!("`{root}.{field}` does not exist"),
    );
    match did_you_mean(field, fields.iter().copied()) {
        Some(suggestion) => problem.with_help(format!("did you mean `{root}.{suggestion}`?")),
        None => problem.with_help(format!("`{root}` has: {}", fields.join(", "))),
    }
}

fn check_record_reference(
    key: &str,
    offset: usize,
    len: usize,
    names: &Names<'_>,
) -> Option<Problem> {
    let scope = names.record.as_ref()?;
    let catalogue = names.catalogue;
    let selected = &scope.selected;
    if selected.allows(key, catalogue) {
        return None;
    }
    let root = catalogue.entity(&selected.root_entity)?;
    if let Some((alias, column)) = key.split_once('.') {
        let Some((_, entity)) = scope
            .links
            .iter()
            .find(|(link_alias, _)| link_alias == alias)
        else {
            let aliases: Vec<&str> = scope
                .links
                .iter()
                .map(|(alias, _)| alias.as_str())
                .collect();
            let problem = Problem::error(
                "unknown-column",
                offset,
                len,
                format!(
                    "`record[\"{key}\"]`: the selection has no link-entity with alias `{alias}`"
                ),
            );
            return Some(match did_you_mean(alias, aliases.iter().copied()) {
                Some(suggestion) => problem.with_help(format!("did you mean `{suggestion}.{column}`?")),
                None if aliases.is_empty() => problem.with_help(format!(
                    "add a <link-entity ... alias=\"{alias}\"> with <attribute name=\"{column}\"/> to select.fetchxml"
                )),
                None => problem.with_help(format!("link-entity aliases: {}", aliases.join(", "))),
            });
        };
        let link_entity = catalogue.entity(entity)?;
        if link_entity.attribute(column).is_none() {
            let problem = Problem::error(
                "unknown-column",
                offset,
                len,
                format!("`{entity}` has no column `{column}`"),
            );
            return Some(match did_you_mean(column, link_entity.attribute_names()) {
                Some(suggestion) => {
                    problem.with_help(format!("did you mean `{alias}.{suggestion}`?"))
                }
                None => problem,
            });
        }
        return Some(
            Problem::error(
                "column-not-selected",
                offset,
                len,
                format!("`record[\"{key}\"]` is not selected by the FetchXML"),
            )
            .with_help(format!(
                "add <attribute name=\"{column}\"/> to the <link-entity alias=\"{alias}\"> element of select.fetchxml"
            )),
        );
    }
    if root.attribute(key).is_some() {
        return Some(
            Problem::error(
                "column-not-selected",
                offset,
                len,
                format!("`record.{key}` is not selected by the FetchXML"),
            )
            .with_help(format!(
                "add <attribute name=\"{key}\"/> to the <entity name=\"{}\"> element of select.fetchxml",
                root.logical_name
            )),
        );
    }
    let mut candidates: Vec<&str> = selected
        .columns
        .iter()
        .map(|column| column.key.as_str())
        .collect();
    candidates.extend(root.attribute_names());
    let problem = Problem::error(
        "unknown-column",
        offset,
        len,
        format!(
            "`record.{key}`: `{}` has no column `{key}`",
            root.logical_name
        ),
    );
    Some(match did_you_mean(key, candidates) {
        Some(suggestion) => problem.with_help(format!("did you mean `record.{suggestion}`?")),
        None => problem,
    })
}
