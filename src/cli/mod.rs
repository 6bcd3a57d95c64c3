//! The command-line edge: argument parsing (clap), the commands, and terminal output.
//! Commands call the library and map outcomes to exit codes: 0 success, 1 invalid input or
//! failed work, 2 usage errors.

mod metadata;
mod ops;
mod org;
mod plan;
mod render;
mod run;
mod schedule;
mod serve;
mod validate;

pub(crate) use org::open_default_org;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Declarative, git-managed bulk record jobs for Dynamics 365 / Dataverse.
#[derive(Debug, Parser)]
#[command(name = "fetchflow", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file (default: ./fetchflow.yaml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workflow files offline: YAML, FetchXML, templates, cron, names against metadata.
    Validate(validate::ValidateArgs),
    /// Show the next fire times of scheduled workflows, in UTC and in each trigger's zone.
    Schedule(schedule::ScheduleArgs),
    /// Dry run: the selection's record count and, for the first N records, each action's change.
    Plan(plan::PlanArgs),
    /// Run a workflow: sync inline, or as a background operation (`--wait` follows it here).
    Run(run::RunArgs),
    /// The local org: create it (with demo data), import, export and query rows.
    Org(org::OrgArgs),
    /// Background operations: list, show, failures, cancel, retry.
    Ops(ops::OpsArgs),
    /// The service: hot-reloaded workflows, cron schedules, workers, the HTTP API and webhooks.
    Serve(serve::ServeArgs),
    /// Dataverse metadata: `pull CONNECTION` caches an environment's tables and columns.
    Metadata(metadata::MetadataArgs),
}

/// Output formats of commands that report diagnostics or data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Github,
}

/// Parses the process arguments and runs the command.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let result = match &cli.command {
        Command::Validate(args) => validate::run(&cli, args),
        Command::Schedule(args) => schedule::run(&cli, args),
        Command::Org(args) => org::run(&cli, args),
        Command::Plan(args) => plan::run(&cli, args),
        Command::Run(args) => run::run(&cli, args),
        Command::Ops(args) => ops::run(&cli, args),
        Command::Serve(args) => serve::run(&cli, args),
        Command::Metadata(args) => metadata::run(&cli, args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Compiles workflow files as the commands that read them do: each against the catalogue of
/// its connection (the pulled metadata of a Dataverse connection, else the built-in tables),
/// with the configured connection names; an unreadable metadata cache is a warning.
pub(crate) fn compile_workflows(
    config: &crate::config::Config,
    paths: &[PathBuf],
) -> Vec<crate::compile::FileOutcome> {
    let (catalogues, cache_problems) = crate::load::connection_catalogues(config);
    for problem in &cache_problems {
        eprintln!("warning: {problem}");
    }
    let declared = config.declared_connections();
    crate::load::compile_files_by_connection(paths, &catalogue(), &catalogues, declared.as_deref())
}

/// The built-in metadata plus what the configuration adds. One place so that `validate`,
/// `schedule` and later `run` check names against the same catalogue.
pub(crate) fn catalogue() -> crate::metadata::Catalogue {
    crate::metadata::Catalogue::builtin()
}

/// Resolves at SIGTERM or SIGINT (Ctrl-C): how the long-running commands (`serve`, `org serve`)
/// are told to stop.
#[cfg(unix)]
pub(crate) async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without handlers the default dispositions end the process: nothing to wait for.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}

#[cfg(not(unix))]
pub(crate) async fn termination_signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
