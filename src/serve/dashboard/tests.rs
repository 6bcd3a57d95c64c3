//! Tests of the dashboard through `tower::ServiceExt::oneshot` on the API router (no sockets):
//! the pages and their accessible structure, escaping of hostile text, CSRF and origin checks,
//! sign-in, Run now, Cancel, Retry failed, the CSV, the progress JSON and keyset paging over
//! thousands of operations.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::compile::{CompileContext, Mode, compile_source};
use crate::config::Config;
use crate::diagnostics::{Diagnostic, Severity};
use crate::engine::TestClock;
use crate::metadata::Catalogue;
use crate::org::Org;
use crate::serve::api::router;
use crate::serve::registry::{ActiveWorkflow, FileEntry, FileStatus, Registry, Snapshot};
use crate::serve::{Metrics, Orgs, ServeState};
use crate::source::SourceFile;
use crate::store::{
    Checkpoint, Counts, NewOperation, OperationStatus, RecordFailure, SqliteStateStore, Trigger,
};

const TOKEN: &str = "dash-token";
const LEASE: Duration = Duration::from_secs(60);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

const WEST: &str = r#"name: west
description: "Moves <b>West</b> accounts & more"
triggers:
  - cron: "0 2 * * 1-5"
    timezone: Europe/London
vars:
  territory: "<script>alert('var')</script>"
  threshold: 1000
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
        description: "Moved from {{ vars.territory }}"
"#;

fn active_entry(file: &str, yaml: &str) -> FileEntry {
    let catalogue = Catalogue::builtin();
    let connections = ["default".to_string()];
    let context = CompileContext {
        catalogue: &catalogue,
        connections: Some(&connections),
    };
    let outcome = compile_source(
        SourceFile::new(PathBuf::from(file), yaml.to_string()),
        &context,
    );
    let workflow = outcome
        .workflow
        .unwrap_or_else(|| panic!("{file}: {:#?}", outcome.diagnostics));
    FileEntry {
        path: PathBuf::from(file),
        status: FileStatus::Ok,
        diagnostics: Vec::new(),
        active: Some(Arc::new(ActiveWorkflow {
            workflow: Arc::new(workflow),
            source: yaml.into(),
            activated_at: now(),
        })),
        checked_at: now(),
    }
}

/// A file that never compiled, with a hostile diagnostic.
fn broken_entry() -> FileEntry {
    FileEntry {
        path: PathBuf::from("broken.yaml"),
        status: FileStatus::Error,
        diagnostics: vec![Diagnostic {
            file: "broken.yaml".to_string(),
            line: 3,
            column: 9,
            path: "select.fetchxml".to_string(),
            severity: Severity::Error,
            code: "unknown-entity",
            message: "unknown entity `<img src=x onerror=alert(1)>`".to_string(),
            help: Some("did you mean `account`?".to_string()),
            offset: 0,
            len: 1,
        }],
        active: None,
        checked_at: now(),
    }
}

struct Fixture {
    router: Router,
    state: ServeState,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    /// The `name=value` of the session cookie this reply sets.
    fn session_cookie(&self) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with("ff_session="))
            .map(|value| value.split(';').next().unwrap_or_default().to_string())
    }

    /// The CSRF token of the page's first form.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("no csrf field") + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_string()
    }
}

fn fixture(token: Option<&str>) -> Fixture {
    let entries = vec![active_entry("west.yaml", WEST), broken_entry()];
    let state = ServeState {
        config: Arc::new(Config::defaults(&std::env::temp_dir())),
        registry: Arc::new(Registry::new(Snapshot::new(1, entries))),
        store: Arc::new(SqliteStateStore::in_memory().unwrap()),
        orgs: Arc::new(Orgs::fixed(Vec::<(String, Arc<dyn Org>)>::new())),
        clock: Arc::new(TestClock::new(now())),
        metrics: Arc::new(Metrics::default()),
        secrets: Arc::new(|_: &str| None),
        token: token.map(Arc::from),
        work: Arc::new(tokio::sync::Notify::new()),
    };
    Fixture {
        router: router(state.clone()),
        state,
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
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Reply {
        let mut request = Request::get(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// A same-origin form POST, as a browser sends it.
    async fn post_form(&self, uri: &str, cookie: Option<&str>, form: &str) -> Reply {
        self.post_form_with(uri, cookie, form, &[("origin", "http://127.0.0.1:8080")])
            .await
    }

    async fn post_form_with(
        &self,
        uri: &str,
        cookie: Option<&str>,
        form: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::post(uri)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(form.to_string())).unwrap())
            .await
    }

    /// A session cookie and the CSRF token of `page`.
    async fn session(&self, page: &str) -> (String, String) {
        let reply = self.get(page, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let cookie = reply.session_cookie().expect("a session cookie");
        (cookie, reply.csrf())
    }

    fn create(&self, id: &str, workflow: &str, trigger: Trigger, at: DateTime<Utc>) {
        self.state
            .store
            .create_operation(
                &NewOperation {
                    id: id.to_string(),
                    workflow: workflow.to_string(),
                    workflow_version: "0123456789abcdef0123456789abcdef".to_string(),
                    git_commit: None,
                    connection: "default".to_string(),
                    mode: Mode::Async,
                    trigger,
                    vars: serde_json::Map::new(),
                    now: at,
                    retry_of: None,
                    record_filter: None,
                },
                at,
            )
            .unwrap();
    }

    /// An operation that ran 476 records, two of which failed (one with a hostile message).
    fn failed_operation(&self, id: &str) {
        let store = &self.state.store;
        self.create(id, "west", Trigger::Api, now());
        store.claim(id, "worker-1", now(), LEASE).unwrap();
        store.set_selected(id, 476).unwrap();
        let failure = |record: &str, message: &str| RecordFailure {
            operation_id: id.to_string(),
            record_id: record.to_string(),
            action_index: 0,
            action: "update".to_string(),
            code: "0x80040237".to_string(),
            message: message.to_string(),
            attempts: 3,
            at: now(),
        };
        store
            .save_checkpoint(
                id,
                "worker-1",
                &Checkpoint {
                    page: 2,
                    paging_cookie: None,
                    records_done: 476,
                    batches_done: 5,
                    progress: None,
                },
                Counts {
                    selected: Some(476),
                    succeeded: 474,
                    failed: 2,
                    skipped: 0,
                },
                &[
                    failure("rec-1", "duplicate key, \"name\" exists"),
                    failure("rec-2", "<script>alert('failure')</script>"),
                ],
                now() + chrono::Duration::seconds(10),
            )
            .unwrap();
        store
            .finish(
                id,
                "worker-1",
                OperationStatus::Failed,
                None,
                None,
                now() + chrono::Duration::seconds(10),
            )
            .unwrap();
    }
}

const FAILED_ID: &str = "f0000000-0000-4000-8000-000000000001";
const RUNNING_ID: &str = "a0000000-0000-4000-8000-000000000002";

#[tokio::test]
async fn the_operations_page_is_the_root_and_lists_operations_with_their_status() {
    let fixture = fixture(None);
    fixture.failed_operation(FAILED_ID);
    fixture.create(RUNNING_ID, "west", Trigger::Manual, now());
    let reply = fixture.get("/", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let html = &reply.body;
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(html.contains("<title>Operations · fetchflow</title>"));
    assert!(html.contains("<a href=\"/\" aria-current=\"page\">Operations</a>"));
    assert!(html.contains("<a href=\"/workflows\">Workflows</a>"));
    assert!(html.contains("<caption>Operations</caption>"));
    assert!(html.contains(&format!(
        "<a href=\"/operations/{FAILED_ID}\"><code>{FAILED_ID}</code></a>"
    )));
    assert!(
        html.contains("data-status=\"failed\">Failed</span>"),
        "{html}"
    );
    assert!(
        html.contains("data-status=\"waiting\">Waiting</span>"),
        "{html}"
    );
    assert!(html.contains("474") || html.contains("476 of 476 records"));
    // The running (waiting) one polls for live progress; the finished one does not.
    assert!(html.contains(&format!(
        "data-live-progress=\"/operations/{RUNNING_ID}/progress\""
    )));
    assert!(!html.contains(&format!(
        "data-live-progress=\"/operations/{FAILED_ID}/progress\""
    )));
    assert!(reply.headers.get(header::CONTENT_SECURITY_POLICY).is_some());
    assert_eq!(
        fixture.get("/operations", None).await.status,
        StatusCode::OK
    );
    // The API is still JSON.
    let api = fixture.get("/api/operations", None).await;
    assert_eq!(api.status, StatusCode::OK);
    let json: Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(json["operations"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn an_operation_page_shows_status_progress_failures_and_the_applicable_buttons() {
    let fixture = fixture(None);
    fixture.failed_operation(FAILED_ID);
    let reply = fixture.get(&format!("/operations/{FAILED_ID}"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let html = &reply.body;
    assert!(
        html.contains("<h1>Operation <code>f0000000</code></h1>"),
        "{html}"
    );
    assert!(html.contains("data-status=\"failed\">Failed</span>"));
    assert_eq!(html.matches("data-status=").count(), 1, "one badge: {html}");
    assert!(html.contains(
        "<progress aria-label=\"Progress\" value=\"476\" max=\"476\" \
         aria-valuetext=\"476 of 476 records\">476 of 476 records</progress>"
    ));
    assert!(html.contains("<caption>Failed records</caption>"));
    assert!(html.contains("<code>rec-1</code>"));
    assert!(html.contains("<code>0x80040237</code>"));
    assert!(
        html.contains("duplicate key, &quot;name&quot; exists"),
        "{html}"
    );
    assert!(html.contains(&format!(
        "<a href=\"/operations/{FAILED_ID}/failures.csv\" download>Download CSV</a>"
    )));
    // Final with failures: Retry failed is offered, Cancel is not.
    assert!(html.contains(&format!(
        "action=\"/operations/{FAILED_ID}/retry\" data-show-when=\"can_retry\">"
    )));
    assert!(html.contains(&format!(
        "action=\"/operations/{FAILED_ID}/cancel\" data-show-when=\"can_cancel\" hidden>"
    )));
    assert!(html.contains(">Retry failed</button>"));
    assert!(html.contains("<dt>Records done</dt><dd>476</dd>"));

    let unknown = fixture.get("/operations/nope", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.body.contains("operation nope not found"),
        "{}",
        unknown.body
    );
}

#[tokio::test]
async fn failures_download_as_rfc_4180_csv_with_the_columns_of_ops_failures() {
    let fixture = fixture(None);
    fixture.failed_operation(FAILED_ID);
    let reply = fixture
        .get(&format!("/operations/{FAILED_ID}/failures.csv"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    assert!(
        reply.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(
        reply.body,
        "record_id,action_index,action,code,message,attempts\r\n\
         rec-1,0,update,0x80040237,\"duplicate key, \"\"name\"\" exists\",3\r\n\
         rec-2,0,update,0x80040237,<script>alert('failure')</script>,3\r\n"
    );
}

#[tokio::test]
async fn the_progress_endpoint_reports_status_counts_rate_and_buttons() {
    let fixture = fixture(None);
    fixture.create(RUNNING_ID, "west", Trigger::Api, now());
    let store = &fixture.state.store;
    store.claim(RUNNING_ID, "w", now(), LEASE).unwrap();
    store.set_selected(RUNNING_ID, 200).unwrap();
    store
        .save_checkpoint(
            RUNNING_ID,
            "w",
            &Checkpoint {
                page: 2,
                paging_cookie: None,
                records_done: 50,
                batches_done: 1,
                progress: None,
            },
            Counts {
                selected: Some(200),
                succeeded: 50,
                failed: 0,
                skipped: 0,
            },
            &[],
            now(),
        )
        .unwrap();
    // Ten seconds after the start: 5 records/s, 150 to go, 30 s left.
    let clock = TestClock::new(now() + chrono::Duration::seconds(10));
    let mut state = fixture.state.clone();
    state.clock = Arc::new(clock);
    let fixture = Fixture {
        router: router(state.clone()),
        state,
    };
    let reply = fixture
        .get(&format!("/operations/{RUNNING_ID}/progress"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let json: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json["status"], "in_progress");
    assert_eq!(json["status_name"], "In Progress");
    assert_eq!(json["final"], false);
    assert_eq!(json["value"], 50);
    assert_eq!(json["max"], 200);
    assert_eq!(json["text"], "50 of 200 records");
    assert_eq!(json["percent"], 25);
    assert_eq!(json["rate_text"], "5.0 records/s");
    assert_eq!(json["eta_seconds"], 30);
    assert_eq!(json["eta_text"], "30s");
    assert_eq!(json["can_cancel"], true);
    assert_eq!(json["can_retry"], false);

    let page = fixture
        .get(&format!("/operations/{RUNNING_ID}"), None)
        .await;
    assert!(
        page.body
            .contains("data-status=\"in_progress\">In Progress</span>")
    );
    assert!(page.body.contains(&format!(
        "action=\"/operations/{RUNNING_ID}/cancel\" data-show-when=\"can_cancel\">"
    )));
    assert!(page.body.contains(&format!(
        "action=\"/operations/{RUNNING_ID}/retry\" data-show-when=\"can_retry\" hidden>"
    )));
    let missing = fixture.get("/operations/nope/progress", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hostile_text_is_escaped_everywhere() {
    let fixture = fixture(None);
    let hostile = "<script>alert('name')</script>";
    fixture.create(RUNNING_ID, hostile, Trigger::Webhook, now());
    fixture.failed_operation(FAILED_ID);
    for page in [
        "/".to_string(),
        format!("/operations/{RUNNING_ID}"),
        format!("/operations/{FAILED_ID}"),
        "/workflows".to_string(),
        "/operations?workflow=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_string(),
    ] {
        let reply = fixture.get(&page, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{page}: {}", reply.body);
        assert!(!reply.body.contains("<script>"), "{page}: {}", reply.body);
        assert!(!reply.body.contains("<img"), "{page}: {}", reply.body);
        assert!(!reply.body.contains("<b>"), "{page}: {}", reply.body);
    }
    let list = fixture.get("/", None).await;
    assert!(list.body.contains("&lt;script&gt;alert("), "{}", list.body);
    let workflows = fixture.get("/workflows", None).await;
    assert!(
        workflows
            .body
            .contains("&lt;img src=x onerror=alert(1)&gt;")
    );
    assert!(
        workflows
            .body
            .contains("Moves &lt;b&gt;West&lt;&#x2f;b&gt; accounts &amp; more")
            || workflows
                .body
                .contains("Moves &lt;b&gt;West&lt;/b&gt; accounts &amp; more"),
        "{}",
        workflows.body
    );
    let failed = fixture.get(&format!("/operations/{FAILED_ID}"), None).await;
    assert!(
        failed
            .body
            .contains("&lt;script&gt;alert(&#x27;failure&#x27;)"),
        "{}",
        failed.body
    );
}

#[tokio::test]
async fn the_workflows_page_shows_state_diagnostics_triggers_and_run_now_forms() {
    let fixture = fixture(None);
    fixture.failed_operation(FAILED_ID);
    let reply = fixture.get("/workflows", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let html = &reply.body;
    assert!(html.contains("<a href=\"/workflows\" aria-current=\"page\">Workflows</a>"));
    // Sections labelled by their h2.
    assert!(html.contains("<section class=\"workflow\" aria-labelledby=\"wf1-heading\">"));
    assert!(html.contains("<h2 id=\"wf1-heading\">west</h2>"), "{html}");
    assert!(
        html.contains("<h2 id=\"wf0-heading\">broken</h2>"),
        "{html}"
    );
    // The invalid file: its diagnostic with file:line:column, code, message and help.
    assert!(html.contains("<code>broken.yaml:3:9</code> <code>unknown-entity</code>"));
    assert!(html.contains("help: did you mean `account`?"));
    assert!(html.contains(">Invalid</span>"));
    // The valid one: version, trigger and next fires in UTC and London time, last run.
    assert!(html.contains(">OK</span>"));
    assert!(html.contains("cron <code>0 2 * * 1-5</code> in Europe/London"));
    assert!(html.contains("2026-11-27 02:00 UTC"), "{html}");
    assert!(
        html.contains("2026-11-27 02:00 (UTC+00:00) Europe/London"),
        "{html}"
    );
    assert!(html.contains(&format!("<a href=\"/operations/{FAILED_ID}\">")));
    // Run now: one labelled input per var, prefilled with its default.
    assert!(html.contains("<form class=\"run\" method=\"post\" action=\"/workflows/west/run\""));
    assert!(html.contains("<label for=\"wf1-var0\">territory</label>"));
    assert!(
        html.contains(
            "<input id=\"wf1-var0\" name=\"var.territory\" \
         value=\"&lt;script&gt;alert(&#x27;var&#x27;)&lt;&#x2f;script&gt;\">"
        ) || html.contains("name=\"var.territory\" value=\"&lt;script&gt;"),
        "{html}"
    );
    assert!(html.contains("<label for=\"wf1-var1\">threshold</label>"));
    assert!(html.contains("<input id=\"wf1-var1\" name=\"var.threshold\" value=\"1000\">"));
    assert_eq!(html.matches(">Run now</button>").count(), 1, "{html}");
}

#[tokio::test]
async fn run_now_starts_an_async_api_run_and_redirects_to_it() {
    let fixture = fixture(None);
    let (cookie, csrf) = fixture.session("/workflows").await;
    let reply = fixture
        .post_form(
            "/workflows/west/run",
            Some(&cookie),
            &format!("csrf={csrf}&var.territory=North&var.threshold=5"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let id = reply
        .location()
        .strip_prefix("/operations/")
        .expect("a redirect to the operation")
        .to_string();
    let operation = fixture.state.store.get(&id).unwrap();
    assert_eq!(operation.workflow, "west");
    assert_eq!(operation.trigger, Trigger::Api);
    assert_eq!(operation.mode, Mode::Async);
    assert_eq!(operation.status, OperationStatus::Waiting);
    assert_eq!(operation.vars["territory"], "North");
    assert_eq!(operation.vars["threshold"], 5);
    let page = fixture.get(reply.location(), Some(&cookie)).await;
    assert!(page.body.contains("data-status=\"waiting\">Waiting</span>"));

    // A var of the wrong type starts nothing.
    let wrong = fixture
        .post_form(
            "/workflows/west/run",
            Some(&cookie),
            &format!("csrf={csrf}&var.threshold=many"),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("threshold"), "{}", wrong.body);
    let unknown = fixture
        .post_form(
            "/workflows/nope/run",
            Some(&cookie),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let all = fixture.get("/api/operations", None).await;
    let json: Value = serde_json::from_str(&all.body).unwrap();
    assert_eq!(json["operations"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn posts_need_the_csrf_token_and_a_same_origin_request() {
    let fixture = fixture(None);
    fixture.create(RUNNING_ID, "west", Trigger::Api, now());
    let (cookie, csrf) = fixture.session(&format!("/operations/{RUNNING_ID}")).await;
    let uri = format!("/operations/{RUNNING_ID}/cancel");
    let refused = [
        fixture.post_form(&uri, Some(&cookie), "").await,
        fixture.post_form(&uri, Some(&cookie), "csrf=0000").await,
        fixture.post_form(&uri, None, &format!("csrf={csrf}")).await,
        fixture
            .post_form_with(
                &uri,
                Some(&cookie),
                &format!("csrf={csrf}"),
                &[("origin", "https://evil.example")],
            )
            .await,
        fixture
            .post_form_with(
                &uri,
                Some(&cookie),
                &format!("csrf={csrf}"),
                &[("origin", "null")],
            )
            .await,
        fixture
            .post_form_with(
                &uri,
                Some(&cookie),
                &format!("csrf={csrf}"),
                &[("sec-fetch-site", "cross-site")],
            )
            .await,
    ];
    for reply in &refused {
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    }
    // A token of another session is refused too.
    let (other_cookie, _) = fixture.session("/workflows").await;
    let stolen = fixture
        .post_form(&uri, Some(&other_cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN);
    assert_eq!(
        fixture.state.store.get(RUNNING_ID).unwrap().status,
        OperationStatus::Waiting
    );

    let accepted = fixture
        .post_form_with(
            &uri,
            Some(&cookie),
            &format!("csrf={csrf}"),
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    assert_eq!(accepted.location(), format!("/operations/{RUNNING_ID}"));
    assert_eq!(
        fixture.state.store.get(RUNNING_ID).unwrap().status,
        OperationStatus::Canceled
    );
    // Canceling again: the API's 409, as a page.
    let again = fixture
        .post_form(&uri, Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains("nothing to cancel"), "{}", again.body);
}

#[tokio::test]
async fn retry_failed_creates_an_operation_over_the_failed_records() {
    let fixture = fixture(None);
    fixture.failed_operation(FAILED_ID);
    let (cookie, csrf) = fixture.session(&format!("/operations/{FAILED_ID}")).await;
    let reply = fixture
        .post_form(
            &format!("/operations/{FAILED_ID}/retry"),
            Some(&cookie),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let id = reply.location().strip_prefix("/operations/").unwrap();
    let retry = fixture.state.store.get(id).unwrap();
    assert_eq!(retry.retry_of.as_deref(), Some(FAILED_ID));
    assert_eq!(
        retry.trigger,
        Trigger::Retry {
            of: FAILED_ID.to_string()
        }
    );
    assert_eq!(
        retry.record_filter,
        Some(vec!["rec-1".to_string(), "rec-2".to_string()])
    );
    assert_eq!(retry.status, OperationStatus::Waiting);
    // The new one is not final: it cannot be retried yet.
    let refused = fixture
        .post_form(
            &format!("/operations/{id}/retry"),
            Some(&cookie),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn with_a_token_pages_need_a_signed_in_session() {
    let fixture = fixture(Some(TOKEN));
    let page = fixture.get("/workflows?x=1", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=%2Fworkflows%3Fx%3D1");
    let progress = fixture.get("/operations/x/progress", None).await;
    assert_eq!(progress.status, StatusCode::UNAUTHORIZED);

    let login = fixture.get("/login?next=%2Fworkflows", None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("<label for=\"token\">Token</label>"));
    assert!(
        login
            .body
            .contains("<input id=\"token\" name=\"token\" type=\"password\"")
    );
    assert!(login.body.contains(">Sign in</button>"));
    let anonymous = login.session_cookie().expect("a pre-login session");
    let csrf = login.csrf();
    // An anonymous session does not open the pages.
    assert_eq!(
        fixture.get("/", Some(&anonymous)).await.status,
        StatusCode::SEE_OTHER
    );

    let wrong = fixture
        .post_form(
            "/login",
            Some(&anonymous),
            &format!("csrf={csrf}&next=%2Fworkflows&token=guess"),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("not the configured token"));
    assert!(wrong.session_cookie().is_none());
    let no_csrf = fixture
        .post_form("/login", Some(&anonymous), &format!("token={TOKEN}"))
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);

    let signed_in = fixture
        .post_form(
            "/login",
            Some(&anonymous),
            &format!("csrf={csrf}&next=%2Fworkflows&token={TOKEN}"),
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), "/workflows");
    let cookie_header = signed_in.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie_header.contains("HttpOnly"));
    assert!(cookie_header.contains("SameSite=Strict"));
    assert!(cookie_header.contains("Path=/"));
    assert!(!cookie_header.contains(TOKEN));
    let session = signed_in.session_cookie().unwrap();
    assert_ne!(session, anonymous, "a new session id at sign-in");
    let page = fixture.get("/workflows", Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(">Sign out</button>"));
    // A forged cookie (the flag flipped on an anonymous session) is not a session.
    let forged = anonymous.replacen(".0.", ".1.", 1);
    assert_eq!(
        fixture.get("/", Some(&forged)).await.status,
        StatusCode::SEE_OTHER
    );
    // The login form never redirects elsewhere.
    let away = fixture
        .post_form(
            "/login",
            Some(&anonymous),
            &format!("csrf={csrf}&next=%2F%2Fevil.example&token={TOKEN}"),
        )
        .await;
    assert_eq!(away.location(), "/");
    // Posting with the session works; without it, it is refused before anything happens.
    fixture.create(RUNNING_ID, "west", Trigger::Api, now());
    let csrf = fixture
        .get(&format!("/operations/{RUNNING_ID}"), Some(&session))
        .await
        .csrf();
    let unauthenticated = fixture
        .post_form(
            &format!("/operations/{RUNNING_ID}/cancel"),
            Some(&anonymous),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    let canceled = fixture
        .post_form(
            &format!("/operations/{RUNNING_ID}/cancel"),
            Some(&session),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(canceled.status, StatusCode::SEE_OTHER, "{}", canceled.body);
    // Without a token there is no sign-in.
    assert_eq!(fixture_without_token_login().await, StatusCode::SEE_OTHER);
}

async fn fixture_without_token_login() -> StatusCode {
    fixture(None).get("/login", None).await.status
}

#[tokio::test]
async fn filters_and_unknown_values() {
    let fixture = fixture(None);
    fixture.failed_operation(FAILED_ID);
    fixture.create(RUNNING_ID, "east", Trigger::Webhook, now());
    let by_status = fixture.get("/operations?status=Failed", None).await;
    assert!(by_status.body.contains(FAILED_ID));
    assert!(!by_status.body.contains(RUNNING_ID));
    let by_workflow = fixture.get("/operations?workflow=east&status=", None).await;
    assert!(by_workflow.body.contains(RUNNING_ID));
    assert!(!by_workflow.body.contains(FAILED_ID));
    let by_trigger = fixture.get("/operations?trigger=webhook", None).await;
    assert!(by_trigger.body.contains(RUNNING_ID));
    assert!(!by_trigger.body.contains(FAILED_ID));
    assert_eq!(
        fixture.get("/operations?status=runing", None).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        fixture.get("/operations?trigger=cronn", None).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        fixture.get("/operations?cursor=garbage", None).await.status,
        StatusCode::BAD_REQUEST
    );
}

/// Thousands of operations: every page renders from one keyset page, and following "Next"
/// visits each operation exactly once.
#[tokio::test]
async fn thousands_of_operations_page_by_cursor() {
    const OPERATIONS: usize = 5_000;
    let fixture = fixture(None);
    let started = Instant::now();
    for index in 0..OPERATIONS {
        let trigger = if index % 10 == 0 {
            Trigger::Webhook
        } else {
            Trigger::Api
        };
        fixture.create(
            &format!("{index:08x}-0000-4000-8000-000000000000"),
            if index % 2 == 0 { "west" } else { "east" },
            trigger,
            now() + chrono::Duration::seconds(index as i64),
        );
    }
    eprintln!("stored {OPERATIONS} operations in {:?}", started.elapsed());

    let mut seen = std::collections::HashSet::new();
    let mut next = Some("/".to_string());
    let mut pages = 0;
    let mut slowest = Duration::ZERO;
    while let Some(uri) = next.take() {
        let started = Instant::now();
        let reply = fixture.get(&uri, None).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        let rows = reply.body.matches("<th scope=\"row\">").count();
        assert!(rows <= 50, "{uri}: {rows} rows");
        for id in reply.body.split("<a href=\"/operations/").skip(1) {
            let id = &id[..36];
            assert!(seen.insert(id.to_string()), "{id} twice");
        }
        pages += 1;
        next = reply
            .body
            .split("<a href=\"")
            .filter_map(|part| part.strip_suffix_rel_next())
            .next();
    }
    assert_eq!(pages, OPERATIONS / 50);
    assert_eq!(seen.len(), OPERATIONS);
    eprintln!("slowest page of the log: {slowest:?}");

    // A trigger filter scans pages: 1 in 10 is a webhook run.
    let reply = fixture.get("/operations?trigger=webhook", None).await;
    assert_eq!(reply.body.matches("<th scope=\"row\">").count(), 50);
    assert!(reply.body.contains("rel=\"next\""));
    // The newest operation's page, and the workflows page (last runs) stay fast too.
    for uri in [
        format!(
            "/operations/{:08x}-0000-4000-8000-000000000000",
            OPERATIONS - 1
        ),
        "/workflows".to_string(),
        "/operations?workflow=east&status=waiting".to_string(),
    ] {
        let started = Instant::now();
        let reply = fixture.get(&uri, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        let elapsed = started.elapsed();
        eprintln!("{uri}: {elapsed:?}");
        // Debug build on a shared machine: a generous bound that still catches a full scan.
        assert!(elapsed < Duration::from_secs(2), "{uri}: {elapsed:?}");
    }
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
}

/// The `href` of a `rel="next"` link, from the text after `<a href="`.
trait NextLink {
    fn strip_suffix_rel_next(&self) -> Option<String>;
}

impl NextLink for &str {
    fn strip_suffix_rel_next(&self) -> Option<String> {
        let (href, rest) = self.split_once('"')?;
        rest.starts_with(" rel=\"next\"")
            .then(|| href.replace("&amp;", "&"))
    }
}

#[test]
fn every_template_compiles() {
    let dashboard = super::Dashboard::new(fixture(None).state);
    for (name, _) in super::TEMPLATES {
        if let Err(error) = dashboard.templates.get_template(name) {
            panic!("{name}: {error:#}");
        }
    }
}

#[tokio::test]
async fn assets_are_served_and_other_paths_stay_the_apis() {
    let fixture = fixture(None);
    let css = fixture.get("/static/dashboard.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(css.body.contains(":focus-visible"));
    let js = fixture.get("/static/dashboard.js", None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("data-live-progress"));
    // Unknown paths are still the API's JSON 404.
    let unknown = fixture.get("/nope", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let json: Value = serde_json::from_str(&unknown.body).unwrap();
    assert_eq!(json["error"]["code"], "not_found");
}
