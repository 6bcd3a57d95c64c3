//! `fetchflow org serve`: a local Dataverse Web API v9.2 emulator over the local org, so the
//! Dataverse connector (and any other Dataverse client) can be tested and benchmarked on one
//! machine. Shapes follow ../shared/reference/dataverse-web-api.md; the row ↔ JSON mapping is
//! `org::odata`, shared with the connector.
//!
//! Routes ([`router`]):
//! - `POST /{tenant}/oauth2/v2.0/token`: client-credential tokens (`auth`).
//! - `/api/data/v9.2/…`: `WhoAmI`; entity sets (`GET ?fetchXml=` with paging annotations, `GET
//!   (<id>)?$select=`, `POST`, `PATCH` with upsert, `DELETE`); `Create/Update/UpsertMultiple`
//!   (`entities`); `$batch` (`batch`); `EntityDefinitions` (`metadata`); the local org's custom
//!   APIs as actions, inline or as background operations, and `backgroundoperations(<id>)`
//!   (`background`).
//! - `GET|DELETE /api/backgroundoperation/{id}`: the status monitor resource.
//!
//! Every Web API request goes through one guard (`throttle`): bearer token (when client
//! credentials are configured), concurrency and request-window limits (429 with `Retry-After`
//! and the documented error), injected 503s from a seeded RNG, added latency; every response
//! carries `x-ms-dop-hint`. A `$batch` counts as one request, as in Dataverse.
//!
//! Writes are serialized by one gate. A request of several writes (a `PATCH` that also sets
//! state or owner, `*Multiple`, a change set) is all-or-nothing: the rows it touches are copied
//! first (`journal`) and put back if any write fails, because the local org keeps each
//! record's successful write.

mod auth;
mod background;
mod batch;
mod entities;
mod error;
mod journal;
mod metadata;
mod request;
mod server;
mod throttle;
mod tls;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod throttling_tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{any, get, post};

use crate::org::local::LocalOrg;
use crate::org::odata::API_PATH;
use crate::org::{PageRequest, Write};

pub use error::DvError;
pub use server::{ServeEvent, serve};

/// The longest URL of a request (reference §2.1: 32 KB).
const MAX_URL_LENGTH: usize = 32_768;

/// The largest request body read: bulk messages of 1,000 rich records fit.
const MAX_BODY_BYTES: usize = 64 << 20;

/// How the emulator behaves: limits, faults, authentication.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Added to every Web API request before it runs.
    pub latency: Duration,
    /// Concurrent Web API requests allowed (Dataverse: 52); more get 429 at once.
    pub limit_concurrency: Option<usize>,
    /// Web API requests allowed per `window` (Dataverse: 6,000 per 300 s).
    pub limit_requests: Option<u32>,
    /// Combined execution time allowed per `window` (Dataverse: 1,200 s per 300 s).
    pub limit_execution_time: Option<Duration>,
    /// The sliding window of the request and execution-time limits.
    pub window: Duration,
    /// Share of Web API requests answered 503 before they run (0.0..=1.0).
    pub fail_rate: f64,
    /// Seed of the fault RNG, so a run's faults are reproducible.
    pub seed: u64,
    /// `x-ms-dop-hint`; default: the concurrency limit, else 52 (Dataverse's default).
    pub dop_hint: Option<u32>,
    /// When set, the Web API requires a bearer token from the token endpoint.
    pub client_credentials: Option<ClientCredentials>,
    /// Lifetime of issued tokens (`expires_in`).
    pub token_lifetime: Duration,
    /// The environment URL (`[Org]`) used in `OData-EntityId`, `Location` and contexts;
    /// default: `http(s)://<Host header>`.
    pub org_url: Option<String>,
    /// Whether the default `[Org]` is https (`--tls`).
    pub https: bool,
    /// How long a background operation waits in Ready before it runs (tests of cancel).
    pub background_delay: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            latency: Duration::ZERO,
            limit_concurrency: None,
            limit_requests: None,
            limit_execution_time: None,
            window: Duration::from_secs(300),
            fail_rate: 0.0,
            seed: 0x5eed,
            dop_hint: None,
            client_credentials: None,
            token_lifetime: Duration::from_secs(3599),
            org_url: None,
            https: false,
            background_delay: Duration::ZERO,
        }
    }
}

/// The one application the token endpoint knows.
#[derive(Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches logs.
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The Dataverse Web API over `org`. See the module documentation.
pub fn router(org: Arc<LocalOrg>, options: EmulatorOptions) -> Router {
    let emulator = Emulator::new(org, options);
    let api = Router::new()
        .route("/api/data/v9.2/{*path}", any(web_api))
        .route("/api/data/v9.2/", any(web_api))
        .route(
            "/api/backgroundoperation/{id}",
            get(background::monitor_get).delete(background::monitor_delete),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            emulator.clone(),
            throttle::guard,
        ));
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token))
        .merge(api)
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(emulator)
}

/// Shared state of one emulator.
#[derive(Clone)]
pub(crate) struct Emulator {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) org: Arc<LocalOrg>,
    pub(crate) options: EmulatorOptions,
    pub(crate) throttle: throttle::Throttle,
    pub(crate) tokens: auth::Tokens,
    pub(crate) background: background::Operations,
    /// Serializes writes, so a request's copy-and-restore sees no other writer.
    pub(crate) write_gate: tokio::sync::Mutex<()>,
    pub(crate) who: WhoAmI,
    pub(crate) http: reqwest::Client,
}

impl std::ops::Deref for Emulator {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// The caller `WhoAmI` reports.
#[derive(Debug, Clone)]
pub(crate) struct WhoAmI {
    pub(crate) user_id: String,
    pub(crate) business_unit_id: String,
    pub(crate) organization_id: String,
}

impl Emulator {
    fn new(org: Arc<LocalOrg>, options: EmulatorOptions) -> Emulator {
        let who = who_am_i(&org);
        let throttle = throttle::Throttle::new(&options);
        Emulator {
            inner: Arc::new(Inner {
                org,
                throttle,
                tokens: auth::Tokens::default(),
                background: background::Operations::default(),
                write_gate: tokio::sync::Mutex::new(()),
                who,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap_or_default(),
                options,
            }),
        }
    }

    /// `[Org]`: the configured URL, else the request's host.
    pub(crate) fn org_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.options.org_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("localhost");
        let scheme = if self.options.https { "https" } else { "http" };
        format!("{scheme}://{host}")
    }

    /// Applies writes as one unit: inside a change set into its journal (the change set
    /// restores on failure), else under the write gate with its own journal.
    pub(crate) async fn apply(
        &self,
        journal: Option<&journal::Shared>,
        writes: Vec<Write>,
    ) -> Result<(), DvError> {
        let _gate = self.gate(journal).await;
        self.apply_locked(journal, writes).await
    }

    /// The write gate, unless inside a change set (whose batch holds it).
    pub(crate) async fn gate(
        &self,
        journal: Option<&journal::Shared>,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match journal {
            Some(_) => None,
            None => Some(self.write_gate.lock().await),
        }
    }

    /// [`Emulator::apply`] for a caller that holds the gate.
    pub(crate) async fn apply_locked(
        &self,
        journal: Option<&journal::Shared>,
        writes: Vec<Write>,
    ) -> Result<(), DvError> {
        let org = self.org.clone();
        let shared = journal.cloned();
        blocking(move || {
            let mut own = journal::Journal::default();
            let mut guard = shared.as_ref().map(|journal| {
                journal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            });
            // One write needs no copy: a failed write leaves nothing behind.
            let needs_copy = guard.is_some() || writes.len() > 1;
            let target: &mut journal::Journal = match guard.as_deref_mut() {
                Some(journal) => journal,
                None => &mut own,
            };
            if needs_copy {
                for write in &writes {
                    target.copy_row(&org, write.entity(), write.id())?;
                }
            }
            let results = org.write(&writes)?;
            if let Some(error) = results.into_iter().find_map(Result::err) {
                if shared.is_none() {
                    own.restore(&org)?;
                }
                return Err(DvError::from(error));
            }
            Ok(())
        })
        .await
    }

    /// One page of a FetchXML query, off the async threads.
    pub(crate) async fn query(
        &self,
        fetchxml: String,
        request: PageRequest,
    ) -> Result<crate::org::Page, DvError> {
        let org = self.org.clone();
        blocking(move || Ok(org.query(&fetchxml, &request)?)).await
    }
}

/// Runs blocking org work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DvError> + Send + 'static,
) -> Result<T, DvError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| DvError::internal(format!("the request's worker failed: {error}")))?
}

/// The caller: the org's configured caller, else the first systemuser, with its business unit.
fn who_am_i(org: &LocalOrg) -> WhoAmI {
    let organization_id =
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"fetchflow:local-org").to_string();
    let filter = org
        .caller()
        .map(|id| {
            format!(
                "<filter><condition attribute=\"systemuserid\" operator=\"eq\" value=\"{id}\"/></filter>"
            )
        })
        .unwrap_or_default();
    let fetch = format!(
        "<fetch top=\"1\"><entity name=\"systemuser\"><attribute name=\"systemuserid\"/>\
         <attribute name=\"businessunitid\"/>{filter}<order attribute=\"systemuserid\"/></entity></fetch>"
    );
    let row = org
        .query(&fetch, &PageRequest::default())
        .ok()
        .and_then(|page| page.rows.into_iter().next());
    let text = |key: &str| {
        row.as_ref()
            .and_then(|row| row.get(key))
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    };
    WhoAmI {
        user_id: text("systemuserid")
            .or_else(|| org.caller().map(str::to_owned))
            .unwrap_or_else(|| uuid::Uuid::nil().to_string()),
        business_unit_id: text("businessunitid").unwrap_or_else(|| uuid::Uuid::nil().to_string()),
        organization_id,
    }
}

/// Every `/api/data/v9.2/…` request.
async fn web_api(
    State(emulator): State<Emulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let base = emulator.org_url(&headers);
    let length = base.len() + uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if length > MAX_URL_LENGTH {
        use axum::response::IntoResponse;
        return DvError::new(
            axum::http::StatusCode::URI_TOO_LONG,
            crate::org::odata::INVALID_ARGUMENT,
            format!(
                "The request URL is {length} characters long; a URL may have at most \
                 {MAX_URL_LENGTH} (send a long GET inside a $batch, where {} are allowed).",
                batch::MAX_URL_LENGTH
            ),
        )
        .into_response();
    }
    let raw_path = uri.path().strip_prefix(API_PATH).unwrap_or_default();
    let call = request::Call {
        method,
        path: crate::org::odata::url_decode(raw_path).unwrap_or_else(|| raw_path.to_owned()),
        query: request::parse_query(uri.query().unwrap_or_default()),
        base,
        headers,
        body,
        journal: None,
    };
    entities::dispatch(&emulator, call).await
}

async fn unknown_route(uri: Uri) -> Response {
    use axum::response::IntoResponse;
    DvError::not_found_segment(uri.path().trim_start_matches('/')).into_response()
}

/// A tiny deterministic RNG (SplitMix64) for fault injection.
#[derive(Debug)]
pub(crate) struct Rng(Mutex<u64>);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(Mutex::new(seed))
    }

    /// A uniform value in [0, 1).
    pub(crate) fn next_f64(&self) -> f64 {
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}
