//! Running a FetchXML query on the local org: parse, check against the org's catalogue,
//! compile (`sql`), page, execute and convert rows to the row format of DESIGN 5.2.
//!
//! Paging. The page size is the request's `count`, else the fetch `count`, else 5,000 (at most
//! 5,000); `top` returns at most `top` rows in one page. Rows are read from the statement one by
//! one and only the page is kept; one row more tells `more_records`. When more rows exist the
//! page carries a paging cookie:
//!
//! ```text
//! <cookie page="N"><key type="s" last="Contoso"/><key type="n"/>…<key type="s" last="5e…"/>
//!   <accountid last="{GUID}" first="{GUID}"/></cookie>
//! ```
//!
//! One `key` per order key of the compiled query, in order, with the value of the page's last
//! row (`type`: `n` null, `i` integer, `r` real, `s` text); the last keys are the primary keys
//! that make the order total. The trailing `{primaryid} last/first` element is Dataverse's own
//! cookie shape. Page N+1 with the cookie of page N reads by keyset — `WHERE (k1, k2, …) >
//! (last values)`, each key in its direction, nulls first ascending — never with OFFSET, so
//! every page costs the same. A cookie of another page is ignored (Dataverse: "non-consecutive
//! page requests ignore the cookie"); a page N > 1 without a usable cookie is Dataverse's
//! simple paging: it skips (N − 1) × size rows with OFFSET and, as Dataverse, only within the
//! first 50,000 rows. `returntotalrecordcount` counts at most 5,001 rows (total capped at 5,000).
//! Aggregate queries first count the rows they run over, up to the aggregate limit (50,000 or
//! `aggregatelimit`).

use rusqlite::types::{Value, ValueRef};
use serde_json::Value as Json;

use crate::diagnostics::Severity;
use crate::fetchxml::{self, MAX_AGGREGATE_LIMIT, MAX_PAGE_SIZE};
use crate::org::local::sql::{self, Compiled, Conversion, Environment, errors};
use crate::org::local::{LocalOrg, sqlite};
use crate::org::{OrgError, Page, PageRequest, Row};

/// Dataverse's limit on rows reachable by simple paging (page numbers without a cookie).
const SIMPLE_PAGING_LIMIT: u64 = 50_000;

/// `returntotalrecordcount` counts up to this many rows.
const TOTAL_RECORD_COUNT_LIMIT: i64 = 5_000;

/// Statements kept prepared per connection.
const STATEMENT_CACHE: usize = 64;

/// Runs one page of a FetchXML query.
pub(crate) fn run(org: &LocalOrg, fetchxml: &str, request: &PageRequest) -> Result<Page, OrgError> {
    let (query, problems) = fetchxml::parse(fetchxml);
    if let Some(problem) = problems.iter().find(|p| p.severity == Severity::Error) {
        return Err(errors::from_problem(problem));
    }
    let query = query
        .ok_or_else(|| errors::error("InvalidXml", errors::INVALID_XML, "Invalid XML.", ""))?;
    let problems = fetchxml::check(&query, org.catalogue());
    if let Some(problem) = problems.iter().find(|p| p.severity == Severity::Error) {
        return Err(errors::from_problem(problem));
    }
    let environment = Environment {
        catalogue: org.catalogue(),
        now: org.now(),
        caller: org.caller(),
    };
    let compiled = sql::compile(&query, environment)?;

    let top = query.top.as_ref().map(|top| top.value);
    let size = match top {
        Some(top) => top,
        None => request
            .count
            .or(query.count.as_ref().map(|count| count.value))
            .unwrap_or(MAX_PAGE_SIZE),
    };
    if size == 0 {
        return Err(errors::error(
            "QueryBuilderValue_GreaterThanZero",
            errors::QUERY_BUILDER_VALUE_GREATER_THAN_ZERO,
            "A value greater than zero must be specified.",
            "the page size is 0",
        ));
    }
    let size = size.min(MAX_PAGE_SIZE);
    let page = if top.is_some() {
        1
    } else {
        request
            .page
            .or(query.page.as_ref().map(|page| page.value))
            .unwrap_or(1)
            .max(1)
    };
    let cookie_text = request
        .paging_cookie
        .as_deref()
        .or(query
            .paging_cookie
            .as_ref()
            .map(|cookie| cookie.value.as_str()))
        .filter(|cookie| !cookie.trim().is_empty());
    let keyset = match cookie_text {
        Some(text) if page > 1 && top.is_none() => {
            let cookie = Cookie::parse(text)?;
            if cookie.page + 1 == page {
                if cookie.keys.len() != compiled.keys.len() {
                    return Err(errors::error(
                        "QueryBuilderPagingOrderBy",
                        errors::QUERY_BUILDER_PAGING_ORDER_BY,
                        "Order by columns do not match those in paging cookie.",
                        "",
                    ));
                }
                Some(cookie.keys)
            } else {
                None
            }
        }
        _ => None,
    };
    let offset = if keyset.is_none() && page > 1 {
        let skipped = u64::from(page - 1) * u64::from(size);
        if skipped + u64::from(size) > SIMPLE_PAGING_LIMIT {
            return Err(errors::error(
                "QueryBuilderPagingLimit",
                errors::QUERY_BUILDER_PAGING_LIMIT,
                "Simple paging (a page number without a paging cookie) can't read past 50,000 rows.",
                &format!(
                    "page {page} of {size} rows; pass the paging cookie of page {}",
                    page - 1
                ),
            ));
        }
        skipped
    } else {
        0
    };

    let connection = org.connection();
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);

    if compiled.aggregate {
        let limit = query
            .aggregate_limit
            .as_ref()
            .map_or(MAX_AGGREGATE_LIMIT, |limit| {
                limit.value.min(MAX_AGGREGATE_LIMIT)
            });
        let count_sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 {} LIMIT {})",
            compiled.from_where,
            u64::from(limit) + 1
        );
        let mut statement = connection.prepare_cached(&count_sql).map_err(sqlite)?;
        let n: i64 = statement
            .query_row(rusqlite::params_from_iter(compiled.params.iter()), |row| {
                row.get(0)
            })
            .map_err(sqlite)?;
        if n > i64::from(limit) {
            return Err(errors::aggregate_limit());
        }
    }

    let (total_record_count, total_record_count_limit_exceeded) = if query.return_total_record_count
    {
        let count_sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM ({}) LIMIT {})",
            compiled.inner,
            TOTAL_RECORD_COUNT_LIMIT + 1
        );
        let mut statement = connection.prepare_cached(&count_sql).map_err(sqlite)?;
        let n: i64 = statement
            .query_row(rusqlite::params_from_iter(compiled.params.iter()), |row| {
                row.get(0)
            })
            .map_err(sqlite)?;
        (
            Some(n.min(TOTAL_RECORD_COUNT_LIMIT)),
            n > TOTAL_RECORD_COUNT_LIMIT,
        )
    } else {
        (None, false)
    };

    let segments = match &keyset {
        Some(values) => keyset_segments(&compiled, values),
        None => vec![(None, compiled.params.clone())],
    };
    let order = compiled
        .keys
        .iter()
        .enumerate()
        .map(|(index, key)| {
            let expression = sql::collate(&format!("q.\"k{index}\""), key.text);
            if key.descending {
                format!("{expression} DESC")
            } else {
                expression
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let fetch = if top.is_some() { size } else { size + 1 };
    let mut reader = PageReader {
        compiled: &compiled,
        size: size as usize,
        rows: Vec::new(),
        more_records: false,
        last_keys: Vec::new(),
        first_id: None,
        last_id: None,
    };
    for (predicate, params) in segments {
        let wanted = (fetch as usize)
            .saturating_sub(reader.rows.len())
            .saturating_sub(usize::from(reader.more_records));
        if wanted == 0 {
            break;
        }
        let statement_sql = format!(
            "SELECT * FROM ({}) AS q{} ORDER BY {order} LIMIT {wanted}{}",
            compiled.inner,
            predicate.map_or_else(String::new, |predicate| format!(" WHERE {predicate}")),
            if offset > 0 {
                format!(" OFFSET {offset}")
            } else {
                String::new()
            }
        );
        let mut statement = connection.prepare_cached(&statement_sql).map_err(sqlite)?;
        let mut rows = statement
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite)?;
        while let Some(row) = rows.next().map_err(sqlite)? {
            if !reader.push(row)? {
                break;
            }
        }
    }
    let PageReader {
        rows: result,
        more_records,
        last_keys,
        first_id,
        last_id,
        ..
    } = reader;
    let paging_cookie = more_records.then(|| {
        let primary = org
            .catalogue()
            .entity(query.root_entity())
            .map_or("id", |meta| meta.primary_id.as_str());
        Cookie::render(
            page,
            &last_keys,
            primary,
            first_id.as_deref(),
            last_id.as_deref(),
        )
    });
    Ok(Page {
        rows: result,
        more_records,
        paging_cookie,
        total_record_count,
        total_record_count_limit_exceeded,
    })
}

/// Reads rows of one page: converts the first `size`, notes the keys of the last one and
/// whether one more row exists.
struct PageReader<'c> {
    compiled: &'c Compiled,
    size: usize,
    rows: Vec<Row>,
    more_records: bool,
    last_keys: Vec<Value>,
    first_id: Option<String>,
    last_id: Option<String>,
}

impl PageReader<'_> {
    /// Takes one row; `false` once the page is full and one more row was seen.
    fn push(&mut self, row: &rusqlite::Row<'_>) -> Result<bool, OrgError> {
        if self.rows.len() == self.size {
            self.more_records = true;
            return Ok(false);
        }
        let compiled = self.compiled;
        let mut converted = Row::new();
        for (index, column) in compiled.columns.iter().enumerate() {
            let raw = row.get_ref(index).map_err(sqlite)?;
            if let Some(value) = convert(raw, column.conversion) {
                converted.insert(column.key.clone(), value);
            }
        }
        // The ids only matter for the cookie's first/last: read them on the first and the
        // last row of the page, not on every row.
        if let Some(index) = compiled.primary_key
            && self.first_id.is_none()
        {
            self.first_id = text(row.get_ref(index).map_err(sqlite)?);
        }
        self.rows.push(converted);
        if self.rows.len() == self.size {
            if let Some(index) = compiled.primary_key {
                self.last_id = text(row.get_ref(index).map_err(sqlite)?);
            }
            let n_columns = compiled.columns.len();
            self.last_keys = (0..compiled.keys.len())
                .map(|index| row.get::<_, Value>(n_columns + index))
                .collect::<Result<Vec<_>, _>>()
                .map_err(sqlite)?;
        }
        Ok(true)
    }
}

/// The rows after the cookie's keys, as one or two (predicate, parameters) segments read in
/// order: `(k1, k2, …) > (v1, v2, …)` in the order's directions, nulls first ascending, i.e.
/// `k1 after v1 OR (k1 same v1 AND (k2 after v2 OR (…)))`.
///
/// So that an index on the first key can seek to the page: with an ascending first key the
/// predicate also says `k1 >= v1`; with a descending one it says `k1 <= v1` and the rows whose
/// first key is null (last in descending order) are a second segment.
fn keyset_segments(compiled: &Compiled, values: &[Value]) -> Vec<(Option<String>, Vec<Value>)> {
    let mut params = compiled.params.clone();
    let mut predicate = String::from("0");
    let mut null_tail = false;
    for (index, (key, value)) in compiled.keys.iter().zip(values).enumerate().rev() {
        let column = sql::collate(&format!("q.\"k{index}\""), key.text);
        let bare = format!("q.\"k{index}\"");
        let first = index == 0;
        let (after, same) = if matches!(value, Value::Null) {
            let after = if key.descending {
                "0".to_owned()
            } else {
                format!("{bare} IS NOT NULL")
            };
            (after, format!("{bare} IS NULL"))
        } else {
            params.push(value.clone());
            let placeholder = format!("?{}", params.len());
            let after = match (key.descending, first) {
                (false, _) => format!("{column} > {placeholder}"),
                (true, true) => {
                    null_tail = true;
                    format!("{column} < {placeholder}")
                }
                (true, false) => format!("({column} < {placeholder} OR {bare} IS NULL)"),
            };
            (after, format!("{column} = {placeholder}"))
        };
        let tail = if predicate == "0" {
            after
        } else {
            format!("({after} OR ({same} AND {predicate}))")
        };
        predicate = if first && !matches!(value, Value::Null) {
            let placeholder = format!("?{}", params.len());
            let bound = if key.descending { "<=" } else { ">=" };
            format!("({column} {bound} {placeholder} AND {tail})")
        } else {
            tail
        };
    }
    let mut segments = vec![(Some(predicate), params)];
    if null_tail {
        segments.push((Some("q.\"k0\" IS NULL".to_owned()), compiled.params.clone()));
    }
    segments
}

/// A SQL value as the row format wants it; `None` for null.
fn convert(raw: ValueRef<'_>, conversion: Conversion) -> Option<Json> {
    match (raw, conversion) {
        (ValueRef::Null, _) => None,
        (ValueRef::Integer(number), Conversion::Boolean) => Some(Json::Bool(number != 0)),
        (ValueRef::Integer(number), Conversion::Real) => Some(real(number as f64)),
        (ValueRef::Integer(number), _) => Some(Json::from(number)),
        (ValueRef::Real(number), Conversion::Integer | Conversion::Truncated) => {
            if number.is_finite() && number.abs() < 9.0e15 {
                Some(Json::from(number.trunc() as i64))
            } else {
                Some(real(number))
            }
        }
        (ValueRef::Real(number), Conversion::Boolean) => Some(Json::Bool(number != 0.0)),
        (ValueRef::Real(number), _) => Some(real(number)),
        (ValueRef::Text(bytes), Conversion::MultiSelect) => {
            let text = String::from_utf8_lossy(bytes);
            Some(serde_json::from_str(&text).unwrap_or(Json::String(text.into_owned())))
        }
        (ValueRef::Text(bytes) | ValueRef::Blob(bytes), _) => {
            Some(Json::String(String::from_utf8_lossy(bytes).into_owned()))
        }
    }
}

fn real(number: f64) -> Json {
    serde_json::Number::from_f64(number).map_or(Json::Null, Json::Number)
}

fn text(raw: ValueRef<'_>) -> Option<String> {
    match raw {
        ValueRef::Text(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

/// The paging cookie (see the module doc).
#[derive(Debug, Clone, PartialEq)]
struct Cookie {
    page: u32,
    keys: Vec<Value>,
}

impl Cookie {
    fn render(
        page: u32,
        keys: &[Value],
        primary_id: &str,
        first: Option<&str>,
        last: Option<&str>,
    ) -> String {
        let mut cookie = format!("<cookie page=\"{page}\">");
        for key in keys {
            let (kind, value) = match key {
                Value::Null => ("n", None),
                Value::Integer(number) => ("i", Some(number.to_string())),
                Value::Real(number) => ("r", Some(number.to_string())),
                Value::Text(text) => ("s", Some(text.clone())),
                Value::Blob(bytes) => ("s", Some(String::from_utf8_lossy(bytes).into_owned())),
            };
            match value {
                Some(value) => cookie.push_str(&format!(
                    "<key type=\"{kind}\" last=\"{}\"/>",
                    crate::org::odata::xml_escape(&value)
                )),
                None => cookie.push_str(&format!("<key type=\"{kind}\"/>")),
            }
        }
        if let (Some(first), Some(last)) = (first, last) {
            cookie.push_str(&format!(
                "<{primary_id} last=\"{{{}}}\" first=\"{{{}}}\"/>",
                crate::org::odata::xml_escape(&last.to_ascii_uppercase()),
                crate::org::odata::xml_escape(&first.to_ascii_uppercase())
            ));
        }
        cookie.push_str("</cookie>");
        cookie
    }

    fn parse(text: &str) -> Result<Cookie, OrgError> {
        let invalid = |detail: &str| {
            errors::error(
                "QueryBuilderInvalidPagingCookie",
                errors::QUERY_BUILDER_INVALID_PAGING_COOKIE,
                "Invalid page number in paging cookie.",
                detail,
            )
        };
        let options = roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: 10_000,
            ..roxmltree::ParsingOptions::default()
        };
        let document = roxmltree::Document::parse_with_options(text, options)
            .map_err(|error| invalid(&format!("the cookie is not XML: {error}")))?;
        let root = document.root_element();
        if root.tag_name().name() != "cookie" {
            return Err(invalid("the cookie's root element must be `cookie`"));
        }
        let page = root
            .attribute("page")
            .and_then(|page| page.trim().parse::<u32>().ok())
            .ok_or_else(|| invalid("the cookie has no page number"))?;
        let mut keys = Vec::new();
        for key in root
            .children()
            .filter(|node| node.is_element() && node.tag_name().name() == "key")
        {
            let last = key.attribute("last");
            let value = match (key.attribute("type"), last) {
                (Some("n"), _) => Value::Null,
                (Some("i"), Some(last)) => Value::Integer(
                    last.parse()
                        .map_err(|_| invalid("an integer key is not an integer"))?,
                ),
                (Some("r"), Some(last)) => Value::Real(
                    last.parse()
                        .map_err(|_| invalid("a real key is not a number"))?,
                ),
                (Some("s"), Some(last)) => Value::Text(last.to_owned()),
                _ => return Err(invalid("a key has no valid type and value")),
            };
            keys.push(value);
        }
        Ok(Cookie { page, keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_round_trips_every_key_type() {
        let keys = vec![
            Value::Null,
            Value::Integer(-42),
            Value::Real(0.1),
            Value::Text("O'Brien & <Sons> \"quoted\"".to_owned()),
        ];
        let text = Cookie::render(3, &keys, "accountid", Some("ab"), Some("cd"));
        assert!(text.contains("<accountid last=\"{CD}\" first=\"{AB}\"/>"));
        let cookie = Cookie::parse(&text).unwrap();
        assert_eq!(cookie, Cookie { page: 3, keys });
    }

    #[test]
    fn bad_cookies_are_dataverse_errors() {
        for text in [
            "not xml",
            "<other page='1'/>",
            "<cookie/>",
            "<cookie page='1'><key type='i' last='x'/></cookie>",
        ] {
            let error = Cookie::parse(text).unwrap_err();
            assert_eq!(error.code, "QueryBuilderInvalidPagingCookie", "{text}");
        }
    }
}
