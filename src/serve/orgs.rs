//! The orgs `serve` talks to, by connection name, each opened once and shared by every
//! operation on that connection. A Dataverse connection is one `DataverseOrg`, so every
//! operation on it shares its token and its service-protection budget; its metadata is cached
//! in `<state dir>/metadata/<connection>.json` (`org::dataverse::metadata_cache_path`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::{Config, Connection};
use crate::org::Org;
use crate::org::dataverse::{
    DataverseOptions, DataverseOrg, DataverseSettings, metadata_cache_path,
};
use crate::org::local::LocalOrg;
use crate::template::SecretSource;

/// Why a connection cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection `{connection}`: {message}")]
pub struct OrgUnavailable {
    pub connection: String,
    pub message: String,
}

/// Connection name → org, opened on first use.
pub struct Orgs {
    config: Option<Arc<Config>>,
    open: Mutex<HashMap<String, Arc<dyn Org>>>,
    /// Where connection settings' `secret('NAME')` values come from.
    secrets: Arc<dyn SecretSource>,
}

impl Orgs {
    /// Opens connections from `config` on demand.
    /// Opens connections from `config` on demand, with secrets from the process environment.
    pub fn from_config(config: Arc<Config>) -> Orgs {
        Orgs::from_config_with_secrets(config, Arc::new(|name: &str| std::env::var(name).ok()))
    }

    /// Opens connections from `config` on demand, with secrets from `secrets`.
    pub fn from_config_with_secrets(config: Arc<Config>, secrets: Arc<dyn SecretSource>) -> Orgs {
        Orgs {
            config: Some(config),
            open: Mutex::new(HashMap::new()),
            secrets,
        }
    }

    /// Only these orgs (tests, benchmarks).
    pub fn fixed(orgs: impl IntoIterator<Item = (String, Arc<dyn Org>)>) -> Orgs {
        Orgs {
            config: None,
            open: Mutex::new(orgs.into_iter().collect()),
            secrets: Arc::new(|_: &str| None),
        }
    }

    /// The org of `connection`, opening it on first use. The default local org is created
    /// with demo data when its file does not exist yet. Opening a Dataverse connection blocks
    /// (token, `WhoAmI`, metadata): call it from a blocking context. A connection that fails
    /// to open is not remembered, so the next call tries again.
    pub fn get(&self, connection: &str) -> Result<Arc<dyn Org>, OrgUnavailable> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(org) = open.get(connection) {
            return Ok(org.clone());
        }
        let unavailable = |message: String| OrgUnavailable {
            connection: connection.to_string(),
            message,
        };
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| unavailable("not defined".to_string()))?;
        let declared = config
            .connections
            .iter()
            .find(|(name, _)| name == connection)
            .map(|(_, declared)| declared)
            .ok_or_else(|| unavailable("not defined in the configuration".to_string()))?;
        let org: Arc<dyn Org> = match declared {
            Connection::Local { path } if connection == "default" => Arc::new(
                crate::cli::open_default_org(path)
                    .map_err(|error| unavailable(format!("{error:#}")))?,
            ),
            Connection::Local { path } => {
                Arc::new(LocalOrg::open(path).map_err(|error| unavailable(error.to_string()))?)
            }
            Connection::Dataverse { .. } => {
                let settings = DataverseSettings::from_connection(declared)
                    .ok_or_else(|| unavailable("not a Dataverse connection".to_string()))?;
                let options = DataverseOptions {
                    metadata_cache: Some(metadata_cache_path(&config.state, connection)),
                    ..DataverseOptions::default()
                };
                Arc::new(
                    DataverseOrg::connect_blocking(
                        connection,
                        &settings,
                        self.secrets.clone(),
                        options,
                    )
                    .map_err(|error| unavailable(error.detail()))?,
                )
            }
        };
        open.insert(connection.to_string(), org.clone());
        Ok(org)
    }
}
