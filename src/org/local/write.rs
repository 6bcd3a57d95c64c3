//! Batches of writes on the local org (placeholder).

use crate::org::local::LocalOrg;
use crate::org::{OrgError, RecordError, Write};

pub(crate) fn apply(
    _org: &LocalOrg,
    _writes: &[Write],
) -> Result<Vec<Result<(), RecordError>>, OrgError> {
    Err(OrgError::new(
        "NotImplemented",
        -1,
        "writes are being built",
    ))
}
