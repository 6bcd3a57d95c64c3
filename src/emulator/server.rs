//! Serving the emulator on a socket: plain http, or https with a self-signed certificate
//! generated at start-up (many Dataverse clients refuse plain http), until `shutdown`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::emulator::{EmulatorOptions, router};
use crate::org::local::LocalOrg;

/// What `serve` reports once, before it answers requests.
#[derive(Debug)]
pub enum ServeEvent {
    /// The PEM certificate clients should trust (with `--tls`).
    Certificate(PathBuf),
    /// Answering requests, over `http` or `https`.
    Listening(&'static str),
}

/// Serves the emulator over `org` on `listener` until `shutdown` resolves. With `tls`, a
/// self-signed certificate for `localhost` and the listener's address is written to `tls`'s
/// path first.
pub async fn serve(
    listener: TcpListener,
    org: Arc<LocalOrg>,
    options: EmulatorOptions,
    tls: Option<PathBuf>,
    mut report: impl FnMut(ServeEvent),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(org, options);
    if let Some(path) = tls {
        return crate::emulator::tls::serve(listener, app, path, report, shutdown).await;
    }
    report(ServeEvent::Listening("http"));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
