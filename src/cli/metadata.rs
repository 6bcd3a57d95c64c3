//! `fetchflow metadata pull CONNECTION`: fetch a Dataverse environment's metadata (tables,
//! columns, lookup targets, option sets, state/status models) and cache it in
//! `<state dir>/metadata/<connection>.json` (`org::dataverse::metadata_cache_path`), where
//! connecting reads it instead of pulling again, and `validate`, `plan` and `run` check the
//! connection's workflows against it (`load::compile_files_by_connection`).
//!
//! Exit codes: 0 pulled and written; 1 the environment or the file failed; 2 usage (unknown
//! connection, a local connection).

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::cli::Cli;
use crate::org::dataverse::{
    DataverseOptions, DataverseOrg, DataverseSettings, metadata_cache_path, write_cache,
};

#[derive(Debug, Args)]
pub struct MetadataArgs {
    #[command(subcommand)]
    pub command: MetadataCommand,
}

#[derive(Debug, Subcommand)]
pub enum MetadataCommand {
    /// Cache a Dataverse environment's tables, columns and choices, for offline validation and faster connects.
    Pull {
        /// A `dataverse:` connection of fetchflow.yaml.
        connection: String,
    },
}

pub(crate) fn run(cli: &Cli, args: &MetadataArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        MetadataCommand::Pull { connection } => pull(cli, connection),
    }
}

fn pull(cli: &Cli, name: &str) -> anyhow::Result<ExitCode> {
    let (config, _) = crate::config::load_config(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let secrets = Arc::new(|key: &str| std::env::var(key).ok());
    match runtime.block_on(pull_into_cache(&config, name, secrets)) {
        Ok(summary) => {
            writeln!(std::io::stdout().lock(), "{summary}")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(Failure { code, message }) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(code))
        }
    }
}

/// Why a pull failed, with its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

/// Pulls the metadata of connection `name` and writes its cache file; returns the summary.
async fn pull_into_cache(
    config: &crate::config::Config,
    name: &str,
    secrets: Arc<dyn crate::template::SecretSource>,
) -> Result<String, Failure> {
    let usage = |message: String| Failure { code: 2, message };
    let failed = |message: String| Failure { code: 1, message };
    let Some((_, connection)) = config
        .connections
        .iter()
        .find(|(declared, _)| declared == name)
    else {
        return Err(usage(format!(
            "connection `{name}` is not defined; defined: {}",
            config.connection_names().join(", ")
        )));
    };
    let Some(settings) = DataverseSettings::from_connection(connection) else {
        return Err(usage(format!(
            "connection `{name}` is a local org; its metadata is in the org file, there is \
             nothing to pull"
        )));
    };
    let path = metadata_cache_path(&config.state, name);
    let catalogue =
        DataverseOrg::pull_metadata(name, &settings, secrets, DataverseOptions::default())
            .await
            .map_err(|error| failed(error.to_string()))?;
    write_cache(&path, name, &settings.url, &catalogue).map_err(|message| {
        failed(format!(
            "connection `{name}`: cannot write the metadata cache: {message}"
        ))
    })?;
    let columns: usize = catalogue
        .entities()
        .map(|entity| entity.attributes.len())
        .sum();
    Ok(format!(
        "pulled {} tables ({columns} columns) of {} into {}",
        catalogue.entities().count(),
        settings.url,
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::pull_into_cache;
    use crate::config::{Config, Connection};
    use crate::org::dataverse::test_fake;

    #[tokio::test]
    async fn pull_writes_the_cache_file_of_the_connection() {
        let (url, secrets) = test_fake::start_default().await;
        let directory = std::env::temp_dir().join(format!("ff-pull-{}", uuid::Uuid::new_v4()));
        let mut config = Config::defaults(&directory);
        config.connections.push((
            "prod".to_string(),
            Connection::Dataverse {
                url: url.clone(),
                tenant: test_fake::TENANT.to_string(),
                client_id: test_fake::CLIENT.to_string(),
                client_secret: "{{ secret('DV_SECRET') }}".to_string(),
                authority: url.clone(),
            },
        ));
        let summary = pull_into_cache(&config, "prod", secrets.clone())
            .await
            .unwrap();
        let path = directory.join(".fetchflow/metadata/prod.json");
        assert!(summary.starts_with("pulled 3 tables"), "{summary}");
        assert!(summary.ends_with(&path.display().to_string()), "{summary}");
        let catalogue = crate::org::dataverse::read_cache(&path, &url)
            .unwrap()
            .unwrap();
        assert!(catalogue.entity("account").is_some());

        let local = pull_into_cache(&config, "default", secrets.clone())
            .await
            .unwrap_err();
        assert_eq!(local.code, 2);
        assert!(local.message.contains("local org"), "{}", local.message);
        let unknown = pull_into_cache(&config, "nope", secrets).await.unwrap_err();
        assert_eq!(unknown.code, 2);
        let wrong: Arc<dyn crate::template::SecretSource> =
            Arc::new(|_: &str| Some("wrong".to_string()));
        let refused = pull_into_cache(&config, "prod", wrong).await.unwrap_err();
        assert_eq!(refused.code, 1);
        assert!(
            refused.message.starts_with("connection `prod`: POST "),
            "{}",
            refused.message
        );
        let _ = std::fs::remove_dir_all(directory);
    }
}
