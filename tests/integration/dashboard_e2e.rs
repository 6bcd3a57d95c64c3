//! The dashboard (issue 7) from the outside. A real headless browser (Debian's chromium driven
//! by playwright-core, `tests/e2e/dashboard.mjs`) works a `fetchflow serve` on a temp project the
//! way an administrator would: runs a workflow from the Workflows page by keyboard only and
//! watches its page reach 100% and Succeeded without reloading, opens a failed run's failing
//! records, cancels a running one, and checks labels and phone width. Screenshots of every step
//! go to `target/e2e-artifacts/`. The test then checks in the state store and the org that the
//! page told the truth. A second, cheap test checks the pages' HTML over plain HTTP.
//!
//! Without chromium, Node.js 20+ or `tests/e2e/node_modules` the browser test fails and says what
//! to install (`.ci/run` installs chromium and the npm packages; Node.js and npm come with the
//! machine); `FETCHFLOW_SKIP_BROWSER_TESTS=1` skips it, loudly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::{fetchflow, tempdir, text};

/// Demo accounts in the org: the slow workflow goes through all of them.
const ACCOUNTS: u32 = 3_000;
/// The value the browser types into the succeeding workflow's `marker` var.
const MARKER: &str = "e2e-touched";
/// How long `dashboard.mjs` may take before it is killed (it takes about 20 s).
const BROWSER_LIMIT: Duration = Duration::from_secs(120);
const SKIP_VARIABLE: &str = "FETCHFLOW_SKIP_BROWSER_TESTS";

/// CPU work in a template, so a run lasts long enough to be watched and canceled: the local org
/// writes tens of thousands of records a second. 15,000 empty loop steps stay inside a
/// template's fuel and take about 1 ms in a debug build.
const BUSY: &str = "{% for step in range(15000) %}{% endfor %}";

/// Accounts 1 to 999 (account numbers `XXXX-0000NNN`), three busy columns each: a few seconds.
fn succeeding_workflow() -> String {
    format!(
        r#"name: touch-accounts
mode: async
vars:
  marker: untouched
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <filter>
          <condition attribute="accountnumber" operator="like" value="%-0000___"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        description: "{BUSY}{{{{ vars.marker }}}} {{{{ id }}}}"
        address1_city: "{BUSY}Touchville"
        name: "{BUSY}{{{{ record.name }}}}"
batch:
  size: 10
  concurrency: 1
"#
    )
}

/// Accounts 10 to 19: those whose number ends in 3 or 7 get a text in a number column and fail;
/// two failures are more than `max_failures`, so the operation fails.
const FAILING_WORKFLOW: &str = r#"name: headcount
mode: async
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="accountnumber"/>
        <filter>
          <condition attribute="accountnumber" operator="like" value="%-000001_"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        numberofemployees: "{% if record.accountnumber[-1:] in ['3', '7'] %}many{% else %}7{% endif %}"
max_failures: 1
"#;

/// Every account, one record a batch, three busy columns: about 10 s, long enough to cancel.
/// It leaves `description` alone, where the succeeding workflow's marker is checked.
fn slow_workflow() -> String {
    format!(
        r#"name: slow-sweep
mode: async
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
      </entity>
    </fetch>
actions:
  - update:
      set:
        address1_city: "{BUSY}Sweepville"
        address1_stateorprovince: "{BUSY}Swept"
        name: "{BUSY}{{{{ record.name }}}}"
batch:
  size: 1
  concurrency: 1
"#
    )
}

#[test]
fn a_browser_runs_watches_inspects_and_cancels_operations_on_the_dashboard() {
    if std::env::var(SKIP_VARIABLE).is_ok_and(|value| value == "1") {
        eprintln!(
            "\n\
             ******************************************************************\n\
             SKIPPED the dashboard's browser test: {SKIP_VARIABLE}=1 is set.\n\
             Nothing about the dashboard in a browser was checked.\n\
             ******************************************************************\n"
        );
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Err(missing) = browser_prerequisites(repo) {
        panic!(
            "the dashboard's browser test cannot run: {missing}.\n\
             It needs Debian's chromium (/usr/bin/chromium, or FETCHFLOW_CHROMIUM=<path>), \
             Node.js 20 or later with npm, and playwright-core from tests/e2e/package-lock.json. \
             Install them with\n    apt-get update && apt-get install -y chromium\n    \
             npm ci --prefix tests/e2e\n\
             (`.ci/run` does both), or skip this one test explicitly with \
             {SKIP_VARIABLE}=1."
        );
    }
    let started = Instant::now();
    let dir = project("dashboard-e2e", ACCOUNTS, true);
    let failing_ids = accounts_where(&dir, |account| {
        let number = account["accountnumber"].as_str().unwrap_or_default();
        number.ends_with("-0000013") || number.ends_with("-0000017")
    });
    assert_eq!(failing_ids.len(), 2, "{failing_ids:?}");
    let touched = accounts_where(&dir, |account| {
        account["accountnumber"].as_str().is_some_and(|number| {
            number.len() > 3 && number[number.len() - 7..].starts_with("0000")
        })
    });
    assert_eq!(touched.len(), 999);
    let expected = json!({
        "succeeding": {"name": "touch-accounts", "var": "marker", "value": MARKER, "count": 999},
        "failing": {
            "name": "headcount", "ids": failing_ids, "code": "RenderFailed", "status": "failed"
        },
        "slow": {"name": "slow-sweep"},
    });

    let mut server = Server::start(&dir);
    let artifacts = repo.join("target").join("e2e-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let base = format!("http://{}", server.address);
    let (status, output) = run_browser(repo, &base, &artifacts, &expected);
    println!("{output}");
    assert_eq!(
        status.code(),
        Some(0),
        "dashboard.mjs failed (screenshots and the failing page's HTML in {}):\n{output}\n\
         serve's log:\n{}",
        artifacts.display(),
        server.log()
    );

    // What the browser saw is what the state store and the org hold.
    let operations: Value = output
        .lines()
        .find_map(|line| line.strip_prefix("E2E-OPERATIONS "))
        .map(|json| serde_json::from_str(json).unwrap())
        .unwrap_or_else(|| panic!("dashboard.mjs printed no operation ids:\n{output}"));
    let succeeded = show(&dir, operations["succeeded"].as_str().unwrap());
    assert_eq!(succeeded["status"], "succeeded", "{succeeded:#}");
    assert_eq!(succeeded["counts"]["succeeded"], 999, "{succeeded:#}");
    assert_eq!(succeeded["vars"]["marker"], MARKER, "{succeeded:#}");
    let marked = accounts_where(&dir, |account| {
        let id = account["accountid"].as_str().unwrap_or_default();
        account["description"].as_str() == Some(format!("{MARKER} {id}").as_str())
    });
    assert!(
        marked == touched,
        "the typed var reached {} records, not the {} selected",
        marked.len(),
        touched.len()
    );
    let failed = show(&dir, operations["failed"].as_str().unwrap());
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["counts"]["failed"], 2, "{failed:#}");
    let canceled = show(&dir, operations["canceled"].as_str().unwrap());
    assert_eq!(canceled["status"], "canceled", "{canceled:#}");
    let swept = canceled["counts"]["succeeded"].as_u64().unwrap();
    assert!(
        swept < u64::from(ACCOUNTS),
        "canceled mid-run: {canceled:#}"
    );

    let (status, took) = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(took < Duration::from_secs(10), "{took:?}");
    println!(
        "the dashboard's browser test took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        artifacts.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dashboard_pages_are_english_html_with_a_title() {
    let dir = project("dashboard-http", 5, false);
    let mut server = Server::start(&dir);
    for path in ["/", "/workflows"] {
        let (status, headers, body) = server.get(path);
        assert_eq!(status, 200, "GET {path}: {headers}\n{body}");
        let content_type = headers
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-type")
                    .then(|| value.trim().to_ascii_lowercase())
            })
            .unwrap_or_default();
        assert!(
            content_type.starts_with("text/html"),
            "GET {path} is {content_type:?}: {body}"
        );
        assert!(body.contains(r#"lang="en""#), "GET {path}: {body}");
        assert!(body.contains("<title>"), "GET {path}: {body}");
    }
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let _ = std::fs::remove_dir_all(&dir);
}

/// What is missing to run `dashboard.mjs`, if anything.
fn browser_prerequisites(repo: &Path) -> Result<(), String> {
    let chromium = chromium_path();
    if !chromium.is_file() {
        return Err(format!("there is no chromium at {}", chromium.display()));
    }
    let node = Command::new("node").arg("--version").output();
    let version = match node {
        Ok(output) if output.status.success() => text(&output.stdout).trim().to_string(),
        Ok(output) => return Err(format!("`node --version` failed: {}", text(&output.stderr))),
        Err(error) => return Err(format!("`node` cannot be started ({error})")),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return Err(format!("node is {version}, older than 20"));
    }
    let package = repo.join("tests/e2e/node_modules/playwright-core/package.json");
    if !package.is_file() {
        return Err(format!(
            "playwright-core is not installed ({} is missing)",
            package.display()
        ));
    }
    Ok(())
}

fn chromium_path() -> PathBuf {
    std::env::var_os("FETCHFLOW_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Runs `node tests/e2e/dashboard.mjs BASE ARTIFACTS`; its exit status and its output, stdout
/// and stderr interleaved as they came. Killed after [`BROWSER_LIMIT`].
fn run_browser(
    repo: &Path,
    base: &str,
    artifacts: &Path,
    expected: &Value,
) -> (ExitStatus, String) {
    let mut child = Command::new("node")
        .arg(repo.join("tests/e2e/dashboard.mjs"))
        .arg(base)
        .arg(artifacts)
        .env("FETCHFLOW_E2E_EXPECT", expected.to_string())
        .env("FETCHFLOW_CHROMIUM", chromium_path())
        .current_dir(repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let mut output = sink.lock().unwrap();
                output.push_str(&line);
                output.push('\n');
            }
        })
    })
    .collect();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BROWSER_LIMIT {
            let _ = child.kill();
            let status = child.wait().unwrap();
            output
                .lock()
                .unwrap()
                .push_str(&format!("killed after {BROWSER_LIMIT:?}\n"));
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for reader in readers {
        let _ = reader.join();
    }
    let output = output.lock().unwrap().clone();
    (status, output)
}

/// A project with a local org of `accounts` demo accounts and, with `workflows`, the three
/// workflows of the browser test.
fn project(label: &str, accounts: u32, workflows: bool) -> PathBuf {
    let dir = tempdir(label);
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::write(
        dir.join("fetchflow.yaml"),
        "state: state.db\nconnections:\n  default:\n    local: org.db\n",
    )
    .unwrap();
    if workflows {
        for (name, content) in [
            ("touch-accounts.yaml", succeeding_workflow()),
            ("headcount.yaml", FAILING_WORKFLOW.to_string()),
            ("slow-sweep.yaml", slow_workflow()),
        ] {
            std::fs::write(dir.join("workflows").join(name), content).unwrap();
        }
    }
    let demo = accounts.to_string();
    let output = fetchflow(&dir, &["org", "init", "--demo", &demo, "--org", "org.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    dir
}

/// The ids of the org's accounts for which `keep` holds, sorted.
fn accounts_where(dir: &Path, keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let output = fetchflow(dir, &["org", "export", "account", "--org", "org.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let exported: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut ids: Vec<String> = exported["account"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|account| keep(account))
        .map(|account| account["accountid"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// `ops show ID --format json`.
fn show(dir: &Path, id: &str) -> Value {
    let output = fetchflow(dir, &["ops", "show", id, "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A running `fetchflow serve --listen 127.0.0.1:0`; killed when dropped, so a failing test
/// leaves no process.
struct Server {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fetchflow"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.strip_prefix("listening on http://") {
                    let _ = address_tx.send(address.trim().to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let Ok(address) = address_rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve printed no address:\n{}", log.lock().unwrap());
        };
        Server {
            child,
            address,
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `GET path` over HTTP/1.0 (so the body is never chunked): status, header lines, body.
    fn get(&self, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: text/html\r\n\r\n",
            self.address
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or((response.as_str(), ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
        (status, head.to_string(), body.to_string())
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long it took.
    fn terminate(&mut self) -> (ExitStatus, Duration) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let sent = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, sent.elapsed());
            }
            assert!(
                sent.elapsed() < Duration::from_secs(30),
                "serve did not exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
