//! `fetchflow serve` from the outside (issue 5): the real binary on a free loopback port, its
//! address read from the `listening on http://ADDR` line on stderr. Its workers execute
//! operations created by `fetchflow run` and through the HTTP API, each with the workflow version
//! it was created with; SIGTERM checkpoints the running operation and exits 0 within 10 s, and
//! the next start resumes it; a non-loopback address without a token is refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use super::support::{fetchflow, tempdir, text};

/// Updates every account with a value naming the workflow version (`marker`), in batches of
/// `batch_size`, one at a time.
fn workflow(name: &str, marker: &str, batch_size: u32) -> String {
    format!(
        r#"name: {name}
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
        description: "{marker} {{{{ id }}}}"
batch:
  size: {batch_size}
  concurrency: 1
"#
    )
}

/// Like [`workflow`], but three writes per record, one record a batch: the local org is fast,
/// and an interrupted run needs to last a few seconds.
fn slow_workflow(name: &str, marker: &str) -> String {
    format!(
        r#"name: {name}
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
        description: "pending {{{{ id }}}}"
  - update:
      set:
        description: "still pending {{{{ id }}}}"
  - update:
      set:
        description: "{marker} {{{{ id }}}}"
batch:
  size: 1
  concurrency: 1
"#
    )
}

/// A project with a local org of `accounts` demo accounts and these workflow files.
fn project(label: &str, accounts: u32, files: &[(&str, String)]) -> PathBuf {
    let dir = tempdir(label);
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::write(
        dir.join("fetchflow.yaml"),
        "state: state.db\nconnections:\n  default:\n    local: org.db\n",
    )
    .unwrap();
    for (name, content) in files {
        std::fs::write(dir.join("workflows").join(name), content).unwrap();
    }
    let demo = accounts.to_string();
    let output = fetchflow(&dir, &["org", "init", "--demo", &demo, "--org", "org.db"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    dir
}

/// A running `fetchflow serve`; killed when dropped, so a failing test leaves no process.
struct Server {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(dir, extra, &[])
    }

    fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fetchflow"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
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
        let address = match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve printed no address:\n{}", log.lock().unwrap());
            }
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

    /// One HTTP/1.1 request; the status and the body.
    fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        self.request_with(method, path, body, "")
    }

    /// A request with extra header lines (each ending in `\r\n`).
    fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &str,
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let body = body.unwrap_or("");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{headers}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.address,
            body.len()
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
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a chunked response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn open(path: &Path) -> Connection {
    let connection = Connection::open(path).unwrap();
    connection.busy_timeout(Duration::from_secs(10)).unwrap();
    fetchflow::org::local::register_functions(&connection).unwrap();
    connection
}

fn count(connection: &Connection, sql: &str) -> i64 {
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// `fetchflow run NAME` (async, no --wait): the created operation's id.
fn create_operation(dir: &Path, name: &str) -> String {
    let output = fetchflow(dir, &["run", name]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("operation "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no operation id in: {stdout}"))
        .to_string()
}

/// `ops show ID --format json`.
fn show(dir: &Path, id: &str) -> Value {
    let output = fetchflow(dir, &["ops", "show", id, "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The operation's status and succeeded count, read from the state store directly (cheap
/// enough to poll).
fn progress(dir: &Path, id: &str) -> Option<(String, i64)> {
    open(&dir.join("state.db"))
        .query_row(
            "SELECT status, succeeded FROM operations WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .unwrap()
}

/// Polls until the operation is final; panics with the server log after `limit`.
fn wait_until_final(dir: &Path, server: &Server, id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        if let Some((status, _)) = progress(dir, id)
            && ["succeeded", "failed", "canceled"].contains(&status.as_str())
        {
            return show(dir, id);
        }
        assert!(
            started.elapsed() < limit,
            "operation {id} did not finish within {limit:?}: {:#}\n{}",
            show(dir, id),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_executes_an_operation_created_by_run_before_it_started() {
    let dir = project(
        "serve-run",
        50,
        &[("touch.yaml", workflow("touch", "touched", 10))],
    );
    let id = create_operation(&dir, "touch");
    assert_eq!(progress(&dir, &id).unwrap().0, "waiting");

    let mut server = Server::start(&dir, &["--log-format", "json"]);
    let shown = wait_until_final(&dir, &server, &id, Duration::from_secs(60));
    assert_eq!(shown["status"], "succeeded", "{shown:#}");
    assert_eq!(shown["counts"]["selected"], 50, "{shown:#}");
    // Every log line is one JSON object; the address line is the one stable exception.
    let log = server.log();
    let mut events = 0;
    for line in log
        .lines()
        .filter(|line| !line.starts_with("listening on "))
    {
        let event: Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(event["level"].is_string(), "{line}");
        events += 1;
    }
    assert!(events > 0, "{log}");
    assert_eq!(shown["counts"]["succeeded"], 50, "{shown:#}");
    let org = open(&dir.join("org.db"));
    assert_eq!(
        count(
            &org,
            "SELECT count(*) FROM account WHERE description = 'touched ' || accountid"
        ),
        50
    );
    let (status, took) = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(took < Duration::from_secs(10), "{took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_checkpoints_the_running_operation_and_the_next_start_resumes_it() {
    // Checkpoints sit on page boundaries (5,000 rows a page): many pages, slow batches.
    const ACCOUNTS: i64 = 60_000;
    let dir = project(
        "serve-sigterm",
        60_000,
        &[("slow.yaml", slow_workflow("slow", "slow"))],
    );
    let id = create_operation(&dir, "slow");

    let mut server = Server::start(&dir, &["--workers", "1"]);
    let started = Instant::now();
    loop {
        let (status, succeeded) = progress(&dir, &id).unwrap();
        assert_ne!(
            status, "succeeded",
            "the run ended before it could be interrupted; make it slower"
        );
        if status == "in_progress" && succeeded >= 5_000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, took) = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(took < Duration::from_secs(10), "{took:?}\n{}", server.log());

    // Checkpointed and released: in progress, held by no one, resumable at once.
    let state = open(&dir.join("state.db"));
    let (status, succeeded, lease): (String, i64, Option<String>) = state
        .query_row(
            "SELECT status, succeeded, lease_worker FROM operations WHERE id = ?1",
            [&id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(status, "in_progress");
    assert!(
        succeeded > 0 && succeeded < ACCOUNTS,
        "checkpointed mid-run: {succeeded}"
    );
    let expired: bool = state
        .query_row(
            "SELECT lease_expires_at IS NULL OR lease_expires_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             FROM operations WHERE id = ?1",
            [&id],
            |row| row.get(0),
        )
        .unwrap();
    assert!(expired, "the lease of {lease:?} was released");
    drop(state);

    let mut server = Server::start(&dir, &[]);
    let shown = wait_until_final(&dir, &server, &id, Duration::from_secs(120));
    assert!(
        server.log().contains("resumed=true"),
        "resumed from its checkpoint:\n{}",
        server.log()
    );
    assert_eq!(shown["status"], "succeeded", "{shown:#}");
    assert_eq!(shown["counts"]["selected"], ACCOUNTS, "{shown:#}");
    assert_eq!(shown["counts"]["succeeded"], ACCOUNTS, "{shown:#}");
    assert_eq!(shown["counts"]["failed"], 0, "{shown:#}");
    let org = open(&dir.join("org.db"));
    assert_eq!(
        count(
            &org,
            "SELECT count(*) FROM account WHERE description = 'slow ' || accountid"
        ),
        ACCOUNTS
    );
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_operation_created_before_an_edit_runs_with_its_own_version() {
    let old = workflow("versioned", "old", 10);
    let dir = project("serve-version", 30, &[("versioned.yaml", old.clone())]);
    let id = create_operation(&dir, "versioned");
    // The file changes before any worker has run the operation.
    std::fs::write(
        dir.join("workflows/versioned.yaml"),
        workflow("versioned", "new", 10),
    )
    .unwrap();

    let mut server = Server::start(&dir, &[]);
    let shown = wait_until_final(&dir, &server, &id, Duration::from_secs(60));
    assert_eq!(shown["status"], "succeeded", "{shown:#}");
    assert_eq!(
        shown["workflow_version"],
        fetchflow::compile::content_hash(&old),
        "{shown:#}"
    );
    let org = open(&dir.join("org.db"));
    assert_eq!(
        count(
            &org,
            "SELECT count(*) FROM account WHERE description = 'old ' || accountid"
        ),
        30,
        "the records show the old template's values"
    );
    assert_eq!(
        count(
            &org,
            "SELECT count(*) FROM account WHERE description LIKE 'new %'"
        ),
        0
    );
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_non_loopback_address_without_a_token_is_refused() {
    let dir = tempdir("serve-token");
    let output = fetchflow(&dir, &["serve", "--listen", "0.0.0.0:0"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");

    // A configured token whose secret is not set is an error too, never a silent no-token.
    std::fs::write(
        dir.join("fetchflow.yaml"),
        "server:\n  token: \"{{ secret('FETCHFLOW_SERVE_TEST_UNSET_TOKEN') }}\"\n",
    )
    .unwrap();
    let output = fetchflow(&dir, &["serve", "--listen", "0.0.0.0:0"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("FETCHFLOW_SERVE_TEST_UNSET_TOKEN"),
        "names the missing secret: {stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_listen_address_is_a_usage_error() {
    let dir = tempdir("serve-listen");
    let output = fetchflow(&dir, &["serve", "--listen", "localhost"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`localhost` is not an address and port"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `POST /api/workflows/{name}/runs`: the operation's id, from the 202's body.
fn post_run(server: &Server, name: &str) -> String {
    let (status, body) = server.request("POST", &format!("/api/workflows/{name}/runs"), Some("{}"));
    assert_eq!(status, 202, "{body}\n{}", server.log());
    let created: Value = serde_json::from_str(&body).unwrap();
    created["id"].as_str().unwrap().to_string()
}

/// `GET /api/operations/{id}` until it is final.
fn api_wait_until_final(server: &Server, id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = server.request("GET", &format!("/api/operations/{id}"), None);
        assert_eq!(status, 200, "{body}");
        let operation: Value = serde_json::from_str(&body).unwrap();
        if ["succeeded", "failed", "canceled"].contains(&operation["status"].as_str().unwrap_or(""))
        {
            return operation;
        }
        assert!(
            started.elapsed() < limit,
            "operation {id} did not finish within {limit:?}: {operation:#}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The version `GET /api/workflows` shows for `name` (null while its file does not compile).
fn listed_version(server: &Server, name: &str) -> Value {
    let (status, body) = server.request("GET", "/api/workflows", None);
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    listed["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|workflow| workflow["name"] == name)
        .map_or(Value::Null, |workflow| workflow["version"].clone())
}

#[test]
fn a_run_posted_to_the_api_keeps_its_version_while_the_file_is_edited() {
    const ACCOUNTS: i64 = 30_000;
    let old = slow_workflow("live", "old");
    let new = slow_workflow("live", "new");
    let dir = project("serve-live-edit", 30_000, &[("live.yaml", old.clone())]);
    let mut server = Server::start(&dir, &[]);
    assert_eq!(
        listed_version(&server, "live"),
        fetchflow::compile::content_hash(&old)
    );

    let id = post_run(&server, "live");
    let started = Instant::now();
    while progress(&dir, &id).is_none_or(|(status, _)| status != "in_progress") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Edited while it runs; the reload goes live, the running operation keeps its version.
    std::fs::write(dir.join("workflows/live.yaml"), &new).unwrap();
    let edited = Instant::now();
    while listed_version(&server, "live") != fetchflow::compile::content_hash(&new) {
        assert!(
            edited.elapsed() < Duration::from_secs(10),
            "the edit never went live:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        progress(&dir, &id).unwrap().0,
        "in_progress",
        "the run ended before the edit went live; make it slower"
    );

    let finished = api_wait_until_final(&server, &id, Duration::from_secs(120));
    assert_eq!(finished["status"], "succeeded", "{finished:#}");
    assert_eq!(
        finished["workflow_version"],
        fetchflow::compile::content_hash(&old)
    );
    assert_eq!(finished["counts"]["succeeded"], ACCOUNTS, "{finished:#}");
    let org = open(&dir.join("org.db"));
    assert_eq!(
        count(
            &org,
            "SELECT count(*) FROM account WHERE description = 'old ' || accountid"
        ),
        ACCOUNTS,
        "every record shows the old template's value"
    );

    // A run started after the edit runs the new version.
    let next = post_run(&server, "live");
    let finished = api_wait_until_final(&server, &next, Duration::from_secs(120));
    assert_eq!(finished["status"], "succeeded", "{finished:#}");
    assert_eq!(
        finished["workflow_version"],
        fetchflow::compile::content_hash(&new)
    );
    assert_eq!(
        count(
            &org,
            "SELECT count(*) FROM account WHERE description = 'new ' || accountid"
        ),
        ACCOUNTS
    );
    let (status, took) = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(took < Duration::from_secs(10), "{took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_workflows_directory_is_refused_before_listening() {
    let dir = tempdir("serve-no-workflows");
    std::fs::write(
        dir.join("fetchflow.yaml"),
        "workflows: nowhere\nstate: state.db\n",
    )
    .unwrap();
    let output = fetchflow(&dir, &["serve", "--listen", "127.0.0.1:0"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("workflows directory"), "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_configured_token_is_rendered_from_the_environment_and_required() {
    let dir = project(
        "serve-token-set",
        5,
        &[("touch.yaml", workflow("touch", "touched", 10))],
    );
    std::fs::write(
        dir.join("fetchflow.yaml"),
        "state: state.db\nconnections:\n  default:\n    local: org.db\n\
         server:\n  token: \"{{ secret('FETCHFLOW_SERVE_TEST_TOKEN') }}\"\n",
    )
    .unwrap();
    let mut server =
        Server::start_with_env(&dir, &[], &[("FETCHFLOW_SERVE_TEST_TOKEN", "s3cret-token")]);
    let (status, body) = server.request("POST", "/api/workflows/touch/runs", Some("{}"));
    assert_eq!(status, 401, "{body}");
    let (status, body) = server.request_with(
        "POST",
        "/api/workflows/touch/runs",
        Some("{}"),
        "Authorization: Bearer wrong\r\n",
    );
    assert_eq!(status, 401, "{body}");
    let (status, body) = server.request_with(
        "POST",
        "/api/workflows/touch/runs",
        Some("{}"),
        "Authorization: Bearer s3cret-token\r\n",
    );
    assert_eq!(status, 202, "{body}");
    assert!(!server.log().contains("s3cret-token"), "{}", server.log());
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_operation_of_a_killed_serve_is_resumed_once_its_lease_expires() {
    const ACCOUNTS: i64 = 30_000;
    let dir = project(
        "serve-sigkill",
        30_000,
        &[("slow.yaml", slow_workflow("slow", "slow"))],
    );
    let id = create_operation(&dir, "slow");
    let mut server = Server::start(&dir, &["--workers", "1"]);
    let started = Instant::now();
    while progress(&dir, &id).is_none_or(|(_, succeeded)| succeeded < 5_000) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SIGKILL: no checkpoint, no release; the lease stays until it expires.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let (status, succeeded) = progress(&dir, &id).unwrap();
    assert_eq!(status, "in_progress", "killed mid-run");
    assert!(succeeded < ACCOUNTS, "{succeeded}");
    // Lets the 30 s lease run out, as the clock would.
    open(&dir.join("state.db"))
        .execute(
            "UPDATE operations SET lease_expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = ?1",
            [&id],
        )
        .unwrap();

    let mut server = Server::start(&dir, &[]);
    let shown = wait_until_final(&dir, &server, &id, Duration::from_secs(120));
    assert_eq!(shown["status"], "succeeded", "{shown:#}");
    assert_eq!(shown["counts"]["selected"], ACCOUNTS, "{shown:#}");
    assert_eq!(shown["counts"]["succeeded"], ACCOUNTS, "{shown:#}");
    assert!(server.log().contains("resumed=true"), "{}", server.log());
    let org = open(&dir.join("org.db"));
    assert_eq!(
        count(
            &org,
            "SELECT count(*) FROM account WHERE description = 'slow ' || accountid"
        ),
        ACCOUNTS
    );
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let _ = std::fs::remove_dir_all(&dir);
}
