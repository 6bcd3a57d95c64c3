//! `fetchflow serve [--listen ADDR] [--workers N] [--poll] [--log-format human|json]`: the
//! long-running service (DESIGN 3, 7.3, 8) on the configured state store, workflows directory
//! and connections.
//!
//! - The address is `--listen`, else `server.listen` (default `127.0.0.1:8080`); port 0 picks
//!   a free port. Once bound, one stable line goes to stderr, whatever the log format:
//!   `listening on http://ADDR`.
//! - `server.token` is rendered from its template (`{{ secret('NAME') }}` reads the
//!   environment); a configured token that does not render is an error. Without a token,
//!   only a loopback address is accepted: anyone who can reach the port could start runs.
//! - Logs: `tracing` to stderr, human by default, one JSON object a line with
//!   `--log-format json`; `RUST_LOG` filters (default `info`).
//! - SIGTERM or SIGINT: graceful shutdown (see [`crate::serve::serve`]), exit 0; a second
//!   signal, or 10 s without finishing, ends the process at once (exit 1): unfinished
//!   operations resume from their last checkpoint once their lease runs out.
//!
//! Exit codes: 0 after a graceful shutdown; 1 a bad configuration, a workflows directory that
//! cannot be loaded or watched, a failed HTTP server, or a forced exit; 2 a usage error (bad
//! address, no token for a non-loopback address, a token that does not render, address in
//! use).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::sync::Notify;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;
use crate::config::Config;
use crate::diagnostics::Severity;
use crate::engine::SystemClock;
use crate::serve::{Metrics, Orgs, Registry, ServeOptions, ServeState, Stopped};
use crate::store::SqliteStateStore;
use crate::template::TemplateSet;

/// The hard limit on shutdown (issue 5): the process is gone this long after the signal.
const FORCED_EXIT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (default: `server.listen`, else 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Operations executed at once by this process.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Watch the workflows directory by polling (file systems without change events).
    #[arg(long)]
    pub poll: bool,
    /// Log lines for people (human) or one JSON object a line (json).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// A refusal to start: the message, and the exit code.
struct Refusal(String, u8);

pub(crate) fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_logs(args.log_format);
    match prepare(cli, args) {
        Ok((state, listen)) => serve(state, listen, args),
        Err(Refusal(message, code)) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(code))
        }
    }
}

/// Logs to stderr; `RUST_LOG` filters, `info` by default. A subscriber already installed
/// (tests calling twice) is kept.
fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal who did not ask for none.
    let colours = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Everything checked before anything starts: the configuration, the address, the token and
/// the state store.
fn prepare(cli: &Cli, args: &ServeArgs) -> Result<(ServeState, SocketAddr), Refusal> {
    let (config, diagnostics) = crate::config::load_config(cli.config.as_deref())
        .map_err(|error| Refusal(error.to_string(), 2))?;
    let errors: Vec<_> = diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        for diagnostic in &errors {
            eprintln!("{}", crate::cli::render::plain(diagnostic));
        }
        return Err(Refusal(
            "the configuration is not valid; nothing was started".to_string(),
            1,
        ));
    }
    let listen_text = args.listen.as_deref().unwrap_or(&config.server.listen);
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        Refusal(
            format!("`{listen_text}` is not an address and port (e.g. 127.0.0.1:8080)"),
            2,
        )
    })?;
    let token = match &config.server.token {
        Some(template) => Some(render_token(template).map_err(|message| Refusal(message, 2))?),
        None => None,
    };
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(Refusal(
            format!(
                "refusing to listen on {listen} without a token: anyone who can reach it could \
                 start runs. Set `server.token` in fetchflow.yaml (e.g. \"{{{{ \
                 secret('FETCHFLOW_TOKEN') }}}}\") or listen on a loopback address such as \
                 127.0.0.1"
            ),
            2,
        ));
    }
    let store = SqliteStateStore::open(&config.state)
        .map_err(|error| Refusal(format!("state store: {error}"), 1))?;
    let config = Arc::new(config);
    let state = ServeState {
        orgs: Arc::new(Orgs::from_config(config.clone())),
        config,
        registry: Arc::new(Registry::default()),
        store: Arc::new(store),
        clock: Arc::new(SystemClock),
        metrics: Arc::new(Metrics::default()),
        secrets: Arc::new(|name: &str| std::env::var(name).ok()),
        token: token.map(Arc::from),
        work: Arc::new(Notify::new()),
    };
    Ok((state, listen))
}

/// `server.token` rendered with secrets from the environment; never shown in a message.
fn render_token(template: &str) -> Result<String, String> {
    let mut templates = TemplateSet::with_secrets(Arc::new(|name: &str| std::env::var(name).ok()));
    templates
        .add("server.token", template)
        .map_err(|problem| format!("server.token: {}", problem.message))?;
    let token = templates
        .render("server.token", &minijinja::Value::from(()))
        .map_err(|error| format!("server.token: {error}"))?;
    if token.trim().is_empty() {
        return Err("server.token renders to an empty token; set the secret it reads".to_string());
    }
    Ok(token)
}

fn serve(state: ServeState, listen: SocketAddr, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let options = ServeOptions {
        workers: usize::from(args.workers),
        poll: args.poll,
        ..ServeOptions::default()
    };
    let config: Arc<Config> = state.config.clone();
    let result = runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(error) => return Err((format!("cannot listen on {listen}: {error}"), 2)),
        };
        let ready = |bound: SocketAddr| {
            tracing::info!(
                address = %bound,
                workflows = %config.workflows.display(),
                state = %config.state.display(),
                "Serving."
            );
            // A stable line, whatever the log format: scripts and tests read the address here.
            eprintln!("listening on http://{bound}");
        };
        crate::serve::serve(state, listener, options, shutdown_signal(), ready)
            .await
            .map_err(|error| (error.to_string(), 1))
    });
    // Tasks that do not stop (a blocking org call) must not hold the process.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Err((message, code)) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(code))
        }
        Ok(Stopped::Gracefully) => {
            tracing::info!("Stopped.");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Stopped::GraceExpired) => {
            tracing::warn!(
                "Shutdown took too long; unfinished operations resume from their last checkpoint."
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Resolves at the first SIGTERM or SIGINT, and arms the hard limit: a second signal, or
/// [`FORCED_EXIT`] after the first, ends the process whatever is still running.
async fn shutdown_signal() {
    super::termination_signal().await;
    tracing::info!("Signal received; stopping (a second signal forces the exit).");
    std::thread::spawn(|| {
        std::thread::sleep(FORCED_EXIT);
        eprintln!("error: shutdown did not finish within {FORCED_EXIT:?}; exiting now");
        std::process::exit(1);
    });
    tokio::spawn(async {
        super::termination_signal().await;
        eprintln!("error: second signal; exiting now");
        std::process::exit(1);
    });
}
