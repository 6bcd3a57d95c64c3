//! The typed FetchXML model: `Query` and its nodes, each name and value with its byte span in
//! the original text, plus the helpers that describe a query's result rows.

use std::fmt;

use crate::fetchxml::operator::Operator;
use crate::metadata::Catalogue;

/// A byte range inside the FetchXML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(offset: usize, len: usize) -> Self {
        Span { offset, len }
    }
}

/// A value with the span of its source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

impl Spanned<String> {
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

/// A whole `<fetch>` document.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The `fetch` element's name.
    pub span: Span,
    pub version: Option<Spanned<String>>,
    pub top: Option<Spanned<u32>>,
    pub count: Option<Spanned<u32>>,
    pub page: Option<Spanned<u32>>,
    pub paging_cookie: Option<Spanned<String>>,
    pub distinct: bool,
    pub aggregate: bool,
    pub aggregate_limit: Option<Spanned<u32>>,
    pub return_total_record_count: bool,
    pub no_lock: bool,
    pub use_raw_order_by: bool,
    pub late_materialize: bool,
    /// Comma-separated SQL hints (no result semantics).
    pub options: Option<Spanned<String>>,
    pub datasource: Option<Spanned<String>>,
    pub entity: EntityNode,
}

/// The root `<entity>`.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityNode {
    /// The `entity` element's name.
    pub span: Span,
    pub name: Spanned<String>,
    pub attributes: Vec<AttributeNode>,
    pub all_attributes: bool,
    pub orders: Vec<Order>,
    pub links: Vec<LinkEntity>,
    pub filter: Option<Filter>,
}

/// `<attribute>`: a selected column (or an aggregate / group of one).
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeNode {
    pub span: Span,
    pub name: Spanned<String>,
    pub alias: Option<Spanned<String>>,
    pub aggregate: Option<Spanned<Aggregate>>,
    pub groupby: bool,
    pub dategrouping: Option<Spanned<DateGrouping>>,
    /// With `countcolumn`: count distinct values only.
    pub distinct: bool,
    /// Date grouping in the user's time zone (default) or UTC (`false`).
    pub usertimezone: bool,
    /// `rowaggregate='CountChildren'`.
    pub count_children: bool,
}

/// `<order>`: by `attribute` (plain queries) or `alias` (aggregate queries).
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub span: Span,
    pub attribute: Option<Spanned<String>>,
    pub alias: Option<Spanned<String>>,
    pub descending: bool,
    /// A link-entity alias (or name) whose column sorts first.
    pub entityname: Option<Spanned<String>>,
}

/// `<link-entity>`: a join to a related table.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkEntity {
    pub span: Span,
    pub name: Spanned<String>,
    /// Column of the linked table. Empty when missing (already reported by `parse`).
    pub from: Spanned<String>,
    /// Column of the parent. Empty when missing (already reported by `parse`).
    pub to: Spanned<String>,
    pub alias: Option<Spanned<String>>,
    /// The name its columns are keyed by: `alias`, or the generated `{name}{N}` where N counts
    /// the link-entities of the document from 1.
    pub result_alias: String,
    pub link_type: LinkType,
    pub link_type_span: Option<Span>,
    pub intersect: bool,
    pub attributes: Vec<AttributeNode>,
    pub all_attributes: bool,
    pub orders: Vec<Order>,
    pub links: Vec<LinkEntity>,
    pub filter: Option<Filter>,
}

impl LinkEntity {
    /// The name `entityname` and `valueof` use for it: the alias, or the table name without one.
    pub fn reference_name(&self) -> &str {
        self.alias
            .as_ref()
            .map_or(self.name.as_str(), Spanned::as_str)
    }
}

/// `<filter>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub span: Span,
    pub kind: FilterType,
    pub hint: Option<Spanned<String>>,
    pub is_quick_find: bool,
    /// Conditions, nested filters and (any/not any/all/not all) link-entities, in document order.
    pub items: Vec<FilterItem>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterItem {
    Condition(Condition),
    Filter(Filter),
    Link(Box<LinkEntity>),
}

/// `<condition>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub span: Span,
    pub entityname: Option<Spanned<String>>,
    pub attribute: Spanned<String>,
    pub operator: Spanned<Operator>,
    /// The `value` attribute (if any) followed by the `<value>` elements.
    pub values: Vec<ValueNode>,
    /// `column` or `alias.column`.
    pub valueof: Option<Spanned<String>>,
}

/// One operand of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueNode {
    /// The unescaped text.
    pub value: String,
    pub span: Span,
    /// From the `value` attribute rather than a `<value>` element.
    pub from_attribute: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterType {
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    Inner,
    Outer,
    Any,
    NotAny,
    All,
    NotAll,
    Exists,
    In,
    MatchFirstRowUsingCrossApply,
}

impl LinkType {
    pub const ALL: [LinkType; 9] = [
        Self::Inner,
        Self::Outer,
        Self::Any,
        Self::NotAny,
        Self::All,
        Self::NotAll,
        Self::Exists,
        Self::In,
        Self::MatchFirstRowUsingCrossApply,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Inner => "inner",
            Self::Outer => "outer",
            Self::Any => "any",
            Self::NotAny => "not any",
            Self::All => "all",
            Self::NotAll => "not all",
            Self::Exists => "exists",
            Self::In => "in",
            Self::MatchFirstRowUsingCrossApply => "matchfirstrowusingcrossapply",
        }
    }

    pub fn from_name(name: &str) -> Option<LinkType> {
        Self::ALL
            .into_iter()
            .find(|link_type| link_type.name() == name)
    }

    /// `any`, `not any`, `all`, `not all`: only valid inside a `filter`.
    pub fn is_filter_only(self) -> bool {
        matches!(self, Self::Any | Self::NotAny | Self::All | Self::NotAll)
    }

    /// `inner`, `outer`, `matchfirstrowusingcrossapply`: the link's columns are returned.
    pub fn returns_columns(self) -> bool {
        matches!(
            self,
            Self::Inner | Self::Outer | Self::MatchFirstRowUsingCrossApply
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Count,
    CountColumn,
    Sum,
    Avg,
    Min,
    Max,
}

impl Aggregate {
    pub const ALL: [Aggregate; 6] = [
        Self::Count,
        Self::CountColumn,
        Self::Sum,
        Self::Avg,
        Self::Min,
        Self::Max,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::CountColumn => "countcolumn",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
        }
    }

    pub fn from_name(name: &str) -> Option<Aggregate> {
        Self::ALL
            .into_iter()
            .find(|aggregate| aggregate.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateGrouping {
    Day,
    Week,
    Month,
    Quarter,
    Year,
    FiscalPeriod,
    FiscalYear,
}

impl DateGrouping {
    pub const ALL: [DateGrouping; 7] = [
        Self::Day,
        Self::Week,
        Self::Month,
        Self::Quarter,
        Self::Year,
        Self::FiscalPeriod,
        Self::FiscalYear,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
            Self::FiscalPeriod => "fiscal-period",
            Self::FiscalYear => "fiscal-year",
        }
    }

    pub fn from_name(name: &str) -> Option<DateGrouping> {
        Self::ALL
            .into_iter()
            .find(|grouping| grouping.name() == name)
    }
}

macro_rules! display_by_name {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    )*};
}
display_by_name!(LinkType, Aggregate, DateGrouping);

/// Which keys a result row of a query can have (DESIGN 5.2, reference §7 and §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedColumns {
    /// The root table's logical name.
    pub root_entity: String,
    /// Every column of the root table can appear (`all-attributes` or no `attribute` elements).
    pub all_root: bool,
    /// The root primary key is always returned (every non-distinct, non-aggregate query).
    pub includes_primary_key: bool,
    /// Link aliases whose every column can appear as `alias.column`.
    pub all_link: Vec<AllLinkColumns>,
    /// The keys of explicitly selected columns, in document order.
    pub columns: Vec<SelectedColumn>,
}

/// A link-entity with `all-attributes` (or no `attribute` elements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllLinkColumns {
    pub alias: String,
    pub entity: String,
}

/// One explicitly selected column and the key it is returned under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedColumn {
    /// The row key: the logical name, `alias.column`, or the attribute alias.
    pub key: String,
    /// The table the column belongs to.
    pub entity: String,
    pub column: String,
    /// The link's result alias, `None` for root columns.
    pub link_alias: Option<String>,
    pub aggregate: Option<Aggregate>,
}

impl SelectedColumns {
    /// Whether `key` can appear in a result row, using the catalogue for `all-attributes` and
    /// the primary key. Unknown tables allow any column.
    pub fn allows(&self, key: &str, catalogue: &Catalogue) -> bool {
        if self.columns.iter().any(|column| column.key == key) {
            return true;
        }
        let root = catalogue.entity(&self.root_entity);
        if self.includes_primary_key && root.is_some_and(|meta| meta.primary_id == key) {
            return true;
        }
        if self.all_root && !key.contains('.') {
            return root.is_none_or(|meta| meta.attribute(key).is_some());
        }
        if let Some((alias, column)) = key.split_once('.') {
            return self.all_link.iter().any(|link| {
                link.alias == alias
                    && catalogue
                        .entity(&link.entity)
                        .is_none_or(|meta| meta.attribute(column).is_some())
            });
        }
        false
    }
}

impl Query {
    pub fn root_entity(&self) -> &str {
        self.entity.name.as_str()
    }

    /// The keys a result row can have: root columns by logical name (or alias), link columns as
    /// `alias.column` (or the attribute alias), aggregates by alias.
    pub fn selected_columns(&self) -> SelectedColumns {
        let mut selected = SelectedColumns {
            root_entity: self.entity.name.value.clone(),
            all_root: !self.aggregate
                && (self.entity.all_attributes || self.entity.attributes.is_empty()),
            includes_primary_key: !self.distinct && !self.aggregate,
            all_link: Vec::new(),
            columns: Vec::new(),
        };
        for attribute in &self.entity.attributes {
            selected.columns.push(SelectedColumn {
                key: attribute
                    .alias
                    .as_ref()
                    .map_or(&attribute.name.value, |alias| &alias.value)
                    .clone(),
                entity: self.entity.name.value.clone(),
                column: attribute.name.value.clone(),
                link_alias: None,
                aggregate: attribute
                    .aggregate
                    .as_ref()
                    .map(|aggregate| aggregate.value),
            });
        }
        for link in &self.entity.links {
            collect_link_columns(link, self.aggregate, &mut selected);
        }
        selected
    }

    /// Every link-entity of the document in document order (including those inside filters).
    pub fn links(&self) -> Vec<&LinkEntity> {
        let mut links = Vec::new();
        collect_links(&self.entity.links, self.entity.filter.as_ref(), &mut links);
        links
    }
}

fn collect_links<'a>(
    links: &'a [LinkEntity],
    filter: Option<&'a Filter>,
    out: &mut Vec<&'a LinkEntity>,
) {
    for link in links {
        out.push(link);
        collect_links(&link.links, link.filter.as_ref(), out);
    }
    if let Some(filter) = filter {
        collect_filter_links(filter, out);
    }
}

fn collect_filter_links<'a>(filter: &'a Filter, out: &mut Vec<&'a LinkEntity>) {
    for item in &filter.items {
        match item {
            FilterItem::Condition(_) => {}
            FilterItem::Filter(nested) => collect_filter_links(nested, out),
            FilterItem::Link(link) => {
                out.push(link);
                collect_links(&link.links, link.filter.as_ref(), out);
            }
        }
    }
}

fn collect_link_columns(link: &LinkEntity, aggregate: bool, selected: &mut SelectedColumns) {
    if !link.link_type.returns_columns() {
        return;
    }
    if !aggregate && (link.all_attributes || link.attributes.is_empty()) {
        // A link with no attribute elements returns no columns unless it says all-attributes.
        if link.all_attributes {
            selected.all_link.push(AllLinkColumns {
                alias: link.result_alias.clone(),
                entity: link.name.value.clone(),
            });
        }
    }
    for attribute in &link.attributes {
        let key = match (&attribute.alias, link.link_type) {
            (Some(alias), _) => alias.value.clone(),
            (None, LinkType::MatchFirstRowUsingCrossApply) => attribute.name.value.clone(),
            (None, _) => format!("{}.{}", link.result_alias, attribute.name.value),
        };
        selected.columns.push(SelectedColumn {
            key,
            entity: link.name.value.clone(),
            column: attribute.name.value.clone(),
            link_alias: Some(link.result_alias.clone()),
            aggregate: attribute
                .aggregate
                .as_ref()
                .map(|aggregate| aggregate.value),
        });
    }
    for nested in &link.links {
        collect_link_columns(nested, aggregate, selected);
    }
}
