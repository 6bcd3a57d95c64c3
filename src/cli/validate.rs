//! `fetchflow validate`: the loader and compiler that `serve` and `run` use, minus the run.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cli::{Cli, Format, render};
use crate::diagnostics::{Diagnostic, Severity};
use crate::source::SourceFile;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Workflow files or directories (default: the configured workflows directory, ./workflows).
    pub paths: Vec<PathBuf>,
    /// Output format: human (source line and caret, on stderr), json (stable array on stdout),
    /// github (workflow-command annotations on stdout).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
}

pub(crate) fn run(cli: &Cli, args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let (config, config_diagnostics) = crate::config::load_config(cli.config.as_deref())?;
    let inputs = if args.paths.is_empty() {
        vec![config.workflows.clone()]
    } else {
        args.paths.clone()
    };
    let paths = match crate::load::workflow_paths(&inputs) {
        Ok(paths) => paths,
        // A broken config can name a directory that does not exist: report the config.
        Err(_) if args.paths.is_empty() && !config_diagnostics.is_empty() => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    let outcomes = super::compile_workflows(&config, &paths);

    let config_source = config
        .path
        .as_ref()
        .and_then(|path| crate::load::read_source(path).ok());
    let mut reports: Vec<(&Diagnostic, Option<&SourceFile>)> = config_diagnostics
        .iter()
        .map(|diagnostic| (diagnostic, config_source.as_ref()))
        .collect();
    for outcome in &outcomes {
        let mut diagnostics: Vec<&Diagnostic> = outcome.diagnostics.iter().collect();
        diagnostics.sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
        reports.extend(
            diagnostics
                .into_iter()
                .map(|diagnostic| (diagnostic, Some(&outcome.source))),
        );
    }
    let errors = reports
        .iter()
        .filter(|(d, _)| d.severity == Severity::Error)
        .count();
    let warnings = reports.len() - errors;

    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let diagnostics: Vec<&Diagnostic> = reports.iter().map(|(d, _)| *d).collect();
            writeln!(stdout, "{}", render::json(&diagnostics))?;
        }
        Format::Github => {
            for (diagnostic, _) in &reports {
                writeln!(stdout, "{}", render::github(diagnostic))?;
            }
        }
        Format::Human => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let mut stderr = std::io::stderr().lock();
            for (diagnostic, source) in &reports {
                let text = match source {
                    Some(source) => render::human(diagnostic, source, color),
                    None => render::plain(diagnostic),
                };
                writeln!(stderr, "{text}")?;
            }
            let files = paths.len() + usize::from(config.path.is_some());
            let summary = match (errors, warnings, paths.is_empty()) {
                (0, 0, true) => format!("no workflow files found in {}", display_inputs(&inputs)),
                (0, 0, false) => format!("{files} file{} valid", plural(files)),
                _ => format!(
                    "{files} file{} checked: {errors} error{}, {warnings} warning{}",
                    plural(files),
                    plural(errors),
                    plural(warnings)
                ),
            };
            writeln!(stderr, "{summary}")?;
        }
    }
    let failed = errors > 0 || (args.deny_warnings && warnings > 0);
    Ok(ExitCode::from(u8::from(failed)))
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn display_inputs(inputs: &[PathBuf]) -> String {
    inputs
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
