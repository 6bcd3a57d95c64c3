//! `fetchflow schedule`: the next fire instants of each cron trigger, in UTC and local time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use crate::cli::{Cli, Format, render};
use crate::compile::Trigger;
use crate::diagnostics::Severity;

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// A workflow name or file path (default: every workflow with a cron trigger).
    pub workflow: Option<String>,
    /// How many fire times to show per trigger.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub next: u16,
    /// Start instant, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub from: Option<DateTime<Utc>>,
    /// Output format (github is accepted and prints like human).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.to_utc())
        .map_err(|error| {
            format!(
                "`{text}` is not an RFC 3339 instant ({error}); write e.g. 2026-03-29T00:00:00Z"
            )
        })
}

#[derive(Debug, Serialize)]
struct TriggerFires {
    workflow: String,
    file: String,
    trigger: usize,
    cron: String,
    timezone: String,
    fires: Vec<FireView>,
}

#[derive(Debug, Serialize)]
struct FireView {
    utc: String,
    local: String,
}

pub(crate) fn run(cli: &Cli, args: &ScheduleArgs) -> anyhow::Result<ExitCode> {
    let (config, _) = crate::config::load_config(cli.config.as_deref())?;
    let paths = match &args.workflow {
        Some(target) if Path::new(target).is_file() => vec![PathBuf::from(target)],
        _ => crate::load::workflow_paths(std::slice::from_ref(&config.workflows))?,
    };
    let outcomes = super::compile_workflows(&config, &paths);
    let selected: Vec<_> = outcomes
        .iter()
        .filter(|outcome| match &args.workflow {
            None => true,
            Some(target) if Path::new(target).is_file() => true,
            Some(target) => outcome
                .name
                .as_ref()
                .is_some_and(|(name, _, _)| name == target),
        })
        .collect();
    if let Some(target) = &args.workflow
        && selected.is_empty()
    {
        let names: Vec<&str> = outcomes
            .iter()
            .filter_map(|outcome| outcome.name.as_ref().map(|(name, _, _)| name.as_str()))
            .collect();
        let hint = crate::diagnostics::did_you_mean(target, names.iter().copied())
            .map(|name| format!("; did you mean `{name}`?"))
            .unwrap_or_default();
        anyhow::bail!(
            "no workflow named `{target}` in {}{hint}",
            config.workflows.display()
        );
    }

    let from = args.from.unwrap_or_else(Utc::now);
    let mut invalid = false;
    let mut all = Vec::new();
    let mut stderr = std::io::stderr().lock();
    for outcome in &selected {
        let Some(workflow) = &outcome.workflow else {
            invalid = true;
            for diagnostic in outcome
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
            {
                writeln!(stderr, "{}", render::plain(diagnostic))?;
            }
            continue;
        };
        for (idx, trigger) in workflow.triggers.iter().enumerate() {
            let Trigger::Cron(cron) = trigger else {
                continue;
            };
            let fires = cron
                .schedule
                .next_fires(from, usize::from(args.next))
                .into_iter()
                .map(|fire| FireView {
                    utc: fire.utc.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    local: fire
                        .local
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                })
                .collect();
            all.push(TriggerFires {
                workflow: workflow.name.clone(),
                file: outcome.source.display_name(),
                trigger: idx,
                cron: cron.expression.clone(),
                timezone: cron.timezone.name().to_string(),
                fires,
            });
        }
    }
    let mut stdout = std::io::stdout().lock();
    if args.format == Format::Json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&all)?)?;
    } else {
        if all.is_empty() && !invalid {
            writeln!(stderr, "no cron triggers found")?;
        }
        for entry in &all {
            writeln!(
                stdout,
                "{} (triggers[{}]): cron \"{}\" in {}",
                entry.workflow, entry.trigger, entry.cron, entry.timezone
            )?;
            if entry.fires.is_empty() {
                writeln!(stdout, "  never fires")?;
            }
            for fire in &entry.fires {
                writeln!(stdout, "  {}  {}", fire.utc, fire.local)?;
            }
        }
    }
    Ok(ExitCode::from(u8::from(invalid)))
}
