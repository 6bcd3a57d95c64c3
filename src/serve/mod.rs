//! `fetchflow serve`: the long-running service. The registry of loaded workflows (`registry`),
//! kept current by the file watcher (`loader`, `watcher`); the scheduler that turns cron fires
//! into operations (`scheduler`); the workers that execute operations (`workers`); the HTTP API
//! and webhooks (`api`); counters for `/metrics` (`metrics`). Everything shares one
//! [`ServeState`]; the engine and the store do the work, this layer only wires them.

pub mod api;
pub mod loader;
pub mod metrics;
pub mod orgs;
pub mod registry;
pub mod scheduler;
pub mod watcher;
pub mod workers;

use std::sync::Arc;

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
