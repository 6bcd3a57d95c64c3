//! Deterministic demo data for the local org (placeholder).

use crate::org::OrgError;
use crate::org::local::LocalOrg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSize {
    pub accounts: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DemoReport {
    pub rows: usize,
}

pub(crate) fn populate(_org: &LocalOrg, _size: DemoSize) -> Result<DemoReport, OrgError> {
    Err(OrgError::new(
        "NotImplemented",
        -1,
        "demo data is being built",
    ))
}
