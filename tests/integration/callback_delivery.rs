//! Callback delivery end to end (issue 4 item 8, DESIGN 7.4): a workflow's callback compiled from
//! YAML, rendered when its operation finishes, stored in a SQLite outbox, and delivered by
//! `deliver_due` with the reqwest `HttpSender` to a real HTTP/1.1 receiver on loopback, with a
//! test clock stepped past each backoff. Checks the payload, the signature over the received
//! bytes, the same delivery id on every attempt, retries of 500s and timeouts, a restart between
//! attempts, and giving up on a 404.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::support::tempdir;
use fetchflow::callback::http::HttpSender;
use fetchflow::callback::{
    DELIVERY_HEADER, FinalStatus, OperationOutcome, RunContext, SIGNATURE_HEADER, location_of,
    render_delivery, verify_signature,
};
use fetchflow::compile::{Callback, CompileContext, Mode, compile_source};
use fetchflow::engine::deliver::{AttemptResult, DeliveryOptions, deliver_due, new_delivery};
use fetchflow::engine::{Clock, TestClock};
use fetchflow::metadata::Catalogue;
use fetchflow::source::SourceFile;
use fetchflow::store::{
    AttemptOutcome, Checkpoint, Counts, DeliveryLog, DeliveryStatus, NewOperation, OperationStatus,
    SqliteStateStore, StateStore, Trigger,
};

const SECRET: &str = "k3y-for-callback-signing";
const WORKER: &str = "test-worker";

/// What the receiver does with one request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
struct Received {
    method: String,
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

/// A minimal HTTP/1.1 receiver: answers each request from a script (200 once it runs out) and
/// keeps every request it read.
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(script: &[Answer]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let log = Arc::clone(&received);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                let script = Arc::clone(&script);
                tokio::spawn(async move { serve(stream, log, script).await });
            }
        });
        Receiver {
            addr,
            received,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    log.lock().unwrap().push(request);
    let answer = script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(200));
    match answer {
        Answer::Status(status) => {
            let response = format!(
                "HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Answer::Hang => {
            // Hold the connection open well past any timeout of the test.
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
}

/// Reads one request: the head up to the blank line, then `Content-Length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(length);
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap()
}

/// The callback of a workflow compiled from YAML: the default (Dataverse) body, signed.
fn compiled_callback(url: &str) -> Callback {
    let text = format!(
        r#"name: territory-restructure
vars:
  territory: West
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <filter>
          <condition attribute="address1_stateorprovince" operator="eq" value="{{{{ vars.territory }}}}"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        description: "Reviewed {{{{ record.name }}}}"
callback:
  url: "{url}/{{{{ operation.id }}}}"
  headers: {{X-Team: crm}}
  secret: "{{{{ secret('CALLBACK_SECRET') }}}}"
"#
    );
    let catalogue = Catalogue::builtin();
    let context = CompileContext {
        catalogue: &catalogue,
        connections: None,
    };
    let outcome = compile_source(
        SourceFile::new("territory-restructure.yaml", &text),
        &context,
    );
    let workflow = outcome
        .workflow
        .unwrap_or_else(|| panic!("{:#?}", outcome.diagnostics));
    workflow.callback.expect("the workflow has a callback")
}

fn secrets(name: &str) -> Option<String> {
    (name == "CALLBACK_SECRET").then(|| SECRET.to_string())
}

/// Creates, runs (3 records succeeded) and finishes an operation whose rendered callback goes
/// into the outbox with the final status, as the engine does. Returns the operation id.
fn finish_operation(store: &dyn StateStore, callback: &Callback) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let vars = serde_json::Map::from_iter([("territory".to_string(), Value::from("West"))]);
    let operation = NewOperation {
        id: id.clone(),
        workflow: "territory-restructure".to_string(),
        workflow_version: "v1".to_string(),
        git_commit: None,
        connection: "default".to_string(),
        mode: Mode::Async,
        trigger: Trigger::Manual,
        vars: vars.clone(),
        now: start(),
        retry_of: None,
        record_filter: None,
    };
    let lease = Duration::from_secs(60);
    store.create_operation(&operation, start()).unwrap();
    store.claim(&id, WORKER, start(), lease).unwrap();
    let counts = Counts {
        selected: Some(3),
        succeeded: 3,
        failed: 0,
        skipped: 0,
    };
    store
        .save_checkpoint(&id, WORKER, &Checkpoint::default(), counts, &[], start())
        .unwrap();
    let finished_at = start() + TimeDelta::seconds(7);
    let outcome = OperationOutcome {
        id: id.clone(),
        workflow: "territory-restructure".to_string(),
        status: FinalStatus::Succeeded,
        selected: 3,
        succeeded: 3,
        failed: 0,
        skipped: 0,
        started_at: start(),
        finished_at,
        error: None,
        location: location_of(&id),
        mode: Mode::Async,
        trigger: Trigger::Manual.to_string(),
    };
    let run = RunContext {
        vars: &vars,
        workflow_version: "v1",
        now: start(),
    };
    let delivery_id = uuid::Uuid::new_v4().to_string();
    let rendered = render_delivery(callback, &outcome, &run, &secrets, &delivery_id).unwrap();
    store
        .finish(
            &id,
            WORKER,
            OperationStatus::Succeeded,
            None,
            Some(&new_delivery(&rendered)),
            finished_at,
        )
        .unwrap();
    id
}

fn open(path: &Path) -> SqliteStateStore {
    SqliteStateStore::open(path).unwrap()
}

fn only_delivery(store: &dyn StateStore, operation: &str) -> DeliveryLog {
    let mut logs = store.deliveries(operation).unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs.remove(0)
}

/// One `deliver_due` pass with a fresh sender, constant jitter 0 (delays 2.5 s, 5 s, ...).
async fn pass(
    store: &dyn StateStore,
    clock: &TestClock,
    options: &DeliveryOptions,
) -> Vec<AttemptResult> {
    let sender = HttpSender::new().unwrap();
    let report = deliver_due(store, &sender, clock, &|| 0.0, options)
        .await
        .unwrap();
    report
        .attempts
        .into_iter()
        .map(|attempt| attempt.result)
        .collect()
}

fn assert_signed_payload(received: &Received, operation: &str) {
    let signature = received.header(SIGNATURE_HEADER).expect("signed");
    assert!(
        verify_signature(SECRET.as_bytes(), &received.body, signature),
        "the signature must verify over the exact received bytes"
    );
    let payload: Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(payload["location"], format!("/api/operations/{operation}"));
    assert_eq!(payload["backgroundOperationId"], operation);
    assert_eq!(payload["backgroundOperationStateCode"], 3);
    assert_eq!(payload["backgroundOperationStatusCode"], 30);
    assert_eq!(payload["workflow"], "territory-restructure");
    assert_eq!(payload["selected"], 3);
    assert_eq!(payload["succeeded"], 3);
    assert_eq!(payload["failed"], 0);
    assert_eq!(payload["skipped"], 0);
    assert!(payload.get("backgroundOperationErrorCode").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_500s_are_retried_across_a_restart_and_the_third_attempt_delivers() {
    let receiver = Receiver::start(&[Answer::Status(500), Answer::Status(500)]).await;
    let dir = tempdir("retry");
    let path = dir.join("state.db");
    let callback = compiled_callback(&receiver.url());
    let clock = TestClock::new(start() + TimeDelta::seconds(7));
    let options = DeliveryOptions::default();

    let store = open(&path);
    let operation = finish_operation(&store, &callback);
    let delivery_id = only_delivery(&store, &operation).delivery.id;

    // Attempt 1: 500, retried 2.5 s later (jitter 0).
    let first = pass(&store, &clock, &options).await;
    assert!(
        matches!(&first[..], [AttemptResult::Retrying { outcome: AttemptOutcome::Status(500), next_attempt_at }]
            if *next_attempt_at == clock.now() + TimeDelta::milliseconds(2500)),
        "{first:?}"
    );
    // Not due yet: nothing is sent.
    assert!(pass(&store, &clock, &options).await.is_empty());
    assert_eq!(receiver.received().len(), 1);

    // Restart: the store and the sender are dropped, the file is opened again.
    drop(store);
    let store = open(&path);
    let pending = only_delivery(&store, &operation);
    assert_eq!(pending.delivery.status, DeliveryStatus::Pending);
    assert_eq!(pending.delivery.attempts, 1);
    assert_eq!(pending.delivery.last_error.as_deref(), Some("HTTP 500"));

    // Attempt 2: 500, retried 5 s later.
    clock.advance(TimeDelta::milliseconds(2500));
    let second = pass(&store, &clock, &options).await;
    assert!(
        matches!(&second[..], [AttemptResult::Retrying { next_attempt_at, .. }]
            if *next_attempt_at == clock.now() + TimeDelta::seconds(5)),
        "{second:?}"
    );

    // Another restart, then attempt 3: delivered.
    drop(store);
    let store = open(&path);
    clock.advance(TimeDelta::seconds(5));
    let third = pass(&store, &clock, &options).await;
    assert_eq!(third, [AttemptResult::Delivered { status: 200 }]);
    clock.advance(TimeDelta::hours(2));
    assert!(pass(&store, &clock, &options).await.is_empty());

    // The receiver saw the same request three times.
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    for request in &received {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, format!("/hooks/{operation}"));
        assert_eq!(request.header(DELIVERY_HEADER), Some(delivery_id.as_str()));
        assert_eq!(request.header("X-Team"), Some("crm"));
        assert_eq!(request.header("Content-Type"), Some("application/json"));
        assert!(
            request
                .header("User-Agent")
                .is_some_and(|agent| agent.starts_with("fetchflow/")),
            "{request:?}"
        );
        assert_eq!(request.body, received[0].body);
        assert_signed_payload(request, &operation);
    }

    let log = only_delivery(&store, &operation);
    assert_eq!(log.delivery.status, DeliveryStatus::Delivered);
    assert_eq!(log.delivery.attempts, 3);
    assert!(log.delivery.delivered_at.is_some());
    let outcomes: Vec<_> = log.attempts.iter().map(|a| a.outcome.clone()).collect();
    assert_eq!(
        outcomes,
        [
            AttemptOutcome::Status(500),
            AttemptOutcome::Status(500),
            AttemptOutcome::Status(200),
        ]
    );
    let numbers: Vec<_> = log.attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2, 3]);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_404_is_abandoned_at_once_with_its_error_visible() {
    let receiver = Receiver::start(&[Answer::Status(404)]).await;
    let store = SqliteStateStore::in_memory().unwrap();
    let operation = finish_operation(&store, &compiled_callback(&receiver.url()));
    let clock = TestClock::new(start() + TimeDelta::seconds(7));
    let options = DeliveryOptions::default();

    let results = pass(&store, &clock, &options).await;
    assert_eq!(
        results,
        [AttemptResult::Abandoned {
            outcome: AttemptOutcome::Status(404)
        }]
    );
    clock.advance(TimeDelta::days(2));
    assert!(pass(&store, &clock, &options).await.is_empty());
    assert_eq!(receiver.received().len(), 1);

    let log = only_delivery(&store, &operation);
    assert_eq!(log.delivery.status, DeliveryStatus::Abandoned);
    assert_eq!(log.delivery.attempts, 1);
    assert_eq!(log.delivery.next_attempt_at, None);
    assert_eq!(log.delivery.last_error.as_deref(), Some("HTTP 404"));
    assert_eq!(log.attempts.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_never_answers_times_out_and_is_retried() {
    let receiver = Receiver::start(&[Answer::Hang]).await;
    let store = SqliteStateStore::in_memory().unwrap();
    let operation = finish_operation(&store, &compiled_callback(&receiver.url()));
    let clock = TestClock::new(start() + TimeDelta::seconds(7));
    let options = DeliveryOptions {
        timeout: Duration::from_millis(300),
        ..DeliveryOptions::default()
    };

    let began = std::time::Instant::now();
    let first = pass(&store, &clock, &options).await;
    let took = began.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let [
        AttemptResult::Retrying {
            outcome: AttemptOutcome::Error(message),
            ..
        },
    ] = &first[..]
    else {
        panic!("{first:?}");
    };
    assert!(message.contains("timed out"), "{message}");
    assert!(!message.contains(&receiver.addr.to_string()), "{message}");
    assert!(!message.contains(&operation), "{message}");

    clock.advance(TimeDelta::seconds(3));
    let second = pass(&store, &clock, &options).await;
    assert_eq!(second, [AttemptResult::Delivered { status: 200 }]);

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].header(DELIVERY_HEADER),
        received[1].header(DELIVERY_HEADER)
    );
    assert_signed_payload(&received[1], &operation);
    let log = only_delivery(&store, &operation);
    assert_eq!(log.delivery.status, DeliveryStatus::Delivered);
    assert!(matches!(
        &log.attempts[0].outcome,
        AttemptOutcome::Error(error) if error.contains("timed out")
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_is_retried_without_the_url_in_the_error() {
    // Bind, then close: nothing listens on the port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/hooks");
    let store = SqliteStateStore::in_memory().unwrap();
    let operation = finish_operation(&store, &compiled_callback(&url));
    let clock = TestClock::new(start() + TimeDelta::seconds(7));

    let results = pass(&store, &clock, &DeliveryOptions::default()).await;
    let [
        AttemptResult::Retrying {
            outcome: AttemptOutcome::Error(message),
            ..
        },
    ] = &results[..]
    else {
        panic!("{results:?}");
    };
    assert!(!message.contains(&addr.to_string()), "{message}");
    assert!(!message.contains(&operation), "{message}");
    let log = only_delivery(&store, &operation);
    assert_eq!(log.delivery.status, DeliveryStatus::Pending);
    assert_eq!(log.delivery.last_error.as_deref(), Some(message.as_str()));
}
