//! YAML text → raw model, with fetchflow's limits, turning every parser and serde error into a
//! located `Diagnostic`. Pure: the text has already been read by `load`.

use serde::de::DeserializeOwned;
use serde_saphyr::{Budget, Error as YamlError};

use crate::diagnostics::{Diagnostic, Problem, did_you_mean};
use crate::source::SourceFile;

/// Parses YAML into a raw model type with fetchflow's limits: YAML 1.2 booleans, duplicate
/// keys rejected, and a budget against alias bombs and deep nesting.
pub fn parse_yaml<T: DeserializeOwned>(source: &SourceFile) -> Result<T, Box<Diagnostic>> {
    let mut budget = Budget::default();
    budget.max_depth = 32;
    budget.max_nodes = 100_000;
    budget.max_aliases = 200;
    budget.max_anchors = 200;
    budget.max_recorded_anchor_events = 10_000;
    budget.max_recorded_anchor_bytes = 1024 * 1024;
    budget.max_total_scalar_bytes = 2 * 1024 * 1024;
    budget.max_documents = 1;
    let options = serde_saphyr::options! {
        budget: Some(budget),
        with_snippet: false,
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options(&source.text, options)
        .map_err(|error| Box::new(yaml_diagnostic(source, &error)))
}

fn yaml_diagnostic(source: &SourceFile, error: &YamlError) -> Diagnostic {
    let offset = error
        .location()
        .filter(|location| location.line() > 0)
        .map_or(0, |location| {
            let line = usize::try_from(location.line()).unwrap_or(usize::MAX);
            let column = usize::try_from(location.column()).unwrap_or(usize::MAX);
            source.offset_of(line, column)
        });
    let message = strip_location_suffix(&error.to_string());
    let problem = match error {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let problem = Problem::error("unknown-key", offset, field.len(), format!("unknown key `{field}`"));
            match did_you_mean(field, expected.iter().copied()) {
                Some(suggestion) => problem.with_help(format!("did you mean `{suggestion}`?")),
                None => problem.with_help(format!("expected one of: {}", expected.join(", "))),
            }
        }
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let problem = Problem::error(
                "unknown-value",
                offset,
                variant.len(),
                format!("unknown value `{variant}`"),
            );
            match did_you_mean(variant, expected.iter().copied()) {
                Some(suggestion) => problem.with_help(format!("did you mean `{suggestion}`?")),
                None => problem.with_help(format!("expected one of: {}", expected.join(", "))),
            }
        }
        YamlError::SerdeMissingField { field, .. } => {
            Problem::error("missing-key", offset, 0, format!("missing required key `{field}`"))
        }
        YamlError::DuplicateMappingKey { key, .. } => Problem::error(
            "duplicate-key",
            offset,
            key.as_ref().map_or(0, String::len),
            match key {
                Some(key) => format!("duplicate key `{key}`"),
                None => "duplicate key".to_string(),
            },
        )
        .with_help("each key may appear once in a mapping; remove or merge the repeated one"),
        _ if message.contains("recursion limit") => Problem::error(
            "yaml-limit",
            offset,
            0,
            "YAML limit exceeded: the document is nested too deeply",
        )
        .with_help("a workflow needs a handful of nesting levels; look for unclosed `[` or `{`"),
        _ if message.contains("budget breached") => Problem::error("yaml-limit", offset, 0, budget_message(&message)).with_help(
            "the document exceeds fetchflow's YAML limits (nesting depth 32, 200 aliases, 10,000 events replayed through aliases, 100,000 nodes); \
             simplify it or remove anchors and aliases",
        ),
        YamlError::SerdeInvalidType { .. }
        | YamlError::SerdeInvalidValue { .. }
        | YamlError::SerdeInvalidLength { .. }
        | YamlError::InvalidScalar { .. }
        | YamlError::NullIntoString { .. }
        | YamlError::InvalidBooleanStrict { .. }
        | YamlError::UnexpectedValueForUnit { .. }
        | YamlError::ExpectedEmptyMappingForUnitStruct { .. }
        | YamlError::NonFiniteFloat { .. }
        | YamlError::QuotingRequired { .. } => Problem::error("type", offset, 0, message),
        _ => Problem::error("yaml-syntax", offset, 0, message).with_help(
            "this is not valid YAML here: check indentation (spaces, not tabs), quoting, and unclosed `[`, `{` or quotes on this line or above",
        ),
    };
    let path = yaml_path_at(&source.text, offset);
    Diagnostic::at(source, offset, problem.len, &path, problem)
}

/// "budget breached: RecordedAnchorEvents { .. }" → "YAML limit exceeded: recorded anchor events".
fn budget_message(message: &str) -> String {
    let breach = message
        .split("budget breached:")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default();
    let mut words = String::new();
    for c in breach.chars() {
        if c.is_uppercase() && !words.is_empty() {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    if words.is_empty() {
        "YAML limit exceeded".to_string()
    } else {
        format!("YAML limit exceeded: {words} (an alias bomb or a document nested too deeply)")
    }
}

fn strip_location_suffix(message: &str) -> String {
    let message = message.lines().next().unwrap_or_default();
    match message.rfind(" at line ") {
        Some(idx) => message[..idx].to_string(),
        None => message.to_string(),
    }
}

/// Best-effort YAML path (`actions[1].update.set`) of the block-style node at `offset`,
/// found from indentation. Used to label errors that the YAML parser reports by position only.
pub fn yaml_path_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let mut lines: Vec<&str> = text[..line_start].lines().collect();
    let current = text[line_start..].lines().next().unwrap_or_default();
    let mut segments: Vec<String> = Vec::new();
    let (mut indent, own) = key_of(current);
    if let Some(own) = own {
        segments.push(own);
    }
    let mut sequence_index: Option<usize> = None;
    if current.trim_start().starts_with("- ") || current.trim_start() == "-" {
        sequence_index = Some(0);
    }
    while let Some(line) = lines.pop() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let line_indent = line.len() - trimmed.len();
        if let Some(index) = sequence_index.as_mut()
            && line_indent == indent
            && trimmed.starts_with('-')
        {
            *index += 1;
            continue;
        }
        if line_indent < indent {
            if let Some(index) = sequence_index.take() {
                segments.push(format!("[{index}]"));
            }
            let (key_indent, key) = key_of(line);
            if let Some(key) = key {
                segments.push(key);
            }
            if trimmed.starts_with("- ") || trimmed == "-" {
                sequence_index = Some(0);
            }
            indent = key_indent.min(line_indent);
        }
    }
    if let Some(index) = sequence_index {
        segments.push(format!("[{index}]"));
    }
    let mut path = String::new();
    for segment in segments.iter().rev() {
        if !segment.starts_with('[') && !path.is_empty() {
            path.push('.');
        }
        path.push_str(segment);
    }
    path
}

/// The indentation of a line and the mapping key it starts, if any (`- key: v` gives `key`).
fn key_of(line: &str) -> (usize, Option<String>) {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let content = trimmed.trim_start_matches("- ").trim_start();
    let key = content
        .split_once(':')
        .map(|(key, _)| key.trim().trim_matches(['"', '\'']).to_string())
        .filter(|key| !key.is_empty() && !key.contains(' ') && !key.starts_with(['{', '[', '#']));
    (indent, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_path_follows_indentation_and_sequences() {
        let text = "name: a\nactions:\n  - update:\n      set:\n        x: 1\n  - assign:\n      owner: b\n";
        let offset = text.find("owner").unwrap();
        assert_eq!(yaml_path_at(text, offset), "actions[1].assign.owner");
        let offset = text.find("x: 1").unwrap();
        assert_eq!(yaml_path_at(text, offset), "actions[0].update.set.x");
        assert_eq!(yaml_path_at(text, 0), "name");
    }
}
