//! Tests of the watcher on real temporary directories and the real clock: edits, invalid
//! edits, deletes, renames, rename-over saves, bursts of saves, new files, ignored files,
//! polling, and stopping on drop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Affected, WatchError, WatchOptions, WatcherHandle, affected_files, spawn_watcher};
use crate::compile::content_hash;
use crate::engine::SystemClock;
use crate::serve::loader::for_tests;
use crate::serve::loader::tests::{TempDir, invalid_text, workflow_text};
use crate::serve::{FileStatus, ServeState, Snapshot};

/// Far above the one second the acceptance asks for, so that a slow, shared machine does not
/// make the tests flaky; the latency test asserts the bound itself.
const PATIENCE: Duration = Duration::from_secs(10);

fn watched(label: &str, options: WatchOptions) -> (TempDir, ServeState, WatcherHandle) {
    let dir = TempDir::new(label);
    let state = for_tests(&dir.workflows(), Arc::new(SystemClock));
    let handle = spawn_watcher(state.clone(), options).expect("start watching");
    (dir, state, handle)
}

/// Waits until the current snapshot satisfies `done`; returns how long that took.
fn wait_for(state: &ServeState, done: impl Fn(&Snapshot) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if done(&state.registry.snapshot()) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the registry did not reach the expected state within {PATIENCE:?}: {:#?}",
            state.registry.snapshot()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn runs_version(snapshot: &Snapshot, name: &str, text: &str) -> bool {
    snapshot
        .workflow(name)
        .is_some_and(|active| active.version() == content_hash(text))
}

#[test]
fn a_valid_edit_is_live_within_one_second() {
    let (dir, state, _handle) = watched("watch-edit", WatchOptions::default());
    let first = workflow_text("alpha", "A");
    dir.write("a.yaml", &first);
    wait_for(&state, |snapshot| runs_version(snapshot, "alpha", &first));

    let edited = workflow_text("alpha", "B");
    let saved = Instant::now();
    dir.write("a.yaml", &edited);
    wait_for(&state, |snapshot| runs_version(snapshot, "alpha", &edited));
    let latency = saved.elapsed();

    assert!(
        latency < Duration::from_secs(1),
        "edit live after {latency:?}"
    );
}

#[test]
fn the_files_present_at_start_are_loaded() {
    let dir = TempDir::new("watch-initial");
    dir.write("a.yaml", &workflow_text("alpha", "A"));
    let state = for_tests(&dir.workflows(), Arc::new(SystemClock));

    let _handle = spawn_watcher(state.clone(), WatchOptions::default()).unwrap();

    assert!(state.registry.snapshot().workflow("alpha").is_some());
}

#[test]
fn an_idle_directory_causes_no_reloads() {
    let (dir, state, _handle) = watched("watch-idle", WatchOptions::default());
    dir.write("a.yaml", &workflow_text("alpha", "A"));
    wait_for(&state, |snapshot| snapshot.workflow("alpha").is_some());
    std::thread::sleep(Duration::from_millis(400));
    let generation = state.registry.snapshot().generation;

    // The loader's own reads produce open and close events; they must not trigger reloads.
    std::thread::sleep(Duration::from_millis(700));

    assert_eq!(state.registry.snapshot().generation, generation);
}

#[test]
fn an_invalid_edit_keeps_the_last_valid_version() {
    let (dir, state, _handle) = watched("watch-invalid", WatchOptions::default());
    let path = dir.write("a.yaml", &workflow_text("alpha", "A"));
    wait_for(&state, |snapshot| snapshot.workflow("alpha").is_some());
    let valid = state.registry.snapshot().workflow("alpha").unwrap().clone();

    dir.write("a.yaml", &invalid_text("alpha"));
    wait_for(&state, |snapshot| {
        snapshot
            .file(&path)
            .is_some_and(|entry| entry.status == FileStatus::Error)
    });

    let snapshot = state.registry.snapshot();
    let entry = snapshot.file(&path).unwrap();
    assert!(entry.diagnostics.iter().any(|d| d.is_error()));
    assert!(Arc::ptr_eq(snapshot.workflow("alpha").unwrap(), &valid));
}

#[test]
fn a_delete_unschedules() {
    let (dir, state, _handle) = watched("watch-delete", WatchOptions::default());
    let path = dir.write("a.yaml", &workflow_text("alpha", "A"));
    wait_for(&state, |snapshot| snapshot.workflow("alpha").is_some());

    std::fs::remove_file(&path).unwrap();
    wait_for(&state, |snapshot| snapshot.workflow("alpha").is_none());

    assert_eq!(state.registry.snapshot().files().count(), 0);
}

#[test]
fn a_rename_moves_the_workflow_to_the_new_path() {
    let (dir, state, _handle) = watched("watch-rename", WatchOptions::default());
    let old = dir.write("a.yaml", &workflow_text("alpha", "A"));
    wait_for(&state, |snapshot| snapshot.workflow("alpha").is_some());

    let new = dir.workflows().join("b.yaml");
    std::fs::rename(&old, &new).unwrap();
    wait_for(&state, |snapshot| {
        snapshot.file(&old).is_none()
            && snapshot
                .file_of("alpha")
                .is_some_and(|entry| entry.path == new)
    });
}

#[test]
fn a_rename_over_save_is_picked_up() {
    let (dir, state, _handle) = watched("watch-rename-over", WatchOptions::default());
    let target = dir.write("a.yaml", &workflow_text("alpha", "A"));
    wait_for(&state, |snapshot| snapshot.workflow("alpha").is_some());

    // What editors do: write a hidden temporary file, then rename it over the target.
    let saved = workflow_text("alpha", "SAVED");
    let temporary = dir.write(".a.yaml.swp", &saved);
    std::fs::rename(&temporary, &target).unwrap();
    wait_for(&state, |snapshot| runs_version(snapshot, "alpha", &saved));

    let snapshot = state.registry.snapshot();
    assert_eq!(snapshot.files().count(), 1);
    assert_eq!(snapshot.file_of("alpha").unwrap().path, target);
}

#[test]
fn two_hundred_rapid_saves_settle_on_the_last_content() {
    let (dir, state, _handle) = watched("watch-burst", WatchOptions::default());
    dir.write("a.yaml", &workflow_text("alpha", "start"));
    wait_for(&state, |snapshot| snapshot.workflow("alpha").is_some());

    let mut last = String::new();
    for save in 0..200 {
        last = workflow_text("alpha", &format!("save-{save}"));
        dir.write("a.yaml", &last);
    }
    wait_for(&state, |snapshot| runs_version(snapshot, "alpha", &last));

    // Nothing older arrives afterwards.
    std::thread::sleep(Duration::from_millis(600));
    let snapshot = state.registry.snapshot();
    assert!(runs_version(&snapshot, "alpha", &last));
    assert_eq!(snapshot.file_of("alpha").unwrap().status, FileStatus::Ok);
}

#[test]
fn a_new_file_appears_and_ignored_files_do_not() {
    let (dir, state, _handle) = watched("watch-new", WatchOptions::default());

    dir.write("notes.txt", &workflow_text("notes", "N"));
    dir.write(".hidden.yaml", &workflow_text("hidden", "H"));
    std::fs::create_dir(dir.workflows().join("sub")).unwrap();
    dir.write("sub/nested.yaml", &workflow_text("nested", "S"));
    // Written last: once it is loaded, the events of the others have been handled too.
    dir.write("new.yml", &workflow_text("fresh", "F"));
    wait_for(&state, |snapshot| snapshot.workflow("fresh").is_some());
    std::thread::sleep(Duration::from_millis(400));

    let snapshot = state.registry.snapshot();
    let names: Vec<&str> = snapshot.workflows().map(|active| active.name()).collect();
    assert_eq!(names, ["fresh"]);
    assert_eq!(snapshot.files().count(), 1);
}

#[test]
fn polling_picks_up_edits() {
    let options = WatchOptions {
        debounce: Duration::from_millis(50),
        poll: Some(Duration::from_millis(100)),
    };
    let (dir, state, handle) = watched("watch-poll", options);
    assert!(handle.is_polling());
    let path = dir.write("a.yaml", &workflow_text("alpha", "A"));
    wait_for(&state, |snapshot| snapshot.workflow("alpha").is_some());

    let edited = workflow_text("alpha", "B");
    dir.write("a.yaml", &edited);
    wait_for(&state, |snapshot| runs_version(snapshot, "alpha", &edited));

    std::fs::remove_file(&path).unwrap();
    wait_for(&state, |snapshot| snapshot.workflow("alpha").is_none());
}

#[test]
fn dropping_the_handle_stops_watching() {
    let (dir, state, handle) = watched("watch-drop", WatchOptions::default());
    assert!(!handle.is_polling());
    dir.write("a.yaml", &workflow_text("alpha", "A"));
    wait_for(&state, |snapshot| snapshot.workflow("alpha").is_some());

    drop(handle);
    let generation = state.registry.snapshot().generation;
    dir.write("a.yaml", &workflow_text("alpha", "B"));
    dir.write("b.yaml", &workflow_text("beta", "B"));
    std::thread::sleep(Duration::from_millis(700));

    assert_eq!(state.registry.snapshot().generation, generation);
}

#[test]
fn watching_a_missing_directory_is_an_error() {
    let dir = TempDir::new("watch-missing");
    let missing = dir.path.join("nowhere");
    let state = for_tests(&missing, Arc::new(SystemClock));

    let error = spawn_watcher(state, WatchOptions::default()).unwrap_err();

    assert!(matches!(error, WatchError::Directory(_)));
    assert!(error.to_string().contains("nowhere"), "{error}");
}

#[test]
fn events_map_to_workflow_files_and_ignore_reads() {
    use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};
    use notify::{Event, event::Flag};
    use notify_debouncer_full::DebouncedEvent;

    let dir = TempDir::new("watch-map");
    let workflows = dir.workflows();
    let event = |kind: EventKind, paths: &[&str]| {
        let mut event = Event::new(kind);
        for path in paths {
            event = event.add_path(workflows.join(path));
        }
        DebouncedEvent::new(event, Instant::now())
    };

    let renamed = [event(
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
        &[".a.yaml.swp", "a.yaml"],
    )];
    assert_eq!(
        affected_files(&workflows, &renamed),
        Affected::Files(vec![workflows.join("a.yaml")])
    );

    let reads = [
        event(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            &["a.yaml"],
        ),
        event(
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            &["a.yaml"],
        ),
        event(EventKind::Create(CreateKind::File), &["notes.txt"]),
    ];
    assert_eq!(
        affected_files(&workflows, &reads),
        Affected::Files(Vec::new())
    );

    let rescan = [DebouncedEvent::new(
        Event::new(EventKind::Other).set_flag(Flag::Rescan),
        Instant::now(),
    )];
    assert_eq!(affected_files(&workflows, &rescan), Affected::Everything);
}
