//! FetchXML → SQL for the local org: a parsed and checked `Query` becomes one SELECT over the
//! typed tables (storage conventions of `org::local`), with every user value bound as a
//! numbered parameter and every identifier taken from the catalogue through `quote`.
//!
//! The compiled statement (`Compiled::inner`) selects the result columns `c0..cN` and the
//! order keys `k0..kM`; `query.rs` wraps it for paging (`SELECT * FROM (inner) WHERE <keyset>
//! ORDER BY k.. LIMIT ..`), which SQLite flattens so indexes still serve plain queries.
//!
//! Semantics (DESIGN 5.3, reference fetchxml.md), with the choices the reference leaves open:
//! - joins: `inner`/`outer` are JOIN/LEFT JOIN with the link's filter in the ON clause;
//!   `matchfirstrowusingcrossapply` joins the matching row with the smallest primary key;
//!   `exists`/`any` are EXISTS, `in` is IN (subquery), `not any` NOT EXISTS; `all` is the SQL of
//!   filter-rows.md §6.3 (`EXISTS(related) AND NOT EXISTS(related AND filter)`) and `not all`
//!   is `any` — the revision of the documentation that gives SQL (reference §6.3);
//! - ordering: root orders (and `entityname` orders) in document position, then link orders;
//!   strings by `ff_ci`; choices by their catalogue label (`CASE` over the options) and lookups
//!   by the primary name of the referenced row (a correlated subquery), unless `useraworderby`;
//!   nulls first ascending, last descending (SQLite's default, as SQL Server); then the primary
//!   keys of the root and of every joined link as tie-breakers (all selected columns for
//!   `distinct` and aggregate queries), so that keyset paging is exact. A `distinct` query
//!   ordered by a column it does not select also distinguishes rows by that column;
//! - aggregates: `avg` of a whole-number column is truncated to an integer (SQL Server `AVG`
//!   of `int`); `sum`/`min`/`max` of no values are null (omitted); `dategrouping` yields
//!   integers in UTC: day of month, week of year as SQL Server `DATEPART(week)` with
//!   `DATEFIRST 7` (week 1 holds January 1st, weeks start on Sunday), month, quarter, year;
//! - user operators: `eq-userid`/`ne-userid` compare with the caller (`LocalOrg::caller`);
//!   without a caller `eq-*` match nothing and `ne-*` match everything; `eq-businessid` uses
//!   the caller's `systemuser.businessunitid`; team operators use a `teammembership` table
//!   (`teamid`, `systemuserid`) when the catalogue has one, else the caller is in no team;
//!   `eq-useroruserhierarchy(andteams)` is treated as the user (and teams) alone, since the
//!   local org has no hierarchy security; `eq-userlanguage` compares with 1033 (English), the
//!   only language the local org has;
//! - hierarchy operators walk the table's hierarchical lookup with a recursive CTE, at most
//!   100 levels; `not-under` keeps the anchor record (it is not below itself);
//! - on a multi-select column `eq`/`in` behave as `contain-values`, `ne`/`not-in` as
//!   `not-contain-values` (values are stored as a JSON array);
//! - `like` and its relatives run `ff_like` (T-SQL LIKE, see `collation`); a pattern that
//!   starts with literal text also gets the range `prefix <= column < prefix || U+10FFFF` so an
//!   index on the column finds the candidates (a value with U+10FFFF right after the prefix
//!   would be missed — a noncharacter);
//! - aggregate orders sort by the aliased value itself (no label or name order).

mod condition;
pub(crate) mod dates;
pub(crate) mod errors;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;

use crate::fetchxml::{
    Aggregate, AttributeNode, DateGrouping, Filter, FilterItem, FilterType, LinkEntity, LinkType,
    Order, Query,
};
use crate::metadata::{AttributeMeta, AttributeType, Catalogue, EntityMeta};
use crate::org::OrgError;
use crate::org::local::{COLLATION, quote};

/// What a query may depend on besides its text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Environment<'a> {
    pub(crate) catalogue: &'a Catalogue,
    pub(crate) now: DateTime<Utc>,
    /// The calling systemuser's id, lower-case.
    pub(crate) caller: Option<&'a str>,
}

/// How a result column's SQL value becomes a JSON value (DESIGN 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conversion {
    /// Text as stored: strings, date-times, GUIDs.
    Text,
    Integer,
    /// Money, decimal, double, averages of them.
    Real,
    /// 0/1 → false/true.
    Boolean,
    /// A JSON array stored as text.
    MultiSelect,
    /// An average of a whole-number column, truncated toward zero.
    Truncated,
}

impl Conversion {
    fn of(kind: AttributeType) -> Self {
        match kind {
            AttributeType::Integer
            | AttributeType::BigInt
            | AttributeType::Picklist
            | AttributeType::State
            | AttributeType::Status => Conversion::Integer,
            AttributeType::Decimal | AttributeType::Double | AttributeType::Money => {
                Conversion::Real
            }
            AttributeType::Boolean => Conversion::Boolean,
            AttributeType::MultiSelectPicklist => Conversion::MultiSelect,
            AttributeType::String
            | AttributeType::Memo
            | AttributeType::DateTime
            | AttributeType::Uniqueidentifier
            | AttributeType::Lookup
            | AttributeType::Owner
            | AttributeType::Customer => Conversion::Text,
        }
    }
}

/// One column of the result rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutputColumn {
    /// The row key (DESIGN 5.2).
    pub(crate) key: String,
    pub(crate) conversion: Conversion,
}

/// One order key of the compiled statement (`k0..kM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderKey {
    pub(crate) descending: bool,
    /// Compared with the `ff_ci` collation.
    pub(crate) text: bool,
    /// What the key is, for the paging cookie (`name`, `a.name`, `accountid`).
    pub(crate) name: String,
}

/// A compiled query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compiled {
    /// `SELECT <c0..cN>, <k0..kM> FROM .. WHERE .. [GROUP BY ..]`, without order or limit.
    pub(crate) inner: String,
    /// `FROM .. WHERE ..` alone: the rows an aggregate runs over.
    pub(crate) from_where: String,
    /// Parameters `?1..` of `inner` and `from_where`.
    pub(crate) params: Vec<Value>,
    pub(crate) columns: Vec<OutputColumn>,
    pub(crate) keys: Vec<OrderKey>,
    /// Index in `columns` of the root primary key (absent for distinct and aggregates).
    pub(crate) primary_key: Option<usize>,
    pub(crate) aggregate: bool,
}

/// Compiles a query that `fetchxml::parse` and `fetchxml::check` accepted.
pub(crate) fn compile(query: &Query, environment: Environment<'_>) -> Result<Compiled, OrgError> {
    let catalogue = environment.catalogue;
    let root_meta = catalogue
        .entity(query.root_entity())
        .ok_or_else(|| errors::no_entity(&format!("unknown table `{}`", query.root_entity())))?;
    let mut compiler = Compiler {
        environment,
        params: Vec::new(),
        links: HashMap::new(),
        references: HashMap::new(),
        visible: vec!["t0".to_owned()],
        use_raw_order_by: query.use_raw_order_by,
        next_alias: 0,
    };
    for (index, link) in query.links().into_iter().enumerate() {
        let meta = catalogue
            .entity(link.name.as_str())
            .ok_or_else(|| errors::no_entity(&format!("unknown table `{}`", link.name.value)))?;
        let alias = format!("t{}", index + 1);
        compiler
            .references
            .entry(link.reference_name().to_owned())
            .or_insert_with(|| (alias.clone(), meta));
        compiler
            .links
            .insert(std::ptr::from_ref(link), (alias, meta));
    }
    let root = Scope {
        alias: "t0".to_owned(),
        meta: root_meta,
    };
    let mut from = From::default();
    compiler.attach_links(&root, &query.entity.links, &mut from)?;
    if let Some(filter) = &query.entity.filter
        && let Some(sql) = compiler.filter(&root, filter)?
    {
        from.wheres.push(sql);
    }
    let from_where = format!(
        "FROM {} t0{}{}",
        quote(&root_meta.logical_name),
        from.joins,
        where_clause(&from.wheres)
    );
    let mut select = Select::default();
    if query.aggregate {
        compiler.aggregate_columns(query, &root, &mut select)?;
    } else {
        compiler.plain_columns(query, &root, &mut select)?;
    }
    compiler.order_keys(query, &root, &mut select)?;
    let mut items: Vec<String> = Vec::new();
    for (index, column) in select.columns.iter().enumerate() {
        items.push(format!("{} AS \"c{index}\"", column.expression));
    }
    for (index, key) in select.keys.iter().enumerate() {
        items.push(format!("{} AS \"k{index}\"", key.expression));
    }
    let distinct = if query.distinct && !query.aggregate {
        "DISTINCT "
    } else {
        ""
    };
    let group_by = if select.group_by.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", select.group_by.join(", "))
    };
    let inner = format!(
        "SELECT {distinct}{} {from_where}{group_by}",
        items.join(", ")
    );
    let primary_key = (!query.distinct && !query.aggregate)
        .then(|| {
            select
                .columns
                .iter()
                .position(|column| column.key == root_meta.primary_id)
        })
        .flatten();
    Ok(Compiled {
        inner,
        from_where,
        params: compiler.params,
        columns: select
            .columns
            .into_iter()
            .map(|column| OutputColumn {
                key: column.key,
                conversion: column.conversion,
            })
            .collect(),
        keys: select
            .keys
            .into_iter()
            .map(|key| OrderKey {
                descending: key.descending,
                text: key.text,
                name: key.name,
            })
            .collect(),
        primary_key,
        aggregate: query.aggregate,
    })
}

fn where_clause(wheres: &[String]) -> String {
    if wheres.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", wheres.join(" AND "))
    }
}

/// A table in scope: its SQL alias and metadata.
#[derive(Debug, Clone)]
struct Scope<'a> {
    alias: String,
    meta: &'a EntityMeta,
}

impl Scope<'_> {
    fn column(&self, name: &str) -> String {
        format!("{}.{}", self.alias, quote(name))
    }

    fn attribute(&self, name: &str) -> Result<&AttributeMeta, OrgError> {
        self.meta.attribute(name).ok_or_else(|| {
            errors::no_attribute(&format!(
                "`{}` has no column `{name}`",
                self.meta.logical_name
            ))
        })
    }
}

/// Joins and WHERE parts collected for one FROM clause.
#[derive(Debug, Default)]
struct From {
    joins: String,
    wheres: Vec<String>,
}

#[derive(Debug, Default)]
struct Select {
    columns: Vec<SelectColumn>,
    keys: Vec<SelectKey>,
    group_by: Vec<String>,
    /// Tie-breaker expressions: primary keys of the root and the joined links.
    primary_keys: Vec<(String, String)>,
}

#[derive(Debug)]
struct SelectColumn {
    key: String,
    expression: String,
    conversion: Conversion,
    /// The raw (unconverted) expression is text and compares with `ff_ci`.
    text: bool,
}

#[derive(Debug)]
struct SelectKey {
    expression: String,
    descending: bool,
    text: bool,
    name: String,
}

pub(super) struct Compiler<'a> {
    environment: Environment<'a>,
    params: Vec<Value>,
    /// Every link-entity (by address) → its SQL alias and table.
    links: HashMap<*const LinkEntity, (String, &'a EntityMeta)>,
    /// Link reference names (`entityname`, `valueof`) → SQL alias and table; first one wins.
    references: HashMap<String, (String, &'a EntityMeta)>,
    /// SQL aliases usable at the current point (joined tables and enclosing subqueries).
    visible: Vec<String>,
    use_raw_order_by: bool,
    next_alias: usize,
}

impl<'a> Compiler<'a> {
    /// Binds a value and returns its placeholder.
    fn bind(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }

    fn link_scope(&self, link: &LinkEntity) -> Result<Scope<'a>, OrgError> {
        let (alias, meta) = self
            .links
            .get(&std::ptr::from_ref(link))
            .cloned()
            .ok_or_else(|| errors::no_entity(&format!("unknown table `{}`", link.name.value)))?;
        Ok(Scope { alias, meta })
    }

    /// A fresh alias for a subquery's own copy of a table.
    fn fresh_alias(&mut self) -> String {
        self.next_alias += 1;
        format!("s{}", self.next_alias)
    }

    /// The scope an `entityname` names; it must be joined where it is used.
    fn reference(&self, name: &str) -> Result<Scope<'a>, OrgError> {
        let (alias, meta) = self.references.get(name).cloned().ok_or_else(|| {
            errors::alias_does_not_exist(&format!("no link-entity has the alias `{name}`"))
        })?;
        if !self.visible.contains(&alias) {
            return Err(errors::alias_does_not_exist(&format!(
                "link-entity `{name}` is not joined here: only inner, outer and matchfirstrowusingcrossapply links joined before this point can be referenced"
            )));
        }
        Ok(Scope { alias, meta })
    }

    /// Joins (inner, outer, cross apply) and semi-joins (exists, in) of `links` under `parent`.
    fn attach_links(
        &mut self,
        parent: &Scope<'a>,
        links: &[LinkEntity],
        out: &mut From,
    ) -> Result<(), OrgError> {
        for link in links {
            let scope = self.link_scope(link)?;
            let from = scope.attribute(link.from.as_str())?;
            parent.attribute(link.to.as_str())?;
            let table = quote(&scope.meta.logical_name);
            match link.link_type {
                LinkType::Inner | LinkType::Outer => {
                    self.visible.push(scope.alias.clone());
                    let mut on = vec![format!(
                        "{} = {}",
                        scope.column(&from.logical_name),
                        parent.column(link.to.as_str())
                    )];
                    if let Some(filter) = &link.filter
                        && let Some(sql) = self.filter(&scope, filter)?
                    {
                        on.push(sql);
                    }
                    let join = if link.link_type == LinkType::Inner {
                        "JOIN"
                    } else {
                        "LEFT JOIN"
                    };
                    out.joins.push_str(&format!(
                        " {join} {table} {} ON {}",
                        scope.alias,
                        on.join(" AND ")
                    ));
                    self.attach_links(&scope, &link.links, out)?;
                }
                LinkType::MatchFirstRowUsingCrossApply => {
                    let candidate = Scope {
                        alias: self.fresh_alias(),
                        meta: scope.meta,
                    };
                    self.visible.push(candidate.alias.clone());
                    let mut wheres = vec![format!(
                        "{} = {}",
                        candidate.column(&from.logical_name),
                        parent.column(link.to.as_str())
                    )];
                    if let Some(filter) = &link.filter
                        && let Some(sql) = self.filter(&candidate, filter)?
                    {
                        wheres.push(sql);
                    }
                    self.visible.pop();
                    let primary = &scope.meta.primary_id;
                    out.joins.push_str(&format!(
                        " JOIN {table} {alias} ON {alias_pk} = (SELECT {candidate_pk} FROM {table} {candidate_alias} WHERE {wheres} ORDER BY {candidate_pk} LIMIT 1)",
                        alias = scope.alias,
                        alias_pk = scope.column(primary),
                        candidate_pk = candidate.column(primary),
                        candidate_alias = candidate.alias,
                        wheres = wheres.join(" AND "),
                    ));
                    self.visible.push(scope.alias.clone());
                    self.attach_links(&scope, &link.links, out)?;
                }
                LinkType::Exists
                | LinkType::In
                | LinkType::Any
                | LinkType::NotAny
                | LinkType::All
                | LinkType::NotAll => {
                    let sql = self.semi_join(parent, link)?;
                    out.wheres.push(sql);
                }
            }
        }
        Ok(())
    }

    /// The predicate of a filter-only link (exists, in, any, not any, all, not all).
    fn semi_join(&mut self, parent: &Scope<'a>, link: &LinkEntity) -> Result<String, OrgError> {
        let scope = self.link_scope(link)?;
        let from = scope.attribute(link.from.as_str())?.logical_name.clone();
        parent.attribute(link.to.as_str())?;
        let parent_column = parent.column(link.to.as_str());
        let mark = self.visible.len();
        self.visible.push(scope.alias.clone());
        let join = format!("{} = {parent_column}", scope.column(&from));
        let filter = match &link.filter {
            Some(filter) => self.filter(&scope, filter)?,
            None => None,
        };
        let mut nested = From::default();
        self.attach_links(&scope, &link.links, &mut nested)?;
        self.visible.truncate(mark);
        let table = quote(&scope.meta.logical_name);
        let related = |conditions: &[&str]| {
            let mut wheres: Vec<String> = conditions.iter().map(|c| (*c).to_owned()).collect();
            wheres.extend(nested.wheres.iter().cloned());
            format!(
                "SELECT 1 FROM {table} {}{}{}",
                scope.alias,
                nested.joins,
                where_clause(&wheres)
            )
        };
        let matching: Vec<&str> = match &filter {
            Some(filter) => vec![&join, filter],
            None => vec![&join],
        };
        Ok(match link.link_type {
            LinkType::In => {
                let mut wheres: Vec<String> = filter.iter().cloned().collect();
                wheres.extend(nested.wheres.iter().cloned());
                format!(
                    "{parent_column} IN (SELECT {} FROM {table} {}{}{})",
                    scope.column(&from),
                    scope.alias,
                    nested.joins,
                    where_clause(&wheres)
                )
            }
            LinkType::NotAny => format!("NOT EXISTS ({})", related(&matching)),
            LinkType::All => match &filter {
                Some(_) => format!(
                    "(EXISTS ({}) AND NOT EXISTS ({}))",
                    related(&[&join]),
                    related(&matching)
                ),
                None => format!("(EXISTS ({0}) AND NOT EXISTS ({0}))", related(&[&join])),
            },
            _ => format!("EXISTS ({})", related(&matching)),
        })
    }

    /// A filter's predicate, `None` when it has no items (no restriction).
    fn filter(&mut self, scope: &Scope<'a>, filter: &Filter) -> Result<Option<String>, OrgError> {
        let mut parts = Vec::new();
        for item in &filter.items {
            match item {
                FilterItem::Condition(condition) => parts.push(self.condition(scope, condition)?),
                FilterItem::Filter(nested) => {
                    if let Some(sql) = self.filter(scope, nested)? {
                        parts.push(sql);
                    }
                }
                FilterItem::Link(link) => parts.push(self.semi_join(scope, link)?),
            }
        }
        let separator = match filter.kind {
            FilterType::And => " AND ",
            FilterType::Or => " OR ",
        };
        Ok(match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(format!("({})", parts.join(separator))),
        })
    }

    /// Result columns of a non-aggregate query (reference §7): root columns, the root primary
    /// key (unless distinct), then link columns, in the order `Query::selected_columns` gives.
    fn plain_columns(
        &mut self,
        query: &Query,
        root: &Scope<'a>,
        select: &mut Select,
    ) -> Result<(), OrgError> {
        let entity = &query.entity;
        if entity.all_attributes || entity.attributes.is_empty() {
            for attribute in &root.meta.attributes {
                push_column(select, root, attribute, attribute.logical_name.clone());
            }
        } else {
            for node in &entity.attributes {
                self.plain_attribute(root, node, None, select)?;
            }
            if !query.distinct {
                let primary = root.attribute(&root.meta.primary_id)?;
                push_column(select, root, primary, primary.logical_name.clone());
            }
        }
        select.primary_keys.push((
            root.column(&root.meta.primary_id),
            root.meta.primary_id.clone(),
        ));
        for link in &entity.links {
            self.link_columns(link, select)?;
        }
        Ok(())
    }

    fn plain_attribute(
        &mut self,
        scope: &Scope<'a>,
        node: &AttributeNode,
        link: Option<&LinkEntity>,
        select: &mut Select,
    ) -> Result<(), OrgError> {
        let attribute = scope.attribute(node.name.as_str())?;
        let key = match (&node.alias, link) {
            (Some(alias), _) => alias.value.clone(),
            (None, None) => attribute.logical_name.clone(),
            (None, Some(link)) if link.link_type == LinkType::MatchFirstRowUsingCrossApply => {
                attribute.logical_name.clone()
            }
            (None, Some(link)) => format!("{}.{}", link.result_alias, attribute.logical_name),
        };
        if node.count_children {
            if let Some(hierarchy) = scope.meta.hierarchy_attribute()
                && !select.columns.iter().any(|column| column.key == key)
            {
                select.columns.push(SelectColumn {
                    key,
                    expression: format!(
                        "(SELECT COUNT(*) FROM {table} children WHERE children.{parent} = {id})",
                        table = quote(&scope.meta.logical_name),
                        parent = quote(&hierarchy.logical_name),
                        id = scope.column(&scope.meta.primary_id),
                    ),
                    conversion: Conversion::Integer,
                    text: false,
                });
            }
            return Ok(());
        }
        push_column(select, scope, attribute, key);
        Ok(())
    }

    fn link_columns(&mut self, link: &LinkEntity, select: &mut Select) -> Result<(), OrgError> {
        if !link.link_type.returns_columns() {
            return Ok(());
        }
        let scope = self.link_scope(link)?;
        if link.all_attributes {
            for attribute in &scope.meta.attributes {
                let key = format!("{}.{}", link.result_alias, attribute.logical_name);
                push_column(select, &scope, attribute, key);
            }
        }
        for node in &link.attributes {
            self.plain_attribute(&scope, node, Some(link), select)?;
        }
        select.primary_keys.push((
            scope.column(&scope.meta.primary_id),
            format!("{}.{}", link.result_alias, scope.meta.primary_id),
        ));
        for nested in &link.links {
            self.link_columns(nested, select)?;
        }
        Ok(())
    }

    /// Result columns of an aggregate query: one per `attribute`, keyed by its alias.
    fn aggregate_columns(
        &mut self,
        query: &Query,
        root: &Scope<'a>,
        select: &mut Select,
    ) -> Result<(), OrgError> {
        for node in &query.entity.attributes {
            self.aggregate_attribute(root, node, select)?;
        }
        let mut pending: Vec<&LinkEntity> = query.entity.links.iter().rev().collect();
        while let Some(link) = pending.pop() {
            if link.link_type.returns_columns() {
                let scope = self.link_scope(link)?;
                for node in &link.attributes {
                    self.aggregate_attribute(&scope, node, select)?;
                }
                pending.extend(link.links.iter().rev());
            }
        }
        Ok(())
    }

    fn aggregate_attribute(
        &mut self,
        scope: &Scope<'a>,
        node: &AttributeNode,
        select: &mut Select,
    ) -> Result<(), OrgError> {
        let attribute = scope.attribute(node.name.as_str())?;
        let column = scope.column(&attribute.logical_name);
        let key = node.alias.as_ref().map_or_else(
            || attribute.logical_name.clone(),
            |alias| alias.value.clone(),
        );
        let text = attribute.kind.is_string();
        let (expression, conversion, text) = if let Some(aggregate) = &node.aggregate {
            let whole = attribute.kind.is_whole_number();
            let distinct = if node.distinct { "DISTINCT " } else { "" };
            match aggregate.value {
                Aggregate::Count if node.distinct => (
                    format!("COUNT(DISTINCT {column})"),
                    Conversion::Integer,
                    false,
                ),
                Aggregate::Count => ("COUNT(*)".to_owned(), Conversion::Integer, false),
                Aggregate::CountColumn => (
                    format!("COUNT({distinct}{column})"),
                    Conversion::Integer,
                    false,
                ),
                Aggregate::Sum => (
                    format!("SUM({distinct}{column})"),
                    Conversion::of(attribute.kind),
                    false,
                ),
                Aggregate::Avg => (
                    format!("AVG({distinct}{column})"),
                    if whole {
                        Conversion::Truncated
                    } else {
                        Conversion::Real
                    },
                    false,
                ),
                Aggregate::Min => (
                    format!("MIN({column})"),
                    Conversion::of(attribute.kind),
                    text,
                ),
                Aggregate::Max => (
                    format!("MAX({column})"),
                    Conversion::of(attribute.kind),
                    text,
                ),
            }
        } else if node.groupby {
            let expression = match node.dategrouping.as_ref().map(|grouping| grouping.value) {
                Some(grouping) => date_part(grouping, &column).ok_or_else(|| {
                    errors::not_supported(&format!(
                        "date grouping `{grouping}` needs a fiscal calendar"
                    ))
                })?,
                None => column,
            };
            select.group_by.push(expression.clone());
            let conversion = if node.dategrouping.is_some() {
                Conversion::Integer
            } else {
                Conversion::of(attribute.kind)
            };
            (expression, conversion, text && node.dategrouping.is_none())
        } else {
            // `rowaggregate` in an aggregate query: nothing to aggregate.
            return Ok(());
        };
        select.columns.push(SelectColumn {
            key,
            expression,
            conversion,
            text,
        });
        Ok(())
    }

    /// The order keys (reference §8) followed by the tie-breakers.
    fn order_keys(
        &mut self,
        query: &Query,
        root: &Scope<'a>,
        select: &mut Select,
    ) -> Result<(), OrgError> {
        if query.aggregate {
            for order in &query.entity.orders {
                let Some(alias) = &order.alias else { continue };
                let Some(column) = select
                    .columns
                    .iter()
                    .find(|column| column.key == alias.value)
                else {
                    return Err(errors::alias_does_not_exist(&format!(
                        "no attribute has the alias `{}`",
                        alias.value
                    )));
                };
                let key = SelectKey {
                    expression: column.expression.clone(),
                    descending: order.descending,
                    text: column.text,
                    name: column.key.clone(),
                };
                select.keys.push(key);
            }
            self.tie_break_on_columns(select);
            return Ok(());
        }
        for order in &query.entity.orders {
            let scope = match &order.entityname {
                Some(entityname) => self.reference(&entityname.value)?,
                None => root.clone(),
            };
            self.push_order(&scope, order, select)?;
        }
        let mut pending: Vec<&LinkEntity> = query.entity.links.iter().rev().collect();
        while let Some(link) = pending.pop() {
            if link.link_type.returns_columns() {
                let scope = self.link_scope(link)?;
                for order in &link.orders {
                    self.push_order(&scope, order, select)?;
                }
                pending.extend(link.links.iter().rev());
            }
        }
        if query.distinct {
            self.tie_break_on_columns(select);
        } else {
            for (expression, name) in std::mem::take(&mut select.primary_keys) {
                select.keys.push(SelectKey {
                    expression,
                    descending: false,
                    text: false,
                    name,
                });
            }
        }
        Ok(())
    }

    fn tie_break_on_columns(&self, select: &mut Select) {
        for column in &select.columns {
            select.keys.push(SelectKey {
                expression: column.expression.clone(),
                descending: false,
                text: column.text,
                name: column.key.clone(),
            });
        }
    }

    fn push_order(
        &mut self,
        scope: &Scope<'a>,
        order: &Order,
        select: &mut Select,
    ) -> Result<(), OrgError> {
        let Some(name) = &order.attribute else {
            return Ok(());
        };
        let attribute = scope.attribute(name.as_str())?;
        let column = scope.column(&attribute.logical_name);
        let (expression, text) = self.sort_expression(attribute, &column);
        select.keys.push(SelectKey {
            expression,
            descending: order.descending,
            text,
            name: attribute.logical_name.clone(),
        });
        Ok(())
    }

    /// What a column sorts by: choices by label, lookups by the referenced row's primary name
    /// (both unless `useraworderby`), everything else by value.
    fn sort_expression(&mut self, attribute: &AttributeMeta, column: &str) -> (String, bool) {
        let kind = attribute.kind;
        if kind.is_string() {
            return (column.to_owned(), true);
        }
        if self.use_raw_order_by {
            return (column.to_owned(), false);
        }
        if matches!(
            kind,
            AttributeType::Picklist | AttributeType::State | AttributeType::Status
        ) && !attribute.options.is_empty()
        {
            let mut cases = String::new();
            for option in &attribute.options {
                let value = self.bind(Value::Integer(i64::from(option.value)));
                let label = self.bind(Value::Text(option.label.clone()));
                cases.push_str(&format!(" WHEN {value} THEN {label}"));
            }
            return (format!("(CASE {column}{cases} END)"), true);
        }
        if kind.is_lookup() {
            let catalogue = self.environment.catalogue;
            let names: Vec<(&str, &EntityMeta)> = attribute
                .targets
                .iter()
                .filter_map(|target| catalogue.entity(target).map(|meta| (target.as_str(), meta)))
                .filter(|(_, meta)| meta.attribute(&meta.primary_name).is_some())
                .collect();
            let lookup = |meta: &EntityMeta, alias: &str| {
                format!(
                    "(SELECT {alias}.{name} FROM {table} {alias} WHERE {alias}.{id} = {column})",
                    name = quote(&meta.primary_name),
                    table = quote(&meta.logical_name),
                    id = quote(&meta.primary_id),
                )
            };
            match names.as_slice() {
                [] => {}
                [(_, meta)] if attribute.targets.len() == 1 => {
                    let alias = self.fresh_alias();
                    return (lookup(meta, &alias), true);
                }
                targets => {
                    let target_column = format!(
                        "{}.{}",
                        column.split_once('.').map_or("t0", |(alias, _)| alias),
                        quote(&crate::org::local::target_column(&attribute.logical_name))
                    );
                    let mut cases = String::new();
                    for (target, meta) in targets {
                        let alias = self.fresh_alias();
                        let target = self.bind(Value::Text((*target).to_owned()));
                        cases.push_str(&format!(" WHEN {target} THEN {}", lookup(meta, &alias)));
                    }
                    return (format!("(CASE {target_column}{cases} END)"), true);
                }
            }
        }
        (column.to_owned(), false)
    }
}

/// Adds a column once per key.
fn push_column(select: &mut Select, scope: &Scope<'_>, attribute: &AttributeMeta, key: String) {
    if select.columns.iter().any(|column| column.key == key) {
        return;
    }
    select.columns.push(SelectColumn {
        key,
        expression: scope.column(&attribute.logical_name),
        conversion: Conversion::of(attribute.kind),
        text: attribute.kind.is_string(),
    });
}

/// `DATEPART` of a stored UTC date-time; `None` for fiscal groupings.
fn date_part(grouping: DateGrouping, column: &str) -> Option<String> {
    let part = |format: &str| format!("CAST(strftime('{format}', {column}) AS INTEGER)");
    Some(match grouping {
        DateGrouping::Day => part("%d"),
        DateGrouping::Month => part("%m"),
        DateGrouping::Year => part("%Y"),
        DateGrouping::Quarter => format!("(({} - 1) / 3 + 1)", part("%m")),
        DateGrouping::Week => format!(
            "(({} - 1 + CAST(strftime('%w', {column}, 'start of year') AS INTEGER)) / 7 + 1)",
            part("%j")
        ),
        DateGrouping::FiscalPeriod | DateGrouping::FiscalYear => return None,
    })
}

/// `expression COLLATE ff_ci` for text keys.
pub(crate) fn collate(expression: &str, text: bool) -> String {
    if text {
        format!("{expression} COLLATE {COLLATION}")
    } else {
        expression.to_owned()
    }
}

#[cfg(test)]
mod tests;
