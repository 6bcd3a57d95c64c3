//! Tests of the scheduler on a fake clock: whole daylight-saving days in two zones, the
//! `overlap` policies, missed fires after downtime, two schedulers on one store file, edits
//! and removals; and one short run of the real loop on the system clock.

use std::path::PathBuf;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::{Arc, Barrier};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::*;
use crate::compile::{CompileContext, Workflow, compile_source};
use crate::config::Config;
use crate::engine::{Clock, SystemClock, TestClock};
use crate::metadata::Catalogue;
use crate::org::Org;
use crate::serve::{FileEntry, Metrics, Orgs, Registry};
use crate::source::SourceFile;
use crate::store::{Operation, OperationFilter, OperationStatus, SqliteStateStore, StateStore};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A workflow named `name` with one cron trigger.
fn workflow(
    name: &str,
    cron: &str,
    timezone: &str,
    missed: &str,
    overlap: &str,
) -> (Workflow, String) {
    compiled(&format!(
        r#"name: {name}
triggers:
  - cron: "{cron}"
    timezone: {timezone}
    missed: {missed}
overlap: {overlap}
select:
  fetchxml: |
    <fetch><entity name="account"><attribute name="name"/></entity></fetch>
actions:
  - update:
      set:
        description: "scheduled"
"#
    ))
}

fn compiled(yaml: &str) -> (Workflow, String) {
    let catalogue = Catalogue::builtin();
    let context = CompileContext {
        catalogue: &catalogue,
        connections: None,
    };
    let name = yaml
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("name: "))
        .unwrap_or("workflow");
    let outcome = compile_source(
        SourceFile::new(PathBuf::from(format!("{name}.yaml")), yaml.to_string()),
        &context,
    );
    let workflow = outcome
        .workflow
        .unwrap_or_else(|| panic!("{:#?}", outcome.diagnostics));
    (workflow, yaml.to_string())
}

/// A state store file in the temp directory, removed with its WAL files when dropped.
struct TempStore {
    path: PathBuf,
}

impl TempStore {
    fn new() -> TempStore {
        let path = std::env::temp_dir().join(format!(
            "fetchflow-scheduler-{}-{}.db",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        TempStore { path }
    }

    fn open(&self) -> Arc<SqliteStateStore> {
        Arc::new(SqliteStateStore::open(&self.path).unwrap())
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn serve_state(
    registry: Arc<Registry>,
    store: Arc<SqliteStateStore>,
    clock: Arc<dyn Clock>,
) -> ServeState {
    let base = std::env::temp_dir();
    ServeState {
        config: Arc::new(Config::defaults(&base)),
        registry,
        store,
        orgs: Arc::new(Orgs::fixed(Vec::<(String, Arc<dyn Org>)>::new())),
        clock,
        metrics: Arc::new(Metrics::default()),
        secrets: Arc::new(|_: &str| None),
        token: None,
        work: Arc::new(Notify::new()),
    }
}

/// One scheduler over one store file, on a test clock.
struct Harness {
    file: TempStore,
    store: Arc<SqliteStateStore>,
    clock: Arc<TestClock>,
    state: ServeState,
}

impl Harness {
    fn new(workflows: Vec<(Workflow, String)>, now: DateTime<Utc>) -> Harness {
        let file = TempStore::new();
        let store = file.open();
        Harness::with_store(file, store, workflows, now)
    }

    fn with_store(
        file: TempStore,
        store: Arc<SqliteStateStore>,
        workflows: Vec<(Workflow, String)>,
        now: DateTime<Utc>,
    ) -> Harness {
        let clock = Arc::new(TestClock::new(now));
        let registry = Arc::new(Registry::from_workflows(workflows, now));
        let state = serve_state(registry, store.clone(), clock.clone());
        Harness {
            file,
            store,
            clock,
            state,
        }
    }

    fn start(&self) -> Scheduler {
        Scheduler::start(&self.state.registry.snapshot(), self.clock.now())
    }

    /// Moves the clock to `now` and ticks there.
    fn tick_at(&self, scheduler: &mut Scheduler, now: DateTime<Utc>) -> Vec<FireReport> {
        self.clock.set(now);
        scheduler.tick(&self.state, now)
    }

    /// Ticks at every wake up to `until`, as the loop does: every fire instant reported.
    fn run_until(&self, scheduler: &mut Scheduler, until: DateTime<Utc>) -> Vec<(String, String)> {
        let mut fires = Vec::new();
        while let Some(wake) = scheduler.next_wake().filter(|wake| *wake <= until) {
            for report in self.tick_at(scheduler, wake) {
                assert!(
                    matches!(report.outcome, FireOutcome::Launched(_)),
                    "{report:?}"
                );
                fires.push((report.workflow, key(report.instant)));
            }
        }
        fires
    }

    fn operations(&self, workflow: &str) -> Vec<Operation> {
        let mut operations = self
            .store
            .list(&OperationFilter {
                workflow: Some(workflow.to_string()),
                limit: crate::store::MAX_PAGE_SIZE,
                ..OperationFilter::default()
            })
            .unwrap()
            .operations;
        operations.reverse();
        operations
    }

    /// Publishes a new snapshot: `replace` gives each file's next entry (`None` = deleted).
    fn publish(&self, replace: impl Fn(&FileEntry) -> Option<FileEntry>) {
        self.state.registry.update(|current, generation| {
            Snapshot::new(generation, current.files().filter_map(&replace))
        });
    }
}

fn key(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(workflow, instant)| ((*workflow).to_string(), (*instant).to_string()))
        .collect()
}

/// The fires of every workflow over `[from, until]`, scheduling from `from`, in fire order.
fn fires_over(
    workflows: Vec<(Workflow, String)>,
    from: &str,
    until: &str,
) -> (Harness, Vec<(String, String)>) {
    let harness = Harness::new(workflows, utc(from));
    let mut scheduler = harness.start();
    let fires = harness.run_until(&mut scheduler, utc(until));
    (harness, fires)
}

fn only(fires: &[(String, String)], workflow: &str) -> Vec<String> {
    fires
        .iter()
        .filter(|(name, _)| name == workflow)
        .map(|(_, instant)| instant.clone())
        .collect()
}

// Europe/London 2026: BST starts Sunday 29 March at 01:00 UTC (01:00 GMT → 02:00 BST) and
// ends Sunday 25 October at 01:00 UTC (02:00 BST → 01:00 GMT).
// America/New_York 2026: EDT starts Sunday 8 March at 07:00 UTC (02:00 EST → 03:00 EDT) and
// ends Sunday 1 November at 06:00 UTC (02:00 EDT → 01:00 EST).

#[test]
fn london_spring_forward_day_fires_each_job_once() {
    // The local day 29 March 2026: 00:00 GMT to 24:00 BST.
    let (harness, fires) = fires_over(
        vec![
            workflow(
                "at-0130",
                "30 1 * * *",
                "Europe/London",
                "run_once",
                "queue",
            ),
            workflow(
                "at-0230",
                "30 2 * * *",
                "Europe/London",
                "run_once",
                "queue",
            ),
            workflow("hourly", "0 * * * *", "Europe/London", "run_once", "queue"),
        ],
        "2026-03-29T00:00:00Z",
        "2026-03-29T22:59:59Z",
    );
    // 01:30 does not exist: once, at 02:00 BST.
    assert_eq!(only(&fires, "at-0130"), ["2026-03-29T01:00:00Z"]);
    assert_eq!(only(&fires, "at-0230"), ["2026-03-29T01:30:00Z"]);
    // Every hour follows real time and skips the gap: after the 00:00 GMT anchor, 22 fires
    // from 02:00 BST (01:00 UTC) to 23:00 BST.
    let hourly = only(&fires, "hourly");
    assert_eq!(hourly.len(), 22, "{hourly:?}");
    assert_eq!(
        hourly.first().map(String::as_str),
        Some("2026-03-29T01:00:00Z")
    );
    // One operation per fire, each with its instant.
    let operations = harness.operations("at-0130");
    assert_eq!(operations.len(), 1);
    assert_eq!(
        operations[0].trigger,
        Trigger::Cron {
            instant: utc("2026-03-29T01:00:00Z")
        }
    );
    assert_eq!(operations[0].mode, Mode::Async);
    assert_eq!(harness.operations("hourly").len(), 22);
}

#[test]
fn london_fall_back_day_fires_a_repeated_time_once() {
    // The local day 25 October 2026: 00:00 BST to 24:00 GMT, 25 hours.
    let (harness, fires) = fires_over(
        vec![
            workflow(
                "at-0130",
                "30 1 * * *",
                "Europe/London",
                "run_once",
                "queue",
            ),
            workflow(
                "half-past",
                "30 * * * *",
                "Europe/London",
                "run_once",
                "queue",
            ),
        ],
        "2026-10-24T23:00:00Z",
        "2026-10-25T23:59:59Z",
    );
    // 01:30 happens twice (00:30 UTC in BST, 01:30 UTC in GMT): only the first fires.
    assert_eq!(only(&fires, "at-0130"), ["2026-10-25T00:30:00Z"]);
    // Every hour follows real time: both passes of the repeated hour, 25 fires.
    let half_past = only(&fires, "half-past");
    assert_eq!(half_past.len(), 25, "{half_past:?}");
    assert!(half_past.contains(&"2026-10-25T00:30:00Z".to_string()));
    assert!(half_past.contains(&"2026-10-25T01:30:00Z".to_string()));
    assert_eq!(harness.operations("at-0130").len(), 1);
    assert_eq!(harness.operations("half-past").len(), 25);
}

#[test]
fn new_york_spring_forward_day_fires_a_missing_time_once_after_the_gap() {
    // The local day 8 March 2026: 00:00 EST (05:00 UTC) to 24:00 EDT (04:00 UTC).
    let (harness, fires) = fires_over(
        vec![
            workflow(
                "at-0130",
                "30 1 * * *",
                "America/New_York",
                "run_once",
                "queue",
            ),
            workflow(
                "at-0230",
                "30 2 * * *",
                "America/New_York",
                "run_once",
                "queue",
            ),
        ],
        "2026-03-08T05:00:00Z",
        "2026-03-09T03:59:59Z",
    );
    assert_eq!(
        fires,
        pairs(&[
            // 01:30 EST exists.
            ("at-0130", "2026-03-08T06:30:00Z"),
            // 02:30 does not: once, at 03:00 EDT.
            ("at-0230", "2026-03-08T07:00:00Z"),
        ])
    );
    assert_eq!(harness.operations("at-0230").len(), 1);
}

#[test]
fn new_york_fall_back_day_fires_a_repeated_time_once() {
    // The local day 1 November 2026: 00:00 EDT (04:00 UTC) to 24:00 EST (05:00 UTC).
    let (harness, fires) = fires_over(
        vec![
            workflow(
                "at-0130",
                "30 1 * * *",
                "America/New_York",
                "run_once",
                "queue",
            ),
            workflow(
                "at-0230",
                "30 2 * * *",
                "America/New_York",
                "run_once",
                "queue",
            ),
        ],
        "2026-11-01T04:00:00Z",
        "2026-11-02T04:59:59Z",
    );
    assert_eq!(
        fires,
        pairs(&[
            // 01:30 EDT (05:30 UTC); not again at 01:30 EST (06:30 UTC).
            ("at-0130", "2026-11-01T05:30:00Z"),
            ("at-0230", "2026-11-01T07:30:00Z"),
        ])
    );
    assert_eq!(harness.operations("at-0130").len(), 1);
}

#[test]
fn the_scheduler_fires_exactly_the_instants_of_the_schedule() {
    // Over a fall-back week, every fire instant comes from `Schedule`, in order, none twice.
    let every_ten = workflow(
        "every-ten",
        "*/10 0-3 * * *",
        "Europe/London",
        "run_once",
        "queue",
    );
    let schedule = match &every_ten.0.triggers[0] {
        crate::compile::Trigger::Cron(cron) => cron.schedule.clone(),
        crate::compile::Trigger::Webhook(_) => panic!("a cron trigger"),
    };
    let from = utc("2026-10-22T00:00:00Z");
    let until = utc("2026-10-29T00:00:00Z");
    let (_harness, fires) = fires_over(
        vec![every_ten],
        "2026-10-22T00:00:00Z",
        "2026-10-29T00:00:00Z",
    );
    let expected: Vec<String> = schedule
        .fires_after(from)
        .take_while(|fire| fire.utc <= until)
        .map(|fire| key(fire.utc))
        .collect();
    assert!(expected.len() > 100);
    assert_eq!(only(&fires, "every-ten"), expected);
}

/// Fires `* * * * *` once at 12:01 and again at 12:02, returning the second report.
fn fire_twice(harness: &Harness, between: impl FnOnce(&Harness)) -> FireReport {
    let mut scheduler = harness.start();
    let first = harness.tick_at(&mut scheduler, utc("2026-06-01T12:01:00Z"));
    assert_eq!(first.len(), 1);
    assert!(matches!(
        &first[0].outcome,
        FireOutcome::Launched(launch) if matches!(**launch, Launch::Created(_))
    ));
    between(harness);
    let mut second = harness.tick_at(&mut scheduler, utc("2026-06-01T12:02:00Z"));
    assert_eq!(second.len(), 1);
    second.remove(0)
}

fn every_minute(overlap: &str) -> Harness {
    Harness::new(
        vec![workflow(
            "minutely",
            "* * * * *",
            "UTC",
            "run_once",
            overlap,
        )],
        utc("2026-06-01T12:00:30Z"),
    )
}

#[test]
fn overlap_skip_creates_nothing_while_an_operation_is_active() {
    let harness = every_minute("skip");
    let second = fire_twice(&harness, |_| {});
    assert!(
        matches!(
            &second.outcome,
            FireOutcome::Launched(launch) if matches!(**launch, Launch::Skipped { .. })
        ),
        "{second:?}"
    );
    assert_eq!(harness.operations("minutely").len(), 1);
    assert_eq!(
        harness
            .state
            .metrics
            .fires_skipped
            .load(AtomicOrdering::Relaxed),
        1
    );
    assert_eq!(harness.state.metrics.fires.load(AtomicOrdering::Relaxed), 1);
}

#[test]
fn overlap_queue_creates_a_second_waiting_operation() {
    let harness = every_minute("queue");
    let second = fire_twice(&harness, |_| {});
    assert!(
        matches!(&second.outcome, FireOutcome::Launched(launch) if matches!(**launch, Launch::Created(_))),
        "{second:?}"
    );
    let operations = harness.operations("minutely");
    assert_eq!(operations.len(), 2);
    assert!(
        operations
            .iter()
            .all(|operation| operation.status == OperationStatus::Waiting)
    );
    assert_eq!(
        operations[1].trigger,
        Trigger::Cron {
            instant: utc("2026-06-01T12:02:00Z")
        }
    );
}

#[test]
fn overlap_replace_cancels_the_running_operation_and_creates_a_new_one() {
    let harness = every_minute("replace");
    let second = fire_twice(&harness, |harness| {
        let running = harness
            .store
            .claim_next("worker-1", harness.clock.now(), Duration::from_secs(60))
            .unwrap()
            .expect("the first fire's operation");
        assert_eq!(running.status, OperationStatus::InProgress);
    });
    let FireOutcome::Launched(launch) = &second.outcome else {
        panic!("expected a launch: {second:?}");
    };
    let Launch::Replaced {
        operation,
        canceled,
    } = launch.as_ref()
    else {
        panic!("expected a replace: {second:?}");
    };
    let operations = harness.operations("minutely");
    assert_eq!(operations.len(), 2);
    assert_eq!(*canceled, [operations[0].id.clone()]);
    assert_eq!(operations[0].status, OperationStatus::Canceling);
    assert_eq!(operations[1].id, operation.id);
    assert_eq!(operations[1].status, OperationStatus::Waiting);
}

/// A store where `workflow` last fired at `last_fire`, and a scheduler started at `now`.
fn after_downtime(
    missed: &str,
    last_fire: Option<&str>,
    now: &str,
) -> (Harness, Scheduler, Vec<FireReport>) {
    let harness = Harness::new(
        vec![workflow("hourly", "0 * * * *", "UTC", missed, "queue")],
        utc(now),
    );
    if let Some(last_fire) = last_fire {
        assert!(
            harness
                .store
                .claim_fire("hourly", utc(last_fire), utc(last_fire))
                .unwrap()
        );
    }
    let mut scheduler = harness.start();
    let reports = harness.tick_at(&mut scheduler, utc(now));
    (harness, scheduler, reports)
}

#[test]
fn a_missed_fire_after_downtime_runs_once_for_the_latest_instant() {
    // Down from 02:30 to 10:20: eight hourly fires missed, one run.
    let (harness, mut scheduler, reports) = after_downtime(
        "run_once",
        Some("2026-01-01T02:00:00Z"),
        "2026-01-01T10:20:00Z",
    );
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(key(reports[0].instant), "2026-01-01T10:00:00Z");
    let operations = harness.operations("hourly");
    assert_eq!(operations.len(), 1);
    assert_eq!(
        operations[0].trigger,
        Trigger::Cron {
            instant: utc("2026-01-01T10:00:00Z")
        }
    );
    // Then the schedule goes on from now.
    assert_eq!(scheduler.next_wake(), Some(utc("2026-01-01T11:00:00Z")));
    let next = harness.run_until(&mut scheduler, utc("2026-01-01T12:00:00Z"));
    assert_eq!(
        next,
        pairs(&[
            ("hourly", "2026-01-01T11:00:00Z"),
            ("hourly", "2026-01-01T12:00:00Z")
        ])
    );
}

#[test]
fn missed_skip_runs_nothing_after_downtime() {
    let (harness, scheduler, reports) =
        after_downtime("skip", Some("2026-01-01T02:00:00Z"), "2026-01-01T10:20:00Z");
    assert!(reports.is_empty(), "{reports:?}");
    assert!(harness.operations("hourly").is_empty());
    assert_eq!(scheduler.next_wake(), Some(utc("2026-01-01T11:00:00Z")));
}

#[test]
fn a_workflow_never_fired_does_not_fire_for_the_past() {
    let (harness, _, reports) = after_downtime("run_once", None, "2026-01-01T10:20:00Z");
    assert!(reports.is_empty(), "{reports:?}");
    assert!(harness.operations("hourly").is_empty());
}

#[test]
fn no_fire_is_missed_when_the_last_fire_is_the_latest_instant() {
    let (harness, _, reports) = after_downtime(
        "run_once",
        Some("2026-01-01T10:00:00Z"),
        "2026-01-01T10:20:00Z",
    );
    assert!(reports.is_empty(), "{reports:?}");
    assert!(harness.operations("hourly").is_empty());
}

#[test]
fn a_late_tick_fires_once_and_goes_on_from_now() {
    // The process was suspended from 12:00:30 to 12:10:30: one fire for 12:01, not ten.
    let harness = every_minute("queue");
    let mut scheduler = harness.start();
    let reports = harness.tick_at(&mut scheduler, utc("2026-06-01T12:10:30Z"));
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(scheduler.next_wake(), Some(utc("2026-06-01T12:11:00Z")));
}

#[test]
fn two_schedulers_on_one_store_file_run_each_instant_once() {
    let file = TempStore::new();
    let start = utc("2026-06-01T12:00:30Z");
    const MINUTES: i64 = 20;
    let workflows = || {
        vec![workflow(
            "minutely",
            "* * * * *",
            "UTC",
            "run_once",
            "queue",
        )]
    };
    let first = Harness::with_store(TempStore::new(), file.open(), workflows(), start);
    let second = Harness::with_store(TempStore::new(), file.open(), workflows(), start);
    let barrier = Barrier::new(2);
    let run = |harness: &Harness| {
        let mut scheduler = harness.start();
        let mut launched = Vec::new();
        for minute in 1..=MINUTES {
            let now = start + TimeDelta::seconds(30) + TimeDelta::minutes(minute - 1);
            barrier.wait();
            for report in harness.tick_at(&mut scheduler, now) {
                match report.outcome {
                    FireOutcome::Launched(_) => launched.push(key(report.instant)),
                    FireOutcome::AlreadyClaimed => {}
                    FireOutcome::Failed { .. } => panic!("{report:?}"),
                }
            }
        }
        launched
    };
    let (mut launched, other) = std::thread::scope(|scope| {
        let first_thread = scope.spawn(|| run(&first));
        let second_thread = scope.spawn(|| run(&second));
        (first_thread.join().unwrap(), second_thread.join().unwrap())
    });
    launched.extend(other);
    launched.sort();
    let expected: Vec<String> = (1..=MINUTES)
        .map(|minute| key(utc("2026-06-01T12:00:00Z") + TimeDelta::minutes(minute)))
        .collect();
    assert_eq!(launched, expected);
    let operations = first.operations("minutely");
    assert_eq!(operations.len(), expected.len());
    let skipped = first
        .state
        .metrics
        .fires_skipped
        .load(AtomicOrdering::Relaxed)
        + second
            .state
            .metrics
            .fires_skipped
            .load(AtomicOrdering::Relaxed);
    assert_eq!(skipped, u64::try_from(expected.len()).unwrap());
}

#[test]
fn an_edit_re_anchors_from_now_and_never_fires_for_the_past() {
    let harness = Harness::new(
        vec![
            workflow("edited", "0 * * * *", "UTC", "run_once", "queue"),
            workflow("unchanged", "0 * * * *", "UTC", "run_once", "queue"),
        ],
        utc("2026-01-01T10:20:00Z"),
    );
    let mut scheduler = harness.start();
    assert!(
        harness
            .tick_at(&mut scheduler, utc("2026-01-01T10:20:00Z"))
            .is_empty()
    );
    // At 11:45, before the late 11:00 tick, `edited` becomes `30 * * * *`.
    let edited_at = utc("2026-01-01T11:45:00Z");
    let (edited, source) = workflow("edited", "30 * * * *", "UTC", "run_once", "queue");
    let edited = Arc::new(ActiveWorkflow {
        workflow: Arc::new(edited),
        source: source.into(),
        activated_at: edited_at,
    });
    harness.publish(|entry| {
        let mut entry = entry.clone();
        if entry
            .active
            .as_ref()
            .is_some_and(|active| active.name() == "edited")
        {
            entry.active = Some(edited.clone());
        }
        Some(entry)
    });
    harness.clock.set(edited_at);
    scheduler.sync(&harness.state.registry.snapshot(), edited_at);
    assert_eq!(
        scheduler.next_fires("edited"),
        [utc("2026-01-01T12:30:00Z")]
    );
    // The unchanged workflow keeps its pending 11:00 fire; the edited one has none before 12:30.
    let reports = harness.tick_at(&mut scheduler, edited_at);
    let fired: Vec<(String, String)> = reports
        .iter()
        .map(|report| (report.workflow.clone(), key(report.instant)))
        .collect();
    assert_eq!(fired, pairs(&[("unchanged", "2026-01-01T11:00:00Z")]));
    let next = harness.run_until(&mut scheduler, utc("2026-01-01T12:30:00Z"));
    assert_eq!(
        next,
        pairs(&[
            ("unchanged", "2026-01-01T12:00:00Z"),
            ("edited", "2026-01-01T12:30:00Z")
        ])
    );
    // The operation runs the version it was launched with.
    let operations = harness.operations("edited");
    assert_eq!(operations.len(), 1);
    assert_eq!(operations[0].workflow_version, edited.version());
}

#[test]
fn an_edit_activated_in_the_future_is_anchored_there() {
    let harness = Harness::new(
        vec![workflow("edited", "0 * * * *", "UTC", "run_once", "queue")],
        utc("2026-01-01T10:20:00Z"),
    );
    let mut scheduler = harness.start();
    let (edited, source) = workflow("edited", "0 * * * *", "UTC", "run_once", "skip");
    let edited = Arc::new(ActiveWorkflow {
        workflow: Arc::new(edited),
        source: source.into(),
        activated_at: utc("2026-01-01T12:10:00Z"),
    });
    harness.publish(|entry| {
        let mut entry = entry.clone();
        entry.active = Some(edited.clone());
        Some(entry)
    });
    scheduler.sync(
        &harness.state.registry.snapshot(),
        utc("2026-01-01T10:30:00Z"),
    );
    assert_eq!(scheduler.next_wake(), Some(utc("2026-01-01T13:00:00Z")));
}

#[test]
fn a_removed_workflow_stops_firing() {
    let harness = Harness::new(
        vec![
            workflow("removed", "0 * * * *", "UTC", "run_once", "queue"),
            workflow("kept", "30 * * * *", "UTC", "run_once", "queue"),
        ],
        utc("2026-01-01T10:20:00Z"),
    );
    let mut scheduler = harness.start();
    assert!(
        harness
            .tick_at(&mut scheduler, utc("2026-01-01T10:20:00Z"))
            .is_empty()
    );
    assert_eq!(scheduler.scheduled_workflows(), 2);
    harness.publish(|entry| {
        let removed = entry
            .active
            .as_ref()
            .is_some_and(|active| active.name() == "removed");
        (!removed).then(|| entry.clone())
    });
    scheduler.sync(
        &harness.state.registry.snapshot(),
        utc("2026-01-01T10:25:00Z"),
    );
    assert_eq!(scheduler.scheduled_workflows(), 1);
    assert!(scheduler.next_fires("removed").is_empty());
    assert_eq!(scheduler.next_wake(), Some(utc("2026-01-01T10:30:00Z")));
    let fires = harness.run_until(&mut scheduler, utc("2026-01-01T13:00:00Z"));
    assert_eq!(
        fires,
        pairs(&[
            ("kept", "2026-01-01T10:30:00Z"),
            ("kept", "2026-01-01T11:30:00Z"),
            ("kept", "2026-01-01T12:30:00Z"),
        ])
    );
    assert!(harness.operations("removed").is_empty());
    // Removing the last one leaves nothing to wake for.
    harness.publish(|_| None);
    scheduler.sync(
        &harness.state.registry.snapshot(),
        utc("2026-01-01T13:00:00Z"),
    );
    assert_eq!(scheduler.next_wake(), None);
}

#[test]
fn many_reloads_do_not_grow_the_heap() {
    let harness = Harness::new(
        vec![workflow("edited", "* * * * *", "UTC", "run_once", "queue")],
        utc("2026-01-01T10:20:00Z"),
    );
    let mut scheduler = harness.start();
    let (edited, source) = workflow("edited", "0 * * * *", "UTC", "run_once", "queue");
    for minute in 0..1000 {
        let active = Arc::new(ActiveWorkflow {
            workflow: Arc::new(edited.clone()),
            source: source.as_str().into(),
            activated_at: utc("2026-01-01T10:20:00Z") + TimeDelta::seconds(minute),
        });
        harness.publish(|entry| {
            let mut entry = entry.clone();
            entry.active = Some(active.clone());
            Some(entry)
        });
        scheduler.sync(
            &harness.state.registry.snapshot(),
            utc("2026-01-01T10:20:00Z"),
        );
    }
    assert!(scheduler.heap.len() < 200, "{}", scheduler.heap.len());
    assert_eq!(
        scheduler.next_fires("edited"),
        [utc("2026-01-01T11:00:00Z")]
    );
}

#[test]
fn ten_thousand_workflows_tick_only_what_is_due() {
    // A tick with nothing due looks at the top of the heap only; each tick of this loop fires
    // one workflow out of 10,000.
    let (base, source) = workflow("base", "0 0 * * *", "UTC", "skip", "queue");
    let workflows: Vec<(Workflow, String)> = (0..10_000)
        .map(|n| {
            let (mut workflow, source) = (base.clone(), source.clone());
            workflow.name = format!("wf-{n:05}");
            workflow.file = PathBuf::from(format!("wf-{n:05}.yaml"));
            (workflow, source)
        })
        .collect();
    let harness = Harness::new(workflows, utc("2026-01-01T10:20:00Z"));
    let mut scheduler = harness.start();
    assert_eq!(scheduler.scheduled_workflows(), 10_000);
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        assert!(
            harness
                .tick_at(&mut scheduler, utc("2026-01-01T10:20:01Z"))
                .is_empty()
        );
    }
    // 10,000 idle ticks over 10,000 workflows: a linear scan would take seconds.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(scheduler.next_wake(), Some(utc("2026-01-02T00:00:00Z")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_fires_on_the_system_clock_and_stops_on_shutdown() {
    let file = TempStore::new();
    let store = file.open();
    let registry = Arc::new(Registry::from_workflows(
        vec![workflow(
            "every-second",
            "* * * * * *",
            "UTC",
            "run_once",
            "queue",
        )],
        Utc::now(),
    ));
    let state = serve_state(registry, store.clone(), Arc::new(SystemClock));
    let (stop, shutdown) = watch::channel(false);
    let work = state.work.clone();
    let waiting_worker = tokio::spawn(async move { work.notified().await });
    let handle = tokio::spawn(run_scheduler(state.clone(), shutdown));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // A registry change wakes the loop: the workflow is unscheduled at once.
    state
        .registry
        .update(|_, generation| Snapshot::new(generation, []));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fired = state.metrics.fires.load(AtomicOrdering::Relaxed);
    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(2), handle)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();
    assert!(fired >= 2, "{fired} fires");
    let operations = store
        .list(&OperationFilter {
            workflow: Some("every-second".to_string()),
            limit: crate::store::MAX_PAGE_SIZE,
            ..OperationFilter::default()
        })
        .unwrap()
        .operations;
    assert_eq!(u64::try_from(operations.len()).unwrap(), fired);
    let mut instants: Vec<String> = operations
        .iter()
        .map(|operation| operation.trigger.to_string())
        .collect();
    instants.sort();
    instants.dedup();
    assert_eq!(instants.len(), operations.len());
    // Workers waiting for work were woken.
    tokio::time::timeout(Duration::from_secs(1), waiting_worker)
        .await
        .expect("a waiting worker is woken")
        .unwrap();
    let (_, count, _) = state.metrics.fire_lag();
    assert_eq!(count, fired);
    // Nothing fires after the workflow was removed.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(state.metrics.fires.load(AtomicOrdering::Relaxed), fired);
}

/// Runs SQL on the store file through a connection of its own, behind the store's back.
fn behind_the_back(harness: &Harness, sql: &str) {
    let connection = rusqlite::Connection::open(&harness.file.path).unwrap();
    connection.execute_batch(sql).unwrap();
}

#[test]
fn a_fire_failing_on_a_store_error_is_retried_once_for_the_latest_instant() {
    let harness = every_minute("queue");
    let mut scheduler = harness.start();
    assert!(
        harness
            .tick_at(&mut scheduler, utc("2026-06-01T12:00:30Z"))
            .is_empty()
    );
    // The claims table disappears: claiming fails.
    behind_the_back(
        &harness,
        "ALTER TABLE fire_claims RENAME TO fire_claims_away",
    );
    let failed = harness.tick_at(&mut scheduler, utc("2026-06-01T12:01:00Z"));
    assert_eq!(failed.len(), 1);
    let FireOutcome::Failed { retry_at, .. } = &failed[0].outcome else {
        panic!("expected a failure: {failed:?}");
    };
    assert_eq!(*retry_at, Some(utc("2026-06-01T12:01:05Z")));
    assert_eq!(scheduler.next_wake(), Some(utc("2026-06-01T12:01:05Z")));
    // Still failing at the retry and at the next fire: one retry is left, for 12:02.
    let failed = harness.tick_at(&mut scheduler, utc("2026-06-01T12:01:05Z"));
    assert_eq!(key(failed[0].instant), "2026-06-01T12:01:00Z");
    let failed = harness.tick_at(&mut scheduler, utc("2026-06-01T12:02:00Z"));
    let instants: Vec<String> = failed.iter().map(|report| key(report.instant)).collect();
    assert_eq!(instants, ["2026-06-01T12:01:00Z", "2026-06-01T12:02:00Z"]);
    assert!(harness.operations("minutely").is_empty());
    behind_the_back(
        &harness,
        "ALTER TABLE fire_claims_away RENAME TO fire_claims",
    );
    let fires = harness.run_until(&mut scheduler, utc("2026-06-01T12:02:59Z"));
    assert_eq!(fires, pairs(&[("minutely", "2026-06-01T12:02:00Z")]));
    let operations = harness.operations("minutely");
    assert_eq!(operations.len(), 1);
    assert_eq!(
        operations[0].trigger,
        Trigger::Cron {
            instant: utc("2026-06-01T12:02:00Z")
        }
    );
}

#[test]
fn a_start_up_check_failing_on_a_store_error_is_retried() {
    let harness = Harness::new(
        vec![workflow("hourly", "0 * * * *", "UTC", "run_once", "queue")],
        utc("2026-01-01T10:20:00Z"),
    );
    // A claim the store cannot read.
    behind_the_back(
        &harness,
        "INSERT INTO fire_claims (workflow, instant, claimed_at) \
         VALUES ('hourly', 'not a time', '2026-01-01T02:00:00Z')",
    );
    let mut scheduler = harness.start();
    assert!(
        harness
            .tick_at(&mut scheduler, utc("2026-01-01T10:20:00Z"))
            .is_empty()
    );
    assert_eq!(scheduler.next_wake(), Some(utc("2026-01-01T10:20:05Z")));
    behind_the_back(
        &harness,
        "DELETE FROM fire_claims WHERE instant = 'not a time'",
    );
    assert!(
        harness
            .store
            .claim_fire(
                "hourly",
                utc("2026-01-01T02:00:00Z"),
                utc("2026-01-01T02:00:00Z")
            )
            .unwrap()
    );
    let reports = harness.tick_at(&mut scheduler, utc("2026-01-01T10:20:05Z"));
    assert_eq!(reports.len(), 1, "{reports:?}");
    // The missed instant is the latest before the schedule started, not before the retry.
    assert_eq!(key(reports[0].instant), "2026-01-01T10:00:00Z");
    assert_eq!(harness.operations("hourly").len(), 1);
}

#[test]
fn every_cron_trigger_of_a_workflow_fires_and_one_instant_runs_once() {
    let (multi, source) = compiled(
        r#"name: multi
triggers:
  - cron: "0 * * * *"
  - webhook: {}
  - cron: "30 * * * *"
    timezone: America/New_York
  - cron: "0 */2 * * *"
    missed: skip
overlap: queue
select:
  fetchxml: |
    <fetch><entity name="account"><attribute name="name"/></entity></fetch>
actions:
  - delete: {}
"#,
    );
    let harness = Harness::new(vec![(multi, source)], utc("2026-01-01T10:20:00Z"));
    let mut scheduler = harness.start();
    assert_eq!(
        scheduler.next_fires("multi"),
        [
            utc("2026-01-01T10:30:00Z"),
            utc("2026-01-01T11:00:00Z"),
            utc("2026-01-01T12:00:00Z")
        ]
    );
    let fires = harness.run_until(&mut scheduler, utc("2026-01-01T12:59:59Z"));
    assert_eq!(
        fires,
        pairs(&[
            ("multi", "2026-01-01T10:30:00Z"),
            ("multi", "2026-01-01T11:00:00Z"),
            ("multi", "2026-01-01T11:30:00Z"),
            // Two triggers at 12:00: one run.
            ("multi", "2026-01-01T12:00:00Z"),
            ("multi", "2026-01-01T12:30:00Z"),
        ])
    );
    assert_eq!(harness.operations("multi").len(), 5);
    assert_eq!(
        harness
            .state
            .metrics
            .fires_skipped
            .load(AtomicOrdering::Relaxed),
        0
    );
}

#[tokio::test]
async fn the_loop_waits_for_the_initial_load_and_then_catches_up() {
    let file = TempStore::new();
    let store = file.open();
    let now = Utc::now();
    store
        .claim_fire(
            "hourly",
            now - TimeDelta::hours(3),
            now - TimeDelta::hours(3),
        )
        .unwrap();
    let registry = Arc::new(Registry::default());
    let state = serve_state(registry, store.clone(), Arc::new(SystemClock));
    let (stop, shutdown) = watch::channel(false);
    let handle = tokio::spawn(run_scheduler(state.clone(), shutdown));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(state.metrics.fires.load(AtomicOrdering::Relaxed), 0);
    // The initial load is published: the missed hour runs once.
    let (hourly, source) = workflow("hourly", "0 * * * *", "UTC", "run_once", "queue");
    let loaded = Registry::from_workflows([(hourly, source)], Utc::now());
    state
        .registry
        .update(|_, generation| Snapshot::new(generation, loaded.snapshot().files().cloned()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while state.metrics.missed_fires.load(AtomicOrdering::Relaxed) == 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(2), handle)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();
    let operations = store
        .list(&OperationFilter {
            workflow: Some("hourly".to_string()),
            ..OperationFilter::default()
        })
        .unwrap()
        .operations;
    assert_eq!(operations.len(), 1);
    // A missed fire's lag is the downtime: it is counted apart, not in the lag histogram.
    assert_eq!(state.metrics.missed_fires.load(AtomicOrdering::Relaxed), 1);
    assert_eq!(state.metrics.fire_lag().1, 0);
    let Trigger::Cron { instant } = operations[0].trigger else {
        panic!("a cron operation: {:?}", operations[0].trigger);
    };
    // The latest whole hour, not the one claimed three hours ago.
    let checked_at = Utc::now();
    assert!(
        instant <= checked_at && checked_at - instant <= TimeDelta::hours(1),
        "{instant}"
    );
}
