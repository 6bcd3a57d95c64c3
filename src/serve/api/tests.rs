//! Tests of the HTTP API through `tower::ServiceExt::oneshot` on the router (no sockets): every
//! endpoint, the error shape, auth, webhook signatures, and bad input that must start nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::callback::hmac::signature_header;
use crate::compile::{CompileContext, Workflow, compile_source};
use crate::config::Config;
use crate::diagnostics::{Diagnostic, Severity};
use crate::engine::TestClock;
use crate::metadata::Catalogue;
use crate::org::Org;
use crate::org::local::DemoSize;
use crate::org::local::LocalOrg;
use crate::serve::registry::{ActiveWorkflow, FileEntry, Registry, Snapshot};
use crate::serve::{Metrics, Orgs};
use crate::source::SourceFile;
use crate::store::{Checkpoint, Counts, NewOperation, RecordFailure, SqliteStateStore, Trigger};

const TOKEN: &str = "s3cret-token";
const HOOK_SECRET: &str = "hook-key";
const DEMO_ACCOUNTS: usize = 12;

fn now() -> DateTime<Utc> {
    // A Thursday.
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

const WEST: &str = r#"name: west
description: Move the West accounts
triggers:
  - cron: "0 2 * * 1-5"
    timezone: Europe/London
  - webhook:
      secret: "{{ secret('HOOK_SECRET') }}"
vars:
  territory: West
  threshold: 1000
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <filter>
          <condition attribute="address1_stateorprovince" operator="eq" value="{{ vars.territory }}"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        description: "Moved from {{ vars.territory }}"
overlap: skip
callback:
  url: "https://hooks.example.com/{{ operation.id }}"
"#;

const QUICK: &str = r#"name: quick
mode: sync
vars:
  note: checked
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
        description: "{{ vars.note }}"
"#;

const TINY: &str = r#"name: tiny
mode: sync
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
        description: "too many"
sync:
  max_records: 2
"#;

const OPEN_HOOK: &str = r#"name: open-hook
triggers:
  - webhook: {}
vars:
  territory: West
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
        description: "{{ vars.territory }}"
"#;

const UNSET_SECRET_HOOK: &str = r#"name: unset-secret-hook
triggers:
  - webhook:
      secret: "{{ secret('NOT_SET_ANYWHERE') }}"
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
        description: "x"
"#;

const ELSEWHERE: &str = r#"name: elsewhere
connection: other
mode: sync
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
        description: "x"
"#;

fn compiled(file: &str, yaml: &str) -> Workflow {
    let catalogue = Catalogue::builtin();
    let connections = ["default".to_string(), "other".to_string()];
    let context = CompileContext {
        catalogue: &catalogue,
        connections: Some(&connections),
    };
    let outcome = compile_source(
        SourceFile::new(PathBuf::from(file), yaml.to_string()),
        &context,
    );
    outcome
        .workflow
        .unwrap_or_else(|| panic!("{file}: {:#?}", outcome.diagnostics))
}

fn ok_entry(file: &str, yaml: &str, activated_at: DateTime<Utc>) -> FileEntry {
    FileEntry {
        path: PathBuf::from(file),
        status: FileStatus::Ok,
        diagnostics: Vec::new(),
        active: Some(Arc::new(ActiveWorkflow {
            workflow: Arc::new(compiled(file, yaml)),
            source: yaml.into(),
            activated_at,
        })),
        checked_at: activated_at,
    }
}

fn diagnostic(file: &str, message: &str) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        line: 1,
        column: 7,
        path: "name".to_string(),
        severity: Severity::Error,
        code: "test-error",
        message: message.to_string(),
        help: None,
        offset: 6,
        len: 1,
    }
}

struct Fixture {
    router: Router,
    state: ServeState,
}

fn fixture(token: Option<&str>) -> Fixture {
    let org = LocalOrg::in_memory(Catalogue::builtin()).unwrap();
    org.populate_demo(DemoSize {
        accounts: DEMO_ACCOUNTS,
    })
    .unwrap();
    let earlier = now() - chrono::Duration::hours(1);
    // An invalid edit of `kept.yaml`: its last valid version keeps running.
    let mut kept = ok_entry(
        "kept.yaml",
        &OPEN_HOOK.replace("open-hook", "kept"),
        earlier,
    );
    kept.status = FileStatus::Error;
    kept.diagnostics = vec![diagnostic("kept.yaml", "an invalid edit")];
    let broken = FileEntry {
        path: PathBuf::from("broken.yaml"),
        status: FileStatus::Error,
        diagnostics: vec![diagnostic("broken.yaml", "never compiled")],
        active: None,
        checked_at: earlier,
    };
    let entries = vec![
        ok_entry("west.yaml", WEST, earlier),
        ok_entry("quick.yaml", QUICK, earlier),
        ok_entry("tiny.yaml", TINY, earlier),
        ok_entry("open-hook.yaml", OPEN_HOOK, earlier),
        ok_entry("unset-secret-hook.yaml", UNSET_SECRET_HOOK, earlier),
        ok_entry("elsewhere.yaml", ELSEWHERE, earlier),
        kept,
        broken,
    ];
    let secrets = |name: &str| (name == "HOOK_SECRET").then(|| HOOK_SECRET.to_string());
    let state = ServeState {
        config: Arc::new(Config::defaults(&std::env::temp_dir())),
        registry: Arc::new(Registry::new(Snapshot::new(1, entries))),
        store: Arc::new(SqliteStateStore::in_memory().unwrap()),
        orgs: Arc::new(Orgs::fixed([(
            "default".to_string(),
            Arc::new(org) as Arc<dyn Org>,
        )])),
        clock: Arc::new(TestClock::new(now())),
        metrics: Arc::new(Metrics::default()),
        secrets: Arc::new(secrets),
        token: token.map(Arc::from),
        work: Arc::new(tokio::sync::Notify::new()),
    };
    Fixture {
        router: router(state.clone()),
        state,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the error shape and returns the message.
    fn error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{body}");
        assert_eq!(body.as_object().map(|map| map.len()), Some(1), "{body}");
        message.to_string()
    }
}

impl Fixture {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: body.to_vec(),
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    /// A POST with a JSON body and the right token when one is configured.
    async fn post_json(&self, uri: &str, body: &Value) -> Reply {
        let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.state.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn post_raw(&self, uri: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = Request::post(uri);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    async fn hook(&self, name: &str, body: &str, signature: Option<String>) -> Reply {
        let mut request = Request::post(format!("/hooks/{name}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(signature) = signature {
            request = request.header("X-Fetchflow-Signature", signature);
        }
        self.send(request.body(Body::from(body.to_string())).unwrap())
            .await
    }

    fn operation_count(&self) -> u64 {
        self.state
            .store
            .status_counts()
            .unwrap()
            .iter()
            .map(|(_, count)| count)
            .sum()
    }

    /// How many accounts of the org have this description.
    async fn accounts_described(&self, description: &str) -> u64 {
        let org = self.state.orgs.get("default").unwrap();
        let fetchxml = format!(
            r#"<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="description" operator="eq" value="{description}"/></filter></entity></fetch>"#
        );
        crate::engine::count_selection(&*org, &fetchxml, u64::MAX - 1)
            .await
            .unwrap()
    }

    /// A waiting operation created through the API.
    async fn start_async(&self, workflow: &str) -> String {
        let reply = self
            .post_json(
                &format!("/api/workflows/{workflow}/runs"),
                &json!({"mode": "async"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
        reply.json()["id"].as_str().unwrap().to_string()
    }
}

fn file<'a>(list: &'a Value, path: &str) -> &'a Value {
    list["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in {list}"))
}

#[tokio::test]
async fn healthz_answers_ok() {
    let fixture = fixture(None);
    let reply = fixture.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "ok"}));
}

/// `?limit=` pages the files by path; following `next_cursor` visits each file once, and a bad
/// limit or an unknown parameter is a 400.
#[tokio::test]
async fn workflows_page_by_path_with_a_cursor() {
    let fixture = fixture(None);
    let all = fixture.get("/api/workflows").await.json();
    let every: Vec<String> = all["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all["next_cursor"], Value::Null);

    let mut seen = Vec::new();
    let mut uri = "/api/workflows?limit=3".to_string();
    loop {
        let page = fixture.get(&uri).await.json();
        let files = page["workflows"].as_array().unwrap();
        assert!(files.len() <= 3);
        seen.extend(
            files
                .iter()
                .map(|file| file["path"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                uri = format!(
                    "/api/workflows?limit=3&cursor={}",
                    cursor.replace('/', "%2F")
                );
            }
            None => break,
        }
    }
    assert_eq!(seen, every);
    assert_eq!(seen.len(), 8);

    for bad in [
        "/api/workflows?limit=0",
        "/api/workflows?limit=x",
        "/api/workflows?page=2",
    ] {
        let reply = fixture.get(bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn workflows_list_every_file_with_status_triggers_and_next_fires() {
    let fixture = fixture(None);
    let reply = fixture.get("/api/workflows").await;
    assert_eq!(reply.status, StatusCode::OK);
    let list = reply.json();
    assert_eq!(list["workflows"].as_array().unwrap().len(), 8);

    let west = file(&list, "west.yaml");
    assert_eq!(west["name"], "west");
    assert_eq!(west["status"], "ok");
    assert_eq!(west["diagnostics"], json!([]));
    assert_eq!(west["description"], "Move the West accounts");
    let version = west["version"].as_str().unwrap();
    assert_eq!(version.len(), 64);
    assert_eq!(west["active_version"], version);
    assert_eq!(west["last_run"], Value::Null);
    let cron = &west["triggers"][0];
    assert_eq!(cron["type"], "cron");
    assert_eq!(cron["timezone"], "Europe/London");
    assert_eq!(cron["missed"], "run_once");
    // Thursday noon: Friday 02:00, then Monday and Tuesday (London is on GMT in winter).
    assert_eq!(
        cron["next_fires"],
        json!([
            {"utc": "2026-11-27T02:00:00Z", "local": "2026-11-27T02:00:00+00:00"},
            {"utc": "2026-11-30T02:00:00Z", "local": "2026-11-30T02:00:00+00:00"},
            {"utc": "2026-12-01T02:00:00Z", "local": "2026-12-01T02:00:00+00:00"},
        ])
    );
    assert_eq!(
        west["triggers"][1],
        json!({"type": "webhook", "path": "/hooks/west", "signed": true})
    );

    // An invalid edit: the diagnostics are shown and the last valid version keeps running.
    let kept = file(&list, "kept.yaml");
    assert_eq!(kept["status"], "error");
    assert_eq!(kept["version"], Value::Null);
    assert_eq!(kept["active_version"].as_str().map(str::len), Some(64));
    assert_eq!(kept["diagnostics"][0]["message"], "an invalid edit");
    assert_eq!(kept["diagnostics"][0]["line"], 1);

    // A file that never compiled is listed by its file name, with nothing that runs.
    let broken = file(&list, "broken.yaml");
    assert_eq!(broken["name"], "broken");
    assert_eq!(broken["status"], "error");
    assert_eq!(broken["active_version"], Value::Null);
    assert_eq!(broken["triggers"], json!([]));
    assert_eq!(broken["diagnostics"][0]["code"], "test-error");
}

#[tokio::test]
async fn next_fires_count_from_the_activation_when_it_is_later_than_now() {
    let fixture = fixture(None);
    let later = Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap(); // a Monday, after 02:00
    fixture
        .state
        .registry
        .update(|_, generation| Snapshot::new(generation, [ok_entry("west.yaml", WEST, later)]));
    let reply = fixture.get("/api/workflows/west").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json()["triggers"][0]["next_fires"][0]["utc"],
        "2026-12-08T02:00:00Z"
    );
}

#[tokio::test]
async fn one_workflow_by_name_with_its_last_run() {
    let fixture = fixture(None);
    let id = fixture.start_async("west").await;
    let reply = fixture.get("/api/workflows/west").await;
    assert_eq!(reply.status, StatusCode::OK);
    let west = reply.json();
    assert_eq!(west["path"], "west.yaml");
    assert_eq!(west["last_run"]["id"], id.as_str());
    assert_eq!(west["last_run"]["status"], "waiting");

    let reply = fixture.get("/api/workflows/broken").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["status"], "error");

    let message = fixture
        .get("/api/workflows/wests")
        .await
        .error(StatusCode::NOT_FOUND, "workflow_not_found");
    assert!(message.contains("did you mean `west`?"), "{message}");
}

#[tokio::test]
async fn an_async_run_answers_202_with_its_location_and_wakes_the_workers() {
    let fixture = fixture(None);
    let reply = fixture
        .post_json(
            "/api/workflows/west/runs",
            &json!({"vars": {"territory": "North", "threshold": 5}, "mode": "async"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let operation = reply.json();
    let id = operation["id"].as_str().unwrap();
    assert_eq!(
        reply.headers[header::LOCATION],
        format!("/api/operations/{id}").as_str()
    );
    assert_eq!(operation["status"], "waiting");
    assert_eq!(operation["trigger"], "api");
    assert_eq!(operation["mode"], "async");
    assert_eq!(operation["location"], format!("/api/operations/{id}"));
    let stored = fixture.state.store.get(id).unwrap();
    assert_eq!(stored.vars["territory"], "North");
    assert_eq!(stored.vars["threshold"], 5);
    assert!(
        tokio::time::timeout(Duration::from_secs(1), fixture.state.work.notified())
            .await
            .is_ok(),
        "the workers were not signalled"
    );

    // No body at all: the workflow's mode and default vars.
    let reply = fixture
        .post_raw("/api/workflows/west/runs", None, Vec::new())
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        fixture.state.store.get(&id).unwrap().vars["territory"],
        "West"
    );
}

#[tokio::test]
async fn bad_run_requests_get_a_clear_4xx_and_start_nothing() {
    let fixture = fixture(None);
    let before = fixture.operation_count();

    let message = fixture
        .post_json(
            "/api/workflows/west/runs",
            &json!({"vars": {"threshold": "lots"}}),
        )
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_vars");
    assert!(message.contains("var `threshold` is a number"), "{message}");

    let message = fixture
        .post_json(
            "/api/workflows/west/runs",
            &json!({"vars": {"teritory": "x"}}),
        )
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_vars");
    assert!(message.contains("did you mean `territory`?"), "{message}");

    let message = fixture
        .post_json("/api/workflows/west/runs", &json!({"mode": "later"}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert!(message.contains("later"), "{message}");

    let message = fixture
        .post_json("/api/workflows/west/runs", &json!({"vars": [1]}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert!(message.contains("wrong shape"), "{message}");

    let message = fixture
        .post_raw(
            "/api/workflows/west/runs",
            Some("application/json"),
            b"{\"vars\": {".to_vec(),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "malformed_json");
    assert!(message.contains("not valid JSON"), "{message}");

    let message = fixture
        .post_raw(
            "/api/workflows/west/runs",
            Some("text/plain"),
            b"{}".to_vec(),
        )
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert!(message.contains("application/json"), "{message}");

    let huge = format!(
        "{{\"vars\": {{\"territory\": \"{}\"}}}}",
        "x".repeat(MAX_BODY_BYTES)
    );
    let message = fixture
        .post_raw(
            "/api/workflows/west/runs",
            Some("application/json"),
            huge.into_bytes(),
        )
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert!(message.contains("1048576 bytes"), "{message}");

    let message = fixture
        .post_json("/api/workflows/nope/runs", &json!({}))
        .await
        .error(StatusCode::NOT_FOUND, "workflow_not_found");
    assert!(message.contains("`nope`"), "{message}");

    // A file that does not compile runs nothing, even by its file name.
    fixture
        .post_json("/api/workflows/broken/runs", &json!({}))
        .await
        .error(StatusCode::NOT_FOUND, "workflow_not_found");

    assert_eq!(fixture.operation_count(), before);
}

#[tokio::test]
async fn a_sync_run_executes_inline_and_answers_with_the_finished_operation() {
    let fixture = fixture(None);
    let reply = fixture
        .post_json(
            "/api/workflows/quick/runs",
            &json!({"vars": {"note": "done"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let operation = reply.json();
    assert_eq!(operation["status"], "succeeded", "{operation}");
    assert_eq!(operation["mode"], "sync");
    assert_eq!(operation["trigger"], "api");
    assert_eq!(operation["counts"]["selected"], DEMO_ACCOUNTS);
    assert_eq!(operation["counts"]["succeeded"], DEMO_ACCOUNTS);
    assert_eq!(operation["counts"]["failed"], 0);
    assert_eq!(operation["vars"]["note"], "done");
    assert_eq!(operation["deliveries"], json!([]));
    assert_eq!(fixture.operation_count(), 1);
    assert_eq!(
        fixture.accounts_described("done").await,
        DEMO_ACCOUNTS as u64
    );
}

#[tokio::test]
async fn a_sync_run_while_the_workflow_runs_is_a_conflict_and_starts_nothing() {
    let fixture = fixture(None);
    let running = fixture.start_async("quick").await;
    fixture
        .state
        .store
        .claim(&running, "w", now(), Duration::from_secs(60))
        .unwrap();
    let message = fixture
        .post_json("/api/workflows/quick/runs", &json!({"mode": "sync"}))
        .await
        .error(StatusCode::CONFLICT, "workflow_busy");
    assert!(message.contains(&running), "{message}");
    assert_eq!(fixture.operation_count(), 1);
    assert_eq!(fixture.accounts_described("checked").await, 0);
}

#[tokio::test]
async fn a_sync_run_above_max_records_is_refused_before_anything_is_written() {
    let fixture = fixture(None);
    let message = fixture
        .post_json("/api/workflows/tiny/runs", &json!({}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "selection_too_large");
    assert!(message.contains("more than 2 records"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    assert_eq!(fixture.operation_count(), 0);
    assert_eq!(fixture.accounts_described("too many").await, 0);

    // The same workflow as an explicit async run is accepted.
    fixture.start_async("tiny").await;
    assert_eq!(fixture.operation_count(), 1);
}

#[tokio::test]
async fn a_sync_run_on_an_unavailable_org_is_503_and_starts_nothing() {
    let fixture = fixture(None);
    let message = fixture
        .post_json("/api/workflows/elsewhere/runs", &json!({}))
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "org_unavailable");
    assert!(message.contains("connection `other`"), "{message}");
    assert_eq!(fixture.operation_count(), 0);
}

#[tokio::test]
async fn operations_are_listed_with_filters_and_keyset_pages() {
    let fixture = fixture(None);
    let first = fixture.start_async("west").await;
    let second = fixture.start_async("west").await;
    let third = fixture.start_async("open-hook").await;
    fixture
        .post_json(&format!("/api/operations/{first}/cancel"), &json!({}))
        .await;

    let page = fixture.get("/api/operations?limit=2").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let page = page.json();
    assert_eq!(page["operations"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest = fixture
        .get(&format!("/api/operations?limit=2&cursor={cursor}"))
        .await
        .json();
    assert_eq!(rest["operations"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let mut seen: Vec<String> = page["operations"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["operations"].as_array().unwrap())
        .map(|operation| operation["id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    let mut all = vec![first.clone(), second.clone(), third.clone()];
    all.sort();
    assert_eq!(seen, all);

    let west = fixture.get("/api/operations?workflow=west").await.json();
    assert_eq!(west["operations"].as_array().unwrap().len(), 2);
    let waiting = fixture
        .get("/api/operations?status=waiting&workflow=west")
        .await
        .json();
    assert_eq!(waiting["operations"][0]["id"], second.as_str());
    assert_eq!(waiting["operations"].as_array().unwrap().len(), 1);

    let message = fixture
        .get("/api/operations?status=runing")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_status");
    assert!(message.contains("did you mean `in_progress`?"), "{message}");
    for limit in ["0", "1001", "ten"] {
        let message = fixture
            .get(&format!("/api/operations?limit={limit}"))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_limit");
        assert!(message.contains("from 1 to 1000"), "{message}");
    }
    fixture
        .get("/api/operations?cursor=garbage")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_cursor");
    let message = fixture
        .get("/api/operations?colour=red")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_query");
    assert!(message.contains("colour"), "{message}");
}

#[tokio::test]
async fn one_operation_with_its_deliveries_and_a_404_for_an_unknown_one() {
    let fixture = fixture(None);
    let id = fixture.start_async("west").await;
    let reply = fixture.get(&format!("/api/operations/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let operation = reply.json();
    assert_eq!(operation["id"], id.as_str());
    assert_eq!(operation["vars"]["territory"], "West");
    assert_eq!(operation["checkpoint"], Value::Null);
    assert_eq!(operation["deliveries"], json!([]));

    let message = fixture
        .get("/api/operations/00000000-0000-4000-8000-000000000000")
        .await
        .error(StatusCode::NOT_FOUND, "operation_not_found");
    assert!(message.contains("00000000-0000-4000-8000-000000000000"));
}

#[tokio::test]
async fn failures_are_paginated() {
    let fixture = fixture(None);
    let store = &fixture.state.store;
    let id = uuid::Uuid::new_v4().to_string();
    store
        .create_operation(
            &NewOperation {
                id: id.clone(),
                workflow: "west".into(),
                workflow_version: "v1".into(),
                git_commit: None,
                connection: "default".into(),
                mode: crate::compile::Mode::Async,
                trigger: Trigger::Manual,
                vars: serde_json::Map::new(),
                now: now(),
                retry_of: None,
                record_filter: None,
            },
            now(),
        )
        .unwrap();
    store
        .claim(&id, "w", now(), Duration::from_secs(60))
        .unwrap();
    let failures: Vec<RecordFailure> = (0..3)
        .map(|n| RecordFailure {
            operation_id: id.clone(),
            record_id: format!("record-{n}"),
            action_index: 0,
            action: "update".into(),
            code: "InvalidValue".into(),
            message: format!("bad value {n}"),
            attempts: 1,
            at: now(),
        })
        .collect();
    let counts = Counts {
        selected: Some(3),
        succeeded: 0,
        failed: 3,
        skipped: 0,
    };
    store
        .save_checkpoint(&id, "w", &Checkpoint::default(), counts, &failures, now())
        .unwrap();

    let page = fixture
        .get(&format!("/api/operations/{id}/failures?limit=2"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let page = page.json();
    assert_eq!(page["operation_id"], id.as_str());
    assert_eq!(page["failures"][0]["record_id"], "record-0");
    assert_eq!(page["failures"][1]["message"], "bad value 1");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = fixture
        .get(&format!("/api/operations/{id}/failures?cursor={cursor}"))
        .await
        .json();
    assert_eq!(rest["failures"][0]["record_id"], "record-2");
    assert_eq!(rest["next_cursor"], Value::Null);

    fixture
        .get("/api/operations/unknown/failures")
        .await
        .error(StatusCode::NOT_FOUND, "operation_not_found");
}

#[tokio::test]
async fn cancel_of_a_waiting_operation_stores_its_callback_and_a_second_cancel_conflicts() {
    let fixture = fixture(None);
    let id = fixture.start_async("west").await;
    let reply = fixture
        .post_raw(&format!("/api/operations/{id}/cancel"), None, Vec::new())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["status"], "canceled");

    // No worker ends a waiting operation, so the cancel stores its callback.
    let shown = fixture.get(&format!("/api/operations/{id}")).await.json();
    let deliveries = shown["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{shown}");
    assert_eq!(
        deliveries[0]["url"],
        format!("https://hooks.example.com/{id}")
    );

    let message = fixture
        .post_raw(&format!("/api/operations/{id}/cancel"), None, Vec::new())
        .await
        .error(StatusCode::CONFLICT, "already_finished");
    assert!(message.contains("nothing to cancel"), "{message}");

    fixture
        .post_raw("/api/operations/unknown/cancel", None, Vec::new())
        .await
        .error(StatusCode::NOT_FOUND, "operation_not_found");
}

#[tokio::test]
async fn cancel_of_a_running_operation_asks_it_to_stop_after_its_batch() {
    let fixture = fixture(None);
    let id = fixture.start_async("west").await;
    fixture
        .state
        .store
        .claim(&id, "w", now(), Duration::from_secs(60))
        .unwrap();
    let reply = fixture
        .post_raw(&format!("/api/operations/{id}/cancel"), None, Vec::new())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["status"], "canceling");
    assert_eq!(reply.json()["cancel_requested"], true);
}

#[tokio::test]
async fn mutating_endpoints_require_the_bearer_token() {
    let fixture = fixture(Some(TOKEN));
    let uri = "/api/workflows/west/runs";
    let request = |authorization: Option<&str>| {
        let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        request.body(Body::from("{}")).unwrap()
    };

    let reply = fixture.send(request(None)).await;
    let message = reply.error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(message.contains("Bearer"), "{message}");
    assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer");
    fixture
        .send(request(Some("Bearer wrong-token")))
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_token");
    fixture
        .send(request(Some(TOKEN)))
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(fixture.operation_count(), 0);

    // The token is checked before the body: an unauthenticated bad body is still a 401.
    fixture
        .send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");

    let reply = fixture
        .send(request(Some(&format!("bearer {TOKEN}"))))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_string();

    let cancel = format!("/api/operations/{id}/cancel");
    fixture
        .post_raw(&cancel, None, Vec::new())
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        fixture.state.store.get(&id).unwrap().status.as_str(),
        "waiting"
    );
    let reply = fixture.post_json(&cancel, &json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // Reading needs no token.
    assert_eq!(fixture.get("/api/operations").await.status, StatusCode::OK);
    assert_eq!(fixture.get("/api/workflows").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_signed_webhook_starts_a_run_with_its_body_as_vars() {
    let fixture = fixture(Some(TOKEN));
    let body = r#"{"territory": "North"}"#;
    let signature = signature_header(HOOK_SECRET.as_bytes(), body.as_bytes());
    // Webhooks are authenticated by their signature, not by the bearer token.
    let reply = fixture.hook("west", body, Some(signature.clone())).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["outcome"], "created");
    let id = answer["operation"]["id"].as_str().unwrap();
    assert_eq!(
        reply.headers[header::LOCATION],
        format!("/api/operations/{id}").as_str()
    );
    let stored = fixture.state.store.get(id).unwrap();
    assert_eq!(stored.trigger, Trigger::Webhook);
    assert_eq!(stored.vars["territory"], "North");
    assert_eq!(
        fixture
            .state
            .metrics
            .webhooks_accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // `overlap: skip` while that run is active: nothing new, and the answer says why.
    let reply = fixture.hook("west", body, Some(signature)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["outcome"], "skipped");
    assert_eq!(answer["active_operation"], id);
    assert!(answer["message"].as_str().unwrap().contains(id));
    assert_eq!(fixture.operation_count(), 1);
}

#[tokio::test]
async fn webhook_signatures_that_are_missing_or_wrong_are_refused() {
    let fixture = fixture(None);
    let body = r#"{"territory": "North"}"#;
    let message = fixture
        .hook("west", body, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "signature_missing");
    assert!(message.contains("X-Fetchflow-Signature"), "{message}");
    let wrong_key = signature_header(b"not-the-key", body.as_bytes());
    fixture
        .hook("west", body, Some(wrong_key))
        .await
        .error(StatusCode::UNAUTHORIZED, "signature_mismatch");
    // Signed for other bytes than those sent.
    let other_body = signature_header(HOOK_SECRET.as_bytes(), br#"{"territory": "South"}"#);
    fixture
        .hook("west", body, Some(other_body))
        .await
        .error(StatusCode::UNAUTHORIZED, "signature_mismatch");
    let upper = signature_header(HOOK_SECRET.as_bytes(), body.as_bytes()).to_uppercase();
    fixture
        .hook("west", body, Some(upper))
        .await
        .error(StatusCode::UNAUTHORIZED, "signature_mismatch");
    assert_eq!(fixture.operation_count(), 0);
    assert_eq!(
        fixture
            .state
            .metrics
            .webhooks_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
}

#[tokio::test]
async fn webhook_bad_input_is_refused_and_starts_nothing() {
    let fixture = fixture(None);
    let message = fixture
        .hook("quick", "{}", None)
        .await
        .error(StatusCode::NOT_FOUND, "webhook_not_found");
    assert!(message.contains("no webhook trigger"), "{message}");
    fixture
        .hook("nope", "{}", None)
        .await
        .error(StatusCode::NOT_FOUND, "workflow_not_found");
    fixture
        .hook("open-hook", "[1, 2]", None)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    fixture
        .hook("open-hook", "{\"territory\": ", None)
        .await
        .error(StatusCode::BAD_REQUEST, "malformed_json");
    let message = fixture
        .hook("open-hook", r#"{"territory": 7}"#, None)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_vars");
    assert!(message.contains("`territory`"), "{message}");
    fixture
        .post_raw(
            "/hooks/open-hook",
            Some("application/json"),
            vec![b' '; MAX_BODY_BYTES + 1],
        )
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert_eq!(
        fixture
            .state
            .metrics
            .webhooks_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        6
    );
    // A secret that is not set is the server's problem; the message names the variable only.
    let message = fixture
        .hook("unset-secret-hook", "{}", Some("sha256=00".into()))
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR, "webhook_secret_missing");
    assert!(message.contains("`NOT_SET_ANYWHERE`"), "{message}");
    assert_eq!(fixture.operation_count(), 0);

    // An unsigned webhook with an empty body runs with the default vars.
    let reply = fixture.hook("open-hook", "", None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(fixture.operation_count(), 1);
}

#[tokio::test]
async fn metrics_are_prometheus_text_that_parses_line_by_line() {
    let fixture = fixture(None);
    fixture.start_async("west").await;
    fixture.state.metrics.reload(true);
    fixture.state.metrics.fire(Duration::from_millis(20));
    fixture.state.metrics.fire(Duration::from_secs(60));
    fixture.hook("west", "{}", None).await; // rejected: unsigned

    let reply = fixture.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = reply.text();
    let samples = parse_prometheus(&text);
    let sample = |name: &str| {
        samples
            .iter()
            .find(|(sample, _)| sample == name)
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
    };
    assert_eq!(sample("fetchflow_state_store_up"), 1.0);
    assert_eq!(sample("fetchflow_operations{status=\"waiting\"}"), 1.0);
    assert_eq!(sample("fetchflow_operations{status=\"succeeded\"}"), 0.0);
    assert_eq!(sample("fetchflow_reloads_total{result=\"ok\"}"), 1.0);
    assert_eq!(sample("fetchflow_fires_total"), 2.0);
    assert_eq!(
        sample("fetchflow_fire_lag_seconds_bucket{le=\"0.01\"}"),
        0.0
    );
    assert_eq!(
        sample("fetchflow_fire_lag_seconds_bucket{le=\"0.025\"}"),
        1.0
    );
    assert_eq!(sample("fetchflow_fire_lag_seconds_bucket{le=\"30\"}"), 1.0);
    assert_eq!(
        sample("fetchflow_fire_lag_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    assert_eq!(sample("fetchflow_fire_lag_seconds_count"), 2.0);
    assert!((sample("fetchflow_fire_lag_seconds_sum") - 60.02).abs() < 1e-9);
    assert_eq!(sample("fetchflow_webhooks_total{result=\"rejected\"}"), 1.0);
    assert_eq!(sample("fetchflow_workflows_loaded"), 7.0);
    assert_eq!(sample("fetchflow_workflow_files_in_error"), 2.0);
    assert_eq!(sample("fetchflow_records_total{result=\"failed\"}"), 0.0);
    assert_eq!(sample("fetchflow_org_retries_total"), 0.0);
    assert_eq!(
        sample("fetchflow_callback_deliveries_total{result=\"delivered\"}"),
        0.0
    );
}

/// Parses the Prometheus text format strictly: every line is a `# HELP` or `# TYPE` line of a
/// `fetchflow_` family, or a sample `name{labels} value` of a family whose TYPE came first.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut typed: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a text");
            assert!(name.starts_with("fetchflow_") && !help.is_empty(), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.push(name.to_string());
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line:?}"));
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("{line:?}"));
                for label in labels.split(',') {
                    let (key, quoted) = label.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
                    assert!(
                        key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line:?}"
                    );
                    assert!(
                        quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                        "{line:?}"
                    );
                }
                name
            }
            None => series,
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line:?}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|family| typed.iter().any(|typed| typed == family))
            .unwrap_or(name);
        assert!(
            typed.iter().any(|typed| typed == family),
            "sample before its TYPE: {line:?}"
        );
        samples.push((series.to_string(), value));
    }
    samples
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let fixture = fixture(None);
    let message = fixture
        .get("/api/nothing-here")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert!(message.contains("/api/nothing-here"), "{message}");
    fixture
        .send(
            Request::builder()
                .method(Method::DELETE)
                .uri("/api/workflows")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[test]
fn bearer_tokens_are_parsed_and_compared_whole() {
    let mut headers = HeaderMap::new();
    assert_eq!(bearer_token(&headers), None);
    headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
    assert_eq!(bearer_token(&headers), Some("abc"));
    headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
    assert_eq!(bearer_token(&headers), None);
    headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
    assert_eq!(bearer_token(&headers), None);
    assert!(same_secret(b"abc", b"abc"));
    assert!(!same_secret(b"abc", b"abd"));
    assert!(!same_secret(b"abc", b"abcd"));
    assert!(!same_secret(b"", b"abc"));
}
