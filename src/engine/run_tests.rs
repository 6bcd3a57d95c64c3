//! Tests of the executor over an in-memory local org and state store: the filtered-column
//! trap, per-record failures and `max_failures`, cancel, and resume after a shutdown.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::compile::{CompileContext, compile_source};
use crate::engine::clock::TestClock;
use crate::engine::render::deterministic_id;
use crate::metadata::Catalogue;
use crate::org::local::LocalOrg;
use crate::org::{OrgFuture, RecordError};
use crate::source::SourceFile;
use crate::store::{NewOperation, SqliteStateStore, Trigger};

const WORKER: &str = "test-worker";

fn compiled(yaml: &str) -> Workflow {
    let catalogue = Catalogue::builtin();
    let context = CompileContext {
        catalogue: &catalogue,
        connections: None,
    };
    let outcome = compile_source(
        SourceFile::new(std::path::PathBuf::from("test.yaml"), yaml.to_string()),
        &context,
    );
    outcome
        .workflow
        .unwrap_or_else(|| panic!("{:#?}", outcome.diagnostics))
}

/// An org that counts the writes each record receives.
struct CountingOrg {
    inner: LocalOrg,
    writes: StdMutex<HashMap<String, u32>>,
}

impl Org for CountingOrg {
    fn catalogue(&self) -> &Catalogue {
        self.inner.catalogue()
    }

    fn query_page<'a>(
        &'a self,
        fetchxml: &'a str,
        request: &'a PageRequest,
    ) -> OrgFuture<'a, Page> {
        self.inner.query_page(fetchxml, request)
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write],
    ) -> OrgFuture<'a, Vec<Result<(), RecordError>>> {
        {
            let mut counts = self.writes.lock().unwrap();
            for write in writes {
                *counts.entry(write.id().to_string()).or_default() += 1;
            }
        }
        self.inner.write_batch(writes)
    }

    fn call_batch<'a>(
        &'a self,
        calls: &'a [ApiCall],
    ) -> OrgFuture<'a, Vec<Result<Row, RecordError>>> {
        self.inner.call_batch(calls)
    }
}

fn account_id(n: usize) -> String {
    format!("a0000000-0000-4000-8000-{n:012x}")
}

fn org_with_accounts(n: usize, state: impl Fn(usize) -> &'static str) -> LocalOrg {
    let org = LocalOrg::in_memory(Catalogue::builtin()).unwrap();
    let accounts: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "accountid": account_id(i),
                "name": format!("Account {i:05}"),
                "address1_stateorprovince": state(i),
                "numberofemployees": i,
            })
        })
        .collect();
    org.import_json(&json!({ "account": accounts }).to_string())
        .unwrap();
    org
}

fn count_where(org: &LocalOrg, column: &str, value: &str) -> u64 {
    let fetchxml = format!(
        r#"<fetch><entity name="account"><attribute name="accountid"/><filter><condition attribute="{column}" operator="eq" value="{value}"/></filter></entity></fetch>"#
    );
    let mut count = 0;
    let mut request = PageRequest {
        page: Some(1),
        count: Some(5000),
        paging_cookie: None,
    };
    loop {
        let page = org.query(&fetchxml, &request).unwrap();
        count += page.rows.len() as u64;
        if !page.more_records {
            return count;
        }
        request = PageRequest {
            page: request.page.map(|page| page + 1),
            count: Some(5000),
            paging_cookie: page.paging_cookie,
        };
    }
}

struct Harness {
    org: Arc<CountingOrg>,
    store: Arc<SqliteStateStore>,
    clock: Arc<TestClock>,
    workflow: Workflow,
    plan: Arc<ActionPlan>,
}

impl Harness {
    fn new(yaml: &str, org: LocalOrg) -> Harness {
        let workflow = compiled(yaml);
        let plan = Arc::new(ActionPlan::compile(&workflow, org.catalogue()).unwrap());
        Harness {
            org: Arc::new(CountingOrg {
                inner: org,
                writes: StdMutex::new(HashMap::new()),
            }),
            store: Arc::new(SqliteStateStore::in_memory().unwrap()),
            clock: Arc::new(TestClock::new(
                chrono::Utc
                    .with_ymd_and_hms(2026, 11, 26, 12, 0, 0)
                    .unwrap(),
            )),
            workflow,
            plan,
        }
    }

    fn create(&self, id: &str) {
        let now = self.clock.now();
        self.store
            .create_operation(
                &NewOperation {
                    id: id.to_string(),
                    workflow: self.workflow.name.clone(),
                    workflow_version: self.workflow.version.clone(),
                    git_commit: None,
                    connection: "default".to_string(),
                    mode: self.workflow.mode,
                    trigger: Trigger::Manual,
                    vars: serde_json::Map::new(),
                    now,
                    retry_of: None,
                    record_filter: None,
                },
                now,
            )
            .unwrap();
        self.store
            .claim(id, WORKER, now, Duration::from_secs(30))
            .unwrap();
    }

    async fn execute(&self, id: &str, options: ExecuteOptions) -> Outcome {
        execute(
            self.org.clone(),
            self.store.clone(),
            self.clock.clone(),
            &self.workflow,
            self.plan.clone(),
            id,
            WORKER,
            options,
        )
        .await
        .unwrap()
    }
}

fn finished(outcome: Outcome) -> Operation {
    match outcome {
        Outcome::Finished(operation) => *operation,
        Outcome::Suspended { .. } => panic!("the run was suspended"),
    }
}

const TRAP: &str = r#"
name: trap
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <filter>
          <condition attribute="address1_stateorprovince" operator="eq" value="West"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        address1_stateorprovince: "East"
        description: "moved {{ record.name }}"
batch:
  size: 100
  concurrency: 4
"#;

/// The filtered-column trap: the update changes the very column the selection filters on.
/// Keyset paging neither skips nor repeats a record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_of_the_filtered_column_changes_every_record_exactly_once() {
    let harness = Harness::new(TRAP, org_with_accounts(20_000, |_| "West"));
    harness.create("op-trap");
    let operation = finished(harness.execute("op-trap", ExecuteOptions::default()).await);

    assert_eq!(operation.status, OperationStatus::Succeeded);
    assert_eq!(operation.counts.selected, Some(20_000));
    assert_eq!(operation.counts.succeeded, 20_000);
    assert_eq!(
        count_where(&harness.org.inner, "address1_stateorprovince", "East"),
        20_000
    );
    assert_eq!(
        count_where(&harness.org.inner, "address1_stateorprovince", "West"),
        0
    );
    let writes = harness.org.writes.lock().unwrap();
    assert_eq!(writes.len(), 20_000);
    assert!(
        writes.values().all(|&n| n == 1),
        "a record was written twice"
    );
}

const CONVERT: &str = r#"
name: convert
vars:
  bonus: "5"
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <attribute name="address1_stateorprovince"/>
        <order attribute="name"/>
      </entity>
    </fetch>
actions:
  - update:
      set:
        numberofemployees: "{{ record.address1_stateorprovince }}"
  - create:
      entity: task
      set:
        subject: "Review {{ record.name }}"
        regardingobjectid: "account:{{ id }}"
batch:
  size: 10
  concurrency: 2
max_failures: 3
"#;

/// Records whose value cannot convert fail on their own; later actions are not written for
/// them; others succeed; more failures than `max_failures` fail the operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_record_failures_are_listed_and_max_failures_is_respected() {
    // Every 10th account has a state that is not a number.
    let harness = Harness::new(
        CONVERT,
        org_with_accounts(30, |i| if i % 10 == 3 { "West" } else { "42" }),
    );
    harness.create("op-few");
    let operation = finished(harness.execute("op-few", ExecuteOptions::default()).await);
    assert_eq!(
        operation.status,
        OperationStatus::Succeeded,
        "{:?}",
        operation.error
    );
    assert_eq!(operation.counts.succeeded, 27);
    assert_eq!(operation.counts.failed, 3);
    let failures = harness.store.failures("op-few", 0, None).unwrap().failures;
    assert_eq!(failures.len(), 3);
    assert!(
        failures
            .iter()
            .all(|f| f.action_index == 0 && f.action == "update")
    );
    // No task for a failed record.
    let tasks = &harness.org.inner.export("task").unwrap()["task"];
    assert_eq!(tasks.len(), 27);

    let harness = Harness::new(
        CONVERT,
        org_with_accounts(5_000, |i| if i % 10 == 3 { "West" } else { "42" }),
    );
    harness.create("op-many");
    let operation = finished(harness.execute("op-many", ExecuteOptions::default()).await);
    assert_eq!(operation.status, OperationStatus::Failed);
    assert_eq!(
        operation.error.as_ref().map(|error| error.code.as_str()),
        Some("MaxFailuresExceeded")
    );
    assert!(operation.counts.failed > 3);
    // It stops once the batch with the 4th failure is seen: batches already started finish.
    assert!(operation.counts.succeeded + operation.counts.failed < 5_000);
    let failures = harness
        .store
        .failures("op-many", 1000, None)
        .unwrap()
        .failures;
    assert_eq!(failures.len() as u64, operation.counts.failed);
}

/// Shutdown checkpoints and releases; a second execution resumes and ends with every record
/// done exactly once (creates are idempotent on replay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_run_resumes_from_its_checkpoint() {
    let yaml = CONVERT.replace("max_failures: 3", "max_failures: 0");
    let harness = Harness::new(&yaml, org_with_accounts(3_000, |_| "7"));
    harness.create("op-resume");
    let (stop, stopped) = watch::channel(false);
    let stop_after = Arc::new(StdMutex::new(Some(stop)));
    let trigger = stop_after.clone();
    let options = ExecuteOptions {
        page_size: 500,
        shutdown: Some(stopped),
        progress: Some(Arc::new(move |progress: &Progress| {
            if progress.done >= 1_000
                && let Some(stop) = trigger.lock().unwrap().take()
            {
                let _ = stop.send(true);
            }
        })),
        ..ExecuteOptions::default()
    };
    let outcome = harness.execute("op-resume", options).await;
    let Outcome::Suspended { counts } = outcome else {
        panic!("expected a suspended run, got {outcome:?}");
    };
    assert!(
        counts.succeeded >= 500 && counts.succeeded < 3_000,
        "{counts:?}"
    );
    assert_eq!(counts.succeeded % 500, 0, "counts sit on a page boundary");
    drop(stop_after);

    harness
        .store
        .claim(
            "op-resume",
            "other",
            harness.clock.now(),
            Duration::from_secs(30),
        )
        .unwrap();
    let operation = finished(
        execute(
            harness.org.clone(),
            harness.store.clone(),
            harness.clock.clone(),
            &harness.workflow,
            harness.plan.clone(),
            "op-resume",
            "other",
            ExecuteOptions::default(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        operation.status,
        OperationStatus::Succeeded,
        "{:?}",
        operation.error
    );
    assert_eq!(operation.counts.selected, Some(3_000));
    assert_eq!(operation.counts.succeeded, 3_000);
    assert_eq!(
        harness.org.inner.export("task").unwrap()["task"].len(),
        3_000
    );
}

/// A cancel request is seen between batches: the run ends `canceled` early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_ends_the_run_between_batches() {
    let harness = Harness::new(TRAP, org_with_accounts(5_000, |_| "West"));
    harness.create("op-cancel");
    let store = harness.store.clone();
    let clock = harness.clock.clone();
    let options = ExecuteOptions {
        progress: Some(Arc::new(move |progress: &Progress| {
            if progress.done == 200 {
                store.request_cancel("op-cancel", clock.now()).unwrap();
            }
        })),
        ..ExecuteOptions::default()
    };
    let operation = finished(harness.execute("op-cancel", options).await);
    assert_eq!(operation.status, OperationStatus::Canceled);
    assert!(operation.counts.succeeded < 5_000);
}

/// A sync run's timeout stops it between batches and fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_stops_the_run_and_fails_it() {
    let harness = Harness::new(TRAP, org_with_accounts(5_000, |_| "West"));
    harness.create("op-late");
    let options = ExecuteOptions {
        deadline: Some(Instant::now()),
        ..ExecuteOptions::default()
    };
    let operation = finished(harness.execute("op-late", options).await);
    assert_eq!(operation.status, OperationStatus::Failed);
    assert_eq!(
        operation.error.as_ref().map(|error| error.code.as_str()),
        Some("SyncTimedOut")
    );
}

/// An org that throttles the first try of every write request (a retryable error).
struct ThrottlingOrg {
    inner: LocalOrg,
    calls: std::sync::atomic::AtomicU32,
    seen: StdMutex<std::collections::HashSet<String>>,
}

impl Org for ThrottlingOrg {
    fn catalogue(&self) -> &Catalogue {
        self.inner.catalogue()
    }

    fn query_page<'a>(
        &'a self,
        fetchxml: &'a str,
        request: &'a PageRequest,
    ) -> OrgFuture<'a, Page> {
        self.inner.query_page(fetchxml, request)
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write],
    ) -> OrgFuture<'a, Vec<Result<(), RecordError>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let first = writes.first().map(|write| write.id().to_string());
        if first.is_some_and(|id| self.seen.lock().unwrap().insert(id)) {
            return Box::pin(async {
                Err(OrgError {
                    retryable: true,
                    ..OrgError::new("TooManyRequests", -2147015902, "throttled")
                })
            });
        }
        self.inner.write_batch(writes)
    }

    fn call_batch<'a>(
        &'a self,
        calls: &'a [ApiCall],
    ) -> OrgFuture<'a, Vec<Result<Row, RecordError>>> {
        self.inner.call_batch(calls)
    }
}

/// Retryable request errors are retried with backoff; every record ends up written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_write_errors_are_retried() {
    let inner = org_with_accounts(1_000, |_| "West");
    let harness = Harness::new(TRAP, org_with_accounts(0, |_| "West"));
    harness.create("op-throttled");
    let org = Arc::new(ThrottlingOrg {
        inner,
        calls: std::sync::atomic::AtomicU32::new(0),
        seen: StdMutex::new(std::collections::HashSet::new()),
    });
    let options = ExecuteOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        ..ExecuteOptions::default()
    };
    let operation = finished(
        execute(
            org.clone(),
            harness.store.clone(),
            harness.clock.clone(),
            &harness.workflow,
            harness.plan.clone(),
            "op-throttled",
            WORKER,
            options,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        operation.status,
        OperationStatus::Succeeded,
        "{:?}",
        operation.error
    );
    assert_eq!(operation.counts.succeeded, 1_000);
    assert_eq!(
        count_where(&org.inner, "address1_stateorprovince", "East"),
        1_000
    );
    assert!(org.calls.load(Ordering::SeqCst) >= 20);
}

/// A retry operation (`ops retry`) carries the failed record ids as its `record_filter`: it
/// selects and writes those records only, and leaves the others untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_touches_only_the_failed_records() {
    let harness = Harness::new(
        CONVERT,
        org_with_accounts(30, |i| if i % 10 == 3 { "West" } else { "42" }),
    );
    harness.create("op-first");
    let first = finished(harness.execute("op-first", ExecuteOptions::default()).await);
    assert_eq!((first.counts.succeeded, first.counts.failed), (27, 3));
    let failed = harness.store.failed_record_ids("op-first").unwrap();
    let expected: Vec<String> = [3, 13, 23].into_iter().map(account_id).collect();
    let mut sorted = failed.clone();
    sorted.sort();
    assert_eq!(sorted, expected);

    // The data is fixed, then the failed records are retried.
    let fixes: Vec<Write> = expected
        .iter()
        .map(|id| Write::Update {
            entity: "account".to_string(),
            id: id.clone(),
            values: json!({"address1_stateorprovince": "7"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    assert!(
        harness
            .org
            .inner
            .write(&fixes)
            .unwrap()
            .iter()
            .all(Result::is_ok)
    );
    harness.org.writes.lock().unwrap().clear();
    let now = harness.clock.now();
    harness
        .store
        .create_operation(
            &NewOperation {
                id: "op-retry".to_string(),
                workflow: harness.workflow.name.clone(),
                workflow_version: harness.workflow.version.clone(),
                git_commit: None,
                connection: "default".to_string(),
                mode: harness.workflow.mode,
                trigger: Trigger::Retry {
                    of: "op-first".to_string(),
                },
                vars: serde_json::Map::new(),
                now,
                retry_of: Some("op-first".to_string()),
                record_filter: Some(failed),
            },
            now,
        )
        .unwrap();
    harness
        .store
        .claim("op-retry", WORKER, now, Duration::from_secs(30))
        .unwrap();
    let retry = finished(harness.execute("op-retry", ExecuteOptions::default()).await);
    // Only the three failed records are selected and written; the 27 others are untouched.
    assert_eq!(retry.status, OperationStatus::Succeeded);
    assert_eq!(retry.counts.selected, Some(3));
    assert_eq!((retry.counts.succeeded, retry.counts.failed), (3, 0));
    let written: Vec<String> = {
        let mut ids: Vec<String> = harness.org.writes.lock().unwrap().keys().cloned().collect();
        ids.sort();
        ids
    };
    // Three account updates and the three tasks those records create, nothing else.
    assert_eq!(written.len(), 6, "{written:?}");
    let accounts: Vec<String> = written
        .into_iter()
        .filter(|id| id.starts_with("a0000000-"))
        .collect();
    assert_eq!(accounts, expected);
}

/// An org that answers the first try of every write request with a throttling error carrying
/// `Retry-After`, and notes when each try arrived.
struct RetryAfterOrg {
    inner: LocalOrg,
    wait: Duration,
    tries: StdMutex<HashMap<String, Vec<std::time::Instant>>>,
}

impl Org for RetryAfterOrg {
    fn catalogue(&self) -> &Catalogue {
        self.inner.catalogue()
    }

    fn query_page<'a>(
        &'a self,
        fetchxml: &'a str,
        request: &'a PageRequest,
    ) -> OrgFuture<'a, Page> {
        self.inner.query_page(fetchxml, request)
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write],
    ) -> OrgFuture<'a, Vec<Result<(), RecordError>>> {
        let first = writes
            .first()
            .map(|write| write.id().to_string())
            .unwrap_or_default();
        let throttled = {
            let mut tries = self.tries.lock().unwrap();
            let seen = tries.entry(first).or_default();
            seen.push(std::time::Instant::now());
            seen.len() == 1
        };
        if throttled {
            let error = OrgError::new(
                "TooManyRequests",
                -2147015902,
                "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            )
            .with_retry_after(self.wait);
            return Box::pin(async move { Err(error) });
        }
        self.inner.write_batch(writes)
    }

    fn call_batch<'a>(
        &'a self,
        calls: &'a [ApiCall],
    ) -> OrgFuture<'a, Vec<Result<Row, RecordError>>> {
        self.inner.call_batch(calls)
    }
}

/// A throttled request is sent again after exactly the `Retry-After` the org gave (not the
/// engine's own, much shorter, backoff), and the observer hears of every wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let wait = Duration::from_millis(400);
    let harness = Harness::new(TRAP, org_with_accounts(0, |_| "West"));
    harness.create("op-retry-after");
    let org = Arc::new(RetryAfterOrg {
        inner: org_with_accounts(300, |_| "West"),
        wait,
        tries: StdMutex::new(HashMap::new()),
    });
    let observed = Arc::new(StdMutex::new(Vec::new()));
    let seen = observed.clone();
    let options = ExecuteOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..RetryPolicy::default()
        },
        on_retry: Some(Arc::new(move |error: &OrgError, wait: Duration| {
            seen.lock().unwrap().push((error.code, wait));
        })),
        ..ExecuteOptions::default()
    };
    let operation = finished(
        execute(
            org.clone(),
            harness.store.clone(),
            harness.clock.clone(),
            &harness.workflow,
            harness.plan.clone(),
            "op-retry-after",
            WORKER,
            options,
        )
        .await
        .unwrap(),
    );
    assert_eq!(operation.status, OperationStatus::Succeeded);
    assert_eq!(operation.counts.succeeded, 300);
    let tries = org.tries.lock().unwrap();
    assert_eq!(tries.len(), 3, "three batches of 100");
    for (first, times) in tries.iter() {
        assert_eq!(
            times.len(),
            2,
            "batch starting at {first}: one throttled try, one retry"
        );
        let gap = times[1] - times[0];
        assert!(
            gap >= wait && gap < wait * 3,
            "the retry came {gap:?} after the throttled try; Retry-After said {wait:?}"
        );
    }
    let observed = observed.lock().unwrap();
    assert_eq!(observed.len(), 3);
    assert!(
        observed
            .iter()
            .all(|(code, told)| *code == "TooManyRequests" && *told == wait)
    );
}

/// Retry-After waits are capped, and a request throttled more often than the policy allows
/// fails its records with the throttling error.
#[test]
fn retry_waits_follow_the_policy() {
    let policy = RetryPolicy {
        max_attempts: 3,
        max_throttled_attempts: 2,
        max_retry_after: Duration::from_secs(60),
        ..RetryPolicy::default()
    };
    let throttled = OrgError::new("TooManyRequests", -2147015902, "slow down")
        .with_retry_after(Duration::from_secs(600));
    let mut tries = RetryCount::default();
    assert_eq!(
        policy.next_wait(&throttled, &mut tries),
        Some(Duration::from_secs(60))
    );
    assert_eq!(policy.next_wait(&throttled, &mut tries), None);

    let transient = OrgError {
        retryable: true,
        ..OrgError::new("Timeout", -1, "timed out")
    };
    let mut tries = RetryCount::default();
    assert!(policy.next_wait(&transient, &mut tries).is_some());
    assert!(policy.next_wait(&transient, &mut tries).is_some());
    assert_eq!(policy.next_wait(&transient, &mut tries), None);
    assert_eq!(tries.attempts(), 4);

    let permanent = OrgError::new("InvalidArgument", -2147220989, "bad");
    assert_eq!(
        policy.next_wait(&permanent, &mut RetryCount::default()),
        None
    );
}

const RECALCULATE: &str = r#"
name: recalculate
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
      </entity>
    </fetch>
actions:
  - call:
      api: sample_RecalculateCredit
      params:
        Target: "account:{{ id }}"
      background: true
batch:
  size: 40
  concurrency: 3
"#;

fn org_with_revenue(n: usize) -> LocalOrg {
    let org = LocalOrg::in_memory(Catalogue::builtin()).unwrap();
    let accounts: Vec<Value> = (0..n)
        .map(|i| {
            let mut account = json!({
                "accountid": account_id(i),
                "name": format!("Account {i:05}"),
            });
            // Every third account has no revenue; the others alternate under and over the bar.
            if i % 3 != 0 {
                account["revenue"] = json!(if i % 2 == 0 { 50_000.0 } else { 250_000.0 });
            }
            account
        })
        .collect();
    org.import_json(&json!({ "account": accounts }).to_string())
        .unwrap();
    org
}

fn credit_on_hold(org: &LocalOrg, id: &str) -> Option<bool> {
    let fetchxml = format!(
        r#"<fetch><entity name="account"><attribute name="creditonhold"/><filter><condition attribute="accountid" operator="eq" value="{id}"/></filter></entity></fetch>"#
    );
    let page = org.query(&fetchxml, &PageRequest::default()).unwrap();
    page.rows[0].get("creditonhold").and_then(Value::as_bool)
}

/// `call` actions run the org's custom API once per record with a stable idempotency key;
/// a replay of the same calls (a crash between the call and the checkpoint) is answered from
/// the org's log and changes nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_actions_run_the_custom_api_once_per_record() {
    let harness = Harness::new(RECALCULATE, org_with_revenue(200));
    harness.create("op-calls");
    let operation = finished(harness.execute("op-calls", ExecuteOptions::default()).await);
    assert_eq!(
        operation.status,
        OperationStatus::Succeeded,
        "{:?}",
        operation.error
    );
    assert_eq!(operation.counts.succeeded, 200);

    let org = &harness.org.inner;
    for i in 0..200 {
        let expected = i % 3 == 0 || i % 2 == 0;
        assert_eq!(
            credit_on_hold(org, &account_id(i)),
            Some(expected),
            "account {i}"
        );
    }
    let log = org.logged_calls().unwrap();
    assert_eq!(log.len(), 200);
    assert!(
        log.iter()
            .all(|call| call.calls == 1 && call.api == "sample_RecalculateCredit")
    );
    let key = deterministic_id("op-calls", &account_id(7), 0);
    let logged = log.iter().find(|call| call.idempotency_key == key).unwrap();
    assert_eq!(
        logged.params["Target"],
        json!(format!("account:{}", account_id(7)))
    );
    assert_eq!(logged.response["CreditOnHold"], json!(false));

    // Replay: account 7 lost its revenue since, but a repeated call is not run again.
    org.write(&[Write::Update {
        entity: "account".into(),
        id: account_id(7),
        values: serde_json::Map::from_iter([("revenue".to_string(), Value::Null)]),
    }])
    .unwrap()
    .remove(0)
    .unwrap();
    let replay = ApiCall {
        api: "sample_RecalculateCredit".into(),
        params: logged.params.clone(),
        idempotency_key: key.clone(),
        background: true,
    };
    let answers = org.call(&[replay]).unwrap();
    assert_eq!(answers[0].as_ref().unwrap()["CreditOnHold"], json!(false));
    assert_eq!(credit_on_hold(org, &account_id(7)), Some(false));
    let log = org.logged_calls().unwrap();
    assert_eq!(
        log.iter()
            .find(|call| call.idempotency_key == key)
            .unwrap()
            .calls,
        2
    );
}

/// A call that fails (its target is gone, the API does not exist) fails that record with the
/// org's error; the other records' calls succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_calls_are_per_record_failures() {
    let yaml = RECALCULATE.replace("batch:", "max_failures: 100\nbatch:");
    let harness = Harness::new(&yaml, org_with_revenue(50));
    // Account 4 is deleted after it is selected: its call fails, the others do not.
    harness.create("op-missing");
    let org = Arc::new(DeletingOrg {
        inner: org_with_revenue(50),
        victim: account_id(4),
    });
    let operation = finished(
        execute(
            org.clone(),
            harness.store.clone(),
            harness.clock.clone(),
            &harness.workflow,
            harness.plan.clone(),
            "op-missing",
            WORKER,
            ExecuteOptions::default(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(operation.status, OperationStatus::Succeeded);
    assert_eq!(
        (operation.counts.succeeded, operation.counts.failed),
        (49, 1)
    );
    let failures = harness
        .store
        .failures("op-missing", 10, None)
        .unwrap()
        .failures;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].record_id, account_id(4));
    assert_eq!(failures[0].code, "ObjectDoesNotExist");
    assert_eq!(failures[0].action, "call");

    let unknown = RECALCULATE
        .replace("sample_RecalculateCredit", "sample_DoesNotExist")
        .replace("batch:", "max_failures: 100\nbatch:");
    let harness = Harness::new(&unknown, org_with_revenue(10));
    harness.create("op-unknown");
    let operation = finished(
        harness
            .execute("op-unknown", ExecuteOptions::default())
            .await,
    );
    assert_eq!(operation.counts.failed, 10);
    let failures = harness
        .store
        .failures("op-unknown", 1, None)
        .unwrap()
        .failures;
    assert_eq!(failures[0].code, "ResourceNotFound");
    assert!(
        failures[0].message.contains("sample_DoesNotExist")
            && failures[0].message.contains("sample_RecalculateCredit"),
        "{}",
        failures[0].message
    );
}

/// An org where one account disappears between the read and the calls.
struct DeletingOrg {
    inner: LocalOrg,
    victim: String,
}

impl Org for DeletingOrg {
    fn catalogue(&self) -> &Catalogue {
        self.inner.catalogue()
    }

    fn query_page<'a>(
        &'a self,
        fetchxml: &'a str,
        request: &'a PageRequest,
    ) -> OrgFuture<'a, Page> {
        self.inner.query_page(fetchxml, request)
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write],
    ) -> OrgFuture<'a, Vec<Result<(), RecordError>>> {
        self.inner.write_batch(writes)
    }

    fn call_batch<'a>(
        &'a self,
        calls: &'a [ApiCall],
    ) -> OrgFuture<'a, Vec<Result<Row, RecordError>>> {
        let _ = self.inner.write(&[Write::Delete {
            entity: "account".into(),
            id: self.victim.clone(),
        }]);
        self.inner.call_batch(calls)
    }
}

/// Every committed batch stores the run's progress, also inside a page (checkpoints move on
/// page boundaries): what the dashboard and the API show while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_stored_after_every_batch() {
    let harness = Harness::new(TRAP, org_with_accounts(450, |_| "West"));
    harness.create("op-progress");
    let store = harness.store.clone();
    let seen = Arc::new(StdMutex::new(Vec::new()));
    let record = seen.clone();
    let options = ExecuteOptions {
        progress: Some(Arc::new(move |progress: &Progress| {
            let stored = store.get("op-progress").unwrap();
            record.lock().unwrap().push((
                progress.done,
                stored.status,
                stored.progress_counts(),
                stored.counts,
            ));
        })),
        ..ExecuteOptions::default()
    };
    let operation = finished(harness.execute("op-progress", options).await);
    assert_eq!(operation.status, OperationStatus::Succeeded);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 5, "five batches of at most 100");
    for (done, status, shown, committed) in seen.iter() {
        assert_eq!(*status, OperationStatus::InProgress);
        assert_eq!(shown.succeeded, *done, "the stored progress is the batch's");
        assert_eq!(
            shown.selected,
            Some(450),
            "one page: the selection is read at once"
        );
        // The resumable counts stay at the checkpoint: the whole page is one checkpoint.
        assert!(committed.succeeded == 0 || committed.succeeded == 450);
    }
    assert_eq!(seen.last().unwrap().0, 450);
    // Final: the stored counts.
    assert_eq!(operation.progress_counts(), operation.counts);
}

/// An org that notes, for every write request, whether it came through its plug-in-bypassing
/// form.
struct PluginOrg {
    inner: Arc<LocalOrg>,
    bypassing: bool,
    requests: Arc<StdMutex<Vec<bool>>>,
}

impl Org for PluginOrg {
    fn catalogue(&self) -> &Catalogue {
        self.inner.catalogue()
    }

    fn query_page<'a>(
        &'a self,
        fetchxml: &'a str,
        request: &'a PageRequest,
    ) -> OrgFuture<'a, Page> {
        self.inner.query_page(fetchxml, request)
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write],
    ) -> OrgFuture<'a, Vec<Result<(), RecordError>>> {
        self.requests.lock().unwrap().push(self.bypassing);
        self.inner.write_batch(writes)
    }

    fn call_batch<'a>(
        &'a self,
        calls: &'a [ApiCall],
    ) -> OrgFuture<'a, Vec<Result<Row, RecordError>>> {
        self.inner.call_batch(calls)
    }

    fn with_plugins_bypassed(&self) -> Option<Arc<dyn Org>> {
        Some(Arc::new(PluginOrg {
            inner: self.inner.clone(),
            bypassing: true,
            requests: self.requests.clone(),
        }))
    }
}

/// `batch.bypass_plugins: true` sends every write through the org's plug-in-bypassing form
/// (Dataverse's `MSCRM.BypassCustomPluginExecution`); without it, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_plugins_reaches_every_write_request() {
    for bypass in [true, false] {
        let yaml = TRAP.replace(
            "  concurrency: 4\n",
            &format!("  concurrency: 4\n  bypass_plugins: {bypass}\n"),
        );
        let harness = Harness::new(&yaml, org_with_accounts(0, |_| "West"));
        harness.create("op-bypass");
        let requests = Arc::new(StdMutex::new(Vec::new()));
        let org = Arc::new(PluginOrg {
            inner: Arc::new(org_with_accounts(250, |_| "West")),
            bypassing: false,
            requests: requests.clone(),
        });
        let operation = finished(
            execute(
                org,
                harness.store.clone(),
                harness.clock.clone(),
                &harness.workflow,
                harness.plan.clone(),
                "op-bypass",
                WORKER,
                ExecuteOptions::default(),
            )
            .await
            .unwrap(),
        );
        assert_eq!(operation.status, OperationStatus::Succeeded);
        let requests = requests.lock().unwrap();
        assert_eq!(requests.len(), 3, "three batches of at most 100");
        assert!(
            requests.iter().all(|bypassed| *bypassed == bypass),
            "{requests:?}"
        );
    }
}
