//! The set of workflows `serve` runs, swapped atomically: readers take an `Arc<Snapshot>` and
//! never see a half-loaded set; writers build a whole new snapshot and publish it in one step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::compile::Workflow;
use crate::diagnostics::Diagnostic;

/// A workflow version that can run: compiled, with the exact source it came from.
#[derive(Debug)]
pub struct ActiveWorkflow {
    pub workflow: Arc<Workflow>,
    /// The file's text for this version (stored with operations so any node can rerun it).
    pub source: Arc<str>,
    /// When this version became active: schedules are anchored here, never in the past.
    pub activated_at: DateTime<Utc>,
}

impl ActiveWorkflow {
    pub fn name(&self) -> &str {
        &self.workflow.name
    }

    pub fn version(&self) -> &str {
        &self.workflow.version
    }
}

/// Whether a file's current content compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Ok,
    Error,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Ok => "ok",
            FileStatus::Error => "error",
        }
    }
}

/// One workflow file as last seen.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub path: PathBuf,
    pub status: FileStatus,
    /// Diagnostics of the current content (warnings too when it compiled).
    pub diagnostics: Vec<Diagnostic>,
    /// What runs for this file: the current content's workflow, or, after an invalid edit,
    /// the last valid version; `None` when the file never compiled.
    pub active: Option<Arc<ActiveWorkflow>>,
    /// When the current content was read.
    pub checked_at: DateTime<Utc>,
}

/// A file's valid content that runs nothing because another file holds its workflow name.
/// Kept so that the file takes the name as soon as the holder lets go of it, without
/// re-reading the file.
#[derive(Debug, Clone)]
pub(crate) struct BlockedWorkflow {
    pub(crate) workflow: Arc<Workflow>,
    pub(crate) source: Arc<str>,
    /// The compile diagnostics of the content (warnings), without the duplicate-name error.
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Byte offset and length of the `name:` value, to locate the duplicate-name error.
    pub(crate) name_span: (usize, usize),
}

/// An immutable view of every workflow file and the workflows they run.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Bumped on every publish.
    pub generation: u64,
    files: BTreeMap<PathBuf, FileEntry>,
    /// Workflow name → the file that runs it.
    names: BTreeMap<String, PathBuf>,
    /// Files whose valid content waits for its name (see [`BlockedWorkflow`]).
    blocked: BTreeMap<PathBuf, BlockedWorkflow>,
}

impl Snapshot {
    /// Builds a snapshot from file entries. When two files run the same name, the first by
    /// path keeps it (loaders report the other file as a duplicate before getting here).
    pub fn new(generation: u64, files: impl IntoIterator<Item = FileEntry>) -> Snapshot {
        let files: BTreeMap<PathBuf, FileEntry> = files
            .into_iter()
            .map(|entry| (entry.path.clone(), entry))
            .collect();
        let mut names = BTreeMap::new();
        for (path, entry) in &files {
            if let Some(active) = &entry.active {
                names
                    .entry(active.name().to_string())
                    .or_insert_with(|| path.clone());
            }
        }
        Snapshot {
            generation,
            files,
            names,
            blocked: BTreeMap::new(),
        }
    }

    /// The same snapshot, remembering which files' content waits for its name.
    pub(crate) fn with_blocked(
        mut self,
        blocked: impl IntoIterator<Item = (PathBuf, BlockedWorkflow)>,
    ) -> Snapshot {
        self.blocked = blocked.into_iter().collect();
        self
    }

    pub(crate) fn blocked(&self) -> &BTreeMap<PathBuf, BlockedWorkflow> {
        &self.blocked
    }

    /// The active workflow called `name`.
    pub fn workflow(&self, name: &str) -> Option<&Arc<ActiveWorkflow>> {
        let path = self.names.get(name)?;
        self.files.get(path)?.active.as_ref()
    }

    /// Every active workflow, by name.
    pub fn workflows(&self) -> impl Iterator<Item = &Arc<ActiveWorkflow>> {
        self.names
            .values()
            .filter_map(|path| self.files.get(path)?.active.as_ref())
    }

    /// Every file, by path.
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.files.values()
    }

    pub fn file(&self, path: &Path) -> Option<&FileEntry> {
        self.files.get(path)
    }

    /// The file that runs the workflow `name`.
    pub fn file_of(&self, name: &str) -> Option<&FileEntry> {
        self.files.get(self.names.get(name)?)
    }
}

/// The current snapshot and a signal for those who follow changes (the scheduler).
#[derive(Debug)]
pub struct Registry {
    current: RwLock<Arc<Snapshot>>,
    generation: watch::Sender<u64>,
    /// Held by a loader for a whole pass (read files, compile, publish), so that two passes
    /// never interleave and an older read never overwrites a newer one.
    reloading: Mutex<()>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(Snapshot::default())
    }
}

impl Registry {
    pub fn new(snapshot: Snapshot) -> Registry {
        let (generation, _) = watch::channel(snapshot.generation);
        Registry {
            current: RwLock::new(Arc::new(snapshot)),
            generation,
            reloading: Mutex::new(()),
        }
    }

    /// A registry holding these workflows as if each had been loaded from its file at `now`
    /// (tests, benchmarks).
    pub fn from_workflows(
        workflows: impl IntoIterator<Item = (Workflow, String)>,
        now: DateTime<Utc>,
    ) -> Registry {
        let entries = workflows.into_iter().map(|(workflow, source)| FileEntry {
            path: workflow.file.clone(),
            status: FileStatus::Ok,
            diagnostics: Vec::new(),
            active: Some(Arc::new(ActiveWorkflow {
                workflow: Arc::new(workflow),
                source: source.into(),
                activated_at: now,
            })),
            checked_at: now,
        });
        Registry::new(Snapshot::new(1, entries))
    }

    /// The current snapshot; cheap (one `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Builds the next snapshot from the current one and publishes it atomically. `build`
    /// receives the current snapshot and the generation to give the new one.
    pub fn update(&self, build: impl FnOnce(&Snapshot, u64) -> Snapshot) -> Arc<Snapshot> {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = Arc::new(build(&current, current.generation + 1));
        *current = next.clone();
        drop(current);
        self.generation.send_replace(next.generation);
        next
    }

    /// Serializes loader passes; readers are never blocked by it.
    pub(crate) fn lock_reloads(&self) -> MutexGuard<'_, ()> {
        self.reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes whenever a new snapshot is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}
