//! Running a FetchXML query on the local org (placeholder).

use crate::org::local::LocalOrg;
use crate::org::{OrgError, Page, PageRequest};

pub(crate) fn run(
    _org: &LocalOrg,
    _fetchxml: &str,
    _request: &PageRequest,
) -> Result<Page, OrgError> {
    Err(OrgError::new(
        "NotImplemented",
        -1,
        "queries are being built",
    ))
}
