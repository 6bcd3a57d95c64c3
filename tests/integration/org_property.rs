//! Property test of the local org's filters: random filter trees over random `account` rows must
//! select exactly the rows a plain in-memory evaluator, written from
//! ../shared/reference/fetchxml.md, selects: Unicode case- and (English) accent-insensitive
//! strings (§4.2), negative operators matching nulls (§4.3), T-SQL LIKE with `%`, `_`, `[..]`
//! and `[^..]` (§4.4), inclusive `between` (§3.1).
//!
//! Deterministic: the seed is fixed (override with `ORG_PROPERTY_SEED=<u64>`), and a failure
//! prints the seed, the query number, the FetchXML and the differing ids with their rows.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use fetchflow::metadata::Catalogue;
use fetchflow::org::PageRequest;
use fetchflow::org::local::{LocalOrg, RowSet};
use serde_json::{Map, Value, json};

const SEED: u64 = 0x0f37_c4f1_0a11_2024;
const ROWS: usize = 200;
const QUERIES: usize = 600;

/// SplitMix64: tiny, deterministic, good enough to pick test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

/// Letters of generated names: mixed case and accents that fold onto a, b, c, e, u.
const LETTERS: [char; 16] = [
    'a', 'b', 'c', 'e', 'u', 'A', 'B', 'C', 'E', 'U', 'é', 'É', 'ü', 'Ü', 'ä', 'Ä',
];

#[derive(Debug, Clone)]
struct Account {
    id: String,
    name: Option<String>,
    employees: Option<i64>,
    revenue: Option<f64>,
    credit: Option<bool>,
    state: i64,
    created: String,
}

fn account_id(n: usize) -> String {
    format!("aaaaaaaa-0000-4000-8000-{n:012}")
}

fn word(rng: &mut Rng, min: usize, max: usize) -> String {
    let length = min + rng.below(max - min + 1);
    (0..length).map(|_| *rng.pick(&LETTERS)).collect()
}

fn datetime(rng: &mut Rng) -> String {
    // 2024-03-01 .. 2024-03-28, whole minutes; few distinct days so `eq`/`between` hit often.
    let day = 1 + rng.below(28);
    let hour = rng.below(24);
    let minute = rng.below(4) * 15;
    format!("2024-03-{day:02}T{hour:02}:{minute:02}:00Z")
}

fn accounts(rng: &mut Rng) -> Vec<Account> {
    (1..=ROWS)
        .map(|n| Account {
            id: account_id(n),
            name: (!rng.chance(10)).then(|| word(rng, 1, 4)),
            employees: (!rng.chance(15)).then(|| rng.below(21) as i64),
            revenue: (!rng.chance(15)).then(|| rng.below(400) as f64 * 0.25),
            credit: (!rng.chance(20)).then(|| rng.chance(50)),
            state: rng.below(2) as i64,
            created: datetime(rng),
        })
        .collect()
}

fn row_set(accounts: &[Account]) -> RowSet {
    let rows = accounts
        .iter()
        .map(|account| {
            let mut row = Map::new();
            row.insert("accountid".into(), json!(account.id));
            if let Some(name) = &account.name {
                row.insert("name".into(), json!(name));
            }
            if let Some(employees) = account.employees {
                row.insert("numberofemployees".into(), json!(employees));
            }
            if let Some(revenue) = account.revenue {
                row.insert("revenue".into(), json!(revenue));
            }
            if let Some(credit) = account.credit {
                row.insert("creditonhold".into(), json!(credit));
            }
            row.insert("statecode".into(), json!(account.state));
            row.insert("statuscode".into(), json!(account.state + 1));
            row.insert("createdon".into(), json!(account.created));
            row
        })
        .collect();
    BTreeMap::from([("account".to_owned(), rows)])
}

// ---------------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Column {
    Name,
    Employees,
    Revenue,
    Credit,
    State,
    Created,
}

impl Column {
    fn logical_name(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Employees => "numberofemployees",
            Column::Revenue => "revenue",
            Column::Credit => "creditonhold",
            Column::State => "statecode",
            Column::Created => "createdon",
        }
    }

    fn operators(self) -> &'static [&'static str] {
        match self {
            Column::Name => &[
                "eq",
                "ne",
                "neq",
                "gt",
                "ge",
                "lt",
                "le",
                "in",
                "not-in",
                "null",
                "not-null",
                "like",
                "not-like",
                "begins-with",
                "not-begin-with",
                "ends-with",
                "not-end-with",
            ],
            Column::Employees | Column::Revenue => &[
                "eq",
                "ne",
                "neq",
                "gt",
                "ge",
                "lt",
                "le",
                "in",
                "not-in",
                "between",
                "not-between",
                "null",
                "not-null",
            ],
            Column::Credit => &["eq", "ne", "in", "not-in", "null", "not-null"],
            Column::State => &["eq", "ne", "in", "not-in", "not-null", "gt", "le"],
            Column::Created => &[
                "eq",
                "ne",
                "gt",
                "ge",
                "lt",
                "le",
                "between",
                "not-between",
                "null",
                "not-null",
                "on",
                "on-or-before",
                "on-or-after",
            ],
        }
    }
}

#[derive(Debug, Clone)]
struct Condition {
    column: Column,
    operator: &'static str,
    values: Vec<String>,
}

#[derive(Debug, Clone)]
enum Node {
    Condition(Condition),
    Filter { or: bool, children: Vec<Node> },
}

/// A value of `column`: often one that occurs in the data, so equality operators hit.
fn value(rng: &mut Rng, column: Column, data: &[Account]) -> String {
    let existing = &data[rng.below(data.len())];
    let reuse = rng.chance(60);
    match column {
        Column::Name => match (&existing.name, reuse) {
            (Some(name), true) => recase(rng, name),
            _ => word(rng, 1, 3),
        },
        Column::Employees => match (existing.employees, reuse) {
            (Some(employees), true) => employees.to_string(),
            _ => (rng.below(25) as i64 - 2).to_string(),
        },
        Column::Revenue => match (existing.revenue, reuse) {
            (Some(revenue), true) => revenue.to_string(),
            _ => (rng.below(420) as f64 * 0.25).to_string(),
        },
        Column::Credit => rng.pick(&["0", "1"]).to_string(),
        Column::State => rng.pick(&["0", "1"]).to_string(),
        Column::Created => {
            if reuse {
                existing.created.clone()
            } else {
                datetime(rng)
            }
        }
    }
}

/// The same word with letters swapped for another case or accent of the same base letter.
fn recase(rng: &mut Rng, text: &str) -> String {
    text.chars()
        .map(|c| {
            let variants: Vec<char> = LETTERS
                .iter()
                .copied()
                .filter(|other| fold_char(*other) == fold_char(c))
                .collect();
            if variants.is_empty() || rng.chance(50) {
                c
            } else {
                *rng.pick(&variants)
            }
        })
        .collect()
}

/// A T-SQL LIKE pattern over the name alphabet: letters, `%`, `_`, `[..]`, `[a-c]`, `[^..]`.
fn pattern(rng: &mut Rng) -> String {
    let tokens = 1 + rng.below(4);
    let mut out = String::new();
    for _ in 0..tokens {
        match rng.below(10) {
            0..=3 => out.push(*rng.pick(&LETTERS)),
            4 | 5 => out.push('%'),
            6 => out.push('_'),
            7 => {
                out.push('[');
                for _ in 0..1 + rng.below(3) {
                    out.push(*rng.pick(&LETTERS));
                }
                out.push(']');
            }
            8 => {
                let range: &&str = rng.pick(&["[a-c]", "[A-C]", "[b-e]", "[c-u]"]);
                out.push_str(range);
            }
            _ => {
                out.push_str("[^");
                for _ in 0..1 + rng.below(2) {
                    out.push(*rng.pick(&LETTERS));
                }
                out.push(']');
            }
        }
    }
    out
}

fn condition(rng: &mut Rng, data: &[Account]) -> Condition {
    let column = *rng.pick(&[
        Column::Name,
        Column::Name,
        Column::Employees,
        Column::Revenue,
        Column::Credit,
        Column::State,
        Column::Created,
    ]);
    let operator = *rng.pick(column.operators());
    let values = match operator {
        "null" | "not-null" => Vec::new(),
        "in" | "not-in" => (0..1 + rng.below(3))
            .map(|_| value(rng, column, data))
            .collect(),
        "between" | "not-between" => {
            let mut pair = [value(rng, column, data), value(rng, column, data)];
            // Bounds in order: reversed bounds are an [unclear] corner of T-SQL BETWEEN.
            if compare_values(column, &pair[0], &pair[1]) == Ordering::Greater {
                pair.swap(0, 1);
            }
            pair.to_vec()
        }
        "like" | "not-like" => vec![pattern(rng)],
        "on" | "on-or-before" | "on-or-after" => vec![value(rng, column, data)[..10].to_owned()],
        // §4.4: wildcards inside begins-with/ends-with act as wildcards; `_` is used here.
        "begins-with" | "not-begin-with" | "ends-with" | "not-end-with" => {
            let mut text: Vec<char> = word(rng, 1, 2).chars().collect();
            if rng.chance(15) {
                let at = rng.below(text.len() + 1);
                text.insert(at, '_');
            }
            vec![text.into_iter().collect()]
        }
        _ => vec![value(rng, column, data)],
    };
    Condition {
        column,
        operator,
        values,
    }
}

fn filter(rng: &mut Rng, data: &[Account], depth: usize) -> Node {
    let children = (0..1 + rng.below(3))
        .map(|_| {
            if depth < 3 && rng.chance(30) {
                filter(rng, data, depth + 1)
            } else {
                Node::Condition(condition(rng, data))
            }
        })
        .collect();
    Node::Filter {
        or: rng.chance(50),
        children,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml(node: &Node, out: &mut String) {
    match node {
        Node::Condition(condition) => {
            let attribute = condition.column.logical_name();
            let operator = condition.operator;
            match condition.values.as_slice() {
                [] => out.push_str(&format!(
                    r#"<condition attribute="{attribute}" operator="{operator}"/>"#
                )),
                [value] if !matches!(operator, "in" | "not-in") => out.push_str(&format!(
                    r#"<condition attribute="{attribute}" operator="{operator}" value="{}"/>"#,
                    escape(value)
                )),
                values => {
                    out.push_str(&format!(
                        r#"<condition attribute="{attribute}" operator="{operator}">"#
                    ));
                    for value in values {
                        out.push_str(&format!("<value>{}</value>", escape(value)));
                    }
                    out.push_str("</condition>");
                }
            }
        }
        Node::Filter { or, children } => {
            out.push_str(if *or {
                r#"<filter type="or">"#
            } else {
                r#"<filter type="and">"#
            });
            for child in children {
                xml(child, out);
            }
            out.push_str("</filter>");
        }
    }
}

fn fetchxml(root: &Node) -> String {
    let mut out = String::from(r#"<fetch><entity name="account"><attribute name="accountid"/>"#);
    xml(root, &mut out);
    out.push_str("</entity></fetch>");
    out
}

// ---------------------------------------------------------------------------------------------
// The reference evaluator
// ---------------------------------------------------------------------------------------------

/// Case- and accent-insensitive form of one character (§4.2: English collation is `_CI_AI`).
fn fold_char(c: char) -> char {
    let lower = c.to_lowercase().next().unwrap_or(c);
    match lower {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ç' => 'c',
        other => other,
    }
}

fn fold(text: &str) -> Vec<char> {
    text.chars().map(fold_char).collect()
}

/// T-SQL LIKE (§4.4) on folded characters.
fn like(text: &[char], pattern: &[char]) -> bool {
    let Some(&first) = pattern.first() else {
        return text.is_empty();
    };
    match first {
        '%' => (0..=text.len()).any(|skip| like(&text[skip..], &pattern[1..])),
        '_' => !text.is_empty() && like(&text[1..], &pattern[1..]),
        '[' => {
            let Some(close) = pattern.iter().skip(1).position(|&c| c == ']') else {
                // No closing bracket: a literal `[` (never generated).
                return text.first() == Some(&'[') && like(&text[1..], &pattern[1..]);
            };
            let set = &pattern[1..1 + close];
            let rest = &pattern[close + 2..];
            let Some(&c) = text.first() else {
                return false;
            };
            let (negated, set) = match set.first() {
                Some('^') => (true, &set[1..]),
                _ => (false, set),
            };
            let mut member = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    member |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    member |= set[i] == c;
                    i += 1;
                }
            }
            member != negated && like(&text[1..], rest)
        }
        literal => text.first() == Some(&literal) && like(&text[1..], &pattern[1..]),
    }
}

fn compare_values(column: Column, left: &str, right: &str) -> Ordering {
    match column {
        Column::Name => fold(left).cmp(&fold(right)),
        Column::Employees | Column::State => left
            .parse::<i64>()
            .unwrap()
            .cmp(&right.parse::<i64>().unwrap()),
        Column::Revenue => left
            .parse::<f64>()
            .unwrap()
            .total_cmp(&right.parse::<f64>().unwrap()),
        Column::Credit => (left == "1" || left == "true").cmp(&(right == "1" || right == "true")),
        // One fixed format: text order is time order.
        Column::Created => left.cmp(right),
    }
}

/// The row's value of `column` in the same text form as condition values; `None` = null.
fn cell(account: &Account, column: Column) -> Option<String> {
    match column {
        Column::Name => account.name.clone(),
        Column::Employees => account.employees.map(|v| v.to_string()),
        Column::Revenue => account.revenue.map(|v| v.to_string()),
        Column::Credit => account.credit.map(|v| if v { "1" } else { "0" }.to_owned()),
        Column::State => Some(account.state.to_string()),
        Column::Created => Some(account.created.clone()),
    }
}

fn holds(condition: &Condition, account: &Account) -> bool {
    let column = condition.column;
    let operator = condition.operator;
    let values = &condition.values;
    let Some(actual) = cell(account, column) else {
        // §4.3: positive operators are false on null, negative ones true.
        return matches!(
            operator,
            "null"
                | "ne"
                | "neq"
                | "not-in"
                | "not-between"
                | "not-like"
                | "not-begin-with"
                | "not-end-with"
        );
    };
    let cmp = |value: &String| compare_values(column, &actual, value);
    let like_text = |pattern: &str| like(&fold(&actual), &fold(pattern));
    match operator {
        "null" => false,
        "not-null" => true,
        "eq" => cmp(&values[0]) == Ordering::Equal,
        "ne" | "neq" => cmp(&values[0]) != Ordering::Equal,
        "gt" => cmp(&values[0]) == Ordering::Greater,
        "ge" => cmp(&values[0]) != Ordering::Less,
        "lt" => cmp(&values[0]) == Ordering::Less,
        "le" => cmp(&values[0]) != Ordering::Greater,
        "in" => values.iter().any(|value| cmp(value) == Ordering::Equal),
        "not-in" => !values.iter().any(|value| cmp(value) == Ordering::Equal),
        "between" => cmp(&values[0]) != Ordering::Less && cmp(&values[1]) != Ordering::Greater,
        "not-between" => {
            !(cmp(&values[0]) != Ordering::Less && cmp(&values[1]) != Ordering::Greater)
        }
        // UTC calendar days (the org has no user time zone).
        "on" => actual[..10] == values[0][..],
        "on-or-before" => actual[..10] <= values[0][..],
        "on-or-after" => actual[..10] >= values[0][..],
        "like" => like_text(&values[0]),
        "not-like" => !like_text(&values[0]),
        "begins-with" => like_text(&format!("{}%", values[0])),
        "not-begin-with" => !like_text(&format!("{}%", values[0])),
        "ends-with" => like_text(&format!("%{}", values[0])),
        "not-end-with" => !like_text(&format!("%{}", values[0])),
        other => panic!("the evaluator has no operator {other}"),
    }
}

fn matches(node: &Node, account: &Account) -> bool {
    match node {
        Node::Condition(condition) => holds(condition, account),
        Node::Filter { or: true, children } => children.iter().any(|c| matches(c, account)),
        Node::Filter {
            or: false,
            children,
        } => children.iter().all(|c| matches(c, account)),
    }
}

// ---------------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------------

#[test]
fn the_evaluator_follows_tsql_like_and_the_collation() {
    let t = |text: &str, pattern: &str| like(&fold(text), &fold(pattern));
    assert!(t("Äbc", "a%"));
    assert!(t("ébc", "[a-e]B_"));
    assert!(!t("ébc", "[^e]%"));
    assert!(t("abc", "%"));
    assert!(!t("", "_"));
    assert!(t("", "%"));
    assert!(t("cab", "%a[b]"));
    assert!(!t("cab", "%a"));
    assert_eq!(
        compare_values(Column::Name, "École", "ECOLE"),
        Ordering::Equal
    );
    assert_eq!(compare_values(Column::Name, "a", "B"), Ordering::Less);
}

#[test]
fn random_filters_match_the_reference_evaluator() {
    let seed = std::env::var("ORG_PROPERTY_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(SEED);
    let mut rng = Rng(seed);
    let data = accounts(&mut rng);
    let org = LocalOrg::in_memory(Catalogue::builtin()).expect("in-memory org");
    if let Err(error) = org.import(&row_set(&data)) {
        panic!("seed {seed}: import of the random rows failed: {error}");
    }
    let by_id: BTreeMap<&str, &Account> = data.iter().map(|a| (a.id.as_str(), a)).collect();
    let mut operators: BTreeMap<&str, usize> = BTreeMap::new();
    let mut proper_subsets = 0;
    for query in 0..QUERIES {
        let root = filter(&mut rng, &data, 1);
        count_operators(&root, &mut operators);
        let fetch = fetchxml(&root);
        let expected: BTreeSet<String> = data
            .iter()
            .filter(|account| matches(&root, account))
            .map(|account| account.id.clone())
            .collect();
        if !expected.is_empty() && expected.len() < data.len() {
            proper_subsets += 1;
        }
        let page = org
            .query(&fetch, &PageRequest::default())
            .unwrap_or_else(|error| {
                panic!(
                    "seed {seed}, query {query}: error {}: {}\n{fetch}",
                    error.code, error.message
                )
            });
        let actual: BTreeSet<String> = page
            .rows
            .iter()
            .map(|row| {
                row.get("accountid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            actual.len(),
            page.rows.len(),
            "seed {seed}, query {query}: duplicate rows\n{fetch}"
        );
        if actual != expected {
            let describe = |ids: Vec<&String>| {
                ids.iter()
                    .map(|id| format!("  {id} {:?}", by_id.get(id.as_str())))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "seed {seed}, query {query}: the org and the reference evaluator disagree\n{fetch}\n\
                 returned but not expected:\n{}\nexpected but not returned:\n{}",
                describe(actual.difference(&expected).collect()),
                describe(expected.difference(&actual).collect()),
            );
        }
    }
    // The property only means something if the queries discriminate and cover every operator.
    assert!(
        proper_subsets * 2 >= QUERIES,
        "seed {seed}: only {proper_subsets} of {QUERIES} queries select a proper subset"
    );
    for column in [Column::Name, Column::Employees, Column::Created] {
        for operator in column.operators() {
            let used = operators.get(operator).copied().unwrap_or(0);
            assert!(
                used >= 10,
                "seed {seed}: operator {operator} used only {used} times"
            );
        }
    }
}

fn count_operators(node: &Node, counts: &mut BTreeMap<&'static str, usize>) {
    match node {
        Node::Condition(condition) => *counts.entry(condition.operator).or_default() += 1,
        Node::Filter { children, .. } => {
            for child in children {
                count_operators(child, counts);
            }
        }
    }
}
