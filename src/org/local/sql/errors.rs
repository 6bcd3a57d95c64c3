//! Errors of the FetchXML engine worded and numbered as Dataverse words and numbers them
//! (reference §11): the parser's and checker's problem codes mapped to Dataverse error names.
//!
//! Numbers come from Dataverse's `ErrorCodes` (`QueryBuilder*` block 0x80041100..,
//! `InvalidXml`, `InvalidArgument`, `NotSupported`) and the documented limits
//! (`TooManyConditionsInQuery` 0x8004430C, link-entities 0x8004430D, aggregate 0x8004E023).
//! Names whose number no public source gives are marked INVENTED and use numbers from the
//! 0x80041180.. range, which the `QueryBuilder*` block does not reach.

use crate::diagnostics::Problem;
use crate::org::OrgError;

/// A Dataverse error number given as its unsigned HRESULT spelling.
const fn hresult(code: u32) -> i64 {
    code as i32 as i64
}

pub(crate) const INVALID_XML: i64 = hresult(0x8004_0201);
pub(crate) const INVALID_ARGUMENT: i64 = hresult(0x8004_0203);
pub(crate) const NOT_SUPPORTED: i64 = -2_147_220_715;
pub(crate) const QUERY_BUILDER_NO_ENTITY: i64 = hresult(0x8004_1102);
pub(crate) const QUERY_BUILDER_NO_ATTRIBUTE: i64 = hresult(0x8004_1103);
pub(crate) const QUERY_BUILDER_ATTRIBUTE_WITH_AGGREGATE: i64 = hresult(0x8004_1107);
pub(crate) const QUERY_BUILDER_INVALID_VALUE: i64 = hresult(0x8004_1108);
pub(crate) const QUERY_BUILDER_INVALID_ALIAS: i64 = hresult(0x8004_1109);
pub(crate) const QUERY_BUILDER_ALIAS_DOES_NOT_EXIST: i64 = hresult(0x8004_110A);
pub(crate) const QUERY_BUILDER_VALUE_GREATER_THAN_ZERO: i64 = hresult(0x8004_110C);
pub(crate) const QUERY_BUILDER_DESERIALIZE_INVALID_DISTINCT: i64 = hresult(0x8004_1115);
pub(crate) const QUERY_BUILDER_DESERIALIZE_INVALID_DESCENDING: i64 = hresult(0x8004_1119);
pub(crate) const QUERY_BUILDER_DESERIALIZE_INVALID_LINK_TYPE: i64 = hresult(0x8004_1117);
pub(crate) const QUERY_BUILDER_DESERIALIZE_INVALID_AGGREGATE: i64 = hresult(0x8004_111A);
pub(crate) const QUERY_BUILDER_DESERIALIZE_INVALID_NODE: i64 = hresult(0x8004_111C);
pub(crate) const QUERY_BUILDER_ATTRIBUTE_NOT_FOUND: i64 = hresult(0x8004_111E);
pub(crate) const QUERY_BUILDER_INVALID_CONDITION_OPERATOR: i64 = hresult(0x8004_1120);
pub(crate) const QUERY_BUILDER_INVALID_FILTER_TYPE: i64 = hresult(0x8004_1122);
pub(crate) const QUERY_BUILDER_ELEMENT_NOT_FOUND: i64 = hresult(0x8004_1123);
pub(crate) const TOO_MANY_CONDITIONS_IN_QUERY: i64 = hresult(0x8004_430C);
pub(crate) const TOO_MANY_LINK_ENTITIES_IN_QUERY: i64 = hresult(0x8004_430D);
pub(crate) const AGGREGATE_QUERY_RECORD_LIMIT: i64 = -2_147_164_125;
/// INVENTED number.
pub(crate) const QUERY_BUILDER_DUPLICATE_ALIAS: i64 = hresult(0x8004_1180);
/// INVENTED number.
pub(crate) const QUERY_BUILDER_LINK_ATTRIBUTES_TYPE_MISMATCH: i64 = hresult(0x8004_1181);
/// INVENTED number.
pub(crate) const QUERY_BUILDER_INVALID_AGGREGATE_ATTRIBUTE: i64 = hresult(0x8004_1182);
/// INVENTED number.
pub(crate) const QUERY_BUILDER_ATTRIBUTE_CANNOT_BE_GROUP_BY_AND_AGGREGATE: i64 =
    hresult(0x8004_1183);
/// INVENTED number.
pub(crate) const QUERY_BUILDER_ORDER_BY: i64 = hresult(0x8004_1184);
/// INVENTED number.
pub(crate) const QUERY_BUILDER_INVALID_PAGING_COOKIE: i64 = hresult(0x8004_1185);
/// INVENTED number.
pub(crate) const QUERY_BUILDER_PAGING_ORDER_BY: i64 = hresult(0x8004_1186);
/// INVENTED number.
pub(crate) const QUERY_BUILDER_INVALID_DATE_GROUPING: i64 = hresult(0x8004_1188);
/// INVENTED number.
pub(crate) const QUERY_BUILDER_DESERIALIZE_INVALID_NO_LOCK: i64 = hresult(0x8004_1189);
/// INVENTED number.
pub(crate) const QUERY_BUILDER_DESERIALIZE_INVALID_GROUP_BY: i64 = hresult(0x8004_118A);
/// INVENTED number.
pub(crate) const QUERY_BUILDER_DESERIALIZE_INVALID_USE_RAW_ORDER_BY: i64 = hresult(0x8004_118B);
/// INVENTED number: simple paging (a page without cookie) past Dataverse's 50,000 rows.
pub(crate) const QUERY_BUILDER_PAGING_LIMIT: i64 = hresult(0x8004_1187);

/// An error with Dataverse's sentence followed by what exactly is wrong.
pub(crate) fn error(code: &'static str, number: i64, sentence: &str, detail: &str) -> OrgError {
    let message = if detail.is_empty() {
        sentence.to_owned()
    } else {
        format!("{sentence} ({detail})")
    };
    OrgError::new(code, number, message)
}

pub(crate) fn no_attribute(detail: &str) -> OrgError {
    error(
        "QueryBuilderNoAttribute",
        QUERY_BUILDER_NO_ATTRIBUTE,
        "The specified attribute does not exist on this entity.",
        detail,
    )
}

pub(crate) fn no_entity(detail: &str) -> OrgError {
    error(
        "QueryBuilderNoEntity",
        QUERY_BUILDER_NO_ENTITY,
        "The specified entity was not found.",
        detail,
    )
}

pub(crate) fn invalid_value(detail: &str) -> OrgError {
    error(
        "QueryBuilderInvalid_Value",
        QUERY_BUILDER_INVALID_VALUE,
        "Invalid value specified for type.",
        detail,
    )
}

pub(crate) fn alias_does_not_exist(detail: &str) -> OrgError {
    error(
        "QueryBuilderAlias_Does_Not_Exist",
        QUERY_BUILDER_ALIAS_DOES_NOT_EXIST,
        "The specified alias does not exist.",
        detail,
    )
}

pub(crate) fn not_supported(detail: &str) -> OrgError {
    error(
        "NotSupported",
        NOT_SUPPORTED,
        "The operation is not supported.",
        detail,
    )
}

pub(crate) fn invalid_argument(detail: &str) -> OrgError {
    error(
        "InvalidArgument",
        INVALID_ARGUMENT,
        "Invalid argument.",
        detail,
    )
}

pub(crate) fn aggregate_limit() -> OrgError {
    OrgError::new(
        "AggregateQueryRecordLimit",
        AGGREGATE_QUERY_RECORD_LIMIT,
        "AggregateQueryRecordLimit exceeded. Cannot perform this operation.",
    )
}

/// The Dataverse error for the parser's or checker's problem.
pub(crate) fn from_problem(problem: &Problem) -> OrgError {
    let detail = match &problem.help {
        Some(help) if !help.is_empty() => format!("{}; {help}", problem.message),
        _ => problem.message.clone(),
    };
    let (code, number, sentence) = match problem.code {
        "fetchxml-xml"
        | "fetchxml-dtd"
        | "fetchxml-too-large"
        | "fetchxml-root"
        | "fetchxml-unexpected-text"
        | "fetchxml-unknown-attribute"
        | "fetchxml-too-deep"
        | "fetchxml-duplicate-element" => ("InvalidXml", INVALID_XML, "Invalid XML."),
        "fetchxml-unknown-element" | "fetchxml-misplaced-element" => (
            "QueryBuilderDeserializeInvalidNode",
            QUERY_BUILDER_DESERIALIZE_INVALID_NODE,
            "The element node encountered is invalid.",
        ),
        "fetchxml-missing-attribute" => (
            "QueryBuilderAttributeNotFound",
            QUERY_BUILDER_ATTRIBUTE_NOT_FOUND,
            "A required attribute was not specified.",
        ),
        "fetchxml-missing-element" => (
            "QueryBuilderElementNotFound",
            QUERY_BUILDER_ELEMENT_NOT_FOUND,
            "A required element was not specified.",
        ),
        "fetchxml-invalid-value" => invalid_value_error(&problem.message),
        "fetchxml-unknown-operator" | "fetchxml-operator-type" => (
            "QueryBuilderInvalidConditionOperator",
            QUERY_BUILDER_INVALID_CONDITION_OPERATOR,
            "Unsupported condition operator.",
        ),
        "fetchxml-value-count"
        | "fetchxml-valueof-not-allowed"
        | "fetchxml-top-with-paging"
        | "fetchxml-limit-exceeded"
        | "fetchxml-valueof-type-mismatch" => {
            ("InvalidArgument", INVALID_ARGUMENT, "Invalid argument.")
        }
        "fetchxml-fiscal-unsupported" => (
            "NotSupported",
            NOT_SUPPORTED,
            "The operation is not supported.",
        ),
        "fetchxml-aggregate-alias" => (
            "QueryBuilderInvalid_Alias",
            QUERY_BUILDER_INVALID_ALIAS,
            "Invalid alias for aggregate operation.",
        ),
        "fetchxml-aggregate-groupby" if problem.message.contains("both") => (
            "QueryBuilderAttributeCannotBeGroupByAndAggregate",
            QUERY_BUILDER_ATTRIBUTE_CANNOT_BE_GROUP_BY_AND_AGGREGATE,
            "An attribute cannot be both groupby and aggregate.",
        ),
        "fetchxml-aggregate-groupby" | "fetchxml-aggregate-all-attributes" => (
            "QueryBuilderAttribute_With_Aggregate",
            QUERY_BUILDER_ATTRIBUTE_WITH_AGGREGATE,
            "Attributes can not be returned when aggregate operation is specified.",
        ),
        "fetchxml-aggregate-not-allowed" => (
            "QueryBuilderDeserializeInvalidAggregate",
            QUERY_BUILDER_DESERIALIZE_INVALID_AGGREGATE,
            "The only valid values for aggregate are 'count', 'countcolumn', 'sum', 'avg', 'min' and 'max', and only in an aggregate query.",
        ),
        "fetchxml-order-needs-alias" => (
            "QueryBuilderAttributeNotAllowedForAggregateOrderBy",
            QUERY_BUILDER_ORDER_BY,
            "An attribute cannot be specified for an order clause for an aggregate Query. Use an alias.",
        ),
        "fetchxml-order-needs-attribute" => (
            "QueryBuilderAliasNotAllowedForNonAggregateOrderBy",
            QUERY_BUILDER_ORDER_BY,
            "An alias cannot be specified for an order clause for a non-aggregate Query. Use an attribute.",
        ),
        "fetchxml-duplicate-alias" => (
            "QueryBuilderDuplicateAlias",
            QUERY_BUILDER_DUPLICATE_ALIAS,
            "FetchXML should have unique aliases.",
        ),
        "fetchxml-unknown-alias" => (
            "QueryBuilderAlias_Does_Not_Exist",
            QUERY_BUILDER_ALIAS_DOES_NOT_EXIST,
            "The specified alias does not exist.",
        ),
        "fetchxml-link-type-placement" => (
            "QueryBuilderDeserializeInvalidLinkType",
            QUERY_BUILDER_DESERIALIZE_INVALID_LINK_TYPE,
            "The link-type is not valid here.",
        ),
        "fetchxml-too-many-conditions" => (
            "TooManyConditionsInQuery",
            TOO_MANY_CONDITIONS_IN_QUERY,
            "Number of conditions in query exceeded maximum limit.",
        ),
        "fetchxml-too-many-links" => (
            "TooManyLinkEntitiesInQuery",
            TOO_MANY_LINK_ENTITIES_IN_QUERY,
            "Number of link entities in query exceeded maximum limit.",
        ),
        "fetchxml-unknown-entity" => (
            "QueryBuilderNoEntity",
            QUERY_BUILDER_NO_ENTITY,
            "The specified entity was not found.",
        ),
        "fetchxml-unknown-column" => (
            "QueryBuilderNoAttribute",
            QUERY_BUILDER_NO_ATTRIBUTE,
            "The specified attribute does not exist on this entity.",
        ),
        "fetchxml-link-type-mismatch" => (
            "QueryBuilderLinkAttributesTypeMismatch",
            QUERY_BUILDER_LINK_ATTRIBUTES_TYPE_MISMATCH,
            "Data Types don't match for the link-entity join attributes.",
        ),
        "fetchxml-invalid-condition-value" => (
            "QueryBuilderInvalid_Value",
            QUERY_BUILDER_INVALID_VALUE,
            "Invalid value specified for type.",
        ),
        "fetchxml-aggregate-type" => (
            "QueryBuilderInvalidAggregateAttribute",
            QUERY_BUILDER_INVALID_AGGREGATE_ATTRIBUTE,
            "Aggregate is not supported for attribute of this type.",
        ),
        _ => ("InvalidArgument", INVALID_ARGUMENT, "Invalid argument."),
    };
    error(code, number, sentence, &detail)
}

/// A boolean attribute with another value than `true`, `false`, `1`, `0` (ERRCODES
/// `QueryBuilderDeserializeInvalid{Distinct,NoLock,Descending,GroupBy,UseRawOrderBy}`).
fn invalid_boolean(attribute: &str) -> (&'static str, i64, &'static str) {
    match attribute {
        "distinct" => (
            "QueryBuilderDeserializeInvalidDistinct",
            QUERY_BUILDER_DESERIALIZE_INVALID_DISTINCT,
            "The only valid values for distinct attribute are 'true', 'false', '1', and '0'.",
        ),
        "descending" => (
            "QueryBuilderDeserializeInvalidDescending",
            QUERY_BUILDER_DESERIALIZE_INVALID_DESCENDING,
            "The only valid values for descending attribute are 'true', 'false', '1', and '0'.",
        ),
        "aggregate" => (
            "QueryBuilderDeserializeInvalidAggregate",
            QUERY_BUILDER_DESERIALIZE_INVALID_AGGREGATE,
            "The only valid values for aggregate attribute are 'true', 'false', '1', and '0'.",
        ),
        "no-lock" => (
            "QueryBuilderDeserializeInvalidNoLock",
            QUERY_BUILDER_DESERIALIZE_INVALID_NO_LOCK,
            "The only valid values for no-lock attribute are 'true', 'false', '1', and '0'.",
        ),
        "groupby" => (
            "QueryBuilderDeserializeInvalidGroupBy",
            QUERY_BUILDER_DESERIALIZE_INVALID_GROUP_BY,
            "The only valid values for groupby attribute are 'true', 'false', '1', and '0'.",
        ),
        "useraworderby" => (
            "QueryBuilderDeserializeInvalidUseRawOrderBy",
            QUERY_BUILDER_DESERIALIZE_INVALID_USE_RAW_ORDER_BY,
            "The only valid values for useraworderby attribute are 'true', 'false', '1', and '0'.",
        ),
        _ => (
            "QueryBuilderDeserializeInvalidNode",
            QUERY_BUILDER_DESERIALIZE_INVALID_NODE,
            "The only valid values for this attribute are 'true', 'false', '1', and '0'.",
        ),
    }
}

/// `fetchxml-invalid-value` covers several Dataverse errors; the message names the attribute.
fn invalid_value_error(message: &str) -> (&'static str, i64, &'static str) {
    if message.contains("`link-type`") {
        (
            "QueryBuilderDeserializeInvalidLinkType",
            QUERY_BUILDER_DESERIALIZE_INVALID_LINK_TYPE,
            "The only valid values for link-type attribute are 'natural', 'inner','in','exists','matchfirstrowusingcrossapply' and 'outer'.",
        )
    } else if message.contains("`type`") {
        (
            "QueryBuilderInvalidFilterType",
            QUERY_BUILDER_INVALID_FILTER_TYPE,
            "Unsupported filter type. Valid values are 'and', or 'or'.",
        )
    } else if message.contains("positive integer") {
        (
            "QueryBuilderValue_GreaterThanZero",
            QUERY_BUILDER_VALUE_GREATER_THAN_ZERO,
            "A value greater than zero must be specified.",
        )
    } else if message.contains("`aggregate`") {
        (
            "QueryBuilderDeserializeInvalidAggregate",
            QUERY_BUILDER_DESERIALIZE_INVALID_AGGREGATE,
            "The only valid values for aggregate are 'count', 'countcolumn', 'sum', 'avg', 'min' and 'max'.",
        )
    } else if message.contains("`dategrouping`") {
        (
            "QueryBuilderInvalidDateGrouping",
            QUERY_BUILDER_INVALID_DATE_GROUPING,
            "Invalid date grouping.",
        )
    } else if message.contains("must be a boolean") {
        invalid_boolean(message.split('`').nth(1).unwrap_or_default())
    } else {
        (
            "QueryBuilderInvalid_Value",
            QUERY_BUILDER_INVALID_VALUE,
            "Invalid value specified for type.",
        )
    }
}
