//! Loading: the only file I/O of the pipeline. Finds workflow files, reads them with limits,
//! and parses YAML into the raw model, turning every failure into a located `Diagnostic`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{Budget, Error as YamlError};

use crate::diagnostics::{Diagnostic, Problem, did_you_mean};
use crate::source::SourceFile;

/// Workflow and config files larger than this are refused before parsing (1 MiB: a
/// 60-line workflow is about 3 KiB, so this leaves two orders of magnitude of room).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a path given on the command line could not be used at all (a usage error, exit 2).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: no such file or directory")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read directory: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Workflow files named by `inputs`: files as given, directories expanded (recursively,
/// skipping hidden entries) to their `*.yaml` / `*.yml` files, sorted for stable output.
pub fn workflow_paths(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut paths = Vec::new();
    for input in inputs {
        let metadata = std::fs::metadata(input).map_err(|_| LoadError::NotFound {
            path: input.clone(),
        })?;
        if metadata.is_dir() {
            let mut found = Vec::new();
            collect_yaml_files(input, &mut found, 0)?;
            found.sort();
            paths.extend(found);
        } else {
            paths.push(input.clone());
        }
    }
    paths.dedup();
    Ok(paths)
}

fn collect_yaml_files(dir: &Path, found: &mut Vec<PathBuf>, depth: usize) -> Result<(), LoadError> {
    // Symlink loops or absurd trees must not hang validation.
    const MAX_DEPTH: usize = 16;
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() || (file_type.is_symlink() && path.is_dir()) {
            if depth < MAX_DEPTH {
                collect_yaml_files(&path, found, depth + 1)?;
            }
        } else if is_yaml_file(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// Whether a path names a YAML file by its extension.
pub fn is_yaml_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|ext| ext.to_str()),
        Some("yaml" | "yml")
    )
}

/// A file that could not be used as text: the diagnostic, and as much of the text as could
/// be read (lossily decoded), so the diagnostic can still be shown in context.
#[derive(Debug)]
pub struct Unreadable {
    pub diagnostic: Diagnostic,
    pub source: SourceFile,
}

impl Unreadable {
    fn new(diagnostic: Diagnostic, path: &Path, text: String) -> Box<Self> {
        Box::new(Unreadable {
            diagnostic,
            source: SourceFile::new(path, text),
        })
    }
}

/// Reads a file as UTF-8 text, refusing oversized files, invalid UTF-8 and NUL bytes with a
/// diagnostic that says where.
pub fn read_source(path: &Path) -> Result<SourceFile, Box<Unreadable>> {
    let name = path.display().to_string();
    let unreadable = |error: std::io::Error| {
        let problem = Problem::error(
            "file-unreadable",
            0,
            0,
            format!("cannot read file: {error}"),
        );
        Unreadable::new(Diagnostic::whole_file(&name, problem), path, String::new())
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let problem = Problem::error(
            "file-too-large",
            0,
            0,
            format!("file is larger than {} KiB", MAX_FILE_BYTES / 1024),
        )
        .with_help("a workflow file is a few KiB; split the file or remove generated content");
        return Err(Unreadable::new(
            Diagnostic::whole_file(&name, problem),
            path,
            String::new(),
        ));
    }
    source_from_bytes(path, bytes)
}

/// Turns raw bytes into a `SourceFile`, with located errors for invalid UTF-8 and NUL bytes
/// (returned with the lossily decoded text).
fn source_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<SourceFile, Box<Unreadable>> {
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let valid_up_to = error.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(error.as_bytes()).into_owned();
            let located = SourceFile::new(path, lossy.clone());
            let problem = Problem::error(
                "invalid-utf8",
                valid_up_to,
                0,
                format!(
                    "file is not valid UTF-8 (byte 0x{:02x} at offset {valid_up_to})",
                    error.as_bytes()[valid_up_to]
                ),
            )
            .with_help("save the file as UTF-8");
            return Err(Unreadable::new(
                Diagnostic::at(&located, valid_up_to, 0, "", problem),
                path,
                lossy,
            ));
        }
    };
    let source = SourceFile::new(path, text);
    if let Some(offset) = source.text.find('\0') {
        let problem = Problem::error("nul-byte", offset, 1, "file contains a NUL byte")
            .with_help("workflow files are text; remove the NUL byte (is this a binary file?)");
        let diagnostic = Diagnostic::at(&source, offset, 1, "", problem);
        return Err(Unreadable::new(diagnostic, path, source.text));
    }
    Ok(source)
}

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
        _ => Problem::error("yaml-syntax", offset, 0, message),
    };
    let path = crate::load::yaml_path_at(&source.text, offset);
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
