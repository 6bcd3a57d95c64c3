//! https for `org serve --tls`: a self-signed certificate for `localhost`, `127.0.0.1`, `::1`
//! and the listening address, generated at start-up (rcgen) and written as PEM so clients can
//! trust it; connections are accepted with rustls (already in the tree through reqwest) and
//! served over HTTP/1.1 by hyper.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::emulator::ServeEvent;

fn io_error(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

/// Generates the certificate, writes it to `path` and serves `app` until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    path: PathBuf,
    mut report: impl FnMut(ServeEvent),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !address.ip().is_unspecified() && !address.ip().is_loopback() {
        names.push(address.ip().to_string());
    }
    let certified = rcgen::generate_simple_self_signed(names).map_err(io_error)?;
    std::fs::write(&path, certified.cert.pem()).map_err(|error| {
        io_error(format!(
            "cannot write the certificate to {}: {error}",
            path.display()
        ))
    })?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io_error)?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(io_error)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    report(ServeEvent::Certificate(path));
    report(ServeEvent::Listening("https"));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of descriptors and the like: the listener itself is fine.
                        tracing::warn!(message = "Accept failed.", %error);
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(app.clone());
                tokio::spawn(async move {
                    // A client that fails the handshake (e.g. does not trust the certificate)
                    // only loses its own connection.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}
