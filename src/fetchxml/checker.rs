//! `Query` × `Catalogue` → problems: unknown tables and columns, join column types, condition
//! values that don't convert to the column type, operators and aggregates invalid for a type.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::diagnostics::{Problem, did_you_mean};
use crate::fetchxml::model::{
    Aggregate, AttributeNode, Condition, EntityNode, Filter, FilterItem, LinkEntity, Order, Query,
    Span, Spanned,
};
use crate::fetchxml::operator::{ColumnClass, ValueKind};
use crate::fetchxml::parser::is_template;
use crate::metadata::{AttributeMeta, AttributeType, Catalogue, EntityMeta};

pub(crate) fn check(query: &Query, catalogue: &Catalogue) -> Vec<Problem> {
    let mut checker = Checker {
        catalogue,
        problems: Vec::new(),
        links: HashMap::new(),
        aggregate: query.aggregate,
    };
    for link in query.links() {
        if let Some(meta) = catalogue.entity(link.name.as_str()) {
            checker
                .links
                .entry(link.reference_name().to_owned())
                .or_insert(meta);
        }
    }
    checker.entity(&query.entity);
    checker.problems
}

struct Checker<'c> {
    catalogue: &'c Catalogue,
    problems: Vec<Problem>,
    /// Link reference names (alias, or name without alias) → their table.
    links: HashMap<String, &'c EntityMeta>,
    aggregate: bool,
}

impl<'c> Checker<'c> {
    fn push(&mut self, code: &'static str, span: Span, message: String, help: Option<String>) {
        let mut problem = Problem::error(code, span.offset, span.len, message);
        problem.help = help;
        self.problems.push(problem);
    }

    fn table(&mut self, name: &Spanned<String>) -> Option<&'c EntityMeta> {
        if name.value.is_empty() {
            return None;
        }
        if let Some(meta) = self.catalogue.entity(&name.value) {
            return Some(meta);
        }
        let help = did_you_mean(&name.value, self.catalogue.entity_names())
            .map(|suggestion| format!("did you mean `{suggestion}`?"))
            .or_else(|| {
                Some("add the table with `org init --metadata` or `metadata pull`".to_owned())
            });
        self.push(
            "fetchxml-unknown-entity",
            name.span,
            format!("unknown table `{}`", name.value),
            help,
        );
        None
    }

    fn column(
        &mut self,
        meta: &'c EntityMeta,
        name: &Spanned<String>,
    ) -> Option<&'c AttributeMeta> {
        self.column_at(meta, &name.value, name.span)
    }

    fn column_at(
        &mut self,
        meta: &'c EntityMeta,
        name: &str,
        span: Span,
    ) -> Option<&'c AttributeMeta> {
        if name.is_empty() || is_template(name) {
            return None;
        }
        if let Some(attribute) = meta.attribute(name) {
            return Some(attribute);
        }
        let help = did_you_mean(name, meta.attribute_names())
            .map(|suggestion| format!("did you mean `{suggestion}`?"));
        self.push(
            "fetchxml-unknown-column",
            span,
            format!("`{}` has no column `{name}`", meta.logical_name),
            help,
        );
        None
    }

    fn entity(&mut self, entity: &EntityNode) {
        let meta = self.table(&entity.name);
        self.scope(
            meta,
            &entity.attributes,
            &entity.orders,
            &entity.links,
            entity.filter.as_ref(),
        );
    }

    fn scope(
        &mut self,
        meta: Option<&'c EntityMeta>,
        attributes: &[AttributeNode],
        orders: &[Order],
        links: &[LinkEntity],
        filter: Option<&Filter>,
    ) {
        for attribute in attributes {
            self.attribute(meta, attribute);
        }
        for order in orders {
            self.order(meta, order);
        }
        for link in links {
            self.link(meta, link);
        }
        if let Some(filter) = filter {
            self.filter(meta, filter);
        }
    }

    fn attribute(&mut self, meta: Option<&'c EntityMeta>, attribute: &AttributeNode) {
        let Some(meta) = meta else { return };
        let Some(column) = self.column(meta, &attribute.name) else {
            return;
        };
        if let Some(aggregate) = &attribute.aggregate {
            let valid = match aggregate.value {
                Aggregate::Count | Aggregate::CountColumn => true,
                Aggregate::Sum | Aggregate::Avg => column.kind.is_numeric(),
                Aggregate::Min | Aggregate::Max => {
                    column.kind.is_numeric() || column.kind.is_datetime()
                }
            };
            if !valid {
                let what = if matches!(aggregate.value, Aggregate::Sum | Aggregate::Avg) {
                    "number columns"
                } else {
                    "number and date columns"
                };
                self.push(
                    "fetchxml-aggregate-type",
                    aggregate.span,
                    format!(
                        "aggregate `{}` is not supported for `{}` of type {}",
                        aggregate.value, column.logical_name, column.kind
                    ),
                    Some(format!(
                        "`{}` works on {what}; use `count` or `countcolumn` here",
                        aggregate.value
                    )),
                );
            }
        }
        if let Some(grouping) = &attribute.dategrouping
            && !column.kind.is_datetime()
        {
            self.push(
                "fetchxml-aggregate-type",
                grouping.span,
                format!(
                    "`dategrouping` needs a date column, but `{}` is of type {}",
                    column.logical_name, column.kind
                ),
                Some("remove `dategrouping` or group by a DateTime column".to_owned()),
            );
        }
    }

    fn order(&mut self, meta: Option<&'c EntityMeta>, order: &Order) {
        if self.aggregate {
            // Order aliases are resolved by `parse`.
            return;
        }
        let target = match &order.entityname {
            Some(entityname) => self.links.get(&entityname.value).copied(),
            None => meta,
        };
        if let (Some(target), Some(attribute)) = (target, &order.attribute) {
            self.column(target, attribute);
        }
    }

    fn link(&mut self, parent: Option<&'c EntityMeta>, link: &LinkEntity) {
        let meta = self.table(&link.name);
        let from = meta.and_then(|meta| self.column(meta, &link.from));
        let to = parent.and_then(|parent| self.column(parent, &link.to));
        if let (Some(from), Some(to)) = (from, to) {
            let multi = [from, to]
                .into_iter()
                .find(|column| column.kind == AttributeType::MultiSelectPicklist);
            if let Some(column) = multi {
                self.push(
                    "fetchxml-link-type-mismatch",
                    link.from.span,
                    format!(
                        "multi-select column `{}` can't be used to join",
                        column.logical_name
                    ),
                    None,
                );
            } else if join_class(from.kind) != join_class(to.kind) {
                self.push(
                    "fetchxml-link-type-mismatch",
                    link.from.span,
                    format!(
                        "data types don't match for the link-entity join attributes `{}` ({}) and `{}` ({})",
                        from.logical_name, from.kind, to.logical_name, to.kind
                    ),
                    Some("join a lookup to the primary key of its target table".to_owned()),
                );
            }
        }
        self.scope(
            meta,
            &link.attributes,
            &link.orders,
            &link.links,
            link.filter.as_ref(),
        );
    }

    fn filter(&mut self, meta: Option<&'c EntityMeta>, filter: &Filter) {
        for item in &filter.items {
            match item {
                FilterItem::Condition(condition) => self.condition(meta, condition),
                FilterItem::Filter(nested) => self.filter(meta, nested),
                FilterItem::Link(link) => self.link(meta, link),
            }
        }
    }

    fn condition(&mut self, scope: Option<&'c EntityMeta>, condition: &Condition) {
        let meta = match &condition.entityname {
            // An unknown alias is reported by `parse`.
            Some(entityname) => self.links.get(&entityname.value).copied(),
            None => scope,
        };
        let Some(meta) = meta else { return };
        let Some(column) = self.column(meta, &condition.attribute) else {
            return;
        };
        let op = condition.operator.value;
        let info = op.info();
        if !column_class_accepts(info.column, meta, column) {
            self.push(
                "fetchxml-operator-type",
                condition.operator.span,
                format!(
                    "operator `{op}` can't be used on `{}` of type {}",
                    column.logical_name, column.kind
                ),
                Some(operator_help(info.column, column)),
            );
            return;
        }
        for value in &condition.values {
            if is_template(&value.value) {
                continue;
            }
            let result = match info.value_kind {
                ValueKind::None | ValueKind::Pattern | ValueKind::Count | ValueKind::Integer => {
                    Ok(())
                }
                ValueKind::Column => check_value(column, &value.value),
                ValueKind::Date => check_date(&value.value),
                ValueKind::Guid => check_guid(&value.value),
            };
            if let Err((message, help)) = result {
                self.push(
                    "fetchxml-invalid-condition-value",
                    value.span,
                    format!("{message} for `{}` ({})", column.logical_name, column.kind),
                    help,
                );
            }
        }
        if let Some(valueof) = &condition.valueof {
            self.valueof(meta, column, valueof);
        }
    }

    fn valueof(&mut self, meta: &'c EntityMeta, column: &AttributeMeta, valueof: &Spanned<String>) {
        let (target, name, span) = match valueof.value.split_once('.') {
            Some((alias, name)) => {
                let offset = valueof.span.offset + alias.len() + 1;
                let Some(target) = self.links.get(alias).copied() else {
                    return;
                };
                (target, name, Span::new(offset, name.len()))
            }
            None => (meta, valueof.value.as_str(), valueof.span),
        };
        let Some(other) = self.column_at(target, name, span) else {
            return;
        };
        if join_class(other.kind) != join_class(column.kind) {
            self.push(
                "fetchxml-valueof-type-mismatch",
                span,
                format!(
                    "`{}` ({}) can't be compared with `{}` ({})",
                    column.logical_name, column.kind, other.logical_name, other.kind
                ),
                Some("`valueof` compares two columns of the same type".to_owned()),
            );
        }
    }
}

/// Types that can be compared with each other (join and `valueof` columns).
fn join_class(kind: AttributeType) -> AttributeType {
    match kind {
        kind if kind.is_guid() => AttributeType::Uniqueidentifier,
        AttributeType::Memo => AttributeType::String,
        AttributeType::State | AttributeType::Status | AttributeType::Picklist => {
            AttributeType::Integer
        }
        kind => kind,
    }
}

fn column_class_accepts(class: ColumnClass, meta: &EntityMeta, column: &AttributeMeta) -> bool {
    let kind = column.kind;
    match class {
        ColumnClass::Any => true,
        ColumnClass::Ordered => !matches!(
            kind,
            AttributeType::Boolean | AttributeType::MultiSelectPicklist
        ),
        ColumnClass::Range => kind.is_numeric() || kind.is_datetime(),
        ColumnClass::String => kind.is_string(),
        ColumnClass::DateTime => kind.is_datetime(),
        ColumnClass::HierarchyKey => {
            column.logical_name == meta.primary_id && meta.hierarchy_attribute().is_some()
        }
        ColumnClass::MultiSelect => kind == AttributeType::MultiSelectPicklist,
        ColumnClass::Reference => kind.is_guid(),
        ColumnClass::Integer => kind.is_whole_number(),
    }
}

fn operator_help(class: ColumnClass, column: &AttributeMeta) -> String {
    match class {
        ColumnClass::Any => String::new(),
        ColumnClass::Ordered => "comparisons work on numbers, dates, text and choices; use `eq` or `ne`".to_owned(),
        ColumnClass::Range => "`between` works on number and date columns".to_owned(),
        ColumnClass::String if column.kind.is_option_set() || column.kind.is_numeric() => {
            "text patterns work on text columns; use `eq` or `in`".to_owned()
        }
        ColumnClass::String => "text patterns work on text columns".to_owned(),
        ColumnClass::DateTime => "date operators work on DateTime columns".to_owned(),
        ColumnClass::HierarchyKey => {
            "hierarchy operators work on the primary key of a table with a hierarchical relationship, e.g. `accountid` of account".to_owned()
        }
        ColumnClass::MultiSelect => {
            "`contain-values` works on multi-select choice columns; use `in` for a choice column".to_owned()
        }
        ColumnClass::Reference => "user and business unit operators work on lookup and owner columns".to_owned(),
        ColumnClass::Integer => "`eq-userlanguage` works on whole-number columns".to_owned(),
    }
}

type ValueResult = Result<(), (String, Option<String>)>;

/// Whether `value` converts to the column's type (and, for choices, is one of its options).
fn check_value(column: &AttributeMeta, value: &str) -> ValueResult {
    let trimmed = value.trim();
    match column.kind {
        AttributeType::String | AttributeType::Memo => Ok(()),
        AttributeType::Integer => parse_int(trimmed, i64::from(i32::MIN), i64::from(i32::MAX)),
        AttributeType::BigInt => parse_int(trimmed, i64::MIN, i64::MAX),
        AttributeType::Decimal | AttributeType::Double | AttributeType::Money => {
            match trimmed.parse::<f64>() {
                Ok(number) if number.is_finite() => Ok(()),
                _ => Err((
                    format!("`{value}` is not a number"),
                    Some("use a number such as `1500` or `1500.50`".to_owned()),
                )),
            }
        }
        AttributeType::Boolean => match trimmed {
            "0" | "1" | "true" | "false" => Ok(()),
            _ => Err((
                format!("`{value}` is not a boolean"),
                Some("use `1` or `0` (or `true` / `false`)".to_owned()),
            )),
        },
        AttributeType::DateTime => check_date(value),
        AttributeType::Uniqueidentifier
        | AttributeType::Lookup
        | AttributeType::Owner
        | AttributeType::Customer => check_guid(value),
        AttributeType::Picklist
        | AttributeType::MultiSelectPicklist
        | AttributeType::State
        | AttributeType::Status => {
            let listing = || {
                (!column.options.is_empty())
                    .then(|| format!("valid values: {}", column.describe_options()))
            };
            let Ok(number) = trimmed.parse::<i32>() else {
                return Err((format!("`{value}` is not an option value"), listing()));
            };
            if column.options.is_empty() || column.option(number).is_some() {
                Ok(())
            } else {
                Err((format!("{number} is not an option"), listing()))
            }
        }
    }
}

fn parse_int(value: &str, min: i64, max: i64) -> ValueResult {
    match value.parse::<i64>() {
        Ok(number) if (min..=max).contains(&number) => Ok(()),
        Ok(_) => Err((format!("`{value}` is out of range"), None)),
        Err(_) => Err((
            format!("`{value}` is not a whole number"),
            Some("use a whole number such as `42`".to_owned()),
        )),
    }
}

/// `2023-03-15`, `2023-03-15T10:00:00Z`, with offset, fraction or without seconds.
pub(crate) fn is_date(value: &str) -> bool {
    let value = value.trim();
    NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
        || DateTime::parse_from_rfc3339(value).is_ok()
        || [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .any(|format| NaiveDateTime::parse_from_str(value, format).is_ok())
}

fn check_date(value: &str) -> ValueResult {
    if is_date(value) {
        Ok(())
    } else {
        Err((
            format!("`{value}` is not a date"),
            Some("use an ISO date such as `2023-03-15` or `2023-03-15T10:00:00Z`".to_owned()),
        ))
    }
}

/// A GUID, braces optional: `{5e000000-0000-4000-8000-000000000002}`.
pub(crate) fn is_guid(value: &str) -> bool {
    let value = value.trim();
    let inner = match value.strip_prefix('{') {
        Some(rest) => match rest.strip_suffix('}') {
            Some(inner) => inner,
            None => return false,
        },
        None => value,
    };
    let groups: Vec<&str> = inner.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_guid(value: &str) -> ValueResult {
    if is_guid(value) {
        Ok(())
    } else {
        Err((
            format!("`{value}` is not a GUID"),
            Some("use a GUID such as `5e000000-0000-4000-8000-000000000002`".to_owned()),
        ))
    }
}
