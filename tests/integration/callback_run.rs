//! The callback of a run, from the outside: `run --wait` renders it once when the operation
//! ends, stores it with the operation's end and delivers it before exiting — to a local HTTP
//! receiver here — with the operation id in its URL, a signature that verifies over the exact
//! body and the default payload of DESIGN 7.4; a callback that cannot be rendered (its secret is
//! not set) leaves the run's result alone and shows up in `ops show` without any secret; `on:`
//! filters endings; `ops cancel` of a waiting operation stores its callback; and the git commit
//! of a workflow file in a clean work tree is recorded on the operation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;

use super::support::text;
use serde_json::{Value, json};

const SECRET: &str = "s3cr3t-callback-key-for-tests";

/// One request the receiver got.
#[derive(Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A minimal HTTP/1.1 receiver on a thread: answers every request `204 No Content` and hands
/// it over on the channel. Returns its port.
fn receiver() -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(received) = read_request(&mut stream) else {
                continue;
            };
            let _ = stream.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            if tx.send(received).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        path,
        headers,
        body,
    })
}

fn tempdir(label: &str) -> PathBuf {
    let dir = super::support::tempdir(label);
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    dir
}

/// Runs fetchflow in `dir`; `CB_SECRET` is set to `secret` or removed.
fn fetchflow(dir: &Path, args: &[&str], secret: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fetchflow"));
    command
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CB_SECRET");
    if let Some(secret) = secret {
        command.env("CB_SECRET", secret);
    }
    command.output().unwrap()
}

fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// A workflow over the West accounts with the given `callback:` block (YAML, indented).
fn workflow(callback: &str) -> String {
    format!(
        r#"name: west
mode: async
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
        description: "reviewed"
{callback}"#
    )
}

/// A project with a small local org (two West accounts, one North) and the workflow.
fn project(label: &str, workflow: &str) -> PathBuf {
    let dir = tempdir(label);
    std::fs::write(
        dir.join("fetchflow.yaml"),
        "state: state.db\nconnections:\n  default:\n    local: org.db\n",
    )
    .unwrap();
    std::fs::write(dir.join("workflows/west.yaml"), workflow).unwrap();
    ok(&fetchflow(&dir, &["org", "init", "--org", "org.db"], None));
    let rows = json!({"account": [
        {"accountid": "a0000000-0000-4000-8000-000000000001", "name": "Contoso",
         "address1_stateorprovince": "West"},
        {"accountid": "a0000000-0000-4000-8000-000000000002", "name": "Fabrikam",
         "address1_stateorprovince": "West"},
        {"accountid": "a0000000-0000-4000-8000-000000000003", "name": "Litware",
         "address1_stateorprovince": "North"}
    ]});
    std::fs::write(dir.join("rows.json"), rows.to_string()).unwrap();
    ok(&fetchflow(
        &dir,
        &["org", "import", "rows.json", "--org", "org.db"],
        None,
    ));
    dir
}

fn signed_callback(port: u16) -> String {
    format!(
        "callback:\n  url: \"http://127.0.0.1:{port}/cb/{{{{ operation.id }}}}\"\n  \
         secret: \"{{{{ secret('CB_SECRET') }}}}\"\n"
    )
}

/// The newest operation as `ops show --format json` prints it.
fn last_operation(dir: &Path) -> Value {
    let list: Value = serde_json::from_str(&ok(&fetchflow(
        dir,
        &["ops", "list", "--format", "json"],
        None,
    )))
    .unwrap();
    let id = list["operations"][0]["id"].as_str().unwrap().to_string();
    serde_json::from_str(&ok(&fetchflow(
        dir,
        &["ops", "show", &id, "--format", "json"],
        None,
    )))
    .unwrap()
}

#[test]
fn run_wait_delivers_the_signed_default_payload_to_the_operation_url() {
    let (port, received) = receiver();
    let dir = project("signed", &workflow(&signed_callback(port)));

    let output = fetchflow(&dir, &["run", "west", "--wait"], Some(SECRET));
    let stdout = ok(&output);
    assert!(
        stdout.contains("callback delivered (HTTP 204)"),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(!stdout.contains(SECRET) && !text(&output.stderr).contains(SECRET));

    let operation = last_operation(&dir);
    let id = operation["id"].as_str().unwrap();
    let requests: Vec<Received> = received.try_iter().collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.path, format!("/cb/{id}"));
    let signature = request.header("X-Fetchflow-Signature").unwrap();
    assert!(fetchflow::callback::verify_signature(
        SECRET.as_bytes(),
        &request.body,
        signature
    ));
    let delivery_id = request.header("X-Fetchflow-Delivery").unwrap();
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "location": format!("/api/operations/{id}"),
            "backgroundOperationId": id,
            "backgroundOperationStateCode": 3,
            "backgroundOperationStatusCode": 30,
            "workflow": "west",
            "selected": 2,
            "succeeded": 2,
            "failed": 0,
            "skipped": 0
        })
    );

    let deliveries = operation["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{operation:#}");
    assert_eq!(deliveries[0]["id"], delivery_id);
    assert_eq!(deliveries[0]["status"], "delivered");
    assert!(!operation.to_string().contains(SECRET));
}

#[test]
fn a_callback_whose_secret_is_unset_leaves_the_run_alone_and_shows_in_ops_show() {
    let (port, received) = receiver();
    let dir = project("unset", &workflow(&signed_callback(port)));

    let output = fetchflow(&dir, &["run", "west", "--wait"], None);
    let stdout = ok(&output);
    assert!(stdout.contains("succeeded"), "{stdout}");
    assert!(stdout.contains("callback not sent"), "{stdout}");

    let operation = last_operation(&dir);
    assert_eq!(operation["status"], "succeeded");
    let deliveries = operation["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{operation:#}");
    assert_eq!(deliveries[0]["status"], "abandoned");
    let error = deliveries[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("could not be rendered") && error.contains("CB_SECRET"),
        "{error}"
    );
    assert_eq!(received.try_iter().count(), 0);

    let human = ok(&fetchflow(
        &dir,
        &["ops", "show", operation["id"].as_str().unwrap()],
        None,
    ));
    assert!(human.contains("CB_SECRET"), "{human}");
}

#[test]
fn a_callback_on_failed_only_sends_nothing_for_a_success() {
    let (port, received) = receiver();
    let callback = format!("{}  on: [failed]\n", signed_callback(port));
    let dir = project("on-failed", &workflow(&callback));

    let stdout = ok(&fetchflow(&dir, &["run", "west", "--wait"], Some(SECRET)));
    assert!(stdout.contains("succeeded"), "{stdout}");
    assert!(!stdout.contains("callback delivered"), "{stdout}");
    let operation = last_operation(&dir);
    assert_eq!(operation["deliveries"], json!([]));
    assert_eq!(received.try_iter().count(), 0);
}

#[test]
fn canceling_a_waiting_operation_stores_its_callback() {
    let (port, _received) = receiver();
    let dir = project("cancel", &workflow(&signed_callback(port)));

    ok(&fetchflow(&dir, &["run", "west"], Some(SECRET)));
    let waiting = last_operation(&dir);
    assert_eq!(waiting["status"], "waiting");
    let id = waiting["id"].as_str().unwrap();
    ok(&fetchflow(&dir, &["ops", "cancel", id], Some(SECRET)));

    let operation = last_operation(&dir);
    assert_eq!(operation["status"], "canceled");
    let deliveries = operation["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{operation:#}");
    assert_eq!(deliveries[0]["status"], "pending");
    assert_eq!(
        deliveries[0]["url"],
        format!("http://127.0.0.1:{port}/cb/{id}")
    );
    assert_eq!(deliveries[0]["signed"], true);
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=fetchflow",
            "-c",
            "user.email=ci@example.com",
        ])
        .args(args)
        .output()
        .ok()?;
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        text(&output.stderr)
    );
    Some(text(&output.stdout).trim().to_string())
}

#[test]
fn the_commit_of_a_clean_workflow_file_is_recorded_and_a_modified_one_has_none() {
    let dir = project("git", &workflow(""));
    if git(&dir, &["init", "-q"]).is_none() {
        eprintln!("git is not installed; skipped");
        return;
    }
    git(&dir, &["add", "workflows/west.yaml"]);
    git(&dir, &["commit", "-q", "-m", "west"]);
    let head = git(&dir, &["rev-parse", "HEAD"]).unwrap();

    ok(&fetchflow(&dir, &["run", "west", "--wait"], None));
    assert_eq!(last_operation(&dir)["git_commit"], head.as_str());

    let changed = format!("{}# edited\n", workflow(""));
    std::fs::write(dir.join("workflows/west.yaml"), changed).unwrap();
    ok(&fetchflow(&dir, &["run", "west", "--wait"], None));
    assert_eq!(last_operation(&dir)["git_commit"], Value::Null);
}
