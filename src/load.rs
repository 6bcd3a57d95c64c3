//! Loading: the only file I/O of the pipeline. Finds workflow files, reads them with limits
//! (size, UTF-8, NUL bytes), and hands the text to the pure parser and compiler.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::compile::{
    CompileContext, DeclaredName, FileOutcome, check_unique_names, compile_source,
};
use crate::diagnostics::{Diagnostic, Problem};
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

/// Reads, parses and compiles each file, then checks names across them and against the
/// other workflow files of their directories (so that validating only the changed files, as a
/// pre-commit hook does, still catches a name taken by an unchanged file).
pub fn compile_files(paths: &[PathBuf], context: &CompileContext<'_>) -> Vec<FileOutcome> {
    let mut outcomes: Vec<FileOutcome> = paths
        .iter()
        .map(|path| compile_path(path, context))
        .collect();
    check_unique_names(&mut outcomes, &sibling_names(paths));
    outcomes
}

/// Names declared by the YAML files that sit directly beside `paths` but are not among them.
/// Files that do not parse far enough to have a name are skipped: they are not being checked.
fn sibling_names(paths: &[PathBuf]) -> Vec<DeclaredName> {
    #[derive(serde::Deserialize)]
    struct NameOnly {
        name: serde_saphyr::Spanned<String>,
    }
    let mut dirs: Vec<&Path> = paths.iter().filter_map(|path| path.parent()).collect();
    dirs.sort();
    dirs.dedup();
    let mut declared = Vec::new();
    for dir in dirs {
        let listing = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let Ok(entries) = std::fs::read_dir(listing) else {
            continue;
        };
        let mut siblings: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| dir.join(entry.file_name()))
            .filter(|path| is_yaml_file(path) && path.is_file() && !paths.contains(path))
            .filter(|path| {
                !path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with('.'))
            })
            .collect();
        siblings.sort();
        for path in siblings {
            let Ok(source) = read_source(&path) else {
                continue;
            };
            if let Ok(parsed) = crate::model::parse_yaml::<NameOnly>(&source) {
                let offset = crate::model::offset_of(&parsed.name);
                let (line, column) = source.line_column(offset);
                declared.push(DeclaredName {
                    name: parsed.name.value,
                    location: format!("{}:{line}:{column}", source.display_name()),
                });
            }
        }
    }
    declared
}

/// Reads, parses and compiles one file (no cross-file checks).
pub fn compile_path(path: &Path, context: &CompileContext<'_>) -> FileOutcome {
    match read_source(path) {
        Ok(source) => compile_source(source, context),
        Err(unreadable) => FileOutcome {
            source: unreadable.source,
            workflow: None,
            diagnostics: vec![unreadable.diagnostic],
            name: None,
        },
    }
}

/// The catalogue of each `dataverse:` connection whose metadata `fetchflow metadata pull`
/// cached (`<state dir>/metadata/<connection>.json`); connections without a cache, and local
/// ones, are left out and check against the built-in tables. An unreadable cache is reported
/// as a message for that connection.
pub fn connection_catalogues(
    config: &crate::config::Config,
) -> (
    std::collections::BTreeMap<String, crate::metadata::Catalogue>,
    Vec<String>,
) {
    let mut catalogues = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    for (name, connection) in &config.connections {
        let crate::config::Connection::Dataverse { url, .. } = connection else {
            continue;
        };
        let path = crate::org::dataverse::metadata_cache_path(&config.state, name);
        match crate::org::dataverse::read_cache(&path, url) {
            Ok(Some(catalogue)) => {
                catalogues.insert(name.clone(), catalogue);
            }
            Ok(None) => {}
            Err(message) => problems.push(format!(
                "connection `{name}`: the metadata cache cannot be read ({message}); run \
                 `fetchflow metadata pull {name}` again"
            )),
        }
    }
    (catalogues, problems)
}

/// Like [`compile_files`], but each file is checked against the catalogue of the connection it
/// names (`connection:`, else `default`) when `catalogues` has one, else against `builtin`.
/// Names are still checked across all the files.
pub fn compile_files_by_connection(
    paths: &[PathBuf],
    builtin: &crate::metadata::Catalogue,
    catalogues: &std::collections::BTreeMap<String, crate::metadata::Catalogue>,
    connections: Option<&[String]>,
) -> Vec<FileOutcome> {
    let context = CompileContext {
        catalogue: builtin,
        connections,
    };
    let mut outcomes = compile_files(paths, &context);
    if catalogues.is_empty() {
        return outcomes;
    }
    for outcome in &mut outcomes {
        if catalogue_for(&outcome.source, catalogues).is_none() {
            continue;
        }
        let names_checked: Vec<Diagnostic> = outcome
            .diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.code == "duplicate-name")
            .cloned()
            .collect();
        let again =
            compile_source_by_connection(outcome.source.clone(), builtin, catalogues, connections);
        let mut diagnostics = again.diagnostics;
        diagnostics.extend(names_checked);
        *outcome = FileOutcome {
            workflow: if diagnostics.iter().any(Diagnostic::is_error) {
                None
            } else {
                again.workflow
            },
            diagnostics,
            ..again
        };
    }
    outcomes
}

/// Compiles one file against the catalogue of the connection it names (see
/// [`compile_files_by_connection`]), with no cross-file checks: what `serve` does per file.
pub fn compile_source_by_connection(
    source: SourceFile,
    builtin: &crate::metadata::Catalogue,
    catalogues: &std::collections::BTreeMap<String, crate::metadata::Catalogue>,
    connections: Option<&[String]>,
) -> FileOutcome {
    let catalogue = catalogue_for(&source, catalogues).unwrap_or(builtin);
    compile_source(
        source,
        &CompileContext {
            catalogue,
            connections,
        },
    )
}

fn catalogue_for<'a>(
    source: &SourceFile,
    catalogues: &'a std::collections::BTreeMap<String, crate::metadata::Catalogue>,
) -> Option<&'a crate::metadata::Catalogue> {
    if catalogues.is_empty() {
        return None;
    }
    catalogues.get(&connection_of(source)?)
}

/// The connection a workflow file names, read leniently (the full parse reports problems).
fn connection_of(source: &SourceFile) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ConnectionOnly {
        connection: Option<String>,
    }
    let parsed = crate::model::parse_yaml::<ConnectionOnly>(source).ok()?;
    Some(parsed.connection.unwrap_or_else(|| "default".to_string()))
}
