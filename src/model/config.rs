//! Raw `fetchflow.yaml` (DESIGN section 3): directories, state store, connections, server.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::model::SpannedMap;

/// The optional project configuration file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(rename = "Config")]
#[serde(deny_unknown_fields)]
#[schemars(title = "fetchflow configuration")]
pub struct RawConfig {
    /// Directory of workflow files watched by `serve`; default `workflows`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub workflows: Option<Spanned<String>>,
    /// Background-operation store: a SQLite path; default `.fetchflow/state.db`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub state: Option<Spanned<String>>,
    /// Named connections; `default` is used by workflows that name none.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawConnection>")]
    pub connections: SpannedMap<Spanned<RawConnection>>,
    /// The HTTP server of `serve`.
    #[serde(default)]
    #[schemars(with = "Option<RawServer>")]
    pub server: Option<Spanned<RawServer>>,
}

/// A connection: exactly one of `local` or `dataverse`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Connection")]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["local"]}, {"required": ["dataverse"]}]))]
pub struct RawConnection {
    /// Path of an embedded local org (SQLite file).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub local: Option<Spanned<String>>,
    /// A Dataverse environment reached through its Web API.
    #[serde(default)]
    #[schemars(with = "Option<RawDataverse>")]
    pub dataverse: Option<Spanned<RawDataverse>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Dataverse")]
#[serde(deny_unknown_fields)]
pub struct RawDataverse {
    /// Environment URL, e.g. https://contoso.crm.dynamics.com
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    /// Entra ID tenant id.
    #[schemars(with = "String")]
    pub tenant: Spanned<String>,
    /// Application (client) id.
    #[schemars(with = "String")]
    pub client_id: Spanned<String>,
    /// Client secret, usually `{{ secret('NAME') }}`.
    #[schemars(with = "String")]
    pub client_secret: Spanned<String>,
    /// OAuth authority; default https://login.microsoftonline.com
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub authority: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(rename = "Server")]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Listen address; default 127.0.0.1:8080.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub listen: Option<Spanned<String>>,
    /// Bearer token for mutating endpoints, usually `{{ secret('NAME') }}`; required off loopback.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub token: Option<Spanned<String>>,
}
