//! FetchXML text → `Query`: XML parsing (no DTDs), then one pass over the tree that builds the
//! model and reports every grammar problem (elements, attributes, value forms, arity, aggregate
//! rules, aliases and limits).

use std::collections::HashMap;

use roxmltree::{Document, Node, ParsingOptions};

use crate::diagnostics::{Problem, did_you_mean};
use crate::fetchxml::model::{
    Aggregate, AttributeNode, Condition, DateGrouping, EntityNode, Filter, FilterItem, FilterType,
    LinkEntity, LinkType, Order, Query, Span, Spanned, ValueNode,
};
use crate::fetchxml::operator::{Arity, Operator, ValueKind};

/// Nesting of `filter` and `link-entity` elements beyond which the parser stops descending.
pub const MAX_DEPTH: usize = 100;
/// Dataverse's limit on `top` and `count` (rows per page).
pub const MAX_PAGE_SIZE: u32 = 5_000;
/// Dataverse's default aggregate record limit; `aggregatelimit` can only lower it.
pub const MAX_AGGREGATE_LIMIT: u32 = 50_000;
/// Dataverse's limit on condition plus link-entity elements.
pub const MAX_CONDITIONS_AND_LINKS: usize = 500;
/// Dataverse's limit on link-entity elements.
pub const MAX_LINKS: usize = 15;
/// XML nodes (elements, text, comments) roxmltree may create; bounds memory on hostile input.
const MAX_NODES: u32 = 200_000;

const ELEMENTS: [&str; 9] = [
    "fetch",
    "entity",
    "attribute",
    "all-attributes",
    "order",
    "filter",
    "condition",
    "value",
    "link-entity",
];
const FETCH_ATTRIBUTES: &[&str] = &[
    "version",
    "count",
    "page",
    "paging-cookie",
    "top",
    "distinct",
    "aggregate",
    "aggregatelimit",
    "returntotalrecordcount",
    "no-lock",
    "latematerialize",
    "useraworderby",
    "options",
    "datasource",
    "mapping",
    "output-format",
    "utc-offset",
    "min-active-row-version",
];
const ENTITY_ATTRIBUTES: &[&str] = &["name", "enableprefiltering", "prefilterparametername"];
const ATTRIBUTE_ATTRIBUTES: &[&str] = &[
    "name",
    "alias",
    "aggregate",
    "groupby",
    "dategrouping",
    "distinct",
    "usertimezone",
    "rowaggregate",
    "build",
    "addedby",
];
const ORDER_ATTRIBUTES: &[&str] = &["attribute", "alias", "descending", "entityname"];
const FILTER_ATTRIBUTES: &[&str] = &[
    "type",
    "hint",
    "isquickfindfields",
    "overridequickfindrecordlimitenabled",
    "overridequickfindrecordlimitdisabled",
];
const CONDITION_ATTRIBUTES: &[&str] = &[
    "attribute",
    "operator",
    "value",
    "valueof",
    "entityname",
    "column",
    "aggregate",
    "rowaggregate",
    "alias",
    "uiname",
    "uitype",
    "uihidden",
];
const VALUE_ATTRIBUTES: &[&str] = &["uiname", "uitype"];
const LINK_ATTRIBUTES: &[&str] = &[
    "name",
    "from",
    "to",
    "alias",
    "link-type",
    "intersect",
    "visible",
    "enableprefiltering",
    "prefilterparametername",
];

/// Whether a value still holds template syntax (`{{ … }}` or `{% … %}`); such values are not
/// checked.
pub fn is_template(value: &str) -> bool {
    value.contains("{{") || value.contains("{%")
}

pub(crate) fn parse(text: &str) -> (Option<Query>, Vec<Problem>) {
    if let Some(offset) = find_dtd(text) {
        return (None, vec![dtd_problem(offset, text)]);
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let document = match Document::parse_with_options(text, options) {
        Ok(document) => document,
        Err(error) => return (None, vec![xml_problem(text, &error)]),
    };
    let mut parser = Parser {
        text,
        problems: Vec::new(),
        aggregate: false,
        n_links: 0,
        n_conditions_and_links: 0,
        reported_too_deep: false,
        link_references: Vec::new(),
        link_aliases: Vec::new(),
        attribute_aliases: Vec::new(),
        entitynames: Vec::new(),
        valueofs: Vec::new(),
        order_aliases: Vec::new(),
    };
    let query = parser.fetch(document.root_element());
    if query.is_some() {
        parser.check_references();
    }
    (query, parser.problems)
}

fn find_dtd(text: &str) -> Option<usize> {
    ["<!DOCTYPE", "<!ENTITY"]
        .iter()
        .filter_map(|marker| text.find(marker))
        .min()
}

fn dtd_problem(offset: usize, text: &str) -> Problem {
    let len = text[offset..].find('>').map_or(2, |end| end + 1);
    Problem::error(
        "fetchxml-dtd",
        offset,
        len,
        "DTDs and entity declarations are not allowed in FetchXML",
    )
    .with_help("remove the `<!DOCTYPE …>` declaration and use plain XML escapes such as `&amp;`")
}

fn xml_problem(text: &str, error: &roxmltree::Error) -> Problem {
    match error {
        roxmltree::Error::DtdDetected => return dtd_problem(find_dtd(text).unwrap_or(0), text),
        roxmltree::Error::NodesLimitReached => {
            return Problem::error(
                "fetchxml-too-large",
                0,
                0,
                format!("the FetchXML document has more than {MAX_NODES} XML nodes"),
            );
        }
        _ => {}
    }
    let offset = match error {
        roxmltree::Error::UnexpectedEndOfStream
        | roxmltree::Error::UnclosedRootNode
        | roxmltree::Error::NoRootNode => text.trim_end().len(),
        _ => text_pos_to_offset(text, error.pos()),
    };
    let pos = error.pos();
    let message = error
        .to_string()
        .replace(&format!(" at {}:{}", pos.row, pos.col), "");
    Problem::error(
        "fetchxml-xml",
        offset,
        0,
        format!("malformed XML: {message}"),
    )
    .with_help("FetchXML must be well-formed XML; escape `&` as `&amp;` and `<` as `&lt;`")
}

/// Converts roxmltree's 1-based row and character column to a byte offset into `text`.
fn text_pos_to_offset(text: &str, pos: roxmltree::TextPos) -> usize {
    let mut line_start = 0;
    for _ in 1..pos.row {
        match text[line_start..].find('\n') {
            Some(newline) => line_start += newline + 1,
            None => return text.len(),
        }
    }
    let line = &text[line_start..];
    let column = usize::try_from(pos.col.saturating_sub(1)).unwrap_or(usize::MAX);
    line_start
        + line
            .char_indices()
            .nth(column)
            .map_or(line.len(), |(index, _)| index)
}

/// Which element a child appears in, for placement rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parent {
    Entity,
    Link,
}

struct Parser<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    aggregate: bool,
    n_links: usize,
    n_conditions_and_links: usize,
    reported_too_deep: bool,
    /// The names `entityname` can use: link aliases, or link names without alias.
    link_references: Vec<String>,
    link_aliases: Vec<Spanned<String>>,
    attribute_aliases: Vec<Spanned<String>>,
    entitynames: Vec<Spanned<String>>,
    valueofs: Vec<Spanned<String>>,
    order_aliases: Vec<Spanned<String>>,
}

type XmlNode<'a, 'input> = Node<'a, 'input>;

impl<'t> Parser<'t> {
    fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Problem {
        self.problems
            .push(Problem::error(code, span.offset, span.len, message));
        self.problems.last_mut().expect("just pushed")
    }

    fn help(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let help = help.into();
        self.error(code, span, message).help = Some(help);
    }

    /// The span of an element's tag name.
    fn element_span(&self, node: XmlNode) -> Span {
        let start = node.range().start + 1;
        let len = self.text[start..]
            .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .unwrap_or(0);
        Span::new(start, len)
    }

    fn too_deep(&mut self, node: XmlNode, depth: usize) -> bool {
        if depth <= MAX_DEPTH {
            return false;
        }
        if !self.reported_too_deep {
            self.reported_too_deep = true;
            let span = self.element_span(node);
            self.help(
                "fetchxml-too-deep",
                span,
                format!("filters and link-entities are nested more than {MAX_DEPTH} levels deep"),
                "flatten the query",
            );
        }
        true
    }

    /// Reports unknown attributes; returns nothing, the getters read known ones.
    fn check_attributes(&mut self, node: XmlNode, element: &str, allowed: &[&str]) {
        for attribute in node.attributes() {
            if attribute.namespace().is_some() || allowed.contains(&attribute.name()) {
                continue;
            }
            let range = attribute.range_qname();
            let span = Span::new(range.start, range.len());
            let message = format!("unknown attribute `{}` on `{element}`", attribute.name());
            let help = match did_you_mean(attribute.name(), allowed.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!("`{element}` accepts: {}", allowed.join(", ")),
            };
            self.help("fetchxml-unknown-attribute", span, message, help);
        }
    }

    fn string(&self, node: XmlNode, name: &str) -> Option<Spanned<String>> {
        let attribute = node
            .attributes()
            .find(|attribute| attribute.name() == name)?;
        let range = attribute.range_value();
        Some(Spanned::new(
            attribute.value().to_owned(),
            Span::new(range.start, range.len()),
        ))
    }

    fn required(&mut self, node: XmlNode, element: &str, name: &str) -> Option<Spanned<String>> {
        match self.string(node, name) {
            Some(value) if !value.value.trim().is_empty() => Some(value),
            Some(value) => {
                self.error(
                    "fetchxml-missing-attribute",
                    value.span,
                    format!("`{name}` on `{element}` is empty"),
                );
                None
            }
            None => {
                let span = self.element_span(node);
                self.help(
                    "fetchxml-missing-attribute",
                    span,
                    format!("`{element}` needs a `{name}` attribute"),
                    format!("add `{name}=\"…\"`"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: XmlNode, name: &str) -> Option<bool> {
        let value = self.string(node, name)?;
        match value.value.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            other if is_template(other) => None,
            other => {
                self.help(
                    "fetchxml-invalid-value",
                    value.span,
                    format!("`{name}` must be a boolean, not `{other}`"),
                    "use `true`, `false`, `1` or `0`",
                );
                None
            }
        }
    }

    fn positive(&mut self, node: XmlNode, name: &str) -> Option<Spanned<u32>> {
        let value = self.string(node, name)?;
        if is_template(&value.value) {
            return None;
        }
        match value.value.trim().parse::<u32>() {
            Ok(number) if number > 0 => Some(Spanned::new(number, value.span)),
            _ => {
                self.help(
                    "fetchxml-invalid-value",
                    value.span,
                    format!("`{name}` must be a positive integer, not `{}`", value.value),
                    "a value greater than zero must be specified",
                );
                None
            }
        }
    }

    fn enumeration<T: Copy>(
        &mut self,
        node: XmlNode,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        names: &[&str],
    ) -> Option<Spanned<T>> {
        let value = self.string(node, name)?;
        if let Some(parsed) = parse(&value.value) {
            return Some(Spanned::new(parsed, value.span));
        }
        let help = match did_you_mean(&value.value, names.iter().copied()) {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None => format!("valid values: {}", names.join(", ")),
        };
        self.help(
            "fetchxml-invalid-value",
            value.span,
            format!("`{}` is not a valid `{name}`", value.value),
            help,
        );
        None
    }

    /// Reports non-whitespace text inside an element that takes none.
    fn text_child(&mut self, child: XmlNode, element: &str) {
        let Some(text) = child.text() else { return };
        if text.trim().is_empty() {
            return;
        }
        let range = child.range();
        let leading = text.len() - text.trim_start().len();
        let span = Span::new(
            (range.start + leading).min(range.end),
            text.trim().len().min(range.len()),
        );
        self.error(
            "fetchxml-unexpected-text",
            span,
            format!("`{element}` can't contain text"),
        );
    }

    /// Reports an element that is not allowed where it is.
    fn misplaced(&mut self, child: XmlNode, parent: &str, allowed: &[&str]) {
        let name = child.tag_name().name();
        let span = self.element_span(child);
        if ELEMENTS.contains(&name) {
            let help = if allowed.is_empty() {
                format!("`{parent}` has no child elements")
            } else {
                format!("`{parent}` can contain: {}", allowed.join(", "))
            };
            self.help(
                "fetchxml-misplaced-element",
                span,
                format!("`{name}` is not allowed inside `{parent}`"),
                help,
            );
        } else {
            let candidates = if allowed.is_empty() {
                &ELEMENTS[..]
            } else {
                allowed
            };
            let help = match did_you_mean(name, candidates.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None if allowed.is_empty() => format!("`{parent}` has no child elements"),
                None => format!("`{parent}` can contain: {}", allowed.join(", ")),
            };
            self.help(
                "fetchxml-unknown-element",
                span,
                format!("unknown element `{name}`"),
                help,
            );
        }
    }

    /// Checks an element that must be empty (`all-attributes`, `attribute`, `order`).
    fn leaf_children(&mut self, node: XmlNode, element: &str) {
        for child in node.children() {
            if child.is_element() {
                self.misplaced(child, element, &[]);
            } else if child.is_text() {
                self.text_child(child, element);
            }
        }
    }

    fn fetch(&mut self, node: XmlNode) -> Option<Query> {
        let span = self.element_span(node);
        if node.tag_name().name() != "fetch" {
            let name = node.tag_name().name();
            self.help(
                "fetchxml-root",
                span,
                format!("the root element must be `fetch`, not `{name}`"),
                "wrap the query in `<fetch>…</fetch>`",
            );
            return None;
        }
        self.check_attributes(node, "fetch", FETCH_ATTRIBUTES);
        let top = self.positive(node, "top");
        let count = self.positive(node, "count");
        let page = self.positive(node, "page");
        let aggregate_limit = self.positive(node, "aggregatelimit");
        let return_total_record_count = self
            .boolean(node, "returntotalrecordcount")
            .unwrap_or(false);
        self.aggregate = self.boolean(node, "aggregate").unwrap_or(false);
        let distinct = self.boolean(node, "distinct").unwrap_or(false);
        let no_lock = self.boolean(node, "no-lock").unwrap_or(false);
        let late_materialize = self.boolean(node, "latematerialize").unwrap_or(false);
        let use_raw_order_by = self.boolean(node, "useraworderby").unwrap_or(false);
        self.boolean(node, "min-active-row-version");
        self.enumeration(
            node,
            "mapping",
            |value| ["logical", "internal"].contains(&value).then_some(()),
            &["logical", "internal"],
        );

        if let Some(top) = &top {
            let paging = [
                ("page", self.string(node, "page").is_some()),
                ("count", self.string(node, "count").is_some()),
                ("returntotalrecordcount", return_total_record_count),
            ];
            for (name, present) in paging {
                if present {
                    self.help(
                        "fetchxml-top-with-paging",
                        top.span,
                        format!("the top attribute can't be specified with paging attribute {name}"),
                        format!("remove `top` or `{name}`; use `count` and `page` to page through results"),
                    );
                }
            }
        }
        for (name, value, limit) in [
            ("top", &top, MAX_PAGE_SIZE),
            ("count", &count, MAX_PAGE_SIZE),
            ("aggregatelimit", &aggregate_limit, MAX_AGGREGATE_LIMIT),
        ] {
            if let Some(value) = value
                && value.value > limit
            {
                let span = value.span;
                self.help(
                    "fetchxml-limit-exceeded",
                    span,
                    format!("`{name}` can't exceed {limit}, got {}", value.value),
                    format!("use at most {limit}"),
                );
            }
        }

        let mut entity = None;
        for child in node.children() {
            if child.is_text() {
                self.text_child(child, "fetch");
                continue;
            }
            if !child.is_element() {
                continue;
            }
            if child.tag_name().name() == "entity" {
                if entity.is_some() {
                    let span = self.element_span(child);
                    self.help(
                        "fetchxml-duplicate-element",
                        span,
                        "only one `entity` is allowed in `fetch`",
                        "query one table; join others with `link-entity`",
                    );
                    continue;
                }
                entity = Some(self.entity(child));
            } else {
                self.misplaced(child, "fetch", &["entity"]);
            }
        }
        let Some(entity) = entity else {
            self.help(
                "fetchxml-missing-element",
                span,
                "`fetch` needs an `entity` element",
                "add `<entity name=\"…\">`",
            );
            return None;
        };
        let entity = entity?;
        Some(Query {
            span,
            version: self.string(node, "version"),
            top,
            count,
            page,
            paging_cookie: self.string(node, "paging-cookie"),
            distinct,
            aggregate: self.aggregate,
            aggregate_limit,
            return_total_record_count,
            no_lock,
            use_raw_order_by,
            late_materialize,
            options: self.string(node, "options"),
            datasource: self.string(node, "datasource"),
            entity,
        })
    }

    fn entity(&mut self, node: XmlNode) -> Option<EntityNode> {
        let span = self.element_span(node);
        self.check_attributes(node, "entity", ENTITY_ATTRIBUTES);
        let name = self.required(node, "entity", "name");
        let body = self.body(node, "entity", Parent::Entity, 1, true);
        Some(EntityNode {
            span,
            name: name?,
            attributes: body.attributes,
            all_attributes: body.all_attributes,
            orders: body.orders,
            links: body.links,
            filter: body.filter,
        })
    }

    /// The children shared by `entity` and `link-entity`.
    fn body(
        &mut self,
        node: XmlNode,
        element: &str,
        parent: Parent,
        depth: usize,
        returns_columns: bool,
    ) -> Body {
        let mut body = Body::default();
        let mut all_attributes_seen = false;
        let mut filter_seen = false;
        for child in node.children() {
            if child.is_text() {
                self.text_child(child, element);
                continue;
            }
            if !child.is_element() {
                continue;
            }
            let name = child.tag_name().name();
            let span = self.element_span(child);
            if !returns_columns && matches!(name, "attribute" | "all-attributes" | "order") {
                self.problems.push(
                    Problem::warning(
                        "fetchxml-ignored-columns",
                        span.offset,
                        span.len,
                        format!("a `{element}` of this link-type returns no columns, so `{name}` is ignored"),
                    )
                    .with_help("remove it, or use link-type `inner` or `outer` to return columns"),
                );
            }
            match name {
                "attribute" => {
                    if let Some(attribute) = self.attribute(child) {
                        body.attributes.push(attribute);
                    }
                }
                "all-attributes" => {
                    self.check_attributes(child, "all-attributes", &[]);
                    self.leaf_children(child, "all-attributes");
                    if all_attributes_seen {
                        self.error(
                            "fetchxml-duplicate-element",
                            span,
                            format!("only one `all-attributes` is allowed in `{element}`"),
                        );
                    }
                    all_attributes_seen = true;
                    if self.aggregate {
                        self.help(
                            "fetchxml-aggregate-all-attributes",
                            span,
                            "`all-attributes` can't be used in an aggregate query",
                            "list the grouped and aggregated columns with `attribute` elements",
                        );
                    }
                    body.all_attributes = true;
                }
                "order" => {
                    if let Some(order) = self.order(child, parent) {
                        body.orders.push(order);
                    }
                }
                "link-entity" => {
                    if let Some(link) = self.link(child, false, depth + 1) {
                        body.links.push(link);
                    }
                }
                "filter" => {
                    if filter_seen {
                        self.help(
                            "fetchxml-duplicate-element",
                            span,
                            format!("only one `filter` is allowed directly in `{element}`"),
                            "combine the conditions in one `filter`, nesting filters if needed",
                        );
                        continue;
                    }
                    filter_seen = true;
                    body.filter = self.filter(child, depth + 1);
                }
                _ => self.misplaced(
                    child,
                    element,
                    &[
                        "attribute",
                        "all-attributes",
                        "order",
                        "link-entity",
                        "filter",
                    ],
                ),
            }
        }
        body
    }

    fn attribute(&mut self, node: XmlNode) -> Option<AttributeNode> {
        let span = self.element_span(node);
        self.check_attributes(node, "attribute", ATTRIBUTE_ATTRIBUTES);
        self.leaf_children(node, "attribute");
        let name = self.required(node, "attribute", "name");
        let alias = self.string(node, "alias");
        let aggregate_names = Aggregate::ALL.map(Aggregate::name);
        let aggregate = self.enumeration(node, "aggregate", Aggregate::from_name, &aggregate_names);
        let groupby = self.boolean(node, "groupby").unwrap_or(false);
        let grouping_names = DateGrouping::ALL.map(DateGrouping::name);
        let dategrouping = self.enumeration(
            node,
            "dategrouping",
            DateGrouping::from_name,
            &grouping_names,
        );
        if let Some(grouping) = &dategrouping
            && matches!(
                grouping.value,
                DateGrouping::FiscalPeriod | DateGrouping::FiscalYear
            )
        {
            self.help(
                "fetchxml-fiscal-unsupported",
                grouping.span,
                format!(
                    "date grouping `{}` needs a fiscal calendar, which fetchflow doesn't have",
                    grouping.value
                ),
                "group by `month`, `quarter` or `year`",
            );
        }
        let distinct = self.boolean(node, "distinct").unwrap_or(false);
        let usertimezone = self.boolean(node, "usertimezone").unwrap_or(true);
        let count_children = self
            .enumeration(
                node,
                "rowaggregate",
                |value| (value == "CountChildren").then_some(()),
                &["CountChildren"],
            )
            .is_some();
        let has_aggregate_attr = self.string(node, "aggregate").is_some();
        if let Some(alias) = &alias {
            self.attribute_aliases.push(alias.clone());
        }

        if self.aggregate {
            if alias.is_none() && !count_children {
                self.help(
                    "fetchxml-aggregate-alias",
                    span,
                    "every `attribute` of an aggregate query needs an `alias`",
                    "add `alias=\"…\"`",
                );
            }
            if has_aggregate_attr && groupby {
                self.help(
                    "fetchxml-aggregate-groupby",
                    span,
                    "an attribute can't be both groupby and aggregate",
                    "remove `groupby` or `aggregate`",
                );
            } else if !has_aggregate_attr && !groupby && !count_children {
                self.help(
                    "fetchxml-aggregate-groupby",
                    span,
                    "an attribute of an aggregate query must be groupby or aggregate",
                    "add `groupby=\"true\"` or `aggregate=\"…\"`",
                );
            }
            if let Some(grouping) = &dategrouping
                && !groupby
            {
                self.help(
                    "fetchxml-aggregate-groupby",
                    grouping.span,
                    "`dategrouping` needs `groupby=\"true\"`",
                    "add `groupby=\"true\"`",
                );
            }
        } else {
            for (present, attr) in [
                (has_aggregate_attr, "aggregate"),
                (self.string(node, "groupby").is_some(), "groupby"),
                (dategrouping.is_some(), "dategrouping"),
            ] {
                if present {
                    let attr_span = node
                        .attributes()
                        .find(|attribute| attribute.name() == attr)
                        .map_or(span, |attribute| {
                            let range = attribute.range_qname();
                            Span::new(range.start, range.len())
                        });
                    self.help(
                        "fetchxml-aggregate-not-allowed",
                        attr_span,
                        format!("`{attr}` is only allowed in an aggregate query"),
                        "add `aggregate=\"true\"` to `fetch`",
                    );
                }
            }
        }
        Some(AttributeNode {
            span,
            name: name?,
            alias,
            aggregate,
            groupby,
            dategrouping,
            distinct,
            usertimezone,
            count_children,
        })
    }

    fn order(&mut self, node: XmlNode, parent: Parent) -> Option<Order> {
        let span = self.element_span(node);
        self.check_attributes(node, "order", ORDER_ATTRIBUTES);
        self.leaf_children(node, "order");
        let attribute = self.string(node, "attribute");
        let alias = self.string(node, "alias");
        let descending = self.boolean(node, "descending").unwrap_or(false);
        let entityname = self.string(node, "entityname");
        if let Some(entityname) = &entityname {
            if parent == Parent::Link {
                self.problems.push(
                    Problem::warning(
                        "fetchxml-misplaced-attribute",
                        entityname.span.offset,
                        entityname.span.len,
                        "`entityname` on `order` is only meaningful under the root `entity`",
                    )
                    .with_help("move the `order` to the root `entity`, or remove `entityname`"),
                );
            }
            self.entitynames.push(entityname.clone());
        }
        match (self.aggregate, &attribute, &alias) {
            (_, None, None) => {
                let name = if self.aggregate { "alias" } else { "attribute" };
                self.help(
                    "fetchxml-missing-attribute",
                    span,
                    format!("`order` needs an `{name}` attribute"),
                    format!("add `{name}=\"…\"`"),
                );
                return None;
            }
            (true, Some(attribute), _) => {
                self.help(
                    "fetchxml-order-needs-alias",
                    attribute.span,
                    "an attribute can't be specified for an order of an aggregate query",
                    "order by the `alias` of a grouped or aggregated attribute",
                );
            }
            (false, _, Some(alias)) => {
                self.help(
                    "fetchxml-order-needs-attribute",
                    alias.span,
                    "an alias can't be specified for an order of a non-aggregate query",
                    "order by `attribute=\"…\"`",
                );
            }
            (true, None, Some(alias)) => self.order_aliases.push(alias.clone()),
            _ => {}
        }
        Some(Order {
            span,
            attribute,
            alias,
            descending,
            entityname,
        })
    }

    fn count_condition_or_link(&mut self, span: Span) {
        self.n_conditions_and_links += 1;
        if self.n_conditions_and_links == MAX_CONDITIONS_AND_LINKS + 1 {
            self.error(
                "fetchxml-too-many-conditions",
                span,
                format!("the query has more than {MAX_CONDITIONS_AND_LINKS} condition and link-entity elements"),
            );
        }
    }

    fn link(&mut self, node: XmlNode, in_filter: bool, depth: usize) -> Option<LinkEntity> {
        if self.too_deep(node, depth) {
            return None;
        }
        let span = self.element_span(node);
        self.n_links += 1;
        let sequence = self.n_links;
        if sequence == MAX_LINKS + 1 {
            self.help(
                "fetchxml-too-many-links",
                span,
                format!("the query has more than {MAX_LINKS} link-entity elements"),
                "split the query or remove joins",
            );
        }
        self.count_condition_or_link(span);
        self.check_attributes(node, "link-entity", LINK_ATTRIBUTES);
        let name = self.required(node, "link-entity", "name");
        let join_column = |parser: &mut Self, attr: &str| {
            parser.required(node, "link-entity", attr).unwrap_or_else(|| {
                if let Some(problem) = parser.problems.last_mut() {
                    problem.help = Some(format!(
                        "add `{attr}=\"…\"`: fetchflow requires `from` and `to` on every link-entity and does not infer them from relationships"
                    ));
                }
                Spanned::new(String::new(), span)
            })
        };
        let from = join_column(self, "from");
        let to = join_column(self, "to");
        let alias = self.string(node, "alias");
        let link_type_names = LinkType::ALL.map(LinkType::name);
        let link_type = self.enumeration(node, "link-type", LinkType::from_name, &link_type_names);
        let intersect = self.boolean(node, "intersect").unwrap_or(false);
        self.boolean(node, "visible");
        let link_type_span = link_type.as_ref().map(|link_type| link_type.span);
        let link_type = link_type.map_or(LinkType::Inner, |link_type| link_type.value);
        let type_span = link_type_span.unwrap_or(span);
        if in_filter && !link_type.is_filter_only() {
            self.help(
                "fetchxml-link-type-placement",
                type_span,
                format!("a link-entity inside a filter can't have link-type `{link_type}`"),
                "use link-type `any`, `not any`, `all` or `not all` inside a filter, or move the link-entity out of the filter",
            );
        } else if !in_filter && link_type.is_filter_only() {
            self.help(
                "fetchxml-link-type-placement",
                type_span,
                format!("link-type `{link_type}` is only allowed inside a `filter`"),
                "move the link-entity into a `filter`, or use `inner`, `outer`, `exists` or `in`",
            );
        }
        if let Some(alias) = &alias {
            self.link_aliases.push(alias.clone());
        }
        if let Some(name) = &name {
            let reference = alias.as_ref().unwrap_or(name).value.clone();
            self.link_references.push(reference);
        }
        let body = self.body(
            node,
            "link-entity",
            Parent::Link,
            depth,
            link_type.returns_columns(),
        );
        let name = name?;
        let result_alias = alias.as_ref().map_or_else(
            || format!("{}{sequence}", name.value),
            |alias| alias.value.clone(),
        );
        Some(LinkEntity {
            span,
            name,
            from,
            to,
            alias,
            result_alias,
            link_type,
            link_type_span,
            intersect,
            attributes: body.attributes,
            all_attributes: body.all_attributes,
            orders: body.orders,
            links: body.links,
            filter: body.filter,
        })
    }

    fn filter(&mut self, node: XmlNode, depth: usize) -> Option<Filter> {
        if self.too_deep(node, depth) {
            return None;
        }
        let span = self.element_span(node);
        self.check_attributes(node, "filter", FILTER_ATTRIBUTES);
        let kind = self
            .enumeration(
                node,
                "type",
                |value| match value {
                    "and" => Some(FilterType::And),
                    "or" => Some(FilterType::Or),
                    _ => None,
                },
                &["and", "or"],
            )
            .map_or(FilterType::And, |kind| kind.value);
        let hint = self.string(node, "hint");
        let is_quick_find = self.boolean(node, "isquickfindfields").unwrap_or(false);
        self.boolean(node, "overridequickfindrecordlimitenabled");
        self.boolean(node, "overridequickfindrecordlimitdisabled");
        let mut items = Vec::new();
        for child in node.children() {
            if child.is_text() {
                self.text_child(child, "filter");
                continue;
            }
            if !child.is_element() {
                continue;
            }
            match child.tag_name().name() {
                "condition" => {
                    if let Some(condition) = self.condition(child) {
                        items.push(FilterItem::Condition(condition));
                    }
                }
                "filter" => {
                    if let Some(filter) = self.filter(child, depth + 1) {
                        items.push(FilterItem::Filter(filter));
                    }
                }
                "link-entity" => {
                    if let Some(link) = self.link(child, true, depth + 1) {
                        items.push(FilterItem::Link(Box::new(link)));
                    }
                }
                _ => self.misplaced(child, "filter", &["condition", "filter", "link-entity"]),
            }
        }
        Some(Filter {
            span,
            kind,
            hint,
            is_quick_find,
            items,
        })
    }

    fn condition(&mut self, node: XmlNode) -> Option<Condition> {
        let span = self.element_span(node);
        self.count_condition_or_link(span);
        self.check_attributes(node, "condition", CONDITION_ATTRIBUTES);
        let attribute = self.required(node, "condition", "attribute");
        let entityname = self.string(node, "entityname");
        if let Some(entityname) = &entityname {
            self.entitynames.push(entityname.clone());
        }
        let valueof = self.string(node, "valueof");
        if let Some(valueof) = &valueof {
            self.valueofs.push(valueof.clone());
        }
        let operator = self.operator(node);

        let mut values = Vec::new();
        let mut n_elements = 0;
        if let Some(value) = self.string(node, "value") {
            values.push(ValueNode {
                value: value.value,
                span: value.span,
                from_attribute: true,
            });
        }
        for child in node.children() {
            if child.is_text() {
                self.text_child(child, "condition");
                continue;
            }
            if !child.is_element() {
                continue;
            }
            if child.tag_name().name() != "value" {
                self.misplaced(child, "condition", &["value"]);
                continue;
            }
            n_elements += 1;
            values.push(self.value(child));
        }

        let operator = operator?;
        let info = operator.value.info();
        let op = operator.value;
        let has_attribute_value = values.first().is_some_and(|value| value.from_attribute);
        if info.fiscal {
            self.help(
                "fetchxml-fiscal-unsupported",
                operator.span,
                format!("operator `{op}` needs a fiscal calendar, which fetchflow doesn't have"),
                "use a calendar date operator such as `this-year`, `last-x-months` or `between`",
            );
        }
        if op == Operator::Neq {
            self.problems.push(
                Problem::warning(
                    "fetchxml-deprecated-operator",
                    operator.span.offset,
                    operator.span.len,
                    "operator `neq` is deprecated",
                )
                .with_help("use `ne`"),
            );
        }
        if let Some(valueof) = &valueof {
            if !op.allows_valueof() {
                self.help(
                    "fetchxml-valueof-not-allowed",
                    valueof.span,
                    format!("operator `{op}` can't compare with another column"),
                    "`valueof` works only with eq, ne, neq, gt, ge, lt and le",
                );
            } else if !values.is_empty() {
                self.help(
                    "fetchxml-value-count",
                    values[0].span,
                    "a condition can't have both `valueof` and a value",
                    "remove the value or `valueof`",
                );
            }
        }
        let n_values = values.len();
        match info.arity {
            Arity::Zero if n_values > 0 || valueof.is_some() => {
                let span = values.first().map_or(operator.span, |value| value.span);
                self.help(
                    "fetchxml-value-count",
                    span,
                    format!("operator `{op}` takes no value"),
                    "remove the value",
                );
            }
            Arity::One if n_values == 0 && valueof.is_none() => {
                let help = if op.allows_valueof() {
                    "add `value=\"…\"` (or `valueof=\"column\"`)"
                } else {
                    "add `value=\"…\"`"
                };
                self.help(
                    "fetchxml-value-count",
                    operator.span,
                    format!("operator `{op}` needs a value"),
                    help,
                );
            }
            Arity::One if n_values > 1 => {
                let help = if has_attribute_value && n_elements > 0 {
                    "use either the `value` attribute or one `<value>` element"
                } else if matches!(op, Operator::Eq) {
                    "use operator `in` to compare with a list of values"
                } else {
                    "keep one value"
                };
                self.help(
                    "fetchxml-value-count",
                    values[1].span,
                    format!("operator `{op}` takes one value, not {n_values}"),
                    help,
                );
            }
            Arity::Two | Arity::AtLeastOne if has_attribute_value => {
                self.help(
                    "fetchxml-value-count",
                    values[0].span,
                    format!("operator `{op}` takes its values as `<value>` elements"),
                    "replace the `value` attribute with `<value>…</value>` elements",
                );
            }
            Arity::Two if n_values != 2 => {
                let span = values.get(2).map_or(operator.span, |value| value.span);
                self.help(
                    "fetchxml-value-count",
                    span,
                    format!("operator `{op}` takes two values, not {n_values}"),
                    "give exactly two `<value>` elements",
                );
            }
            Arity::AtLeastOne if n_values == 0 => {
                self.help(
                    "fetchxml-value-count",
                    operator.span,
                    format!("operator `{op}` needs at least one `<value>` element"),
                    "add `<value>…</value>` elements",
                );
            }
            _ => {}
        }
        if matches!(info.value_kind, ValueKind::Count | ValueKind::Integer) {
            for value in &values {
                if is_template(&value.value) {
                    continue;
                }
                let parsed = value.value.trim().parse::<i64>();
                let valid = match info.value_kind {
                    ValueKind::Count => parsed.is_ok_and(|number| number > 0),
                    _ => parsed.is_ok(),
                };
                if !valid {
                    let what = if info.value_kind == ValueKind::Count {
                        "a positive integer"
                    } else {
                        "an integer"
                    };
                    self.error(
                        "fetchxml-invalid-value",
                        value.span,
                        format!("operator `{op}` needs {what}, not `{}`", value.value),
                    );
                }
            }
        }
        Some(Condition {
            span,
            entityname,
            attribute: attribute?,
            operator,
            values,
            valueof,
        })
    }

    fn operator(&mut self, node: XmlNode) -> Option<Spanned<Operator>> {
        let name = self.required(node, "condition", "operator")?;
        if let Some(operator) = Operator::from_name(&name.value) {
            return Some(Spanned::new(operator, name.span));
        }
        let help = match name.value.as_str() {
            "gte" => "use `ge`".to_owned(),
            "lte" => "use `le`".to_owned(),
            other => match did_you_mean(other, Operator::names()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => "see the FetchXML condition operators".to_owned(),
            },
        };
        self.help(
            "fetchxml-unknown-operator",
            name.span,
            format!("unknown operator `{}`", name.value),
            help,
        );
        None
    }

    fn value(&mut self, node: XmlNode) -> ValueNode {
        self.check_attributes(node, "value", VALUE_ATTRIBUTES);
        let mut text = String::new();
        let mut range: Option<(usize, usize)> = None;
        for child in node.children() {
            if child.is_element() {
                self.misplaced(child, "value", &[]);
            } else if let Some(part) = child.text() {
                text.push_str(part);
                let child_range = child.range();
                range = Some(match range {
                    Some((start, _)) => (start, child_range.end),
                    None => (child_range.start, child_range.end),
                });
            }
        }
        let span = match range {
            Some((start, end)) => Span::new(start, end - start),
            None => self.element_span(node),
        };
        ValueNode {
            value: text,
            span,
            from_attribute: false,
        }
    }

    /// Duplicate aliases, and `entityname` / `valueof` naming link-entities that don't exist.
    fn check_references(&mut self) {
        let order_aliases = std::mem::take(&mut self.order_aliases);
        for alias in &order_aliases {
            if is_template(&alias.value)
                || self
                    .attribute_aliases
                    .iter()
                    .any(|known| known.value == alias.value)
            {
                continue;
            }
            let known = self.attribute_aliases.iter().map(Spanned::as_str);
            let help = did_you_mean(&alias.value, known).map_or_else(
                || "order by the alias of a grouped or aggregated attribute".to_owned(),
                |suggestion| format!("did you mean `{suggestion}`?"),
            );
            self.help(
                "fetchxml-unknown-alias",
                alias.span,
                format!("no attribute has the alias `{}`", alias.value),
                help,
            );
        }
        for aliases in [
            std::mem::take(&mut self.link_aliases),
            std::mem::take(&mut self.attribute_aliases),
        ] {
            let mut seen: HashMap<&str, Span> = HashMap::new();
            for alias in &aliases {
                if seen.insert(alias.as_str(), alias.span).is_some() {
                    self.help(
                        "fetchxml-duplicate-alias",
                        alias.span,
                        format!("alias `{}` is used more than once", alias.value),
                        "FetchXML needs unique aliases; rename one of them",
                    );
                }
            }
        }
        let entitynames = std::mem::take(&mut self.entitynames);
        for entityname in &entitynames {
            self.check_link_reference(&entityname.value, entityname.span);
        }
        let valueofs = std::mem::take(&mut self.valueofs);
        for valueof in &valueofs {
            if let Some((alias, _)) = valueof.value.split_once('.') {
                let span = Span::new(valueof.span.offset, alias.len());
                self.check_link_reference(alias, span);
            }
        }
    }

    fn check_link_reference(&mut self, name: &str, span: Span) {
        if is_template(name) || self.link_references.iter().any(|known| known == name) {
            return;
        }
        let help = match did_you_mean(name, self.link_references.iter().map(String::as_str)) {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None if self.link_references.is_empty() => {
                "the query has no link-entity; add one with an `alias`".to_owned()
            }
            None => format!(
                "use the alias of a link-entity: {}",
                self.link_references.join(", ")
            ),
        };
        self.help(
            "fetchxml-unknown-alias",
            span,
            format!("no link-entity has the alias `{name}`"),
            help,
        );
    }
}

#[derive(Default)]
struct Body {
    attributes: Vec<AttributeNode>,
    all_attributes: bool,
    orders: Vec<Order>,
    links: Vec<LinkEntity>,
    filter: Option<Filter>,
}
