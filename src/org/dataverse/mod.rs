//! The Dataverse Web API connector (DESIGN 6.2): [`DataverseOrg`], the `Org` of a `dataverse:`
//! connection, over reqwest with rustls.
//!
//! - `auth`: OAuth2 client credentials, the token cached and refreshed before it expires.
//! - `budget`: the one service-protection budget of a connection (pause on 429, AIMD
//!   concurrency from `x-ms-dop-hint`, never above 52 in flight).
//! - `transport`: one request: budget, token, headers, timeout, errors; who retries what.
//! - `metadata`: the catalogue from `EntityDefinitions`, and its cache file.
//! - `query`: FetchXML pages with the paging cookie; `write`: UpdateMultiple/CreateMultiple or
//!   `$batch`; `call`: custom APIs, inline or as background operations; `batch`: multipart.
//!
//! Row ↔ JSON mapping is `crate::org::odata`, shared with the emulator.
//!
//! Who retries what (so that no request is retried by two layers at once):
//! - `transport`: a 401 once, with a new token. A 429 pauses the whole connection for its
//!   `Retry-After` and becomes a retryable `OrgError` with `retry_after`; 5xx, timeouts,
//!   unreachable hosts and unreadable bodies become retryable `OrgError`s. Every request this
//!   connector sends is safe to repeat (PATCH, DELETE whose 404 means done, creates with the
//!   engine's deterministic ids, calls with an idempotency key), so all of them are retryable.
//! - the engine's `RetryPolicy` retries the `Org` call: exactly `retry_after` after a 429 (the
//!   connection's pause ends at the same moment), its own backoff otherwise.
//! - inside one `Org` call, only what the engine cannot redo cheaply: the parts of a `$batch`
//!   Dataverse did not answer or answered 429/5xx ([`write`], up to 5 rounds), one custom API
//!   call of a batch (up to 3 tries, so the others are not repeated), and the polls of a
//!   background operation.

mod auth;
mod batch;
mod budget;
mod call;
mod encode;
mod errors;
mod metadata;
mod query;
mod transport;
mod write;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::fake as test_fake;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;

use crate::config::Connection;
use crate::metadata::Catalogue;
use crate::org::{ApiCall, Org, OrgError, OrgFuture, Page, PageRequest, RecordError, Row, Write};
use crate::template::{SecretSource, TemplateSet};

pub use auth::Secret;
pub use budget::{BudgetSnapshot, INITIAL_IN_FLIGHT, MAX_IN_FLIGHT};
pub use call::IDEMPOTENCY_HEADER;
pub use metadata::{MetadataCache, metadata_cache_path, read_cache, write_cache};
pub use query::{MAX_BATCH_GET_URL, MAX_GET_URL};

use auth::TokenSource;
use budget::Budget;
use transport::Transport;

/// The settings of a `dataverse:` connection (DESIGN 3). `Debug` hides the client secret's
/// template (a literal secret may be written there).
#[derive(Clone, PartialEq, Eq)]
pub struct DataverseSettings {
    /// The environment URL, e.g. `https://contoso.crm.dynamics.com`.
    pub url: String,
    pub tenant: String,
    pub client_id: String,
    /// A template, usually `{{ secret('NAME') }}`; rendered only when connecting.
    pub client_secret: String,
    /// The identity provider, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
}

impl std::fmt::Debug for DataverseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataverseSettings")
            .field("url", &self.url)
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("authority", &self.authority)
            .finish()
    }
}

impl DataverseSettings {
    /// The settings of a Dataverse connection; `None` for a local one.
    pub fn from_connection(connection: &Connection) -> Option<Self> {
        match connection {
            Connection::Dataverse {
                url,
                tenant,
                client_id,
                client_secret,
                authority,
            } => Some(DataverseSettings {
                url: url.clone(),
                tenant: tenant.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                authority: authority.clone(),
            }),
            Connection::Local { .. } => None,
        }
    }
}

/// How a connection behaves; the defaults are Dataverse's documented limits.
#[derive(Debug, Clone, PartialEq)]
pub struct DataverseOptions {
    /// The metadata cache file (see [`metadata_cache_path`]): read instead of pulling when it
    /// holds this environment's metadata, written after a pull. `None`: always pull.
    pub metadata_cache: Option<PathBuf>,
    /// Pull the metadata even when the cache holds it (and rewrite the cache).
    pub refresh_metadata: bool,
    /// Per request: Dataverse itself ends a request after 2 minutes.
    pub request_timeout: Duration,
    /// Requests in flight before the server's `x-ms-dop-hint` is known.
    pub initial_in_flight: usize,
    /// The most requests in flight (capped at [`MAX_IN_FLIGHT`]).
    pub max_in_flight: usize,
    /// First wait before polling a background operation; doubles up to `max_poll_interval`
    /// (Microsoft asks for a minute or more between polls, reference §1.4).
    pub poll_interval: Duration,
    pub max_poll_interval: Duration,
    /// How long a background operation may take before the call fails (retryable).
    pub background_timeout: Duration,
    /// Send `MSCRM.BypassCustomPluginExecution: true` with writes (`batch.bypass_plugins`).
    pub bypass_plugins: bool,
}

impl Default for DataverseOptions {
    fn default() -> Self {
        DataverseOptions {
            metadata_cache: None,
            refresh_metadata: false,
            request_timeout: Duration::from_secs(120),
            initial_in_flight: INITIAL_IN_FLIGHT,
            max_in_flight: MAX_IN_FLIGHT,
            poll_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(60),
            background_timeout: Duration::from_secs(6 * 3600),
            bypass_plugins: false,
        }
    }
}

/// Why a connection could not be opened. Never contains the client secret or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The settings cannot work (bad URL, the secret does not render).
    #[error("connection `{connection}`: {message}")]
    Settings { connection: String, message: String },
    /// The identity provider refused or could not be reached.
    #[error("connection `{connection}`: {request}: {message}")]
    Authentication {
        connection: String,
        request: String,
        message: String,
        /// Trying again later may work (unreachable, 5xx), as opposed to refused credentials.
        transient: bool,
    },
    /// A Web API request failed (the message names the connection and the request).
    #[error("{}", error.message)]
    Request { connection: String, error: OrgError },
    /// The metadata cache file could not be read.
    #[error("connection `{connection}`: {message}")]
    Cache { connection: String, message: String },
}

impl ConnectError {
    /// The connection's name.
    pub fn connection(&self) -> &str {
        match self {
            ConnectError::Settings { connection, .. }
            | ConnectError::Authentication { connection, .. }
            | ConnectError::Request { connection, .. }
            | ConnectError::Cache { connection, .. } => connection,
        }
    }

    /// The message without its leading ``connection `name`: `` (for callers that name the
    /// connection themselves).
    pub fn detail(&self) -> String {
        let text = self.to_string();
        let prefix = format!("connection `{}`: ", self.connection());
        text.strip_prefix(&prefix)
            .map_or(text.clone(), str::to_string)
    }

    /// Trying again later may succeed (unreachable, throttled, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectError::Authentication { transient, .. } => *transient,
            ConnectError::Request { error, .. } => error.retryable,
            ConnectError::Settings { .. } | ConnectError::Cache { .. } => false,
        }
    }
}

/// A Dataverse environment as an `Org`. Cheap to clone: clones share the token, the budget
/// and the catalogue.
#[derive(Debug, Clone)]
pub struct DataverseOrg {
    inner: Arc<Inner>,
    bypass_plugins: bool,
}

#[derive(Debug)]
struct Inner {
    transport: Arc<Transport>,
    catalogue: Catalogue,
    options: DataverseOptions,
    /// `(<table>, <message>)` → whether the table supports `CreateMultiple`/`UpdateMultiple`
    /// (asked once per table, reference §3.4).
    multiple: tokio::sync::Mutex<HashMap<(String, &'static str), bool>>,
}

impl DataverseOrg {
    /// Connects with the default options.
    pub async fn connect(
        name: &str,
        settings: &DataverseSettings,
        secrets: Arc<dyn SecretSource>,
    ) -> Result<DataverseOrg, ConnectError> {
        Self::connect_with(name, settings, secrets, DataverseOptions::default()).await
    }

    /// Renders the client secret, gets a token, asks `WhoAmI` (checks that the application
    /// user exists, and reads the server's `x-ms-dop-hint`), then loads the catalogue: from
    /// the cache file when it holds this environment, else from the Web API (and caches it).
    pub async fn connect_with(
        name: &str,
        settings: &DataverseSettings,
        secrets: Arc<dyn SecretSource>,
        options: DataverseOptions,
    ) -> Result<DataverseOrg, ConnectError> {
        let transport = Arc::new(open_transport(name, settings, secrets, &options)?);
        check_access(&transport).await?;
        let cached = match (&options.metadata_cache, options.refresh_metadata) {
            (Some(path), false) => {
                read_cache(path, &transport.org_url).map_err(|message| ConnectError::Cache {
                    connection: name.to_string(),
                    message,
                })?
            }
            _ => None,
        };
        let catalogue = match cached {
            Some(catalogue) => catalogue,
            None => {
                let catalogue = metadata::pull(transport.clone()).await.map_err(|error| {
                    ConnectError::Request {
                        connection: name.to_string(),
                        error,
                    }
                })?;
                if let Some(path) = &options.metadata_cache
                    && let Err(message) = write_cache(path, name, &transport.org_url, &catalogue)
                {
                    // The connection works without the cache; only offline validation misses it.
                    tracing::warn!(connection = name, %message, "Cannot write the metadata cache.");
                }
                catalogue
            }
        };
        let bypass_plugins = options.bypass_plugins;
        Ok(DataverseOrg {
            inner: Arc::new(Inner {
                transport,
                catalogue,
                options,
                multiple: tokio::sync::Mutex::new(HashMap::new()),
            }),
            bypass_plugins,
        })
    }

    /// [`connect_with`](Self::connect_with) from synchronous code, inside or outside a tokio
    /// runtime: it runs on a thread of its own with a runtime of its own, and the HTTP client
    /// is renewed afterwards so that no pooled connection outlives that runtime.
    pub fn connect_blocking(
        name: &str,
        settings: &DataverseSettings,
        secrets: Arc<dyn SecretSource>,
        options: DataverseOptions,
    ) -> Result<DataverseOrg, ConnectError> {
        let settings_error = |message: String| ConnectError::Settings {
            connection: name.to_string(),
            message,
        };
        let org = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|error| settings_error(format!("no runtime: {error}")))?;
                    runtime.block_on(Self::connect_with(name, settings, secrets, options))
                })
                .join()
                .map_err(|_| settings_error("the connecting thread panicked".to_string()))?
        })?;
        org.inner.transport.renew_client().map_err(settings_error)?;
        Ok(org)
    }

    /// Pulls the environment's metadata now, ignoring any cache (for `metadata pull`).
    pub async fn pull_metadata(
        name: &str,
        settings: &DataverseSettings,
        secrets: Arc<dyn SecretSource>,
        options: DataverseOptions,
    ) -> Result<Catalogue, ConnectError> {
        let transport = Arc::new(open_transport(name, settings, secrets, &options)?);
        check_access(&transport).await?;
        metadata::pull(transport)
            .await
            .map_err(|error| ConnectError::Request {
                connection: name.to_string(),
                error,
            })
    }

    /// The same connection, sending (or not) the bypass-plugins header with writes. Shares the
    /// token, the budget and the catalogue.
    #[must_use]
    pub fn bypassing_plugins(&self, bypass: bool) -> DataverseOrg {
        DataverseOrg {
            inner: self.inner.clone(),
            bypass_plugins: bypass,
        }
    }

    pub fn connection(&self) -> &str {
        &self.inner.transport.connection
    }

    /// The connection's budget as it stands (tests, logs).
    pub fn budget(&self) -> BudgetSnapshot {
        self.inner.transport.budget.snapshot()
    }
}

fn open_transport(
    name: &str,
    settings: &DataverseSettings,
    secrets: Arc<dyn SecretSource>,
    options: &DataverseOptions,
) -> Result<Transport, ConnectError> {
    let settings_error = |message: String| ConnectError::Settings {
        connection: name.to_string(),
        message,
    };
    let url = settings.url.trim_end_matches('/');
    if reqwest::Url::parse(url).is_err()
        || !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(settings_error(format!("`{url}` is not an environment URL")));
    }
    let secret = render_secret(&settings.client_secret, secrets).map_err(settings_error)?;
    let tokens = TokenSource::new(
        &settings.authority,
        &settings.tenant,
        &settings.client_id,
        secret,
        url,
    );
    let budget = Budget::new(options.initial_in_flight, options.max_in_flight);
    Transport::new(name, url, tokens, budget, options.request_timeout)
        .map_err(|message| settings_error(format!("cannot set up HTTP: {message}")))
}

/// The client secret rendered from its template; errors name the variable, never a value.
fn render_secret(template: &str, secrets: Arc<dyn SecretSource>) -> Result<Secret, String> {
    let mut templates = TemplateSet::with_secrets(secrets);
    templates
        .add("client_secret", template)
        .map_err(|problem| format!("client_secret: {}", problem.message))?;
    let secret = templates
        .render("client_secret", &minijinja::Value::from(()))
        .map_err(|error| format!("client_secret: {error}"))?;
    if secret.trim().is_empty() {
        return Err("client_secret renders to an empty secret; set the secret it reads".into());
    }
    Ok(Secret::new(secret))
}

/// A token, then `WhoAmI`: the identity provider accepts the credentials and the environment
/// knows the application user.
async fn check_access(transport: &Transport) -> Result<(), ConnectError> {
    let connection = transport.connection.clone();
    transport
        .tokens
        .token(&transport.client(), None)
        .await
        .map_err(|error| ConnectError::Authentication {
            connection: connection.clone(),
            request: error.request,
            message: error.message,
            transient: error.transient,
        })?;
    let request = transport.request(Method::GET, "WhoAmI", "");
    let answer = transport
        .send_retrying(&request, transport::SETUP_TRIES)
        .await
        .map_err(|error| ConnectError::Request {
            connection: connection.clone(),
            error,
        })?;
    if answer.is_success() {
        return Ok(());
    }
    let mut error =
        errors::answer_error(&connection, &request.describe, answer.status, &answer.body);
    if answer.status == 403 {
        error.message.push_str(
            " (the application user lacks privileges: give it a security role in the environment)",
        );
    }
    Err(ConnectError::Request { connection, error })
}

impl Org for DataverseOrg {
    fn catalogue(&self) -> &Catalogue {
        &self.inner.catalogue
    }

    fn query_page<'a>(
        &'a self,
        fetchxml: &'a str,
        request: &'a PageRequest,
    ) -> OrgFuture<'a, Page> {
        Box::pin(query::query_page(&self.inner, fetchxml, request))
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write],
    ) -> OrgFuture<'a, Vec<Result<(), RecordError>>> {
        Box::pin(write::write_batch(&self.inner, writes, self.bypass_plugins))
    }

    fn call_batch<'a>(
        &'a self,
        calls: &'a [ApiCall],
    ) -> OrgFuture<'a, Vec<Result<Row, RecordError>>> {
        Box::pin(call::call_batch(self.inner.clone(), calls))
    }

    fn with_plugins_bypassed(&self) -> Option<Arc<dyn Org>> {
        Some(Arc::new(self.bypassing_plugins(true)))
    }
}
