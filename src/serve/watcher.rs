//! Watching the workflows directory: debounced file-system events (notify-debouncer-full, or
//! notify's polling watcher where events are unavailable) mapped to the workflow files they
//! touch and handed to `loader::reload`, which re-reads the files, so a burst of saves always
//! settles on the last content.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{PollWatcher, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{
    DebounceEventResult, DebouncedEvent, Debouncer, NoCache, RecommendedCache, new_debouncer,
    new_debouncer_opt,
};

use crate::serve::ServeState;
use crate::serve::loader::{self, LoaderError, workflow_key};

/// How often the polling watcher looks at the directory when the event watcher cannot start
/// and no interval was asked for: well inside the one second an edit may take to go live.
pub const FALLBACK_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// How long a file must be quiet before its events are acted on.
    pub debounce: Duration,
    /// Poll the directory at this interval instead of using file-system events (for file
    /// systems without events: network shares, some container mounts).
    pub poll: Option<Duration>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(200),
            poll: None,
        }
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Directory(#[from] LoaderError),
    #[error("cannot watch workflows directory {path}: {source}")]
    Start {
        path: PathBuf,
        source: notify::Error,
    },
}

/// A running watcher. Dropping it stops watching: no reload starts after the drop returns.
pub struct WatcherHandle {
    stopped: Arc<AtomicBool>,
    debouncer: Option<ActiveDebouncer>,
}

enum ActiveDebouncer {
    Events(Debouncer<RecommendedWatcher, RecommendedCache>),
    Polling(Debouncer<PollWatcher, NoCache>),
}

impl WatcherHandle {
    /// Whether the directory is polled rather than watched through file-system events.
    pub fn is_polling(&self) -> bool {
        matches!(self.debouncer, Some(ActiveDebouncer::Polling(_)))
    }
}

impl Drop for WatcherHandle {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // `stop` joins the debouncer's thread (at most one tick), so a reload in progress
        // finishes before the drop returns and none starts after.
        match self.debouncer.take() {
            Some(ActiveDebouncer::Events(debouncer)) => debouncer.stop(),
            Some(ActiveDebouncer::Polling(debouncer)) => debouncer.stop(),
            None => {}
        }
    }
}

impl std::fmt::Debug for WatcherHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatcherHandle")
            .field("polling", &self.is_polling())
            .field("stopped", &self.stopped.load(Ordering::SeqCst))
            .finish()
    }
}

/// Starts watching `state.config.workflows` (not recursively). Falls back to polling, with a
/// warning, when file-system events are unavailable. Once watching, the directory is
/// rescanned, so that a change made between the initial load and the watch is not missed.
pub fn spawn_watcher(
    state: ServeState,
    options: WatchOptions,
) -> Result<WatcherHandle, WatchError> {
    let dir = state.config.workflows.clone();
    if !dir.is_dir() {
        let error = if dir.exists() {
            LoaderError::NotADirectory { path: dir }
        } else {
            LoaderError::MissingDirectory { path: dir }
        };
        return Err(error.into());
    }
    let stopped = Arc::new(AtomicBool::new(false));
    let debouncer = match options.poll {
        Some(interval) => start_polling(&state, &stopped, options.debounce, interval)?,
        None => match start_events(&state, &stopped, options.debounce) {
            Ok(debouncer) => debouncer,
            Err(WatchError::Start { path, source }) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %source,
                    "file-system events are unavailable for {} ({source}); polling every {} ms instead",
                    path.display(),
                    FALLBACK_POLL_INTERVAL.as_millis()
                );
                start_polling(&state, &stopped, options.debounce, FALLBACK_POLL_INTERVAL)?
            }
            Err(error) => return Err(error),
        },
    };
    let handle = WatcherHandle {
        stopped,
        debouncer: Some(debouncer),
    };
    loader::load_all(&state)?;
    Ok(handle)
}

fn start_events(
    state: &ServeState,
    stopped: &Arc<AtomicBool>,
    debounce: Duration,
) -> Result<ActiveDebouncer, WatchError> {
    let dir = state.config.workflows.clone();
    let start_error = |source| WatchError::Start {
        path: dir.clone(),
        source,
    };
    let mut debouncer =
        new_debouncer(debounce, None, event_handler(state, stopped)).map_err(start_error)?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(start_error)?;
    Ok(ActiveDebouncer::Events(debouncer))
}

fn start_polling(
    state: &ServeState,
    stopped: &Arc<AtomicBool>,
    debounce: Duration,
    interval: Duration,
) -> Result<ActiveDebouncer, WatchError> {
    let dir = state.config.workflows.clone();
    let start_error = |source| WatchError::Start {
        path: dir.clone(),
        source,
    };
    // notify's poller compares modification times in whole seconds, which would miss a
    // second save within the same second; comparing contents catches it (workflow files are
    // small, and polling is the fallback).
    let config = notify::Config::default()
        .with_poll_interval(interval)
        .with_compare_contents(true);
    let mut debouncer = new_debouncer_opt::<_, PollWatcher, NoCache>(
        debounce,
        None,
        event_handler(state, stopped),
        NoCache,
        config,
    )
    .map_err(start_error)?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(start_error)?;
    Ok(ActiveDebouncer::Polling(debouncer))
}

/// The debouncer's callback; it runs on the debouncer's thread, where a synchronous reload
/// is fine.
fn event_handler(
    state: &ServeState,
    stopped: &Arc<AtomicBool>,
) -> impl FnMut(DebounceEventResult) + Send + 'static {
    let state = state.clone();
    let stopped = stopped.clone();
    move |result: DebounceEventResult| {
        if stopped.load(Ordering::SeqCst) {
            return;
        }
        match result {
            Ok(events) => match affected_files(&state.config.workflows, &events) {
                Affected::Files(paths) if paths.is_empty() => {}
                Affected::Files(paths) => {
                    loader::reload(&state, &paths);
                }
                Affected::Everything => rescan(&state),
            },
            Err(errors) => {
                for error in &errors {
                    tracing::warn!(error = %error, "watching the workflows directory: {error}");
                }
                // Events may have been lost: look at every file again.
                rescan(&state);
            }
        }
    }
}

fn rescan(state: &ServeState) {
    if let Err(error) = loader::load_all(state) {
        tracing::error!(
            error = %error,
            "{error}; the workflows loaded before keep running"
        );
    }
}

/// What a batch of events touched.
#[derive(Debug, PartialEq, Eq)]
enum Affected {
    /// These workflow files (registry keys).
    Files(Vec<PathBuf>),
    /// Unknown: events were dropped, or the directory itself was moved or removed.
    Everything,
}

/// Maps debounced events to the workflow files they touch. Only paths are used: contents are
/// read at reload time, so the last save wins however many events a burst produced.
fn affected_files(dir: &Path, events: &[DebouncedEvent]) -> Affected {
    let mut paths = BTreeSet::new();
    for event in events {
        if event.need_rescan() {
            return Affected::Everything;
        }
        if !changes_content(&event.kind) {
            continue;
        }
        for path in &event.paths {
            if is_directory_itself(dir, path) {
                // The directory's own events: children are reported separately, except when
                // the directory itself goes away or moves.
                if matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                ) {
                    return Affected::Everything;
                }
                continue;
            }
            if let Some(key) = workflow_key(dir, path) {
                paths.insert(key);
            }
        }
    }
    Affected::Files(paths.into_iter().collect())
}

/// Whether an event kind can mean a changed, new or removed file. Opening and reading do not
/// (and the loader's own reads produce them, which must not trigger another reload).
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(access) => matches!(access, AccessKind::Close(AccessMode::Write)),
        _ => true,
    }
}

fn is_directory_itself(dir: &Path, path: &Path) -> bool {
    path == dir
        || match (std::fs::canonicalize(path), std::fs::canonicalize(dir)) {
            (Ok(path), Ok(dir)) => path == dir,
            _ => false,
        }
}

#[cfg(test)]
#[path = "watcher_tests.rs"]
mod tests;
