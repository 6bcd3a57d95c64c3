//! `fetchflow org …`: create, fill, query and export the local org (DESIGN 4 and 5), and
//! `open_default_org`, which every command that uses the `default` connection goes through so a
//! fresh clone gets a demo org on first use.
//!
//! Output of `org query --format json` (stable):
//! `{"rows": [...]}`, plus `"morerecords": true` and `"pagingcookie": "<cookie>"` when more rows
//! exist after the page, plus `"totalrecordcount"` and `"totalrecordcountlimitexceeded"` when the
//! FetchXML asks for `returntotalrecordcount`. With `--all` every page is read (following the
//! paging cookie) and the rows of all pages are printed as one list. A query error prints
//! `{"error": {"code", "number", "message"}}` and exits 1. Rows are printed one per line.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::Value;

use crate::cli::Cli;
use crate::config::Connection;
use crate::metadata::{AttributeMeta, Catalogue, EntityMeta, StateMeta};
use crate::org::local::{DemoSize, LocalOrg};
use crate::org::{OrgError, Page, PageRequest, Row};
use crate::source::SourceFile;

/// Accounts of the demo org a fresh clone gets on first use.
pub(crate) const DEFAULT_DEMO_ACCOUNTS: usize = 10_000;

/// Where the org lives when no `--org` and no config say otherwise.
const DEFAULT_ORG_PATH: &str = ".fetchflow/org.db";

#[derive(Debug, Args)]
pub struct OrgArgs {
    /// The local org file (default: the `default` connection's `local` path, else
    /// .fetchflow/org.db).
    #[arg(long, global = true, value_name = "PATH")]
    pub org: Option<PathBuf>,
    #[command(subcommand)]
    pub command: OrgCommand,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create the local org: empty, or with N demo accounts plus related rows.
    Init(InitArgs),
    /// Load rows in the row format (JSON) into the local org: all or nothing.
    Import(ImportArgs),
    /// Print an entity's rows in the row format, ordered by primary key.
    Export(ExportArgs),
    /// Evaluate FetchXML on the local org and print the rows.
    Query(QueryArgs),
    /// Serve the local org as a Dataverse Web API v9.2 emulator (for connector tests).
    Serve(ServeArgs),
}

/// `org serve`: the emulator's address, limits and faults (see `emulator::EmulatorOptions`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8089")]
    pub listen: String,
    /// Serve https with a generated self-signed certificate (its path is printed).
    #[arg(long)]
    pub tls: bool,
    /// Milliseconds added to every Web API request.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency: u64,
    /// Concurrent requests allowed; more get 429 (Dataverse: 52).
    #[arg(long, value_name = "N")]
    pub limit_concurrency: Option<usize>,
    /// Requests allowed per window; more get 429 with Retry-After (Dataverse: 6000).
    #[arg(long, value_name = "N")]
    pub limit_requests: Option<u32>,
    /// Combined execution seconds allowed per window (Dataverse: 1200).
    #[arg(long, value_name = "S")]
    pub limit_execution_time: Option<u64>,
    /// The sliding window of the request and execution-time limits, in seconds.
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub window: u64,
    /// Share of requests answered 503 before they run (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_rate: f64,
    /// Seed of the fault injection, for reproducible runs.
    #[arg(long, value_name = "N", default_value_t = 0x5eed)]
    pub seed: u64,
    /// Require OAuth2 client-credential tokens for this client id; the secret is read from
    /// the environment variable FETCHFLOW_EMULATOR_CLIENT_SECRET.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Lifetime of issued tokens in seconds.
    #[arg(long, value_name = "S", default_value_t = 3599)]
    pub token_lifetime: u64,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("`{text}` is not a rate between 0 and 1")),
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Fill the org with N demo accounts and proportional contacts, leads, tasks,
    /// opportunities, users and teams (deterministic).
    #[arg(long, value_name = "N")]
    pub demo: Option<usize>,
    /// Custom tables and columns (JSON or YAML, the catalogue format) added to the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub metadata: Option<PathBuf>,
    /// Replace an existing org file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A JSON file in the row format: {"account": [{...}], "contact": [...]}; `-` reads stdin.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The entity's logical name, e.g. account.
    pub entity: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    Json,
    Table,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// A FetchXML file; `-` reads stdin.
    pub file: PathBuf,
    /// Output format: json (stable, see `fetchflow org query --help`) or an aligned table.
    #[arg(long, value_enum, default_value_t = QueryFormat::Json)]
    pub format: QueryFormat,
    /// The systemuser that eq-userid, eq-businessid and eq-userteams refer to.
    #[arg(long, value_name = "SYSTEMUSER_ID", value_parser = parse_guid)]
    pub caller: Option<String>,
    /// Read every page (following the paging cookie) instead of the one the FetchXML asks for.
    #[arg(long)]
    pub all: bool,
}

fn parse_guid(text: &str) -> Result<String, String> {
    if crate::compile::values::is_guid(text) {
        Ok(text
            .trim_start_matches('{')
            .trim_end_matches('}')
            .to_ascii_lowercase())
    } else {
        Err(format!("`{text}` is not a GUID"))
    }
}

pub(crate) fn run(cli: &Cli, args: &OrgArgs) -> anyhow::Result<ExitCode> {
    let (path, explicit) = org_path(cli, args)?;
    match &args.command {
        OrgCommand::Init(init) => run_init(&path, init),
        OrgCommand::Import(import) => {
            let text = read_input(&import.file)?;
            let org = open(&path, explicit)?;
            let shown = import.file.display().to_string();
            match org.import_json(&text) {
                Ok(report) => {
                    let per_entity: Vec<String> = report
                        .entities
                        .iter()
                        .map(|(entity, count)| format!("{entity} {}", thousands(*count)))
                        .collect();
                    eprintln!(
                        "imported {} row{} into {}: {}",
                        thousands(report.rows),
                        if report.rows == 1 { "" } else { "s" },
                        path.display(),
                        per_entity.join(", ")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    match error.position {
                        Some((line, column)) => {
                            eprintln!("error: {shown}:{line}:{column}: {}", error.message);
                        }
                        None => eprintln!("error: {shown}: {error}"),
                    }
                    eprintln!("nothing was imported");
                    Ok(ExitCode::from(1))
                }
            }
        }
        OrgCommand::Export(export) => {
            let org = open(&path, explicit)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let written = org
                .export_to(&export.entity, &mut out)
                .and_then(|_| out.flush());
            match written {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => match error
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<OrgError>())
                {
                    Some(org_error) => {
                        eprintln!("error: {org_error}");
                        Ok(ExitCode::from(1))
                    }
                    None => Err(anyhow::Error::new(error).context("cannot write the export")),
                },
            }
        }
        OrgCommand::Serve(serve) => {
            let org = open(&path, explicit)?;
            run_serve(org, &path, serve)
        }
        OrgCommand::Query(query) => {
            let fetchxml = read_input(&query.file)?;
            let org = open(&path, explicit)?.with_caller(query.caller.clone());
            match query_pages(&org, &fetchxml, query.all) {
                Ok(page) => {
                    print_page(&page, query.format)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    match query.format {
                        QueryFormat::Json => {
                            // Written by hand to keep the documented key order.
                            println!(
                                "{{\"error\": {{\"code\": {}, \"number\": {}, \"message\": {}}}}}",
                                Value::String(error.code.to_string()),
                                error.number,
                                Value::String(error.message.clone())
                            );
                        }
                        QueryFormat::Table => {
                            eprintln!("error: {} ({})", error.message, error.code)
                        }
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// `org serve`: the emulator until Ctrl-C.
fn run_serve(org: LocalOrg, path: &Path, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let client_credentials = match &args.client_id {
        Some(client_id) => Some(crate::emulator::ClientCredentials {
            client_id: client_id.clone(),
            client_secret: std::env::var("FETCHFLOW_EMULATOR_CLIENT_SECRET").context(
                "--client-id needs the secret in the environment variable \
                 FETCHFLOW_EMULATOR_CLIENT_SECRET",
            )?,
        }),
        None => None,
    };
    let options = crate::emulator::EmulatorOptions {
        latency: std::time::Duration::from_millis(args.latency),
        limit_concurrency: args.limit_concurrency,
        limit_requests: args.limit_requests,
        limit_execution_time: args
            .limit_execution_time
            .map(std::time::Duration::from_secs),
        window: std::time::Duration::from_secs(args.window.max(1)),
        fail_rate: args.fail_rate,
        seed: args.seed,
        client_credentials,
        token_lifetime: std::time::Duration::from_secs(args.token_lifetime),
        https: args.tls,
        ..crate::emulator::EmulatorOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let listen = args.listen.clone();
    // The certificate lives beside the org, so clients can be pointed at a stable path.
    let tls = args.tls.then(|| {
        let mut certificate = path.as_os_str().to_owned();
        certificate.push(".emulator-cert.pem");
        PathBuf::from(certificate)
    });
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        let shutdown = super::termination_signal();
        crate::emulator::serve(
            listener,
            std::sync::Arc::new(org),
            options,
            tls,
            |event| match event {
                crate::emulator::ServeEvent::Certificate(path) => {
                    eprintln!("certificate: {}", path.display())
                }
                crate::emulator::ServeEvent::Listening(scheme) => {
                    eprintln!("listening on {scheme}://{address}/api/data/v9.2/")
                }
            },
            shutdown,
        )
        .await?;
        Ok::<(), anyhow::Error>(())
    });
    // Idle blocking-pool threads and pooled connections need not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    served?;
    Ok(ExitCode::SUCCESS)
}

/// `--org`, else the `default` connection's local path, else `.fetchflow/org.db`; and whether
/// the path was given explicitly (an explicit path must exist, except for `init`).
fn org_path(cli: &Cli, args: &OrgArgs) -> anyhow::Result<(PathBuf, bool)> {
    if let Some(path) = &args.org {
        return Ok((path.clone(), true));
    }
    let (config, _) = crate::config::load_config(cli.config.as_deref())?;
    match config
        .connections
        .iter()
        .find(|(name, _)| name == "default")
        .map(|(_, connection)| connection)
    {
        Some(Connection::Local { path }) => Ok((path.clone(), false)),
        Some(Connection::Dataverse { .. }) => anyhow::bail!(
            "the `default` connection is a Dataverse environment; `org` commands work on a local \
             org: pass --org PATH"
        ),
        None => Ok((PathBuf::from(DEFAULT_ORG_PATH), false)),
    }
}

fn open(path: &Path, explicit: bool) -> anyhow::Result<LocalOrg> {
    if explicit {
        Ok(LocalOrg::open(path)?)
    } else {
        open_default_org(path)
    }
}

/// Opens the org of the `default` connection, creating it with 10,000 demo accounts on first
/// use (and saying so on stderr), as DESIGN 3 promises a fresh clone.
///
/// The org is built in a temporary file and linked into place only when complete, so a
/// process that opens it meanwhile (or a second process creating it at the same moment) never
/// sees a half-filled org: the first complete one wins and the other is discarded.
pub(crate) fn open_default_org(path: &Path) -> anyhow::Result<LocalOrg> {
    if path.exists() {
        return Ok(LocalOrg::open(path)?);
    }
    let mut building = path.as_os_str().to_owned();
    building.push(format!(".building-{}", std::process::id()));
    let building = PathBuf::from(building);
    remove_org_files(&building);
    let org = create_org(&building, Catalogue::builtin(), Some(DEFAULT_DEMO_ACCOUNTS))?;
    // Closing the connection checkpoints the write-ahead log into the file itself.
    drop(org);
    let linked = std::fs::hard_link(&building, path);
    remove_org_files(&building);
    match linked {
        Ok(()) => eprintln!(
            "created the local org at {} with {} demo accounts",
            path.display(),
            thousands(DEFAULT_DEMO_ACCOUNTS)
        ),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => anyhow::bail!("cannot create {}: {error}", path.display()),
    }
    Ok(LocalOrg::open(path)?)
}

/// Creates an org file and fills it; a failure removes the half-made file.
fn create_org(path: &Path, catalogue: Catalogue, demo: Option<usize>) -> anyhow::Result<LocalOrg> {
    let created = LocalOrg::create(path, catalogue).and_then(|org| {
        if let Some(accounts) = demo {
            org.populate_demo(DemoSize { accounts })?;
        }
        Ok(org)
    });
    match created {
        Ok(org) => Ok(org),
        Err(error) => {
            if error.code != "OrgExists" {
                remove_org_files(path);
            }
            Err(error.into())
        }
    }
}

fn remove_org_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

fn run_init(path: &Path, args: &InitArgs) -> anyhow::Result<ExitCode> {
    let mut catalogue = Catalogue::builtin();
    if let Some(file) = &args.metadata {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        if let Err(message) = merge_metadata(&mut catalogue, file, &text) {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(1));
        }
        if let Err(message) = LocalOrg::check_metadata(&catalogue) {
            eprintln!("error: {}: {message}", file.display());
            return Ok(ExitCode::from(1));
        }
    }
    if path.exists() {
        if !args.force {
            eprintln!(
                "error: {} already exists; pass --force to replace it",
                path.display()
            );
            return Ok(ExitCode::from(1));
        }
        // Only ever delete a fetchflow org (or an empty file), never whatever --org names.
        let replaceable = std::fs::metadata(path).is_ok_and(|meta| meta.len() == 0)
            || match LocalOrg::open(path) {
                Ok(_) => true,
                Err(error) => error.code == "UnsupportedOrgVersion",
            };
        if !replaceable {
            eprintln!(
                "error: {} is not a fetchflow org; refusing to replace it",
                path.display()
            );
            return Ok(ExitCode::from(1));
        }
        remove_org_files(path);
    }
    let started = std::time::Instant::now();
    let org = create_org(path, catalogue, None)?;
    match args.demo {
        None => eprintln!("created an empty local org at {}", path.display()),
        Some(accounts) => {
            let report = match org.populate_demo(DemoSize { accounts }) {
                Ok(report) => report,
                Err(error) => {
                    drop(org);
                    remove_org_files(path);
                    return Err(error.into());
                }
            };
            let per_entity: Vec<String> = report
                .entities
                .iter()
                .map(|(entity, count)| format!("{entity} {}", thousands(*count)))
                .collect();
            eprintln!(
                "created the local org at {} with {} demo accounts: {} rows ({}) in {:.1}s",
                path.display(),
                thousands(accounts),
                thousands(report.rows),
                per_entity.join(", "),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// One page as the FetchXML asks, or with `all` every page concatenated.
fn query_pages(org: &LocalOrg, fetchxml: &str, all: bool) -> Result<Page, OrgError> {
    let mut page = org.query(fetchxml, &PageRequest::default())?;
    if !all {
        return Ok(page);
    }
    let mut number = 1u32;
    while page.more_records {
        number += 1;
        let request = PageRequest {
            page: Some(number),
            count: None,
            paging_cookie: page.paging_cookie.clone(),
        };
        let next = org.query(fetchxml, &request)?;
        page.rows.extend(next.rows);
        page.more_records = next.more_records;
        page.paging_cookie = next.paging_cookie;
    }
    page.paging_cookie = None;
    Ok(page)
}

fn print_page(page: &Page, format: QueryFormat) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = match format {
        QueryFormat::Json => write_json(&mut out, page),
        QueryFormat::Table => {
            let written = write_table(&mut out, &page.rows);
            let rows = page.rows.len();
            eprintln!(
                "{} row{}",
                thousands(rows),
                if rows == 1 { "" } else { "s" }
            );
            if page.more_records {
                eprintln!(
                    "more records exist: pass --all, or ask for a page with `page` and `count`"
                );
            }
            written
        }
    };
    match written.and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn write_json(out: &mut dyn Write, page: &Page) -> std::io::Result<()> {
    write!(out, "{{\"rows\": [")?;
    for (index, row) in page.rows.iter().enumerate() {
        let separator = if index == 0 { "\n  " } else { ",\n  " };
        write!(out, "{separator}{}", Value::Object(row.clone()))?;
    }
    write!(out, "{}]", if page.rows.is_empty() { "" } else { "\n" })?;
    if page.more_records {
        write!(out, ", \"morerecords\": true")?;
        if let Some(cookie) = &page.paging_cookie {
            write!(out, ", \"pagingcookie\": {}", Value::String(cookie.clone()))?;
        }
    }
    if let Some(total) = page.total_record_count {
        write!(
            out,
            ", \"totalrecordcount\": {total}, \"totalrecordcountlimitexceeded\": {}",
            page.total_record_count_limit_exceeded
        )?;
    }
    writeln!(out, "}}")
}

/// Widest a table cell gets before it is cut with `…`.
const MAX_CELL: usize = 48;

fn write_table(out: &mut dyn Write, rows: &[Row]) -> std::io::Result<()> {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|column| cell(row.get(*column)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            cells
                .iter()
                .map(|row| row[index].chars().count())
                .chain(std::iter::once(column.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut dyn Write, values: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = values
            .zip(&widths)
            .map(|(value, width)| {
                let pad = width.saturating_sub(value.chars().count());
                format!("{value}{}", " ".repeat(pad))
            })
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    };
    if columns.is_empty() {
        return Ok(());
    }
    line(out, &mut columns.iter().copied())?;
    let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
    line(out, &mut rule.iter().map(String::as_str))?;
    for row in &cells {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

fn cell(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.replace(['\n', '\r', '\t'], " "),
        Some(other) => other.to_string(),
    };
    if text.chars().count() > MAX_CELL {
        let cut: String = text.chars().take(MAX_CELL - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// 1234567 → "1,234,567".
fn thousands(number: usize) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// One table of a `--metadata` file: the catalogue format (a list of tables), where a new
/// table may leave out its set name, primary key and primary name (derived from its logical
/// name), and a built-in table is named only to add columns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    logical_name: String,
    #[serde(default)]
    entity_set_name: Option<String>,
    #[serde(default)]
    primary_id: Option<String>,
    #[serde(default)]
    primary_name: Option<String>,
    #[serde(default)]
    attributes: Vec<AttributeMeta>,
    #[serde(default)]
    states: Vec<StateMeta>,
}

/// Adds the tables and columns of a metadata file to the catalogue. Errors name the file and
/// the line and column (syntax) or the table and column (meaning).
fn merge_metadata(catalogue: &mut Catalogue, file: &Path, text: &str) -> Result<(), String> {
    let shown = file.display();
    let is_json = file
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
    let tables: Vec<RawTable> = if is_json {
        serde_json::from_str(text).map_err(|error| {
            let message = error.to_string();
            let message = message
                .rfind(" at line ")
                .map_or(message.as_str(), |index| &message[..index]);
            format!("{shown}:{}:{}: {message}", error.line(), error.column())
        })?
    } else {
        let source = SourceFile::new(file, text);
        crate::model::parse_yaml(&source).map_err(|diagnostic| {
            format!(
                "{shown}:{}:{}: {}",
                diagnostic.line, diagnostic.column, diagnostic.message
            )
        })?
    };
    for (index, table) in tables.into_iter().enumerate() {
        let at = format!("{shown}: table {} (`{}`)", index + 1, table.logical_name);
        if let Some(existing) = catalogue.entity_mut(&table.logical_name) {
            let changes_keys = [
                (&table.entity_set_name, &existing.entity_set_name),
                (&table.primary_id, &existing.primary_id),
                (&table.primary_name, &existing.primary_name),
            ]
            .iter()
            .any(|(given, current)| given.as_ref().is_some_and(|given| given != *current));
            if changes_keys || !table.states.is_empty() {
                return Err(format!(
                    "{at}: a built-in table can only gain columns; its names, keys and states are fixed"
                ));
            }
            for attribute in table.attributes {
                if existing.attribute(&attribute.logical_name).is_some() {
                    return Err(format!(
                        "{at}: `{}` is already a column of {}",
                        attribute.logical_name, existing.logical_name
                    ));
                }
                existing.add_attribute(attribute);
            }
            continue;
        }
        let name = table.logical_name.clone();
        let primary_name = table
            .primary_name
            .unwrap_or_else(|| match name.split_once('_') {
                Some((prefix, _)) => format!("{prefix}_name"),
                None => "name".to_string(),
            });
        let mut entity = EntityMeta::new(
            name.clone(),
            table.entity_set_name.unwrap_or_else(|| format!("{name}s")),
            table.primary_id.unwrap_or_else(|| format!("{name}id")),
            primary_name.clone(),
        );
        let mut seen = std::collections::BTreeSet::new();
        for attribute in table.attributes {
            if !seen.insert(attribute.logical_name.clone()) {
                return Err(format!(
                    "{at}: column `{}` is declared twice",
                    attribute.logical_name
                ));
            }
            entity.add_attribute(attribute);
        }
        if entity.attribute(&primary_name).is_none() {
            entity.add_attribute(AttributeMeta::string(primary_name, 100));
        }
        entity.states = table.states;
        catalogue.add_entity(entity);
    }
    Ok(())
}

/// A page's rows as the JSON value `org query` prints (for tests).
#[cfg(test)]
fn page_json(page: &Page) -> Value {
    let mut out = Vec::new();
    write_json(&mut out, page).unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn json_output_has_a_stable_shape() {
        let row: serde_json::Map<String, Value> = json!({"name": "A"}).as_object().unwrap().clone();
        let page = Page {
            rows: vec![row],
            more_records: true,
            paging_cookie: Some("<cookie/>".into()),
            total_record_count: None,
            total_record_count_limit_exceeded: false,
        };
        assert_eq!(
            page_json(&page),
            json!({"rows": [{"name": "A"}], "morerecords": true, "pagingcookie": "<cookie/>"})
        );
        let empty = Page {
            rows: vec![],
            more_records: false,
            paging_cookie: None,
            total_record_count: Some(0),
            total_record_count_limit_exceeded: false,
        };
        assert_eq!(
            page_json(&empty),
            json!({"rows": [], "totalrecordcount": 0, "totalrecordcountlimitexceeded": false})
        );
    }

    #[test]
    fn tables_align_and_cut_long_cells() {
        let rows: Vec<Row> = vec![
            json!({"name": "Contoso", "revenue": 5})
                .as_object()
                .unwrap()
                .clone(),
            json!({"name": "Ø", "pc.fullname": "x".repeat(60)})
                .as_object()
                .unwrap()
                .clone(),
        ];
        let mut out = Vec::new();
        write_table(&mut out, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("name     revenue  pc.fullname"));
        assert!(lines[1].starts_with("-------  -------  ----"));
        assert_eq!(lines[2], "Contoso  5");
        assert!(lines[3].starts_with("Ø                 xxx"), "{text}");
        assert!(lines[3].ends_with('…'));
    }

    #[test]
    fn metadata_files_add_tables_and_columns() {
        let mut catalogue = Catalogue::builtin();
        let yaml = "\
- logical_name: new_project
  attributes:
    - {logical_name: new_budget, kind: Money}
    - {logical_name: new_accountid, kind: Lookup, targets: [account]}
- logical_name: account
  attributes:
    - {logical_name: new_score, kind: Decimal}
";
        merge_metadata(&mut catalogue, Path::new("meta.yaml"), yaml).unwrap();
        let project = catalogue.entity("new_project").unwrap();
        assert_eq!(project.primary_id, "new_projectid");
        assert_eq!(project.primary_name, "new_name");
        assert!(project.attribute("new_name").is_some());
        assert!(
            catalogue
                .entity("account")
                .unwrap()
                .attribute("new_score")
                .is_some()
        );
        LocalOrg::check_metadata(&catalogue).unwrap();

        let mut catalogue = Catalogue::builtin();
        let error = merge_metadata(
            &mut catalogue,
            Path::new("meta.json"),
            "[{\"logical_name\": \"x\",\n \"atributes\": []}]",
        )
        .unwrap_err();
        assert!(error.starts_with("meta.json:2:"), "{error}");
        let error = merge_metadata(
            &mut catalogue,
            Path::new("meta.yaml"),
            "- logical_name: account\n  attributes:\n    - {logical_name: name, kind: String}\n",
        )
        .unwrap_err();
        assert!(error.contains("already a column of account"), "{error}");
        let error = merge_metadata(
            &mut catalogue,
            Path::new("meta.yaml"),
            "- logical_name: x\n  attributes:\n    - {logical_name: y, kind: Strin}\n",
        )
        .unwrap_err();
        assert!(error.starts_with("meta.yaml:3:"), "{error}");
    }
}
