//! The selection check: render `select.fetchxml` with the default vars (as a run would,
//! XML-escaping inserted values), parse and check it, and map every FetchXML problem back
//! to its line and column in the workflow file.

use serde_json::{Value, json};

use crate::compile::checker::Checker;
use crate::compile::templates::{Names, RecordScope, Scope};
use crate::diagnostics::Problem;
use crate::metadata::Catalogue;
use crate::model::RawWorkflow;
use crate::template::TemplateSet;

/// What the rest of compile needs from a selection that compiled.
pub(crate) struct SelectedRecords {
    pub(crate) entity: String,
    pub(crate) scope: RecordScope,
}

const PATH: &str = "select.fetchxml";

/// The instant `now` renders as at validate time: runs fix `now` per operation, so any
/// instant is representative; a constant keeps validation reproducible.
const VALIDATE_NOW: &str = "2026-01-01T00:00:00Z";

pub(crate) fn check_selection(
    checker: &mut Checker<'_>,
    raw: &RawWorkflow,
    vars: &[(String, Value)],
    catalogue: &Catalogue,
) -> Option<SelectedRecords> {
    let node = &raw.select.value.fetchxml;
    let names = Names {
        vars: vars.iter().map(|(name, _)| name.as_str()).collect(),
        record: None,
        catalogue,
    };
    if !checker.check_template(node, PATH, Scope::Selection, &names) {
        return None;
    }
    let template = node.value.as_str();
    let rendered = match render_with_defaults(raw, vars, template) {
        Ok(rendered) => rendered,
        Err(problem) => {
            checker.in_scalar(node, PATH, problem);
            return None;
        }
    };
    let (query, mut problems) = crate::fetchxml::parse(&rendered.text);
    if let Some(query) = &query {
        problems.extend(crate::fetchxml::check(query, catalogue));
    }
    for problem in problems {
        let problem = rendered.to_template(problem);
        checker.in_scalar(node, PATH, problem);
    }
    // Even a selection with errors names its table and columns: keep checking the actions
    // against them, so one run of validate reports every problem of the file.
    let query = query?;
    if query.aggregate || query.distinct {
        let kind = if query.aggregate {
            "an aggregate query returns groups"
        } else {
            "a distinct query returns no primary key"
        };
        let problem = Problem::error(
            "selection-not-records",
            query.span.offset,
            query.span.len.min(7),
            format!("{kind}, but actions need each record and its id"),
        )
        .with_help("remove `aggregate`/`distinct` from <fetch>; use link-entity `exists` or `any` to avoid repeated records");
        checker.in_scalar(node, PATH, rendered.to_template(problem));
    }
    catalogue.entity(query.root_entity())?;
    let links = query
        .links()
        .into_iter()
        .filter(|link| link.link_type.returns_columns())
        .map(|link| (link.result_alias.clone(), link.name.value.clone()))
        .collect();
    Some(SelectedRecords {
        entity: query.root_entity().to_string(),
        scope: RecordScope {
            selected: query.selected_columns(),
            links,
        },
    })
}

/// Rendered FetchXML and how its byte offsets map back to the template text.
struct Rendered {
    text: String,
    /// (rendered offset, template offset, template length of the piece, whether it was an
    /// expression): literal pieces map byte for byte, an expression maps to its `{{ ... }}`.
    pieces: Vec<(usize, usize, usize, bool)>,
}

impl Rendered {
    fn to_template(&self, mut problem: Problem) -> Problem {
        let start = self.map(problem.offset);
        let end = self.map(problem.offset + problem.len).max(start);
        problem.offset = start.0;
        problem.len = if start.1 {
            start.2
        } else {
            end.0.saturating_sub(start.0)
        };
        problem
    }

    /// (template offset, inside an expression, expression length)
    fn map(&self, offset: usize) -> (usize, bool, usize) {
        let idx = self
            .pieces
            .partition_point(|&(rendered, ..)| rendered <= offset)
            .saturating_sub(1);
        match self.pieces.get(idx) {
            Some(&(rendered, template, len, false)) => {
                (template + (offset - rendered).min(len), false, 0)
            }
            Some(&(_, template, len, true)) => (template, true, len),
            None => (offset, false, 0),
        }
    }
}

fn render_with_defaults(
    raw: &RawWorkflow,
    vars: &[(String, Value)],
    template: &str,
) -> Result<Rendered, Problem> {
    if crate::template::is_literal(template) {
        return Ok(Rendered {
            text: template.to_string(),
            pieces: vec![(0, 0, template.len(), false)],
        });
    }
    let vars_object: serde_json::Map<String, Value> = vars.iter().cloned().collect();
    let context = json!({
        "vars": vars_object,
        "now": VALIDATE_NOW,
        "workflow": {"name": raw.name.value, "version": "0000000000000000000000000000000000000000000000000000000000000000"},
        "operation": {
            "id": "00000000-0000-0000-0000-000000000000",
            "mode": "async",
            "trigger": "manual",
            "started_at": VALIDATE_NOW,
        },
    });
    let context = crate::template::value_from_json(&context);
    let mut set = TemplateSet::new();
    // Statement blocks can change the document's structure; render it whole and point
    // problems at the start of the selection.
    if template.contains("{%") || template.contains("{#") {
        set.add_xml("selection", template)?;
        let text = set.render("selection", &context).map_err(|error| {
            Problem::error(
                "template-render",
                0,
                0,
                format!("the selection does not render with the default vars: {error}"),
            )
        })?;
        return Ok(Rendered {
            pieces: vec![(0, 0, 0, true)],
            text,
        });
    }
    let mut text = String::with_capacity(template.len() + 64);
    let mut pieces = Vec::new();
    let mut rest = 0;
    while let Some(open) = template[rest..].find("{{").map(|i| rest + i) {
        let Some(close) = template[open..].find("}}").map(|i| open + i + 2) else {
            break;
        };
        pieces.push((text.len(), rest, open - rest, false));
        text.push_str(&template[rest..open]);
        let key = format!("expr{open}");
        set.add_xml(&key, &template[open..close])?;
        let value = set.render(&key, &context).map_err(|error| {
            Problem::error(
                "template-render",
                open,
                close - open,
                format!("this expression does not render with the default vars: {error}"),
            )
        })?;
        pieces.push((text.len(), open, close - open, true));
        text.push_str(&value);
        rest = close;
    }
    pieces.push((text.len(), rest, template.len() - rest, false));
    text.push_str(&template[rest..]);
    Ok(Rendered { text, pieces })
}
