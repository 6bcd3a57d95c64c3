//! FetchXML: the typed `Query` model with byte spans, the parser (`parse`, every grammar problem
//! in one pass, no DTDs) and the metadata checker (`check`). Pure, no I/O.
//!
//! Problem codes (errors unless marked), grammar (`parse`): `fetchxml-xml`, `fetchxml-dtd`,
//! `fetchxml-too-large`, `fetchxml-root`, `fetchxml-unknown-element`,
//! `fetchxml-misplaced-element`, `fetchxml-unexpected-text`, `fetchxml-unknown-attribute`,
//! `fetchxml-missing-attribute`, `fetchxml-invalid-value`, `fetchxml-missing-element`,
//! `fetchxml-duplicate-element`, `fetchxml-unknown-operator`, `fetchxml-value-count`,
//! `fetchxml-valueof-not-allowed`, `fetchxml-fiscal-unsupported`, `fetchxml-top-with-paging`,
//! `fetchxml-limit-exceeded`, `fetchxml-aggregate-alias`, `fetchxml-aggregate-groupby`,
//! `fetchxml-aggregate-all-attributes`, `fetchxml-aggregate-not-allowed`,
//! `fetchxml-order-needs-alias`, `fetchxml-order-needs-attribute`, `fetchxml-duplicate-alias`,
//! `fetchxml-unknown-alias`, `fetchxml-link-type-placement`, `fetchxml-too-many-conditions`,
//! `fetchxml-too-many-links`, `fetchxml-too-deep`; warnings `fetchxml-ignored-columns`,
//! `fetchxml-misplaced-attribute`, `fetchxml-deprecated-operator`.
//! Metadata (`check`): `fetchxml-unknown-entity`, `fetchxml-unknown-column`,
//! `fetchxml-link-type-mismatch`, `fetchxml-invalid-condition-value`, `fetchxml-operator-type`,
//! `fetchxml-aggregate-type`, `fetchxml-valueof-type-mismatch`.

mod checker;
pub mod model;
pub mod operator;
mod parser;

use crate::diagnostics::Problem;
use crate::metadata::Catalogue;

pub use model::{
    Aggregate, AllLinkColumns, AttributeNode, Condition, DateGrouping, EntityNode, Filter,
    FilterItem, FilterType, LinkEntity, LinkType, Order, Query, SelectedColumn, SelectedColumns,
    Span, Spanned, ValueNode,
};
pub use operator::{Arity, ColumnClass, OPERATORS, Operator, OperatorInfo, ValueKind};
pub use parser::{
    MAX_AGGREGATE_LIMIT, MAX_CONDITIONS_AND_LINKS, MAX_DEPTH, MAX_LINKS, MAX_PAGE_SIZE, is_template,
};

/// Parses FetchXML and reports every grammar problem in one pass.
///
/// The query is `Some` whenever the XML is well-formed and the `fetch` root has an `entity`
/// with a name, even when there are problems, so that `check` can report more of them; nodes
/// too broken to model (a condition without a valid operator, an attribute without a name) are
/// left out. Only run a query whose problems contain no error. Spans are byte offsets in `text`.
pub fn parse(text: &str) -> (Option<Query>, Vec<Problem>) {
    parser::parse(text)
}

/// Checks table and column names, join types, condition values, operators and aggregates
/// against the catalogue. Values holding template markers (`{{`, `{%`) are skipped.
pub fn check(query: &Query, catalogue: &Catalogue) -> Vec<Problem> {
    checker::check(query, catalogue)
}

/// A GUID with optional braces, as FetchXML condition values accept it.
pub fn is_guid(value: &str) -> bool {
    checker::is_guid(value)
}

/// The GUID in the form the local org stores it: lower-case, without braces.
pub fn normalize_guid(value: &str) -> Option<String> {
    is_guid(value).then(|| {
        value
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .to_ascii_lowercase()
    })
}

/// An ISO date or date-time, as FetchXML condition values accept it.
pub fn is_date(value: &str) -> bool {
    checker::is_date(value)
}

#[cfg(test)]
mod tests;
