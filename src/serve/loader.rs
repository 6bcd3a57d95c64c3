//! Loading the workflows directory into the registry and keeping it current: each file is
//! compiled on its own and the rules of DESIGN 8 decide what runs (an invalid edit keeps the
//! last valid version, a deleted file unschedules its workflow, the first holder of a name
//! keeps it); every pass publishes one snapshot atomically. No threads here: the watcher calls
//! [`reload`], `serve` calls [`load_all`] at start-up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::compile::{DeclaredName, FileOutcome, Workflow, check_unique_names, content_hash};
use crate::diagnostics::{Diagnostic, Severity};
use crate::serve::ServeState;
use crate::serve::registry::{ActiveWorkflow, BlockedWorkflow, FileEntry, FileStatus, Snapshot};
use crate::source::SourceFile;

/// Why the workflows directory cannot be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(
        "workflows directory {path} does not exist; create it, or point `workflows:` in \
         fetchflow.yaml at the directory that holds your workflow files"
    )]
    MissingDirectory { path: PathBuf },
    #[error(
        "workflows directory {path} is not a directory; point `workflows:` in fetchflow.yaml \
         at the directory that holds your workflow files"
    )]
    NotADirectory { path: PathBuf },
    #[error("workflows directory {path}: cannot read it: {source}")]
    ReadDirectory {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a full load found.
#[derive(Debug, Clone)]
pub struct LoadSummary {
    /// Workflow files in the directory.
    pub files: usize,
    /// Workflows that run (valid files, and last valid versions of files now invalid).
    pub active: usize,
    /// Files whose current content has errors.
    pub failed: usize,
    /// Every diagnostic of every file (warnings too), by file.
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads every workflow file of the workflows directory (YAML files directly in it, hidden
/// files skipped) and publishes them as one snapshot. On a registry that already holds files
/// this is a full rescan: files gone from the directory are removed, unchanged files keep
/// their active version.
pub fn load_all(state: &ServeState) -> Result<LoadSummary, LoaderError> {
    let dir = &state.config.workflows;
    let mut paths = list_workflow_files(dir)?;
    paths.extend(
        state
            .registry
            .snapshot()
            .files()
            .map(|entry| entry.path.clone()),
    );
    let snapshot = reload(state, &paths);
    let mut summary = LoadSummary {
        files: 0,
        active: snapshot.workflows().count(),
        failed: 0,
        diagnostics: Vec::new(),
    };
    for entry in snapshot.files() {
        summary.files += 1;
        if entry.status == FileStatus::Error {
            summary.failed += 1;
        }
        summary
            .diagnostics
            .extend(entry.diagnostics.iter().cloned());
    }
    Ok(summary)
}

/// Recompiles exactly the files at `changed` (a path that no longer names a file = deleted)
/// and publishes one new snapshot. Paths outside the workflows directory, hidden files and
/// non-YAML files are ignored. Returns the published snapshot (the current one when nothing
/// was to be done).
pub fn reload(state: &ServeState, changed: &[PathBuf]) -> Arc<Snapshot> {
    let dir = &state.config.workflows;
    let mut keys: Vec<PathBuf> = changed
        .iter()
        .filter_map(|path| workflow_key(dir, path))
        .collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return state.registry.snapshot();
    }
    // Held for the whole pass: a pass that read older content must not publish after one
    // that read newer content.
    let _reloading = state.registry.lock_reloads();
    let current = state.registry.snapshot();
    let builtin = crate::cli::catalogue();
    let declared = state.config.declared_connections();
    // Dataverse workflows check against their connection's pulled metadata (`metadata pull`).
    let (catalogues, cache_problems) = crate::load::connection_catalogues(&state.config);
    for problem in &cache_problems {
        tracing::warn!("{problem}");
    }
    let compile = |source: SourceFile| {
        crate::load::compile_source_by_connection(
            source,
            &builtin,
            &catalogues,
            declared.as_deref(),
        )
    };
    let fresh: Vec<(PathBuf, Fresh)> = keys
        .into_iter()
        .map(|path| {
            let fresh = read_fresh(&path, current.file(&path), &compile);
            (path, fresh)
        })
        .collect();
    let now = state.clock.now();
    let mut changes = Vec::new();
    let published = state
        .registry
        .update(|current, generation| merge(current, generation, fresh, now, &mut changes));
    report(state, &changes);
    published
}

/// The key a path has in the registry: `<workflows dir>/<file name>`, for YAML files directly
/// in the workflows directory that are not hidden. The directory may be named differently in
/// `path` (absolute vs relative, through a symlink); it is compared canonically.
pub(crate) fn workflow_key(dir: &Path, path: &Path) -> Option<PathBuf> {
    let file_name = path.file_name()?;
    if file_name.to_string_lossy().starts_with('.') || !crate::load::is_yaml_file(path) {
        return None;
    }
    let parent = path.parent()?;
    let same_dir = parent == dir
        || match (std::fs::canonicalize(parent), std::fs::canonicalize(dir)) {
            (Ok(parent), Ok(dir)) => parent == dir,
            _ => false,
        };
    same_dir.then(|| dir.join(file_name))
}

/// The YAML files directly in `dir`, hidden files skipped, sorted.
fn list_workflow_files(dir: &Path) -> Result<Vec<PathBuf>, LoaderError> {
    let metadata = std::fs::metadata(dir).map_err(|_| LoaderError::MissingDirectory {
        path: dir.to_path_buf(),
    })?;
    if !metadata.is_dir() {
        return Err(LoaderError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let entries = std::fs::read_dir(dir).map_err(|source| LoaderError::ReadDirectory {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| dir.join(entry.file_name()))
        .filter(|path| workflow_key(dir, path).is_some() && path.is_file())
        .collect();
    paths.sort();
    Ok(paths)
}

/// A file as read in this pass.
enum Fresh {
    /// No longer a file (deleted, renamed away, replaced by a directory).
    Deleted,
    /// The same text as the version that runs, which compiled without errors: nothing to do.
    Unchanged,
    /// New text, read and compiled (or unreadable: then the outcome carries the diagnostic).
    Compiled(Box<FileOutcome>),
}

fn read_fresh(
    path: &Path,
    previous: Option<&FileEntry>,
    compile: &dyn Fn(SourceFile) -> FileOutcome,
) -> Fresh {
    if !path.is_file() {
        return Fresh::Deleted;
    }
    let source = match crate::load::read_source(path) {
        Ok(source) => source,
        Err(unreadable) => {
            return Fresh::Compiled(Box::new(FileOutcome {
                source: unreadable.source,
                workflow: None,
                diagnostics: vec![unreadable.diagnostic],
                name: None,
            }));
        }
    };
    let unchanged = previous.is_some_and(|entry| {
        entry.status == FileStatus::Ok
            && entry
                .active
                .as_ref()
                .is_some_and(|active| active.version() == content_hash(&source.text))
    });
    if unchanged {
        Fresh::Unchanged
    } else {
        Fresh::Compiled(Box::new(compile(source)))
    }
}

/// Valid content competing for its workflow name in this pass.
struct Candidate {
    path: PathBuf,
    workflow: Arc<Workflow>,
    source: Arc<str>,
    diagnostics: Vec<Diagnostic>,
    name_span: (usize, usize),
    /// Read in this pass (rather than blocked earlier and re-checked).
    fresh: bool,
    /// When the content was read.
    checked_at: DateTime<Utc>,
}

impl Candidate {
    fn name(&self) -> &str {
        &self.workflow.name
    }
}

/// What a pass did to one file, for logs and metrics.
enum Change {
    Loaded {
        path: PathBuf,
        name: String,
        version: String,
        fresh: bool,
    },
    Unchanged {
        path: PathBuf,
        name: String,
    },
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
        kept: Option<Arc<ActiveWorkflow>>,
    },
    Removed {
        path: PathBuf,
        name: Option<String>,
    },
}

/// Builds the next snapshot from `current` and the files read in this pass.
fn merge(
    current: &Snapshot,
    generation: u64,
    fresh: Vec<(PathBuf, Fresh)>,
    now: DateTime<Utc>,
    changes: &mut Vec<Change>,
) -> Snapshot {
    let mut files: BTreeMap<PathBuf, FileEntry> = current
        .files()
        .map(|entry| (entry.path.clone(), entry.clone()))
        .collect();
    let mut blocked = current.blocked().clone();
    let mut candidates = Vec::new();
    for (path, fresh) in fresh {
        match fresh {
            Fresh::Deleted => {
                blocked.remove(&path);
                if let Some(entry) = files.remove(&path) {
                    changes.push(Change::Removed {
                        name: entry.active.map(|active| active.name().to_string()),
                        path,
                    });
                }
            }
            Fresh::Unchanged => {
                if let Some(entry) = files.get_mut(&path) {
                    entry.checked_at = now;
                    if let Some(active) = &entry.active {
                        changes.push(Change::Unchanged {
                            name: active.name().to_string(),
                            path,
                        });
                    }
                }
            }
            Fresh::Compiled(outcome) => {
                let outcome = *outcome;
                blocked.remove(&path);
                let previous = files.get(&path).and_then(|entry| entry.active.clone());
                match (outcome.workflow, outcome.name) {
                    (Some(workflow), Some((_, offset, len))) => candidates.push(Candidate {
                        path,
                        workflow: Arc::new(workflow),
                        source: Arc::from(outcome.source.text),
                        diagnostics: outcome.diagnostics,
                        name_span: (offset, len),
                        fresh: true,
                        checked_at: now,
                    }),
                    _ => {
                        changes.push(Change::Invalid {
                            path: path.clone(),
                            diagnostics: outcome.diagnostics.clone(),
                            kept: previous.clone(),
                        });
                        files.insert(
                            path.clone(),
                            FileEntry {
                                path,
                                status: FileStatus::Error,
                                diagnostics: outcome.diagnostics,
                                active: previous,
                                checked_at: now,
                            },
                        );
                    }
                }
            }
        }
    }
    // Content blocked by a duplicate name competes again: its holder may have let go.
    for (path, waiting) in std::mem::take(&mut blocked) {
        let checked_at = files.get(&path).map_or(now, |entry| entry.checked_at);
        candidates.push(Candidate {
            path,
            workflow: waiting.workflow,
            source: waiting.source,
            diagnostics: waiting.diagnostics,
            name_span: waiting.name_span,
            fresh: false,
            checked_at,
        });
    }

    let previous_active =
        |files: &BTreeMap<PathBuf, FileEntry>, path: &Path| -> Option<Arc<ActiveWorkflow>> {
            files.get(path).and_then(|entry| entry.active.clone())
        };
    // Names are held by the files running them: files not competing keep theirs, and a
    // competing file keeps the name of its running version until it takes its new one.
    let competing: BTreeSet<PathBuf> = candidates.iter().map(|c| c.path.clone()).collect();
    let mut held: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (path, entry) in &files {
        if let Some(active) = &entry.active
            && !competing.contains(path)
        {
            held.insert(active.name().to_string(), path.clone());
        }
    }
    for candidate in &candidates {
        if let Some(active) = previous_active(&files, &candidate.path) {
            held.entry(active.name().to_string())
                .or_insert_with(|| candidate.path.clone());
        }
    }
    // A file keeping its own name goes first; then by path.
    candidates.sort_by_key(|candidate| {
        let keeps_name = previous_active(&files, &candidate.path)
            .is_some_and(|active| active.name() == candidate.name());
        (!keeps_name, candidate.path.clone())
    });
    // Taking a new name releases the old one, which may unblock a candidate already passed
    // over, so go round until nothing moves.
    let mut pending = candidates;
    loop {
        let mut progressed = false;
        let mut still_blocked = Vec::new();
        for candidate in pending {
            let free = held
                .get(candidate.name())
                .is_none_or(|holder| *holder == candidate.path);
            if !free {
                still_blocked.push(candidate);
                continue;
            }
            progressed = true;
            let previous = previous_active(&files, &candidate.path);
            if let Some(previous) = &previous
                && previous.name() != candidate.name()
                && held.get(previous.name()) == Some(&candidate.path)
            {
                held.remove(previous.name());
            }
            held.insert(candidate.name().to_string(), candidate.path.clone());
            let active = match previous {
                Some(previous) if previous.version() == candidate.workflow.version => previous,
                _ => Arc::new(ActiveWorkflow {
                    workflow: candidate.workflow.clone(),
                    source: candidate.source.clone(),
                    activated_at: now,
                }),
            };
            changes.push(Change::Loaded {
                path: candidate.path.clone(),
                name: candidate.name().to_string(),
                version: candidate.workflow.version.clone(),
                fresh: candidate.fresh,
            });
            files.insert(
                candidate.path.clone(),
                FileEntry {
                    path: candidate.path,
                    status: FileStatus::Ok,
                    diagnostics: candidate.diagnostics,
                    active: Some(active),
                    checked_at: candidate.checked_at,
                },
            );
        }
        pending = still_blocked;
        if !progressed || pending.is_empty() {
            break;
        }
    }
    for candidate in pending {
        let holder = held.get(candidate.name()).cloned().unwrap_or_default();
        let duplicate = duplicate_name_diagnostic(&candidate, &holder, &files);
        let mut diagnostics = candidate.diagnostics.clone();
        diagnostics.push(duplicate);
        // Like any invalid edit, the file keeps running its last valid version (its name
        // stayed reserved for it above).
        let kept = previous_active(&files, &candidate.path);
        if candidate.fresh {
            changes.push(Change::Invalid {
                path: candidate.path.clone(),
                diagnostics: diagnostics.clone(),
                kept: kept.clone(),
            });
        }
        files.insert(
            candidate.path.clone(),
            FileEntry {
                path: candidate.path.clone(),
                status: FileStatus::Error,
                diagnostics,
                active: kept,
                checked_at: candidate.checked_at,
            },
        );
        blocked.insert(
            candidate.path,
            BlockedWorkflow {
                workflow: candidate.workflow,
                source: candidate.source,
                diagnostics: candidate.diagnostics,
                name_span: candidate.name_span,
            },
        );
    }
    Snapshot::new(generation, files.into_values()).with_blocked(blocked)
}

/// The cross-file duplicate-name error of `load` (same code and wording), located at the
/// candidate's `name:` and naming where the holder declares it.
fn duplicate_name_diagnostic(
    candidate: &Candidate,
    holder: &Path,
    files: &BTreeMap<PathBuf, FileEntry>,
) -> Diagnostic {
    let holder_location = files
        .get(holder)
        .and_then(|entry| entry.active.as_ref())
        .map_or_else(
            || holder.display().to_string(),
            |active| name_location(holder, &active.source),
        );
    let (offset, len) = candidate.name_span;
    let mut outcome = FileOutcome {
        source: SourceFile::new(&candidate.path, candidate.source.to_string()),
        workflow: None,
        diagnostics: Vec::new(),
        name: Some((candidate.name().to_string(), offset, len)),
    };
    check_unique_names(
        std::slice::from_mut(&mut outcome),
        &[DeclaredName {
            name: candidate.name().to_string(),
            location: holder_location,
        }],
    );
    outcome.diagnostics.pop().unwrap_or_else(|| {
        // check_unique_names always reports a name declared elsewhere; this only keeps the
        // file out of the running set should that ever change.
        Diagnostic::at(
            &outcome.source,
            offset,
            len,
            "name",
            crate::diagnostics::Problem::error(
                "duplicate-name",
                offset,
                len,
                format!(
                    "workflow name `{}` is also declared elsewhere",
                    candidate.name()
                ),
            ),
        )
    })
}

/// `file:line:column` of the `name:` value in `text`, or the file alone when it cannot be
/// found (the text compiled once, so it can).
fn name_location(path: &Path, text: &str) -> String {
    #[derive(serde::Deserialize)]
    struct NameOnly {
        name: serde_saphyr::Spanned<String>,
    }
    let source = SourceFile::new(path, text);
    match crate::model::parse_yaml::<NameOnly>(&source) {
        Ok(parsed) => {
            let (line, column) = source.line_column(crate::model::offset_of(&parsed.name));
            format!("{}:{line}:{column}", source.display_name())
        }
        Err(_) => source.display_name(),
    }
}

/// Logs each change, and counts each file whose content changed in this pass once in the
/// metrics.
fn report(state: &ServeState, changes: &[Change]) {
    for change in changes {
        match change {
            Change::Loaded {
                path,
                name,
                version,
                fresh,
            } => {
                if *fresh {
                    state.metrics.reload(true);
                }
                tracing::info!(
                    workflow = %name,
                    version = %short_version(version),
                    path = %path.display(),
                    "Workflow loaded."
                );
            }
            Change::Unchanged { path, name } => {
                // Read again but the same content (a touch, the watcher's start-up rescan):
                // not a reload.
                tracing::debug!(
                    workflow = %name,
                    path = %path.display(),
                    "Workflow file unchanged."
                );
            }
            Change::Invalid {
                path,
                diagnostics,
                kept,
            } => {
                state.metrics.reload(false);
                let rendered = diagnostics
                    .iter()
                    .filter(|diagnostic| diagnostic.severity == Severity::Error)
                    .map(render_diagnostic)
                    .collect::<Vec<_>>()
                    .join("\n");
                match kept {
                    Some(active) => tracing::warn!(
                        path = %path.display(),
                        workflow = %active.name(),
                        "invalid workflow file {}; workflow {} keeps running version {}:\n{rendered}",
                        path.display(),
                        active.name(),
                        short_version(active.version())
                    ),
                    None => tracing::warn!(
                        path = %path.display(),
                        "invalid workflow file {}; nothing runs from it:\n{rendered}",
                        path.display()
                    ),
                }
            }
            Change::Removed { path, name } => match name {
                Some(name) => tracing::info!(
                    workflow = %name,
                    path = %path.display(),
                    "Workflow removed: its file is gone."
                ),
                None => tracing::info!(path = %path.display(), "Workflow file removed."),
            },
        }
    }
}

/// `file:line:column: code: message`, one line per diagnostic.
fn render_diagnostic(diagnostic: &Diagnostic) -> String {
    format!(
        "{}:{}:{}: {}: {}",
        diagnostic.file, diagnostic.line, diagnostic.column, diagnostic.code, diagnostic.message
    )
}

/// The first 12 hex digits of a content hash, enough to tell versions apart in a log.
fn short_version(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

/// A `ServeState` over `workflows` with an in-memory store, no orgs and no secrets.
#[cfg(test)]
pub(crate) fn for_tests(workflows: &Path, clock: Arc<dyn crate::engine::Clock>) -> ServeState {
    let mut config = crate::config::Config::defaults(workflows.parent().unwrap_or(workflows));
    config.workflows = workflows.to_path_buf();
    let store = crate::store::SqliteStateStore::in_memory()
        .unwrap_or_else(|error| panic!("in-memory state store: {error}"));
    ServeState {
        config: Arc::new(config),
        registry: Arc::new(crate::serve::Registry::default()),
        store: Arc::new(store),
        orgs: Arc::new(crate::serve::Orgs::fixed(Vec::new())),
        clock,
        metrics: Arc::new(crate::serve::Metrics::default()),
        secrets: Arc::new(|_: &str| None),
        token: None,
        work: Arc::new(tokio::sync::Notify::new()),
    }
}

#[cfg(test)]
#[path = "loader_tests.rs"]
pub(crate) mod tests;
