//! Tests of the loader on real temporary directories: what a pass publishes for new, edited,
//! invalid, deleted, renamed and duplicate-named files. Also the helpers the watcher tests use.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{TimeZone, Utc};

use super::{LoaderError, for_tests, load_all, reload};
use crate::compile::content_hash;
use crate::engine::TestClock;
use crate::serve::{FileStatus, ServeState};

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir {
    pub(crate) path: PathBuf,
}

impl TempDir {
    pub(crate) fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "fetchflow-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(path.join("workflows")).expect("create temp dir");
        TempDir { path }
    }

    pub(crate) fn workflows(&self) -> PathBuf {
        self.path.join("workflows")
    }

    /// Writes `text` to `workflows/<file>` and returns the path.
    pub(crate) fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.workflows().join(file);
        std::fs::write(&path, text).expect("write workflow file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A small valid workflow (the shape of workflows/quick-fix-sync.yaml); `prefix` varies the
/// content, and so the version, without changing the name.
pub(crate) fn workflow_text(name: &str, prefix: &str) -> String {
    format!(
        r#"name: {name}
description: test workflow
vars:
  prefix: "{prefix}"
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <filter>
          <condition attribute="accountnumber" operator="begins-with" value="{{{{ vars.prefix }}}}"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        creditonhold: false
"#
    )
}

/// The same workflow with an error the compiler reports (an unknown column).
pub(crate) fn invalid_text(name: &str) -> String {
    workflow_text(name, "X").replace("creditonhold", "no_such_column")
}

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn setup(label: &str) -> (TempDir, ServeState, Arc<TestClock>) {
    let dir = TempDir::new(label);
    let clock = Arc::new(TestClock::new(start()));
    let state = for_tests(&dir.workflows(), clock.clone());
    (dir, state, clock)
}

fn reloads(state: &ServeState) -> (u64, u64) {
    (
        state.metrics.reloads_ok.load(Ordering::Relaxed),
        state.metrics.reloads_failed.load(Ordering::Relaxed),
    )
}

#[test]
fn load_all_loads_yaml_files_directly_in_the_directory() {
    let (dir, state, _) = setup("load-all");
    dir.write("a.yaml", &workflow_text("alpha", "A"));
    dir.write("b.yml", &workflow_text("beta", "B"));
    dir.write(".hidden.yaml", &workflow_text("hidden", "H"));
    dir.write("notes.txt", &workflow_text("notes", "N"));
    std::fs::create_dir(dir.workflows().join("sub")).unwrap();
    dir.write("sub/c.yaml", &workflow_text("nested", "C"));

    let summary = load_all(&state).unwrap();

    assert_eq!((summary.files, summary.active, summary.failed), (2, 2, 0));
    let snapshot = state.registry.snapshot();
    let names: Vec<&str> = snapshot.workflows().map(|active| active.name()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    let alpha = snapshot.workflow("alpha").unwrap();
    assert_eq!(alpha.version(), content_hash(&workflow_text("alpha", "A")));
    assert_eq!(&*alpha.source, workflow_text("alpha", "A"));
    assert_eq!(alpha.activated_at, start());
    assert_eq!(reloads(&state), (2, 0));
}

#[test]
fn load_all_reports_a_missing_directory_with_what_to_do() {
    let dir = TempDir::new("missing");
    let missing = dir.path.join("nowhere");
    let state = for_tests(&missing, Arc::new(TestClock::new(start())));

    let error = load_all(&state).unwrap_err();

    assert!(matches!(error, LoaderError::MissingDirectory { .. }));
    let message = error.to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("create it"), "{message}");
}

#[test]
fn load_all_refuses_a_file_as_the_directory() {
    let dir = TempDir::new("not-dir");
    let file = dir.write("plain.yaml", "name: x\n");
    let state = for_tests(&file, Arc::new(TestClock::new(start())));

    assert!(matches!(
        load_all(&state),
        Err(LoaderError::NotADirectory { .. })
    ));
}

#[test]
fn a_valid_edit_activates_the_new_version_at_now() {
    let (dir, state, clock) = setup("edit");
    let path = dir.write("a.yaml", &workflow_text("alpha", "A"));
    load_all(&state).unwrap();
    let before = state.registry.snapshot().workflow("alpha").unwrap().clone();

    clock.advance(chrono::Duration::minutes(5));
    dir.write("a.yaml", &workflow_text("alpha", "B"));
    let snapshot = reload(&state, std::slice::from_ref(&path));

    let after = snapshot.workflow("alpha").unwrap();
    assert!(!Arc::ptr_eq(&before, after));
    assert_eq!(after.version(), content_hash(&workflow_text("alpha", "B")));
    assert_eq!(after.activated_at, start() + chrono::Duration::minutes(5));
    let entry = snapshot.file(&path).unwrap();
    assert_eq!(entry.status, FileStatus::Ok);
    assert!(entry.diagnostics.is_empty(), "{:?}", entry.diagnostics);
    assert_eq!(reloads(&state), (2, 0));
}

#[test]
fn an_invalid_edit_keeps_the_last_valid_version_and_reports_diagnostics() {
    let (dir, state, clock) = setup("invalid");
    let path = dir.write("a.yaml", &workflow_text("alpha", "A"));
    load_all(&state).unwrap();
    let valid = state.registry.snapshot().workflow("alpha").unwrap().clone();

    clock.advance(chrono::Duration::minutes(1));
    dir.write("a.yaml", &invalid_text("alpha"));
    let snapshot = reload(&state, std::slice::from_ref(&path));

    let entry = snapshot.file(&path).unwrap();
    assert_eq!(entry.status, FileStatus::Error);
    assert!(
        entry.diagnostics.iter().any(
            |diagnostic| diagnostic.is_error() && diagnostic.message.contains("no_such_column")
        ),
        "{:?}",
        entry.diagnostics
    );
    assert!(Arc::ptr_eq(entry.active.as_ref().unwrap(), &valid));
    assert!(Arc::ptr_eq(snapshot.workflow("alpha").unwrap(), &valid));
    assert_eq!(entry.checked_at, start() + chrono::Duration::minutes(1));
    assert_eq!(reloads(&state), (1, 1));

    // Reverting to the running text is not a new version: the same Arc, status ok again.
    dir.write("a.yaml", &workflow_text("alpha", "A"));
    let snapshot = reload(&state, std::slice::from_ref(&path));
    let entry = snapshot.file(&path).unwrap();
    assert_eq!(entry.status, FileStatus::Ok);
    assert!(entry.diagnostics.is_empty());
    assert!(Arc::ptr_eq(entry.active.as_ref().unwrap(), &valid));
}

#[test]
fn a_file_that_never_compiled_runs_nothing() {
    let (dir, state, _) = setup("never-valid");
    let path = dir.write("broken.yaml", "name: [unclosed\n");
    dir.write("nul.yaml", "name: x\0\n");

    let summary = load_all(&state).unwrap();

    assert_eq!((summary.files, summary.active, summary.failed), (2, 0, 2));
    let snapshot = state.registry.snapshot();
    let entry = snapshot.file(&path).unwrap();
    assert_eq!(entry.status, FileStatus::Error);
    assert!(entry.active.is_none());
    assert!(entry.diagnostics.iter().any(|d| d.is_error()));
    let nul = snapshot.file(&dir.workflows().join("nul.yaml")).unwrap();
    assert_eq!(nul.diagnostics[0].code, "nul-byte");
    assert_eq!(reloads(&state), (0, 2));
}

#[test]
fn an_unchanged_rewrite_keeps_the_same_arc() {
    let (dir, state, clock) = setup("touch");
    let path = dir.write("a.yaml", &workflow_text("alpha", "A"));
    load_all(&state).unwrap();
    let before = state.registry.snapshot().workflow("alpha").unwrap().clone();

    clock.advance(chrono::Duration::hours(1));
    dir.write("a.yaml", &workflow_text("alpha", "A"));
    let snapshot = reload(&state, std::slice::from_ref(&path));

    let after = snapshot.workflow("alpha").unwrap();
    assert!(Arc::ptr_eq(&before, after));
    assert_eq!(after.activated_at, start());
    assert_eq!(
        snapshot.file(&path).unwrap().checked_at,
        start() + chrono::Duration::hours(1)
    );
    // Re-reading the same content is not a reload: only the first load counted.
    assert_eq!(
        state
            .metrics
            .reloads_ok
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn a_deleted_file_unschedules_its_workflow() {
    let (dir, state, _) = setup("delete");
    let path = dir.write("a.yaml", &workflow_text("alpha", "A"));
    dir.write("b.yaml", &workflow_text("beta", "B"));
    load_all(&state).unwrap();

    std::fs::remove_file(&path).unwrap();
    let snapshot = reload(&state, std::slice::from_ref(&path));

    assert!(snapshot.workflow("alpha").is_none());
    assert!(snapshot.file(&path).is_none());
    assert!(snapshot.workflow("beta").is_some());
    assert_eq!(snapshot.files().count(), 1);
}

#[test]
fn a_rename_is_a_delete_and_a_create() {
    let (dir, state, clock) = setup("rename");
    let old = dir.write("a.yaml", &workflow_text("alpha", "A"));
    load_all(&state).unwrap();

    clock.advance(chrono::Duration::minutes(2));
    let new = dir.workflows().join("renamed.yaml");
    std::fs::rename(&old, &new).unwrap();
    let snapshot = reload(&state, &[old.clone(), new.clone()]);

    assert!(snapshot.file(&old).is_none());
    let entry = snapshot.file_of("alpha").unwrap();
    assert_eq!(entry.path, new);
    assert_eq!(entry.status, FileStatus::Ok);
    let active = entry.active.as_ref().unwrap();
    assert_eq!(active.workflow.file, new);
    assert_eq!(active.activated_at, start() + chrono::Duration::minutes(2));
}

#[test]
fn reload_ignores_hidden_non_yaml_and_foreign_paths() {
    let (dir, state, _) = setup("ignore");
    load_all(&state).unwrap();
    let generation = state.registry.snapshot().generation;
    let hidden = dir.write(".a.yaml", &workflow_text("alpha", "A"));
    let text = dir.write("a.txt", &workflow_text("alpha", "A"));
    let foreign = dir.path.join("elsewhere.yaml");
    std::fs::write(&foreign, workflow_text("alpha", "A")).unwrap();

    let snapshot = reload(&state, &[hidden, text, foreign]);

    assert_eq!(snapshot.generation, generation);
    assert_eq!(snapshot.files().count(), 0);
}

#[test]
fn reload_accepts_the_directory_under_another_spelling() {
    let (dir, state, _) = setup("spelling");
    let path = dir.write("a.yaml", &workflow_text("alpha", "A"));
    let roundabout = dir.workflows().join("..").join("workflows").join("a.yaml");

    let snapshot = reload(&state, &[roundabout]);

    assert_eq!(snapshot.file_of("alpha").unwrap().path, path);
}

#[test]
fn a_duplicate_name_runs_nothing_until_the_holder_lets_go() {
    let (dir, state, _) = setup("duplicate");
    let first = dir.write("a.yaml", &workflow_text("alpha", "A"));
    let second = dir.write("b.yaml", &workflow_text("alpha", "B"));

    load_all(&state).unwrap();

    let snapshot = state.registry.snapshot();
    assert_eq!(snapshot.file_of("alpha").unwrap().path, first);
    let blocked = snapshot.file(&second).unwrap();
    assert_eq!(blocked.status, FileStatus::Error);
    assert!(blocked.active.is_none());
    let duplicate = blocked
        .diagnostics
        .iter()
        .find(|diagnostic| diagnostic.code == "duplicate-name")
        .expect("duplicate-name diagnostic");
    assert_eq!((duplicate.line, duplicate.column), (1, 7));
    assert_eq!(duplicate.path, "name");
    let holder_location = format!("{}:1:7", first.display());
    assert!(
        duplicate.message.contains(&holder_location),
        "{}",
        duplicate.message
    );
    assert_eq!(reloads(&state), (1, 1));

    // Editing an unrelated file leaves the holder in place.
    let other = dir.write("c.yaml", &workflow_text("gamma", "C"));
    let snapshot = reload(&state, &[other]);
    assert_eq!(snapshot.file_of("alpha").unwrap().path, first);
    assert_eq!(snapshot.file(&second).unwrap().status, FileStatus::Error);

    // Deleting the holder lets the other file take the name, without an event for it.
    std::fs::remove_file(&first).unwrap();
    let snapshot = reload(&state, std::slice::from_ref(&first));
    let entry = snapshot.file_of("alpha").unwrap();
    assert_eq!(entry.path, second);
    assert_eq!(entry.status, FileStatus::Ok);
    assert!(entry.diagnostics.is_empty(), "{:?}", entry.diagnostics);
    assert_eq!(
        entry.active.as_ref().unwrap().version(),
        content_hash(&workflow_text("alpha", "B"))
    );
}

#[test]
fn the_holder_keeps_its_name_when_another_file_takes_it_up() {
    let (dir, state, _) = setup("duplicate-edit");
    let holder = dir.write("z.yaml", &workflow_text("alpha", "A"));
    let other = dir.write("a.yaml", &workflow_text("beta", "B"));
    load_all(&state).unwrap();
    let beta = state.registry.snapshot().workflow("beta").unwrap().clone();

    // a.yaml sorts first, but z.yaml already holds the name.
    dir.write("a.yaml", &workflow_text("alpha", "B"));
    let snapshot = reload(&state, std::slice::from_ref(&other));

    assert_eq!(snapshot.file_of("alpha").unwrap().path, holder);
    let entry = snapshot.file(&other).unwrap();
    assert_eq!(entry.status, FileStatus::Error);
    assert!(entry.diagnostics.iter().any(|d| d.code == "duplicate-name"));
    // Like any invalid edit, the file keeps running its last valid version.
    assert!(Arc::ptr_eq(entry.active.as_ref().unwrap(), &beta));
    assert!(Arc::ptr_eq(snapshot.workflow("beta").unwrap(), &beta));

    // Renaming the holder's workflow frees the name for the waiting file in the same pass.
    dir.write("z.yaml", &workflow_text("omega", "A"));
    let snapshot = reload(&state, std::slice::from_ref(&holder));
    assert_eq!(snapshot.file_of("omega").unwrap().path, holder);
    assert_eq!(snapshot.file_of("alpha").unwrap().path, other);
    assert!(snapshot.workflow("beta").is_none());
    assert!(snapshot.files().all(|entry| entry.status == FileStatus::Ok));
}

#[test]
fn a_name_moving_between_files_in_one_pass_is_not_a_duplicate() {
    let (dir, state, _) = setup("move-name");
    let old = dir.write("a.yaml", &workflow_text("alpha", "A"));
    load_all(&state).unwrap();

    std::fs::remove_file(&old).unwrap();
    let new = dir.write("b.yaml", &workflow_text("alpha", "B"));
    let snapshot = reload(&state, &[old, new.clone()]);

    let entry = snapshot.file_of("alpha").unwrap();
    assert_eq!(entry.path, new);
    assert_eq!(entry.status, FileStatus::Ok);
    assert_eq!(snapshot.files().count(), 1);
}

#[test]
fn an_operation_keeps_the_version_it_started_with() {
    let (dir, state, _) = setup("running");
    let path = dir.write("a.yaml", &workflow_text("alpha", "A"));
    load_all(&state).unwrap();
    let running = state.registry.snapshot().workflow("alpha").unwrap().clone();
    let old_snapshot = state.registry.snapshot();

    dir.write("a.yaml", &workflow_text("alpha", "B"));
    reload(&state, std::slice::from_ref(&path));
    std::fs::remove_file(&path).unwrap();
    let snapshot = reload(&state, std::slice::from_ref(&path));

    assert!(snapshot.workflow("alpha").is_none());
    assert_eq!(
        running.version(),
        content_hash(&workflow_text("alpha", "A"))
    );
    assert_eq!(&*running.source, workflow_text("alpha", "A"));
    assert!(running.workflow.selection.fetchxml.contains("vars.prefix"));
    // A reader holding an older snapshot still sees the whole older set.
    assert!(Arc::ptr_eq(
        old_snapshot.workflow("alpha").unwrap(),
        &running
    ));
}

#[test]
fn load_all_again_is_a_rescan() {
    let (dir, state, _) = setup("rescan");
    let kept = dir.write("a.yaml", &workflow_text("alpha", "A"));
    let gone = dir.write("b.yaml", &workflow_text("beta", "B"));
    load_all(&state).unwrap();
    let alpha = state.registry.snapshot().workflow("alpha").unwrap().clone();

    std::fs::remove_file(&gone).unwrap();
    dir.write("c.yaml", &workflow_text("gamma", "C"));
    let summary = load_all(&state).unwrap();

    assert_eq!((summary.files, summary.active), (2, 2));
    let snapshot = state.registry.snapshot();
    assert!(snapshot.workflow("beta").is_none());
    assert!(snapshot.workflow("gamma").is_some());
    assert!(Arc::ptr_eq(snapshot.workflow("alpha").unwrap(), &alpha));
    assert_eq!(snapshot.file_of("alpha").unwrap().path, kept);
}

#[test]
fn each_pass_publishes_one_generation() {
    let (dir, state, _) = setup("generation");
    let a = dir.write("a.yaml", &workflow_text("alpha", "A"));
    let b = dir.write("b.yaml", &workflow_text("beta", "B"));
    let mut changes = state.registry.subscribe();

    let snapshot = reload(&state, &[a, b]);

    assert_eq!(snapshot.generation, 1);
    assert!(changes.has_changed().unwrap());
    assert_eq!(*changes.borrow_and_update(), 1);
    assert_eq!(snapshot.workflows().count(), 2);
}

/// A workflow on a `dataverse:` connection loads against the metadata `metadata pull` cached
/// for it (a custom table), and is invalid against the built-in tables without the cache.
#[test]
fn a_dataverse_workflow_loads_against_its_pulled_metadata() {
    use crate::metadata::{AttributeMeta, AttributeType, Catalogue, EntityMeta};
    let (dir, mut state, _) = setup("dataverse-metadata");
    let url = "https://contoso.crm.dynamics.com";
    let mut config = (*state.config).clone();
    config.path = Some(dir.path.join("fetchflow.yaml"));
    config.state = dir.path.join(".fetchflow/state.db");
    config.connections.push((
        "prod".to_string(),
        crate::config::Connection::Dataverse {
            url: url.to_string(),
            tenant: "t".to_string(),
            client_id: "c".to_string(),
            client_secret: "{{ secret('S') }}".to_string(),
            authority: "https://login.microsoftonline.com".to_string(),
        },
    ));
    state.config = Arc::new(config);
    let text = "name: projects\nconnection: prod\nselect:\n  fetchxml: |\n    <fetch>\n      \
                <entity name=\"new_project\">\n        <attribute name=\"new_name\"/>\n      \
                </entity>\n    </fetch>\nactions:\n  - update:\n      set:\n        new_budget: 0\n";
    let path = dir.write("projects.yaml", text);

    load_all(&state).unwrap();
    let snapshot = state.registry.snapshot();
    assert_eq!(snapshot.file(&path).unwrap().status, FileStatus::Error);

    let mut catalogue = Catalogue::builtin();
    let mut project = EntityMeta::new("new_project", "new_projects", "new_projectid", "new_name");
    project.add_attribute(AttributeMeta::string("new_name", 100));
    project.add_attribute(AttributeMeta::new("new_budget", AttributeType::Money));
    catalogue.add_entity(project);
    let cache = crate::org::dataverse::metadata_cache_path(&state.config.state, "prod");
    crate::org::dataverse::write_cache(&cache, "prod", url, &catalogue).unwrap();
    let snapshot = reload(&state, std::slice::from_ref(&path));
    let entry = snapshot.file(&path).unwrap();
    assert_eq!(entry.status, FileStatus::Ok, "{:#?}", entry.diagnostics);
    assert!(snapshot.workflow("projects").is_some());
}
