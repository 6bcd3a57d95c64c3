//! `fetchflow.yaml`: loading and checking the project configuration (DESIGN section 3).
//! Without a config file a fresh clone works: `./workflows`, state in `.fetchflow/`, and a
//! `default` local org.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use crate::compile::values::is_guid;
use crate::diagnostics::{Diagnostic, Problem};
use crate::model::{RawConfig, RawConnection};
use crate::source::SourceFile;

/// The file looked for in the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "fetchflow.yaml";

/// The checked configuration, with paths resolved against the config file's directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    pub workflows: PathBuf,
    pub state: PathBuf,
    pub connections: Vec<(String, Connection)>,
    pub server: Server,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Local {
        path: PathBuf,
    },
    Dataverse {
        url: String,
        tenant: String,
        client_id: String,
        /// Template, usually `{{ secret('NAME') }}`; rendered only when connecting.
        client_secret: String,
        authority: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub listen: String,
    /// Template of the bearer token, usually `{{ secret('NAME') }}`.
    pub token: Option<String>,
}

impl Config {
    /// The configuration of a directory without a config file.
    pub fn defaults(base: &Path) -> Self {
        Config {
            path: None,
            workflows: base.join("workflows"),
            state: base.join(".fetchflow/state.db"),
            connections: vec![(
                "default".to_string(),
                Connection::Local {
                    path: base.join(".fetchflow/org.db"),
                },
            )],
            server: Server {
                listen: "127.0.0.1:8080".to_string(),
                token: None,
            },
        }
    }

    /// The connection names a workflow may name, for `CompileContext::connections`: those of
    /// the file, or `None` without a config file (then only the implicit `default` exists).
    pub fn declared_connections(&self) -> Option<Vec<String>> {
        self.path.as_ref().map(|_| self.connection_names())
    }

    pub fn connection_names(&self) -> Vec<String> {
        self.connections
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// A config path given with `--config` that does not exist: a usage error.
#[derive(Debug, thiserror::Error)]
#[error("{path}: config file not found")]
pub struct ConfigNotFound {
    pub path: PathBuf,
}

/// Loads `explicit`, or `./fetchflow.yaml` when present, or the defaults. Problems in the
/// file come back as diagnostics beside a usable (default-filled) configuration.
pub fn load_config(explicit: Option<&Path>) -> Result<(Config, Vec<Diagnostic>), ConfigNotFound> {
    let path = match explicit {
        Some(path) if !path.is_file() => {
            return Err(ConfigNotFound {
                path: path.to_path_buf(),
            });
        }
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => PathBuf::from(DEFAULT_CONFIG_FILE),
        None => return Ok((Config::defaults(Path::new("")), Vec::new())),
    };
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let source = match crate::load::read_source(&path) {
        Ok(source) => source,
        Err(unreadable) => return Ok((Config::defaults(&base), vec![unreadable.diagnostic])),
    };
    match crate::model::parse_yaml::<RawConfig>(&source) {
        Ok(raw) => {
            let (mut config, diagnostics) = compile_config(&source, &raw, &base);
            config.path = Some(path);
            Ok((config, diagnostics))
        }
        Err(diagnostic) => {
            let mut config = Config::defaults(&base);
            config.path = Some(path);
            Ok((config, vec![*diagnostic]))
        }
    }
}

/// Checks a parsed config file; paths are resolved against `base`.
pub fn compile_config(
    source: &SourceFile,
    raw: &RawConfig,
    base: &Path,
) -> (Config, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut config = Config::defaults(base);
    let mut report = |node_offset: usize, node_len: usize, path: &str, problem: Problem| {
        diagnostics.push(Diagnostic::at(source, node_offset, node_len, path, problem));
    };
    let at = |node: &Spanned<String>| (crate::model::offset_of(node), crate::model::len_of(node));
    if let Some(workflows) = &raw.workflows {
        config.workflows = base.join(&workflows.value);
    }
    if let Some(state) = &raw.state {
        if state.value.starts_with("postgres://") || state.value.starts_with("postgresql://") {
            let (offset, len) = at(state);
            report(
                offset,
                len,
                "state",
                Problem::error(
                    "unsupported-state-store",
                    0,
                    0,
                    "PostgreSQL state stores are not supported yet",
                )
                .with_help("use a SQLite path such as .fetchflow/state.db"),
            );
        }
        config.state = base.join(&state.value);
    }
    if !raw.connections.is_empty() {
        config.connections.clear();
    }
    for (key, node) in raw.connections.iter() {
        let name = &key.value;
        let path = format!("connections.{name}");
        let connection: &RawConnection = &node.value;
        match (&connection.local, &connection.dataverse) {
            (Some(local), None) => config.connections.push((
                name.clone(),
                Connection::Local {
                    path: base.join(&local.value),
                },
            )),
            (None, Some(dataverse)) => {
                let settings = &dataverse.value;
                let url = settings.url.value.trim_end_matches('/').to_string();
                if !url.starts_with("https://") && !url.starts_with("http://") {
                    let (offset, len) = at(&settings.url);
                    report(
                        offset,
                        len,
                        &format!("{path}.dataverse.url"),
                        Problem::error("invalid-url", 0, 0, format!("`{url}` is not an https URL"))
                            .with_help(
                                "write the environment URL, e.g. https://contoso.crm.dynamics.com",
                            ),
                    );
                }
                for (field, value) in [
                    ("tenant", &settings.tenant),
                    ("client_id", &settings.client_id),
                ] {
                    if !is_guid(&value.value) {
                        let (offset, len) = at(value);
                        report(
                            offset,
                            len,
                            &format!("{path}.dataverse.{field}"),
                            Problem::error(
                                "invalid-guid",
                                0,
                                0,
                                format!("`{field}` must be a GUID"),
                            ),
                        );
                    }
                }
                if crate::template::is_literal(&settings.client_secret.value) {
                    let (offset, len) = at(&settings.client_secret);
                    report(
                        offset,
                        len,
                        &format!("{path}.dataverse.client_secret"),
                        Problem::warning("literal-secret", 0, 0, "the client secret is written in the file")
                            .with_help("read it from the environment: \"{{ secret('DATAVERSE_CLIENT_SECRET') }}\""),
                    );
                } else if let Err(problem) = crate::template::analyze(&settings.client_secret.value)
                {
                    let (offset, _) = at(&settings.client_secret);
                    report(
                        offset + problem.offset,
                        problem.len,
                        &format!("{path}.dataverse.client_secret"),
                        problem,
                    );
                }
                config.connections.push((
                    name.clone(),
                    Connection::Dataverse {
                        url,
                        tenant: settings.tenant.value.clone(),
                        client_id: settings.client_id.value.clone(),
                        client_secret: settings.client_secret.value.clone(),
                        authority: settings.authority.as_ref().map_or_else(
                            || "https://login.microsoftonline.com".to_string(),
                            |a| a.value.clone(),
                        ),
                    },
                ));
            }
            _ => {
                let offset = crate::model::offset_of(node);
                report(
                    offset,
                    0,
                    &path,
                    Problem::error(
                        "invalid-connection",
                        0,
                        0,
                        format!("connection `{name}` needs exactly one of `local` or `dataverse`"),
                    ),
                );
            }
        }
    }
    if let Some(server) = &raw.server {
        if let Some(listen) = &server.value.listen {
            if listen.value.parse::<SocketAddr>().is_err() {
                let (offset, len) = at(listen);
                report(
                    offset,
                    len,
                    "server.listen",
                    Problem::error(
                        "invalid-listen",
                        0,
                        0,
                        format!("`{}` is not an address and port", listen.value),
                    )
                    .with_help("write e.g. 127.0.0.1:8080"),
                );
            }
            config.server.listen = listen.value.clone();
        }
        config.server.token = server.value.token.as_ref().map(|token| token.value.clone());
    }
    (config, diagnostics)
}
