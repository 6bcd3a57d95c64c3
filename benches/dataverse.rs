//! Dataverse benchmark (`cargo bench --bench dataverse`): an async update run through the
//! Dataverse connector against `fetchflow org serve` (the release binary, in its own process)
//! with 20 ms of latency and Dataverse's service protection limits scaled to the benchmark's
//! window: Dataverse allows 6,000 requests per 300 s (20 requests/s) and 52 concurrent
//! requests per user; here the window is 30 s (`--quick`: 10 s) with the same 20 requests/s,
//! so 600 (200) requests per window, and 52 concurrent requests.
//!
//! The most those limits allow is 20 requests/s × 100 records per request (`UpdateMultiple`
//! of one batch) = 2,000 records/s. Against a sliding window a client faster than the limit
//! works in bursts, one per window (a burst spends the window, a 429's `Retry-After` says when
//! its oldest request leaves it), so the sustained rate is measured over whole periods: from
//! the start of the second burst to the start of the last one, the records committed in
//! between over that time. The run's peak RSS (this process: engine, connector, state store)
//! and the highest RSS of each burst show whether memory stays flat: no later burst may
//! exceed the second one's by more than 10 MB (the first includes start-up).
//!
//! Prints a table and exits 1 when a target of issue 6 is missed (`-- --no-check` only
//! reports; `-- --quick` uses a 10 s window and fewer records).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use fetchflow::compile::{CompileContext, Workflow, compile_source};
use fetchflow::engine::{ActionPlan, ExecuteOptions, Outcome, Progress, SystemClock, execute};
use fetchflow::metadata::Catalogue;
use fetchflow::org::Org;
use fetchflow::org::dataverse::{DataverseOptions, DataverseOrg, DataverseSettings};
use fetchflow::source::SourceFile;
use fetchflow::store::{
    Mode, NewOperation, OperationStatus, SqliteStateStore, StateStore, Trigger,
};

const BIN: &str = env!("CARGO_BIN_EXE_fetchflow");

/// Dataverse's limits per user and server (reference §4).
const DATAVERSE_REQUESTS: f64 = 6_000.0;
const DATAVERSE_WINDOW_S: f64 = 300.0;
const DATAVERSE_CONCURRENCY: usize = 52;
/// Added by the emulator to every Web API request.
const LATENCY_MS: u64 = 20;
/// Records per `UpdateMultiple`: the workflow's `batch.size`.
const BATCH: usize = 100;
const CLIENT_SECRET: &str = "bench-secret";

struct Settings {
    check: bool,
    window_s: u64,
    /// How many windows' worth of requests the run needs (the last burst is partial).
    windows: f64,
}

impl Settings {
    /// The request limit per window: Dataverse's rate over this window.
    fn requests(&self) -> u32 {
        (DATAVERSE_REQUESTS / DATAVERSE_WINDOW_S * self.window_s as f64).round() as u32
    }

    /// Records of the run: `windows` windows' worth of write requests (a page read of 5,000
    /// records is one request of the window too).
    fn records(&self) -> usize {
        let per_window = f64::from(self.requests()) * BATCH as f64 * 50.0 / 51.0;
        ((per_window * self.windows / 1_000.0).round() * 1_000.0) as usize
    }
}

fn workflow_yaml() -> String {
    format!(
        r#"name: bench-dataverse
mode: async
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <attribute name="address1_city"/>
      </entity>
    </fetch>
actions:
  - update:
      set:
        description: "Reviewed {{{{ record.name }}}} on {{{{ now }}}}"
        address1_city: "{{{{ (record.address1_city or '') | upper }}}}"
batch:
  size: {BATCH}
  concurrency: {DATAVERSE_CONCURRENCY}
"#
    )
}

fn main() -> ExitCode {
    let mut settings = Settings {
        check: true,
        window_s: 30,
        windows: 3.5,
    };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--no-check" => settings.check = false,
            "--quick" => settings.window_s = 10,
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    let records = settings.records();
    let requests = settings.requests();
    let root =
        std::env::temp_dir().join(format!("fetchflow-bench-dataverse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("temp dir");

    let started = Instant::now();
    let status = Command::new(BIN)
        .current_dir(&root)
        .args(["org", "init", "--demo", &records.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("org init");
    assert!(status.success(), "org init failed");
    eprintln!(
        "demo org of {records} accounts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let emulator = Emulator::start(&root, &settings);
    eprintln!(
        "org serve at {} with {requests} requests per {} s, {DATAVERSE_CONCURRENCY} concurrent, \
         {LATENCY_MS} ms latency",
        emulator.url, settings.window_s
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let run = runtime.block_on(run(&emulator.url, &root));
    let emulator_peak = memory_mb(emulator.child.id()).1;
    emulator.stop();
    let _ = std::fs::remove_dir_all(&root);

    let allowed = f64::from(requests) / settings.window_s as f64 * BATCH as f64;
    // Inside a burst, batches commit every few milliseconds and a 429's pause lasts a second
    // or two; between bursts the client waits for most of a window.
    let bursts = bursts(&run.progress, Duration::from_secs(settings.window_s) / 4);
    eprintln!(
        "{} records in {:.1} s ({:?}), {} bursts starting at {:?} s",
        run.succeeded,
        run.elapsed.as_secs_f64(),
        run.status,
        bursts.len(),
        bursts
            .iter()
            .map(|burst| (burst.start.as_secs_f64() * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    // Whole periods: from the second burst's start to the last burst's start.
    let (sustained, period) = if bursts.len() >= 3 {
        let (first, last) = (&bursts[1], &bursts[bursts.len() - 1]);
        let time = last.start - first.start;
        (
            (last.done_before - first.done_before) as f64 / time.as_secs_f64(),
            format!(
                "{} bursts over {:.0} s",
                bursts.len() - 2,
                time.as_secs_f64()
            ),
        )
    } else {
        (
            run.succeeded as f64 / run.elapsed.as_secs_f64(),
            "whole run (no bursts)".to_string(),
        )
    };
    let overall = run.succeeded as f64 / run.elapsed.as_secs_f64();
    // Flat memory: each later burst's highest RSS against the second burst's (the first one
    // includes start-up: the catalogue, the runtime, the first pages).
    let per_burst: Vec<f64> = bursts.iter().map(|burst| burst.rss_mb).collect();
    let growth = per_burst.get(1).map_or(f64::NAN, |second| {
        per_burst[1..]
            .iter()
            .fold(0.0_f64, |most, rss| most.max(rss - second))
    });

    let rows: Vec<(String, String, String, bool)> = vec![
        (
            format!(
                "limits: {requests} requests / {} s (Dataverse {:.0} / {:.0} s), {} concurrent",
                settings.window_s, DATAVERSE_REQUESTS, DATAVERSE_WINDOW_S, DATAVERSE_CONCURRENCY
            ),
            format!("{allowed:.0} records/s max"),
            format!("(20 req/s × {BATCH})"),
            true,
        ),
        (
            format!("fetchflow sustained, {period}"),
            format!(
                "{sustained:.0} records/s ({:.1}%)",
                sustained / allowed * 100.0
            ),
            "≥ 90%".into(),
            sustained >= 0.9 * allowed,
        ),
        (
            format!("whole run, {records} records incl. first window"),
            format!(
                "{overall:.0} records/s in {:.1} s",
                run.elapsed.as_secs_f64()
            ),
            "(info)".into(),
            true,
        ),
        (
            "every record succeeded".into(),
            format!("{} of {records}, {:?}", run.succeeded, run.status),
            format!("{records}"),
            run.succeeded == records as u64 && run.status == OperationStatus::Succeeded,
        ),
        (
            "429s answered (connection budget)".into(),
            format!("{}", run.throttled),
            "(info)".into(),
            true,
        ),
        (
            "peak RSS of the run (engine + connector)".into(),
            format!("{:.0} MB", run.peak_rss_mb),
            "≤ 150 MB".into(),
            run.peak_rss_mb <= 150.0,
        ),
        (
            "highest RSS of each burst".into(),
            per_burst
                .iter()
                .map(|rss| format!("{rss:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
                + " MB",
            "flat (≤ +10 MB)".into(),
            growth.is_finite() && growth <= 10.0,
        ),
        (
            "peak RSS of org serve (info)".into(),
            format!("{emulator_peak:.0} MB"),
            "(info)".into(),
            true,
        ),
    ];
    let width = rows
        .iter()
        .map(|row| row.0.chars().count())
        .max()
        .unwrap_or(0);
    let mut missed = false;
    println!();
    for (label, value, target, ok) in &rows {
        missed |= !ok;
        println!(
            "{label:<width$}  {value:<34}  {target:<18}  {}",
            if *ok { "ok" } else { "MISSED" }
        );
    }
    if missed && settings.check {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `fetchflow org serve` with the scaled limits, on a free loopback port.
struct Emulator {
    child: Child,
    url: String,
}

impl Emulator {
    fn start(dir: &Path, settings: &Settings) -> Emulator {
        let mut child = Command::new(BIN)
            .current_dir(dir)
            .env("FETCHFLOW_EMULATOR_CLIENT_SECRET", CLIENT_SECRET)
            .args([
                "org",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--client-id",
                "bench",
            ])
            .args(["--latency", &LATENCY_MS.to_string()])
            .args(["--limit-concurrency", &DATAVERSE_CONCURRENCY.to_string()])
            .args(["--limit-requests", &settings.requests().to_string()])
            .args(["--window", &settings.window_s.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("org serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .and_then(Result::ok)
                .expect("org serve exited before listening");
            if let Some(rest) = line.strip_prefix("listening on ") {
                break rest.trim().trim_end_matches("/api/data/v9.2/").to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Emulator { child, url }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct RunReport {
    succeeded: u64,
    status: OperationStatus,
    elapsed: Duration,
    /// (time since the start, records done, RSS in MB) after every committed batch.
    progress: Vec<(Duration, u64, f64)>,
    peak_rss_mb: f64,
    throttled: u64,
}

/// Connects, then runs the workflow to its end as `fetchflow run --wait` does.
async fn run(url: &str, dir: &Path) -> RunReport {
    let settings = DataverseSettings {
        url: url.to_string(),
        tenant: "bench".into(),
        client_id: "bench".into(),
        client_secret: CLIENT_SECRET.into(),
        authority: url.to_string(),
    };
    let secrets: Arc<dyn fetchflow::template::SecretSource> = Arc::new(|_: &str| None::<String>);
    let connector =
        DataverseOrg::connect_with("bench", &settings, secrets, DataverseOptions::default())
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    let workflow = compiled(&workflow_yaml(), connector.catalogue());
    let plan = Arc::new(ActionPlan::compile(&workflow, connector.catalogue()).expect("plan"));
    let store: Arc<dyn StateStore> =
        Arc::new(SqliteStateStore::open(&dir.join("state.db")).expect("state store"));
    let now = Utc::now();
    let id = "bench-dataverse";
    store
        .create_operation(
            &NewOperation {
                id: id.to_string(),
                workflow: workflow.name.clone(),
                workflow_version: workflow.version.clone(),
                git_commit: None,
                connection: "bench".to_string(),
                mode: Mode::Async,
                trigger: Trigger::Manual,
                vars: serde_json::Map::new(),
                now,
                retry_of: None,
                record_filter: None,
            },
            now,
        )
        .expect("create operation");
    let lease = Duration::from_secs(30);
    store.claim(id, "bench", now, lease).expect("claim");

    let started = Instant::now();
    let progress: Arc<Mutex<Vec<(Duration, u64, f64)>>> = Arc::default();
    let recorded = progress.clone();
    let on_progress = Arc::new(move |progress: &Progress| {
        let rss = rss_mb();
        recorded
            .lock()
            .unwrap()
            .push((started.elapsed(), progress.done, rss));
    });
    let dataverse = connector.clone();
    let outcome = execute(
        Arc::new(connector),
        store,
        Arc::new(SystemClock),
        &workflow,
        plan,
        id,
        "bench",
        ExecuteOptions {
            lease,
            progress: Some(on_progress),
            ..ExecuteOptions::default()
        },
    )
    .await
    .expect("execute");
    let elapsed = started.elapsed();
    let Outcome::Finished(operation) = outcome else {
        panic!("the run was suspended");
    };
    let progress = progress.lock().unwrap().clone();
    RunReport {
        succeeded: operation.counts.succeeded,
        status: operation.status,
        elapsed,
        progress,
        peak_rss_mb: memory_mb(std::process::id()).1,
        throttled: dataverse.budget().throttled,
    }
}

/// A burst of committed batches, after a pause of at least the gap.
struct Burst {
    start: Duration,
    /// Records done before the burst.
    done_before: u64,
    /// The highest RSS sampled during the burst.
    rss_mb: f64,
}

fn bursts(progress: &[(Duration, u64, f64)], gap: Duration) -> Vec<Burst> {
    let mut bursts: Vec<Burst> = Vec::new();
    let mut previous: Option<(Duration, u64)> = None;
    for (at, done, rss) in progress {
        let starts = previous.is_none_or(|(last, _)| *at - last >= gap);
        if starts {
            bursts.push(Burst {
                start: *at,
                done_before: previous.map_or(0, |(_, done)| done),
                rss_mb: *rss,
            });
        } else if let Some(burst) = bursts.last_mut() {
            burst.rss_mb = burst.rss_mb.max(*rss);
        }
        previous = Some((*at, *done));
    }
    bursts
}

fn compiled(yaml: &str, catalogue: &Catalogue) -> Workflow {
    let context = CompileContext {
        catalogue,
        connections: None,
    };
    let outcome = compile_source(
        SourceFile::new(PathBuf::from("bench.yaml"), yaml.to_string()),
        &context,
    );
    outcome
        .workflow
        .unwrap_or_else(|| panic!("{:#?}", outcome.diagnostics))
}

/// VmRSS of this process, in MB.
fn rss_mb() -> f64 {
    memory_mb(std::process::id()).0
}

/// (VmRSS, VmHWM) of a process, in MB.
fn memory_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let read = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (read("VmRSS:"), read("VmHWM:"))
}
