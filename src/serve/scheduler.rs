//! The scheduler: turns the cron triggers of the registry's workflows into operations. Every
//! fire instant is claimed in the state store in the same transaction that creates its
//! operation, so one instant runs once even with several `serve` processes on one store
//! (DESIGN 8), and a crash never leaves an instant claimed without its operation.
//!
//! [`Scheduler`] is the deterministic core: it holds the next fire of every cron trigger in a
//! min-heap keyed by instant, so a tick costs O(due · log n) however many workflows are loaded,
//! and it reads time only as a parameter. [`run_scheduler`] is the loop around it: it sleeps
//! until the next fire, a registry change or shutdown.
//!
//! Rules:
//! - A workflow's schedule is anchored at `max(activated_at, now)` when the scheduler first sees
//!   that version: an edit never fires for the past. An unchanged version (the same `Arc`) keeps
//!   its pending fires; a removed workflow is unscheduled.
//! - At start-up, a workflow whose latest claimed fire is older than its latest scheduled
//!   instant runs once, for that latest instant (`missed: run_once`, the default), not once per
//!   missed slot; `missed: skip` runs nothing. A workflow never fired before never fires for the
//!   past. The same applies when the process falls behind (suspend, clock jump): a trigger that
//!   is late fires once and continues from now.
//! - A fire launches an async operation with the workflow's default vars and its `overlap`
//!   policy applied.
//! - A store error never stops the scheduler: the fire is retried later, once for the latest
//!   failed instant of the workflow (or dropped under `missed: skip`).

use std::cmp::{Ordering, Reverse};
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::compile::{Missed, Mode, Trigger as WorkflowTrigger};
use crate::engine::{Launch, LaunchRequest, launch};
use crate::serve::{ActiveWorkflow, ServeState, Snapshot};
use crate::store::{StoreError, Trigger};

/// How long a fire or a start-up check that failed on a store error waits before its retry.
pub const RETRY_DELAY: Duration = Duration::from_secs(5);

/// The longest the loop sleeps without looking at the clock again, so a jump of the wall
/// clock (suspend, NTP step) is noticed within this time.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What became of one fire instant.
#[derive(Debug, Clone)]
pub struct FireReport {
    pub workflow: String,
    /// The scheduled instant (UTC, whole seconds).
    pub instant: DateTime<Utc>,
    pub outcome: FireOutcome,
}

/// The result of one fire.
#[derive(Debug, Clone)]
pub enum FireOutcome {
    /// This process claimed the instant and launched: an operation was created (possibly
    /// replacing the active one), or `overlap: skip` created nothing.
    Launched(Box<Launch>),
    /// Another scheduler (another `serve` process) claimed the instant first.
    AlreadyClaimed,
    /// The store failed; `retry_at` says when the fire is tried again (`None`: dropped,
    /// because the trigger says `missed: skip`).
    Failed {
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

/// The deterministic core of the scheduler; see the module documentation.
#[derive(Debug, Default)]
pub struct Scheduler {
    workflows: HashMap<Arc<str>, ScheduledWorkflow>,
    heap: BinaryHeap<Reverse<Pending>>,
    /// Heap entries that belong to replaced or removed workflow versions, dropped lazily.
    stale_entries: usize,
    next_epoch: u64,
    next_seq: u64,
    sync_round: u64,
}

/// The version of a workflow the scheduler runs, and the bookkeeping of its heap entries.
#[derive(Debug)]
struct ScheduledWorkflow {
    active: Arc<ActiveWorkflow>,
    /// Identifies this version's heap entries; entries of other epochs are stale.
    epoch: u64,
    /// Live heap entries of this version.
    entries: usize,
    /// The pending fire of each cron trigger: (trigger index, instant).
    upcoming: Vec<(usize, DateTime<Utc>)>,
    /// The instant of the one pending retry, if a fire failed on a store error.
    retry: Option<RetryState>,
    /// The last `sync` that saw this workflow.
    seen_in_round: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RetryState {
    instant: DateTime<Utc>,
}

/// One heap entry: something to do for a workflow at `due`.
#[derive(Debug)]
struct Pending {
    due: DateTime<Utc>,
    /// Insertion order: equal instants run in the order they were scheduled.
    seq: u64,
    workflow: Arc<str>,
    epoch: u64,
    task: Task,
}

#[derive(Debug, Clone, Copy)]
enum Task {
    /// The next fire of the workflow's cron trigger number `trigger` (index into its triggers).
    Fire {
        trigger: usize,
        instant: DateTime<Utc>,
    },
    /// The start-up check for fires missed before `until` (the moment the schedule started).
    CatchUp { until: DateTime<Utc> },
    /// A fire that failed on a store error, tried again.
    Retry { instant: DateTime<Utc> },
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

impl Scheduler {
    /// A scheduler for the workflows of `snapshot` at start-up: every cron trigger is anchored
    /// at `now`, and each workflow with a `missed: run_once` trigger gets a check of the fires
    /// it missed while no scheduler ran (done by the first [`Scheduler::tick`], which has the
    /// store).
    pub fn start(snapshot: &Snapshot, now: DateTime<Utc>) -> Scheduler {
        let mut scheduler = Scheduler::default();
        scheduler.sync(snapshot, now);
        let names: Vec<(Arc<str>, u64)> = scheduler
            .workflows
            .iter()
            .filter(|(_, scheduled)| {
                cron_triggers(&scheduled.active).any(|(_, cron)| cron.missed == Missed::RunOnce)
            })
            .map(|(name, scheduled)| (name.clone(), scheduled.epoch))
            .collect();
        for (name, epoch) in names {
            scheduler.push(now, name, epoch, Task::CatchUp { until: now });
        }
        scheduler
    }

    /// Follows a new snapshot: new and changed workflows are scheduled from
    /// `max(activated_at, now)`, removed ones (and ones without cron triggers) are dropped,
    /// unchanged ones (the same `Arc`) keep their pending fires. O(workflows).
    pub fn sync(&mut self, snapshot: &Snapshot, now: DateTime<Utc>) {
        self.sync_round += 1;
        let round = self.sync_round;
        for active in snapshot.workflows() {
            if cron_triggers(active).next().is_none() {
                continue;
            }
            let name = active.name();
            if let Some(scheduled) = self.workflows.get_mut(name)
                && Arc::ptr_eq(&scheduled.active, active)
            {
                scheduled.seen_in_round = round;
                continue;
            }
            self.schedule_version(active.clone(), now, round);
        }
        let mut stale = 0;
        self.workflows.retain(|name, scheduled| {
            let keep = scheduled.seen_in_round == round;
            if !keep {
                tracing::info!(workflow = %name, "Workflow unscheduled.");
                stale += scheduled.entries;
            }
            keep
        });
        self.stale_entries += stale;
        self.compact();
    }

    /// The instant of the earliest pending fire (or retry); `None` when nothing is scheduled.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.heap.peek().map(|Reverse(pending)| pending.due)
    }

    /// The next fire instant of each of a workflow's cron triggers, as scheduled (for the API).
    pub fn next_fires(&self, workflow: &str) -> Vec<DateTime<Utc>> {
        let mut fires: Vec<DateTime<Utc>> = self
            .workflows
            .get(workflow)
            .map(|scheduled| {
                scheduled
                    .upcoming
                    .iter()
                    .map(|(_, instant)| *instant)
                    .collect()
            })
            .unwrap_or_default();
        fires.sort_unstable();
        fires
    }

    /// How many workflows have cron triggers scheduled.
    pub fn scheduled_workflows(&self) -> usize {
        self.workflows.len()
    }

    /// Runs everything due at `now`: claims each due instant, launches its operation, and
    /// schedules each trigger's next fire. Store errors are reported and retried later.
    pub fn tick(&mut self, state: &ServeState, now: DateTime<Utc>) -> Vec<FireReport> {
        let mut reports = Vec::new();
        // Two triggers of one workflow firing at the same instant make one run.
        let mut fired: HashSet<(Arc<str>, DateTime<Utc>)> = HashSet::new();
        while let Some(pending) = self.pop_due(now) {
            let Some(scheduled) = self.workflows.get(&pending.workflow) else {
                continue;
            };
            let active = scheduled.active.clone();
            match pending.task {
                Task::Fire { trigger, instant } => {
                    if let Some(next) = next_fire_of(&active, trigger, now.max(instant)) {
                        self.push(
                            next,
                            pending.workflow.clone(),
                            pending.epoch,
                            Task::Fire {
                                trigger,
                                instant: next,
                            },
                        );
                    }
                    if fired.insert((pending.workflow.clone(), instant)) {
                        let report = self.fire(state, &pending, &active, instant, now);
                        reports.push(report);
                    }
                }
                Task::CatchUp { until } => {
                    if let Some(report) = self.catch_up(state, &pending, &active, until, now) {
                        reports.push(report);
                    }
                }
                Task::Retry { instant } => {
                    if scheduled.retry.is_none_or(|retry| retry.instant != instant) {
                        continue;
                    }
                    if let Some(scheduled) = self.workflows.get_mut(&pending.workflow) {
                        scheduled.retry = None;
                    }
                    if fired.insert((pending.workflow.clone(), instant)) {
                        let report = self.fire(state, &pending, &active, instant, now);
                        reports.push(report);
                    }
                }
            }
        }
        self.discard_stale_top();
        reports
    }

    /// Schedules a new version of a workflow from `max(activated_at, now)`, dropping the
    /// pending fires of the version it replaces.
    fn schedule_version(&mut self, active: Arc<ActiveWorkflow>, now: DateTime<Utc>, round: u64) {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let name: Arc<str> = Arc::from(active.name());
        let anchor = now.max(active.activated_at);
        let replaced = ScheduledWorkflow {
            active: active.clone(),
            epoch,
            entries: 0,
            upcoming: Vec::new(),
            retry: None,
            seen_in_round: round,
        };
        match self.workflows.entry(name.clone()) {
            MapEntry::Occupied(mut occupied) => {
                let old = occupied.insert(replaced);
                self.stale_entries += old.entries;
                tracing::info!(workflow = %name, version = %active.version(), "Schedule re-anchored.");
            }
            MapEntry::Vacant(vacant) => {
                vacant.insert(replaced);
                tracing::info!(workflow = %name, version = %active.version(), "Workflow scheduled.");
            }
        }
        let firsts: Vec<(usize, DateTime<Utc>)> = cron_triggers(&active)
            .filter_map(|(trigger, cron)| Some((trigger, cron.schedule.next_fire(anchor)?.utc)))
            .collect();
        for (trigger, instant) in firsts {
            self.push(
                instant,
                name.clone(),
                epoch,
                Task::Fire { trigger, instant },
            );
        }
    }

    /// The start-up check: the latest instant a `missed: run_once` trigger should have fired
    /// since the workflow's last claimed fire, fired once.
    fn catch_up(
        &mut self,
        state: &ServeState,
        pending: &Pending,
        active: &ActiveWorkflow,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<FireReport> {
        let last_fire = match state.store.last_fire(active.name()) {
            Ok(last_fire) => last_fire?,
            Err(error) => {
                let retry_at = now + retry_delay();
                tracing::warn!(workflow = %active.name(), %error, "Cannot read the last fire; retrying.");
                self.push(
                    retry_at,
                    pending.workflow.clone(),
                    pending.epoch,
                    Task::CatchUp { until },
                );
                return None;
            }
        };
        let missed = cron_triggers(active)
            .filter(|(_, cron)| cron.missed == Missed::RunOnce)
            .filter_map(|(_, cron)| cron.schedule.latest_fire(last_fire, until))
            .map(|fire| fire.utc)
            .max()?;
        tracing::info!(workflow = %active.name(), instant = %missed, "Running a fire missed during downtime.");
        Some(self.fire(state, pending, active, missed, now))
    }

    /// Launches the operation of `instant`; the launch claims the instant with it.
    fn fire(
        &mut self,
        state: &ServeState,
        pending: &Pending,
        active: &ActiveWorkflow,
        instant: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> FireReport {
        let name = active.name();
        let request = LaunchRequest {
            workflow: &active.workflow,
            source: &active.source,
            vars: active.workflow.vars.clone(),
            trigger: Trigger::Cron { instant },
            mode: Mode::Async,
            git_commit: None,
            now,
            apply_overlap: true,
        };
        let outcome = match launch(state.store.as_ref(), &request) {
            Ok(launched) => {
                self.forget_older_retry(&pending.workflow, instant);
                let catch_up = matches!(pending.task, Task::CatchUp { .. });
                self.record_launch(state, name, instant, &launched, catch_up);
                FireOutcome::Launched(Box::new(launched))
            }
            Err(StoreError::FireClaimed { .. }) => {
                self.forget_older_retry(&pending.workflow, instant);
                tracing::debug!(workflow = %name, %instant, "Fire already claimed by another scheduler.");
                state.metrics.fire_skipped();
                FireOutcome::AlreadyClaimed
            }
            Err(error) => self.retry_later(pending, active, instant, &error, now),
        };
        FireReport {
            workflow: name.to_string(),
            instant,
            outcome,
        }
    }

    /// A later instant ran: a retry of an earlier one would run a stale fire after it.
    fn forget_older_retry(&mut self, workflow: &str, instant: DateTime<Utc>) {
        if let Some(scheduled) = self.workflows.get_mut(workflow)
            && scheduled.retry.is_some_and(|retry| retry.instant < instant)
        {
            scheduled.retry = None;
        }
    }

    fn record_launch(
        &self,
        state: &ServeState,
        name: &str,
        instant: DateTime<Utc>,
        launched: &Launch,
        catch_up: bool,
    ) {
        match launched {
            Launch::Skipped { active } => {
                tracing::info!(workflow = %name, %instant, active = %active, "Fire skipped: an operation is active (overlap: skip).");
                state.metrics.fire_skipped();
            }
            Launch::Created(operation) | Launch::Replaced { operation, .. } => {
                let lag = (state.clock.now() - instant)
                    .to_std()
                    .unwrap_or(Duration::ZERO);
                if catch_up {
                    state
                        .metrics
                        .missed_fires
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    state.metrics.fire(lag);
                }
                if let Launch::Replaced { canceled, .. } = launched {
                    tracing::info!(workflow = %name, %instant, operation = %operation.id, canceled = ?canceled, "Fire replaced the active operation.");
                } else {
                    tracing::info!(workflow = %name, %instant, operation = %operation.id, "Fire launched an operation.");
                }
                state.work.notify_waiters();
                state.work.notify_one();
            }
        }
    }

    /// Keeps one retry per workflow, for its latest failed instant; none under `missed: skip`.
    fn retry_later(
        &mut self,
        pending: &Pending,
        active: &ActiveWorkflow,
        instant: DateTime<Utc>,
        error: &StoreError,
        now: DateTime<Utc>,
    ) -> FireOutcome {
        let skip_missed = match pending.task {
            Task::Fire { trigger, .. } => {
                cron_trigger(active, trigger).is_some_and(|cron| cron.missed == Missed::Skip)
            }
            Task::CatchUp { .. } | Task::Retry { .. } => false,
        };
        let newer_pending = self
            .workflows
            .get(&pending.workflow)
            .and_then(|scheduled| scheduled.retry)
            .is_some_and(|retry| retry.instant > instant);
        if skip_missed || newer_pending {
            tracing::warn!(workflow = %active.name(), %instant, %error, "Fire failed on a store error; dropped.");
            return FireOutcome::Failed {
                error: error.to_string(),
                retry_at: None,
            };
        }
        let retry_at = now + retry_delay();
        if let Some(scheduled) = self.workflows.get_mut(&pending.workflow) {
            scheduled.retry = Some(RetryState { instant });
        }
        self.push(
            retry_at,
            pending.workflow.clone(),
            pending.epoch,
            Task::Retry { instant },
        );
        tracing::warn!(workflow = %active.name(), %instant, %error, %retry_at, "Fire failed on a store error; retrying.");
        FireOutcome::Failed {
            error: error.to_string(),
            retry_at: Some(retry_at),
        }
    }

    fn push(&mut self, due: DateTime<Utc>, workflow: Arc<str>, epoch: u64, task: Task) {
        if let Some(scheduled) = self.workflows.get_mut(&workflow) {
            scheduled.entries += 1;
            if let Task::Fire { trigger, instant } = task {
                scheduled.upcoming.push((trigger, instant));
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Pending {
            due,
            seq,
            workflow,
            epoch,
            task,
        }));
    }

    /// The next live entry due at or before `now`, skipping stale ones.
    fn pop_due(&mut self, now: DateTime<Utc>) -> Option<Pending> {
        loop {
            if self.heap.peek()?.0.due > now {
                return None;
            }
            let Reverse(pending) = self.heap.pop()?;
            match self.workflows.get_mut(&pending.workflow) {
                Some(scheduled) if scheduled.epoch == pending.epoch => {
                    scheduled.entries = scheduled.entries.saturating_sub(1);
                    if let Task::Fire { trigger, .. } = pending.task {
                        scheduled
                            .upcoming
                            .retain(|(upcoming, _)| *upcoming != trigger);
                    }
                    return Some(pending);
                }
                _ => self.stale_entries = self.stale_entries.saturating_sub(1),
            }
        }
    }

    fn is_live(&self, pending: &Pending) -> bool {
        self.workflows
            .get(&pending.workflow)
            .is_some_and(|scheduled| scheduled.epoch == pending.epoch)
    }

    /// Pops stale entries off the top so that `next_wake` is exact.
    fn discard_stale_top(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_live(top) {
                break;
            }
            self.heap.pop();
            self.stale_entries = self.stale_entries.saturating_sub(1);
        }
    }

    /// Drops stale entries once they are the majority, so frequent reloads cannot grow the heap.
    fn compact(&mut self) {
        if self.stale_entries > 64 && self.stale_entries * 2 > self.heap.len() {
            let workflows = &self.workflows;
            self.heap.retain(|Reverse(pending)| {
                workflows
                    .get(&pending.workflow)
                    .is_some_and(|scheduled| scheduled.epoch == pending.epoch)
            });
            self.stale_entries = 0;
        }
        self.discard_stale_top();
    }
}

/// The cron triggers of a workflow, with their index among all its triggers.
fn cron_triggers(
    active: &ActiveWorkflow,
) -> impl Iterator<Item = (usize, &crate::compile::CronTrigger)> {
    active
        .workflow
        .triggers
        .iter()
        .enumerate()
        .filter_map(|(index, trigger)| match trigger {
            WorkflowTrigger::Cron(cron) => Some((index, cron.as_ref())),
            WorkflowTrigger::Webhook(_) => None,
        })
}

fn cron_trigger(active: &ActiveWorkflow, trigger: usize) -> Option<&crate::compile::CronTrigger> {
    match active.workflow.triggers.get(trigger)? {
        WorkflowTrigger::Cron(cron) => Some(cron.as_ref()),
        WorkflowTrigger::Webhook(_) => None,
    }
}

fn next_fire_of(
    active: &ActiveWorkflow,
    trigger: usize,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    Some(
        cron_trigger(active, trigger)?
            .schedule
            .next_fire(after)?
            .utc,
    )
}

fn retry_delay() -> TimeDelta {
    TimeDelta::from_std(RETRY_DELAY).unwrap_or(TimeDelta::seconds(5))
}

/// The scheduler loop of `serve`: starts from the registry's first published snapshot (the
/// initial load; generation 0 is the empty registry before it), so the start-up check sees
/// every workflow; follows the registry's changes, and runs due fires until `shutdown` becomes
/// `true` (or its sender is dropped). Store work runs on the blocking pool, so a slow store
/// never stalls the async runtime.
pub async fn run_scheduler(state: ServeState, mut shutdown: watch::Receiver<bool>) {
    let mut changes = state.registry.subscribe();
    let mut registry_open = true;
    while registry_open && state.registry.snapshot().generation == 0 {
        tokio::select! {
            changed = changes.changed() => registry_open = changed.is_ok(),
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
    changes.mark_unchanged();
    let mut scheduler = Some(Scheduler::start(
        &state.registry.snapshot(),
        state.clock.now(),
    ));
    tracing::info!(
        workflows = scheduler.as_ref().map_or(0, Scheduler::scheduled_workflows),
        "Scheduler started."
    );
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = state.clock.now();
        let current = match scheduler.take() {
            Some(current) => current,
            None => Scheduler::start(&state.registry.snapshot(), now),
        };
        let tick_state = state.clone();
        let ticked = tokio::task::spawn_blocking(move || {
            let mut current = current;
            current.tick(&tick_state, now);
            current
        })
        .await;
        let current = match ticked {
            Ok(current) => current,
            Err(error) => {
                // Rebuilt at the next turn from the registry; its start-up check finds any
                // fire the lost tick did not launch.
                tracing::error!(%error, "Scheduler tick failed; restarting the scheduler.");
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        let sleep = current
            .next_wake()
            .map_or(MAX_SLEEP, |wake| {
                (wake - state.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
            })
            .min(MAX_SLEEP);
        scheduler = Some(current);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            changed = changes.changed(), if registry_open => {
                if changed.is_err() {
                    registry_open = false;
                }
                let snapshot = state.registry.snapshot();
                if let Some(current) = scheduler.as_mut() {
                    current.sync(&snapshot, state.clock.now());
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    tracing::info!("Scheduler stopped.");
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
