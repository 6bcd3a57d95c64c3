//! `fetchflow serve`: the long-running service. The registry of loaded workflows (`registry`),
//! kept current by the file watcher (`loader`, `watcher`); the scheduler that turns cron fires
//! into operations (`scheduler`); the workers that execute operations (`workers`); the HTTP API
//! and webhooks (`api`); counters for `/metrics` (`metrics`). Everything shares one
//! [`ServeState`]; the engine and the store do the work, this layer only wires them: [`serve`]
//! starts every part on one listener and shuts them down gracefully.

pub mod api;
pub mod dashboard;
pub mod loader;
pub mod metrics;
pub mod orgs;
pub mod registry;
pub mod scheduler;
pub mod watcher;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::engine::Clock;
use crate::store::StateStore;
use crate::template::SecretSource;

pub use metrics::Metrics;
pub use orgs::Orgs;
pub use registry::{ActiveWorkflow, FileEntry, FileStatus, Registry, Snapshot};

/// What every part of `serve` shares. Cheap to clone.
#[derive(Clone)]
pub struct ServeState {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn StateStore>,
    pub orgs: Arc<Orgs>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Where `secret('NAME')` values come from (the process environment in production).
    pub secrets: Arc<dyn SecretSource>,
    /// The bearer token mutating endpoints require; `None` = no token configured.
    pub token: Option<Arc<str>>,
    /// Signalled whenever an operation is created or released, so idle workers wake at once
    /// instead of waiting for their next poll.
    pub work: Arc<tokio::sync::Notify>,
}

/// How [`serve`] runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Operations executed at once by this process.
    pub workers: usize,
    /// Watch the workflows directory by polling instead of file-system events.
    pub poll: bool,
    /// How long shutdown may take once signalled before [`serve`] gives up waiting.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            workers: 2,
            poll: false,
            grace: SHUTDOWN_GRACE,
        }
    }
}

/// How long a graceful shutdown may take (issue 5: exit within 10 s); a little is kept back
/// for the process to exit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(9_000);

/// How [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Everything stopped in time: operations in flight are checkpointed and released.
    Gracefully,
    /// The grace period ran out first; unfinished operations resume from their last
    /// checkpoint once their lease expires.
    GraceExpired,
}

/// Why [`serve`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    WorkflowsUnloadable(#[from] loader::LoaderError),
    #[error(transparent)]
    WatchFailed(#[from] watcher::WatchError),
    #[error("the HTTP server failed: {0}")]
    HttpFailed(#[source] std::io::Error),
}

/// Runs the service on `listener` until `signal` resolves (SIGTERM, SIGINT), then shuts down
/// gracefully: workers stop claiming, operations in flight finish their current batches, save
/// their checkpoints and release their leases, the scheduler stops firing and the HTTP server
/// stops accepting and finishes the requests it has, all within [`ServeOptions::grace`].
/// `ready` is called with the bound address once the workflows are loaded and every part runs.
pub async fn serve(
    state: ServeState,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    signal: impl Future<Output = ()> + Send,
    ready: impl FnOnce(std::net::SocketAddr) + Send,
) -> Result<Stopped, ServeError> {
    let address = listener.local_addr().map_err(ServeError::HttpFailed)?;
    let loaded = loader::load_all(&state)?;
    tracing::info!(
        files = loaded.files,
        active = loaded.active,
        failed = loaded.failed,
        "Workflows loaded."
    );
    let watch_options = watcher::WatchOptions {
        poll: options.poll.then_some(watcher::FALLBACK_POLL_INTERVAL),
        ..watcher::WatchOptions::default()
    };
    // Dropped at the end of this function: no reload starts after shutdown.
    let watcher = watcher::spawn_watcher(state.clone(), watch_options)?;
    let (stop, stopping) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(workers::run_workers(
            state.clone(),
            options.workers.max(1),
            stopping.clone(),
        )),
        tokio::spawn(scheduler::run_scheduler(state.clone(), stopping.clone())),
    ];
    let router = api::router(state.clone());
    let mut http_stopping = stopping.clone();
    let http = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = http_stopping.wait_for(|stop| *stop).await;
            })
            .into_future(),
    );
    let mut http = std::pin::pin!(http);
    ready(address);
    let failed = tokio::select! {
        () = signal => None,
        result = &mut http => Some(match result {
            Ok(Ok(())) => ServeError::HttpFailed(std::io::Error::other("stopped unexpectedly")),
            Ok(Err(error)) => ServeError::HttpFailed(error),
            Err(join_error) => ServeError::HttpFailed(std::io::Error::other(join_error)),
        }),
    };
    tracing::info!("Shutting down.");
    let _ = stop.send(true);
    let stopped = tokio::time::timeout(options.grace, async {
        for task in tasks {
            let _ = task.await;
        }
        if failed.is_none() {
            let _ = http.await;
        }
    })
    .await;
    drop(watcher);
    if let Some(error) = failed {
        return Err(error);
    }
    Ok(match stopped {
        Ok(()) => Stopped::Gracefully,
        Err(_) => Stopped::GraceExpired,
    })
}
