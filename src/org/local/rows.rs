//! The row format of DESIGN 5.2: import and export (placeholder).

use std::collections::BTreeMap;

use crate::org::local::LocalOrg;
use crate::org::{OrgError, Row};

/// Rows keyed by entity logical name.
pub type RowSet = BTreeMap<String, Vec<Row>>;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    pub rows: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ImportError {
    pub message: String,
}

pub(crate) fn import(_org: &LocalOrg, _rows: &RowSet) -> Result<ImportReport, ImportError> {
    Err(ImportError {
        message: "import is being built".to_string(),
    })
}

pub(crate) fn export(_org: &LocalOrg, _entity: &str) -> Result<RowSet, OrgError> {
    Err(OrgError::new("NotImplemented", -1, "export is being built"))
}
