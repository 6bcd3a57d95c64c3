//! FetchXML conformance of the local org: table-driven cases (rows to import, FetchXML, expected
//! rows or error) written from ../shared/reference/fetchxml.md — Dataverse's documented
//! semantics — not recorded from the implementation. Cases marked [inferred]/[unclear] follow
//! the reference's marks; the case comments say which section they rely on.
//!
//! Ids are written as tokens: `#a1` is the lower-case GUID of account 1 (`#c` contact,
//! `#u` systemuser, `#t` team, `#b` businessunit, `#o` opportunity, `#m` teammembership),
//! `#^a1` the same GUID upper-case in braces. Ids of one table differ only in their last group,
//! so text order, SQL Server `uniqueidentifier` order and numeric order of N all agree.
//!
//! Run one case: `CONFORMANCE_CASE=<substring> cargo test conformance`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use fetchflow::metadata::{AttributeMeta, AttributeType, Catalogue, EntityMeta};
use fetchflow::org::local::{LocalOrg, RowSet};
use fetchflow::org::{Page, PageRequest, Row};
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// The fixed "now" of every case: Wednesday 2024-06-12 14:30:00 UTC.
pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 12, 14, 30, 0).unwrap()
}

/// The GUID a token letter and number stand for (see the module doc).
pub(crate) fn guid(letter: char, n: u32) -> String {
    let prefix = match letter {
        'a' => "aaaaaaaa",
        'b' => "bbbbbbbb",
        'c' => "cccccccc",
        'o' => "dddddddd",
        'u' => "eeeeeeee",
        't' => "ffffffff",
        'm' => "11111111",
        'k' => "22222222",
        'l' => "33333333",
        other => panic!("no id prefix for token letter {other:?}"),
    };
    format!("{prefix}-0000-4000-8000-{n:012}")
}

/// Replaces `#a1` by account 1's GUID and `#^a1` by `{GUID}` in upper case.
pub(crate) fn expand(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 64);
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '#' {
            let upper = chars.get(i + 1) == Some(&'^');
            let start = if upper { i + 2 } else { i + 1 };
            if let Some(&letter) = chars.get(start).filter(|c| c.is_ascii_lowercase()) {
                let mut end = start + 1;
                while end < chars.len() && chars[end].is_ascii_digit() {
                    end += 1;
                }
                if end > start + 1 {
                    let n: u32 = chars[start + 1..end]
                        .iter()
                        .collect::<String>()
                        .parse()
                        .unwrap();
                    let id = guid(letter, n);
                    if upper {
                        out.push_str(&format!("{{{}}}", id.to_ascii_uppercase()));
                    } else {
                        out.push_str(&id);
                    }
                    i = end;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Merges JSON row-set fragments (`{"account": [...]}`) into one row set.
pub(crate) fn rowset<S: AsRef<str>>(parts: &[S]) -> RowSet {
    let mut merged: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for part in parts {
        let part = part.as_ref();
        let set: BTreeMap<String, Vec<Row>> = serde_json::from_str(&expand(part))
            .unwrap_or_else(|error| panic!("bad fixture JSON: {error}\n{part}"));
        for (entity, rows) in set {
            merged.entry(entity).or_default().extend(rows);
        }
    }
    merged
}

/// A fresh in-memory org with the fixture imported, the fixed clock and caller `#u1`.
pub(crate) fn org_with(rows: &RowSet) -> LocalOrg {
    let org = LocalOrg::in_memory(Catalogue::builtin())
        .expect("in-memory org")
        .with_clock(Arc::new(now))
        .with_caller(Some(guid('u', 1)));
    if let Err(error) = org.import(rows) {
        panic!("fixture import failed: {error}");
    }
    org
}

enum Expect {
    /// Exactly these rows: in this order when `ordered`, as a multiset otherwise.
    Rows { json: String, ordered: bool },
    /// An error whose code is one of `codes` (any code when empty) and whose message contains
    /// every one of `contains` (case-insensitively).
    Error {
        codes: &'static [&'static str],
        contains: &'static [&'static str],
    },
}

struct Case {
    name: &'static str,
    fixture: Vec<String>,
    fetch: String,
    request: PageRequest,
    expect: Expect,
    more_records: Option<bool>,
    total: Option<i64>,
    /// The catalogue of the org (built-in unless a case needs custom tables or columns).
    catalogue: fn() -> Catalogue,
}

fn case(name: &'static str, fixture: &[&str], fetch: &str, expect: Expect) -> Case {
    Case {
        name,
        fixture: fixture.iter().map(|part| (*part).to_owned()).collect(),
        fetch: fetch.to_owned(),
        request: PageRequest::default(),
        expect,
        more_records: None,
        total: None,
        catalogue: Catalogue::builtin,
    }
}

impl Case {
    fn request(mut self, page: Option<u32>, count: Option<u32>) -> Self {
        self.request = PageRequest {
            page,
            count,
            paging_cookie: None,
        };
        self
    }
    fn more(mut self, more: bool) -> Self {
        self.more_records = Some(more);
        self
    }
    fn total(mut self, total: i64) -> Self {
        self.total = Some(total);
        self
    }
    fn catalogue(mut self, catalogue: fn() -> Catalogue) -> Self {
        self.catalogue = catalogue;
        self
    }
}

/// Rows in any order.
fn set(json: &str) -> Expect {
    Expect::Rows {
        json: json.to_owned(),
        ordered: false,
    }
}

/// Rows in this order.
fn seq(json: &str) -> Expect {
    Expect::Rows {
        json: json.to_owned(),
        ordered: true,
    }
}

fn id_rows(key: &str, tokens: &str) -> String {
    let rows: Vec<String> = tokens
        .split_whitespace()
        .map(|token| format!(r##"{{"{key}":"#{token}"}}"##))
        .collect();
    format!("[{}]", rows.join(","))
}

/// Rows holding only `accountid`, any order: `ids("a1 a3")`.
fn ids(tokens: &str) -> Expect {
    set(&id_rows("accountid", tokens))
}

/// Rows holding only `accountid`, in this order.
fn ids_seq(tokens: &str) -> Expect {
    seq(&id_rows("accountid", tokens))
}

fn err(codes: &'static [&'static str], contains: &'static [&'static str]) -> Expect {
    Expect::Error { codes, contains }
}

/// `<fetch><entity name="account"><attribute name="accountid"/><filter>{filter}</filter>…`
fn acct(filter: &str) -> String {
    format!(
        r#"<fetch><entity name="account"><attribute name="accountid"/><filter>{filter}</filter></entity></fetch>"#
    )
}

/// One condition on account: `cond("name", "eq", "x")`.
fn cond(attribute: &str, operator: &str, value: &str) -> String {
    acct(&format!(
        r#"<condition attribute="{attribute}" operator="{operator}" value="{value}"/>"#
    ))
}

/// A condition without value on account.
fn cond0(attribute: &str, operator: &str) -> String {
    acct(&format!(
        r#"<condition attribute="{attribute}" operator="{operator}"/>"#
    ))
}

/// A multi-value condition on account.
fn condn(attribute: &str, operator: &str, values: &[&str]) -> String {
    let values: String = values
        .iter()
        .map(|value| format!("<value>{value}</value>"))
        .collect();
    acct(&format!(
        r#"<condition attribute="{attribute}" operator="{operator}">{values}</condition>"#
    ))
}

/// Numbers compare by value (money `1000` and `1000.0` are the same number).
fn normalize(value: &Value) -> Value {
    match value {
        Value::Number(number) => number
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| value.clone(), Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), normalize(value)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

fn rows_text(rows: &[Value]) -> String {
    rows.iter()
        .map(|row| format!("  {row}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compares a page against the expectation; `Err` explains the difference.
fn check_rows(page: &Page, json: &str, ordered: bool) -> Result<(), String> {
    let expected: Vec<Value> = serde_json::from_str::<Vec<Value>>(&expand(json))
        .map_err(|error| format!("bad expected JSON: {error}"))?
        .iter()
        .map(normalize)
        .collect();
    let mut actual: Vec<Value> = page
        .rows
        .iter()
        .map(|row| normalize(&Value::Object(row.clone())))
        .collect();
    let mut expected_cmp = expected.clone();
    if !ordered {
        actual.sort_by_key(Value::to_string);
        expected_cmp.sort_by_key(Value::to_string);
    }
    if actual == expected_cmp {
        Ok(())
    } else {
        Err(format!(
            "rows differ ({}):\nexpected:\n{}\nactual:\n{}",
            if ordered { "in order" } else { "as a multiset" },
            rows_text(&expected_cmp),
            rows_text(&actual)
        ))
    }
}

/// Every imported table still holds its rows (injection cases must not have changed anything).
fn check_intact(org: &LocalOrg, rows: &RowSet) -> Result<(), String> {
    let catalogue = org.catalogue();
    for (entity, imported) in rows {
        let Some(meta) = catalogue.entity(entity) else {
            continue;
        };
        let fetch = format!(
            r#"<fetch><entity name="{entity}"><attribute name="{}"/></entity></fetch>"#,
            meta.primary_id
        );
        match org.query(&fetch, &PageRequest::default()) {
            Ok(page) if page.rows.len() == imported.len() => {}
            Ok(page) => {
                return Err(format!(
                    "after the query, {entity} holds {} rows instead of {}",
                    page.rows.len(),
                    imported.len()
                ));
            }
            Err(error) => return Err(format!("after the query, {entity} is unreadable: {error}")),
        }
    }
    Ok(())
}

fn run_case(case: &Case) -> Result<(), String> {
    let rows = rowset(&case.fixture);
    let org = LocalOrg::in_memory((case.catalogue)())
        .map_err(|error| format!("in-memory org: {error}"))?
        .with_clock(Arc::new(now))
        .with_caller(Some(guid('u', 1)));
    org.import(&rows)
        .map_err(|error| format!("fixture import failed: {error}"))?;
    let fetch = expand(&case.fetch);
    let result = org.query(&fetch, &case.request);
    match (&case.expect, result) {
        (Expect::Rows { json, ordered }, Ok(page)) => {
            check_rows(&page, json, *ordered)?;
            if let Some(more) = case.more_records
                && page.more_records != more
            {
                return Err(format!(
                    "more_records is {}, expected {more}",
                    page.more_records
                ));
            }
            if let Some(total) = case.total
                && page.total_record_count != Some(total)
            {
                return Err(format!(
                    "total_record_count is {:?}, expected {total}",
                    page.total_record_count
                ));
            }
        }
        (Expect::Rows { .. }, Err(error)) => {
            return Err(format!(
                "expected rows, got error {}: {}",
                error.code, error.message
            ));
        }
        (Expect::Error { codes, contains }, Ok(page)) => {
            return Err(format!(
                "expected an error ({codes:?} {contains:?}), got {} rows",
                page.rows.len()
            ));
        }
        (Expect::Error { codes, contains }, Err(error)) => {
            if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
                eprintln!("{}: {} {}", case.name, error.code, error.message);
            }
            if !codes.is_empty() && !codes.contains(&error.code) {
                return Err(format!(
                    "error code {} ({}), expected one of {codes:?}",
                    error.code, error.message
                ));
            }
            let message = error.message.to_lowercase();
            for part in *contains {
                if !message.contains(&part.to_lowercase()) {
                    return Err(format!("error message {:?} lacks {part:?}", error.message));
                }
            }
        }
    }
    check_intact(&org, &rows)
}

#[test]
fn conformance() {
    let filter = std::env::var("CONFORMANCE_CASE").unwrap_or_default();
    let cases = cases();
    let mut names = std::collections::BTreeSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
    }
    assert!(cases.len() >= 130, "only {} cases", cases.len());
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases.iter().filter(|case| case.name.contains(&filter)) {
        ran += 1;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(case)))
            .unwrap_or_else(|panic| {
                Err(format!(
                    "panicked: {}",
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default()
                ))
            });
        if let Err(message) = outcome {
            failures.push(format!(
                "--- {}\n{}\n{message}",
                case.name,
                expand(&case.fetch)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} conformance cases failed:\n{}\nfailing: {}",
        failures.len(),
        failures.join("\n"),
        failures
            .iter()
            .map(|failure| failure
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("--- "))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

// ---------------------------------------------------------------------------------------------
// Fixtures (row format of DESIGN 5.2; every lookup points at an imported row)
// ---------------------------------------------------------------------------------------------

/// Business units, users (`#u1` is the caller, in `#b1`), teams and `#u1`'s membership of `#t1`.
const PEOPLE: &str = r##"{
  "businessunit": [
    {"businessunitid": "#b1", "name": "Root BU"},
    {"businessunitid": "#b2", "name": "Sales BU", "parentbusinessunitid": "#b1"}
  ],
  "systemuser": [
    {"systemuserid": "#u1", "firstname": "Ada", "lastname": "Lovelace", "businessunitid": "#b1", "isdisabled": false},
    {"systemuserid": "#u2", "firstname": "Grace", "lastname": "Hopper", "businessunitid": "#b2", "isdisabled": false},
    {"systemuserid": "#u3", "firstname": "Alan", "lastname": "Turing", "businessunitid": "#b1", "isdisabled": true},
    {"systemuserid": "#u4", "firstname": "Edsger", "lastname": "Dijkstra"}
  ],
  "team": [
    {"teamid": "#t1", "name": "Alpha Team", "businessunitid": "#b1"},
    {"teamid": "#t2", "name": "Beta Team", "businessunitid": "#b2",
     "createdon": "2024-01-01T00:00:00Z", "modifiedon": "2024-01-02T00:00:00Z"}
  ]
}"##;

/// The built-in tables plus Dataverse's `teammembership` intersect table (custom metadata, as
/// `--metadata FILE` would add it): DESIGN 5.1 does not list it, and the team operators need it.
fn with_membership() -> Catalogue {
    let mut catalogue = Catalogue::builtin();
    let mut membership = EntityMeta::new(
        "teammembership",
        "teammemberships",
        "teammembershipid",
        "teammembershipid",
    );
    membership.add_attribute(AttributeMeta::lookup("systemuserid", ["systemuser"]));
    membership.add_attribute(AttributeMeta::lookup("teamid", ["team"]));
    catalogue.add_entity(membership);
    catalogue
}

/// The built-in tables plus a custom multi-select choice column `account.new_tags` (the
/// built-in catalogue has none). DESIGN 5.2 does not define a multi-select value in the row
/// format; an array of option values is assumed.
fn with_tags() -> Catalogue {
    let mut catalogue = Catalogue::builtin();
    let account = catalogue.entity_mut("account").expect("account");
    account.add_attribute(
        AttributeMeta::new("new_tags", AttributeType::MultiSelectPicklist).with_options([
            (1, "Red"),
            (2, "Green"),
            (3, "Blue"),
            (4, "Gold"),
        ]),
    );
    catalogue
}

const TAGS: &str = r##"{
  "account": [
    {"accountid": "#a71", "name": "T1", "new_tags": [1, 2]},
    {"accountid": "#a72", "name": "T2", "new_tags": [3]},
    {"accountid": "#a73", "name": "T3"},
    {"accountid": "#a74", "name": "T4", "new_tags": [2, 4]}
  ]
}"##;

/// Dataverse's many-to-many intersect table of users and teams (G-join's example links
/// `teammembership` from `systemuserid`); needed by `eq-userteams`. Not in DESIGN 5.1's list.
const MEMBERSHIP: &str = r##"{
  "teammembership": [
    {"teammembershipid": "#m1", "systemuserid": "#u1", "teamid": "#t1"},
    {"teammembershipid": "#m2", "systemuserid": "#u2", "teamid": "#t2"}
  ]
}"##;

/// The general account table.
///
/// | id | name            | number  | emp  | revenue   | ind | st | credit | createdon         | city    | state | owner |
/// | a1 | Contoso         | ACC-001 | 100  | 50000     | 7   | 0  | false  | 2024-01-10T09:00  | Seattle | WA    | u1    |
/// | a2 | contoso ltd     | ACC-002 | 250  | 120000.75 | 7   | 0  | true   | 2024-02-20T15:30  | seattle | WA    | u2    |
/// | a3 | Fabrikam        | ACC-003 | –    | 75000.5   | 16  | 1  | false  | 2023-12-31T23:00  | Redmond | WA    | t1    |
/// | a4 | Adventure Works | –       | 10   | –         | –   | 0  | –      | 2024-03-05T12:00  | Zürich  | –     | u1    |
/// | a5 | –               | ACC-005 | 5000 | 1000      | 16  | 1  | true   | 2024-02-20T00:00  | –       | ZH    | u3    |
/// | a6 | Ärzte Zentrum   | ACC-006 | 250  | 1000      | 20  | 0  | false  | 2024-02-21T00:00  | Bern    | –     | u2    |
/// | a7 | école Lumière   | –       | 0    | 0         | –   | 0  | false  | 2022-06-01T08:00  | Paris   | –     | –     |
const ACCOUNTS: &str = r##"{
  "account": [
    {"accountid": "#a1", "name": "Contoso", "accountnumber": "ACC-001", "numberofemployees": 100,
     "revenue": 50000, "industrycode": 7, "statecode": 0, "statuscode": 1, "creditonhold": false,
     "createdon": "2024-01-10T09:00:00Z", "address1_city": "Seattle", "address1_stateorprovince": "WA",
     "ownerid": "#u1"},
    {"accountid": "#a2", "name": "contoso ltd", "accountnumber": "ACC-002", "numberofemployees": 250,
     "revenue": 120000.75, "industrycode": 7, "statecode": 0, "statuscode": 1, "creditonhold": true,
     "createdon": "2024-02-20T15:30:00Z", "address1_city": "seattle", "address1_stateorprovince": "WA",
     "ownerid": "#u2"},
    {"accountid": "#a3", "name": "Fabrikam", "accountnumber": "ACC-003",
     "revenue": 75000.5, "industrycode": 16, "statecode": 1, "statuscode": 2, "creditonhold": false,
     "createdon": "2023-12-31T23:00:00Z", "address1_city": "Redmond", "address1_stateorprovince": "WA",
     "ownerid": "#t1"},
    {"accountid": "#a4", "name": "Adventure Works", "numberofemployees": 10,
     "statecode": 0, "statuscode": 1,
     "createdon": "2024-03-05T12:00:00Z", "address1_city": "Zürich", "ownerid": "#u1"},
    {"accountid": "#a5", "accountnumber": "ACC-005", "numberofemployees": 5000,
     "revenue": 1000, "industrycode": 16, "statecode": 1, "statuscode": 2, "creditonhold": true,
     "createdon": "2024-02-20T00:00:00Z", "address1_stateorprovince": "ZH", "ownerid": "#u3"},
    {"accountid": "#a6", "name": "Ärzte Zentrum", "accountnumber": "ACC-006", "numberofemployees": 250,
     "revenue": 1000, "industrycode": 20, "statecode": 0, "statuscode": 1, "creditonhold": false,
     "createdon": "2024-02-21T00:00:00Z", "address1_city": "Bern", "ownerid": "#u2"},
    {"accountid": "#a7", "name": "école Lumière", "numberofemployees": 0,
     "revenue": 0, "statecode": 0, "statuscode": 1, "creditonhold": false,
     "createdon": "2022-06-01T08:00:00Z", "address1_city": "Paris"}
  ]
}"##;

/// An account hierarchy on `parentaccountid`: h1 > h2 > h4 > h5, h1 > h3; h6 > h7.
const HIERARCHY: &str = r##"{
  "account": [
    {"accountid": "#a21", "name": "Root"},
    {"accountid": "#a22", "name": "Child A", "parentaccountid": "#a21"},
    {"accountid": "#a23", "name": "Child B", "parentaccountid": "#a21"},
    {"accountid": "#a24", "name": "Grandchild", "parentaccountid": "#a22"},
    {"accountid": "#a25", "name": "Great-grandchild", "parentaccountid": "#a24"},
    {"accountid": "#a26", "name": "Other Root"},
    {"accountid": "#a27", "name": "Other Child", "parentaccountid": "#a26"}
  ]
}"##;

/// Accounts with contacts (many-to-one `primarycontactid`) and opportunities (one-to-many
/// `parentaccountid`).
///
/// a11 Alpha (contact c1 Zed; opps o1 open 1000/900 p50, o2 won 5000/5000 p50), owner u1, Oslo
/// a12 Beta  (contact c2 Young; opp o3 won 2000/2500 p50), owner u2, Oslo
/// a13 Gamma (no contact; opp o4 open –/100), owner u1, Bergen
/// a14 Delta (contact c3 Delta; no opps), owner t1, no city
const JOINS: &str = r##"{
  "contact": [
    {"contactid": "#c1", "firstname": "Zoe", "lastname": "Zed", "annualincome": 100, "numberofchildren": 10},
    {"contactid": "#c2", "firstname": "Yan", "lastname": "Young", "annualincome": 2000000, "numberofchildren": 3},
    {"contactid": "#c3", "firstname": "Xia", "lastname": "delta", "annualincome": 500}
  ],
  "account": [
    {"accountid": "#a11", "name": "Alpha", "primarycontactid": "#c1", "ownerid": "#u1",
     "revenue": 5000, "numberofemployees": 10, "address1_city": "Oslo"},
    {"accountid": "#a12", "name": "Beta", "primarycontactid": "#c2", "ownerid": "#u2",
     "revenue": 1000, "numberofemployees": 20, "address1_city": "Oslo"},
    {"accountid": "#a13", "name": "Gamma", "ownerid": "#u1", "revenue": 3000, "address1_city": "Bergen"},
    {"accountid": "#a14", "name": "Delta", "primarycontactid": "#c3", "ownerid": "#t1", "revenue": 500}
  ],
  "opportunity": [
    {"opportunityid": "#o1", "name": "Alpha deal 1", "parentaccountid": "#a11", "statecode": 0, "statuscode": 1,
     "estimatedvalue": 1000, "actualvalue": 900, "closeprobability": 50},
    {"opportunityid": "#o2", "name": "Alpha deal 2", "parentaccountid": "#a11", "statecode": 1, "statuscode": 3,
     "estimatedvalue": 5000, "actualvalue": 5000, "closeprobability": 50},
    {"opportunityid": "#o3", "name": "Beta deal", "parentaccountid": "#a12", "statecode": 1, "statuscode": 3,
     "estimatedvalue": 2000, "actualvalue": 2500, "closeprobability": 50},
    {"opportunityid": "#o4", "name": "Gamma deal", "parentaccountid": "#a13", "statecode": 0, "statuscode": 1,
     "actualvalue": 100}
  ]
}"##;

/// Names built to break naive SQL: quotes, wildcards, brackets, comments, keywords.
const STRINGS: &str = r##"{
  "account": [
    {"accountid": "#a31", "name": "O'Brien"},
    {"accountid": "#a32", "name": "Say \"hi\""},
    {"accountid": "#a33", "name": "100% Juice"},
    {"accountid": "#a34", "name": "100 Juice"},
    {"accountid": "#a35", "name": "under_score"},
    {"accountid": "#a36", "name": "underXscore"},
    {"accountid": "#a37", "name": "a]b"},
    {"accountid": "#a38", "name": "a--b"},
    {"accountid": "#a39", "name": "; DROP TABLE account; --"},
    {"accountid": "#a40", "name": "SELECT * FROM account"},
    {"accountid": "#a41", "name": "[bracket]"},
    {"accountid": "#a42", "name": "x' OR '1'='1"},
    {"accountid": "#a43", "name": "apple"},
    {"accountid": "#a44", "name": "Banana"},
    {"accountid": "#a45", "name": "cherry"},
    {"accountid": "#a46", "name": "Éclair"},
    {"accountid": "#a47", "name": "date"}
  ]
}"##;

/// Aggregation data.
///
/// | id  | name | city    | emp  | revenue | st | createdon            | owner |
/// | a51 | G1   | Seattle | 100  | 1000    | 0  | 2023-03-15T10:00:00Z | u1    |
/// | a52 | G2   | Seattle | 200  | 2000    | 0  | 2023-03-20T10:00:00Z | u1    |
/// | a53 | G3   | Seattle | 300  | –       | 0  | 2024-03-15T10:00:00Z | u2    |
/// | a54 | G4   | Redmond | 300  | 4000    | 1  | 2024-05-01T10:00:00Z | u2    |
/// | a55 | –    | Redmond | –    | 500     | 0  | 2024-05-02T08:00:00Z | u1    |
/// | a56 | G6   | –       | 50   | 250     | 0  | 2024-05-02T23:30:00Z | u1    |
const AGGREGATES: &str = r##"{
  "account": [
    {"accountid": "#a51", "name": "G1", "address1_city": "Seattle", "numberofemployees": 100, "revenue": 1000,
     "statecode": 0, "statuscode": 1, "createdon": "2023-03-15T10:00:00Z", "ownerid": "#u1"},
    {"accountid": "#a52", "name": "G2", "address1_city": "Seattle", "numberofemployees": 200, "revenue": 2000,
     "statecode": 0, "statuscode": 1, "createdon": "2023-03-20T10:00:00Z", "ownerid": "#u1"},
    {"accountid": "#a53", "name": "G3", "address1_city": "Seattle", "numberofemployees": 300,
     "statecode": 0, "statuscode": 1, "createdon": "2024-03-15T10:00:00Z", "ownerid": "#u2"},
    {"accountid": "#a54", "name": "G4", "address1_city": "Redmond", "numberofemployees": 300, "revenue": 4000,
     "statecode": 1, "statuscode": 2, "createdon": "2024-05-01T10:00:00Z", "ownerid": "#u2"},
    {"accountid": "#a55", "address1_city": "Redmond", "revenue": 500,
     "statecode": 0, "statuscode": 1, "createdon": "2024-05-02T08:00:00Z", "ownerid": "#u1"},
    {"accountid": "#a56", "name": "G6", "numberofemployees": 50, "revenue": 250,
     "statecode": 0, "statuscode": 1, "createdon": "2024-05-02T23:30:00Z", "ownerid": "#u1"}
  ]
}"##;

/// Leads whose choice labels sort differently from their values: 1 Hot, 2 Warm, 3 Cold.
const LEADS: &str = r##"{
  "lead": [
    {"leadid": "#l1", "subject": "hot", "leadqualitycode": 1},
    {"leadid": "#l2", "subject": "warm", "leadqualitycode": 2},
    {"leadid": "#l3", "subject": "cold", "leadqualitycode": 3},
    {"leadid": "#l4", "subject": "unrated"}
  ]
}"##;

/// Paging data: ties in `numberofemployees` (20 ×4, 10 ×2, null ×2), imported out of key order.
pub(crate) const PAGING: &str = r##"{
  "account": [
    {"accountid": "#a69", "name": "P9", "numberofemployees": 10},
    {"accountid": "#a61", "name": "P1", "numberofemployees": 20},
    {"accountid": "#a62", "name": "P2", "numberofemployees": 10},
    {"accountid": "#a63", "name": "P3", "numberofemployees": 20},
    {"accountid": "#a64", "name": "P4"},
    {"accountid": "#a65", "name": "P5", "numberofemployees": 20},
    {"accountid": "#a66", "name": "P6", "numberofemployees": 30},
    {"accountid": "#a68", "name": "P8"},
    {"accountid": "#a67", "name": "P7", "numberofemployees": 20}
  ]
}"##;

/// Accounts `#a81…` whose `createdon` lies inside a relative-date window and `#a91…` outside.
fn dates(inside: &[&str], outside: &[&str]) -> String {
    let mut rows = Vec::new();
    for (i, at) in inside.iter().enumerate() {
        rows.push(format!(
            r##"{{"accountid": "#a{}", "name": "in {at}", "createdon": "{at}"}}"##,
            81 + i
        ));
    }
    for (i, at) in outside.iter().enumerate() {
        rows.push(format!(
            r##"{{"accountid": "#a{}", "name": "out {at}", "createdon": "{at}"}}"##,
            91 + i
        ));
    }
    format!(r#"{{"account": [{}]}}"#, rows.join(","))
}

/// A relative-date case: with the clock at 2024-06-12T14:30:00Z (a Wednesday), exactly the
/// `inside` instants match. Instants sit well away from every window edge, so they hold for
/// every plausible boundary rule (reference §3.3: boundaries are [inferred]; weeks starting
/// Sunday or Monday both give the same answer here).
fn relative(
    name: &'static str,
    operator: &str,
    value: Option<&str>,
    inside: &[&str],
    outside: &[&str],
) -> Case {
    let fixture = dates(inside, outside);
    let fetch = match value {
        Some(value) => cond("createdon", operator, value),
        None => cond0("createdon", operator),
    };
    let tokens: Vec<String> = (0..inside.len()).map(|i| format!("a{}", 81 + i)).collect();
    case(name, &[&fixture], &fetch, ids(&tokens.join(" ")))
}

fn cases() -> Vec<Case> {
    let a = [PEOPLE, ACCOUNTS];
    let j = [PEOPLE, JOINS];
    let s = [STRINGS];
    let h = [HIERARCHY];
    let g = [PEOPLE, AGGREGATES];
    let pg = [PAGING];
    let mut cases = vec![
        // ---- eq / ne / neq: case-insensitive strings (§4.2), nulls for negatives (§4.3) ----
        case("eq-string-case-insensitive", &a, &cond("name", "eq", "contoso"), ids("a1")),
        case("eq-string-upper", &a, &cond("name", "eq", "CONTOSO LTD"), ids("a2")),
        case("eq-city-two-spellings", &a, &cond("address1_city", "eq", "SEATTLE"), ids("a1 a2")),
        case("eq-non-ascii-case", &a, &cond("address1_city", "eq", "ZÜRICH"), ids("a4")),
        case("eq-non-ascii-case-lower", &a, &cond("name", "eq", "ärzte zentrum"), ids("a6")),
        // §4.2: English collation is accent-insensitive (COLLATION, _AI for 1033).
        case("eq-accent-insensitive", &a, &cond("address1_city", "eq", "Zurich"), ids("a4")),
        case("eq-accent-insensitive-name", &a, &cond("name", "eq", "Ecole Lumiere"), ids("a7")),
        case("ne-string-matches-null", &a, &cond("address1_city", "ne", "Seattle"), ids("a3 a4 a5 a6 a7")),
        case("neq-deprecated-as-ne", &a, &cond("address1_city", "neq", "seattle"), ids("a3 a4 a5 a6 a7")),
        case("eq-integer", &a, &cond("numberofemployees", "eq", "250"), ids("a2 a6")),
        case("eq-integer-zero-is-not-null", &a, &cond("numberofemployees", "eq", "0"), ids("a7")),
        case("ne-integer-matches-null", &a, &cond("numberofemployees", "ne", "250"), ids("a1 a3 a4 a5 a7")),
        case("eq-money", &a, &cond("revenue", "eq", "120000.75"), ids("a2")),
        case("eq-money-integral-literal", &a, &cond("revenue", "eq", "1000.00"), ids("a5 a6")),
        case("eq-picklist", &a, &cond("industrycode", "eq", "16"), ids("a3 a5")),
        case("ne-picklist-matches-null", &a, &cond("industrycode", "ne", "7"), ids("a3 a4 a5 a6 a7")),
        case("eq-statecode", &a, &cond("statecode", "eq", "1"), ids("a3 a5")),
        // §4.1: two-option values are 1/0.
        case("eq-boolean-1", &a, &cond("creditonhold", "eq", "1"), ids("a2 a5")),
        case("eq-boolean-0", &a, &cond("creditonhold", "eq", "0"), ids("a1 a3 a6 a7")),
        // POWEROBJ: "does not equal" on a two-option column returns the null rows.
        case("ne-boolean-matches-null", &a, &cond("creditonhold", "ne", "1"), ids("a1 a3 a4 a6 a7")),
        // [inferred] §4.1 / §14.8: true/false accepted as two-option values.
        case("eq-boolean-true-literal", &a, &cond("creditonhold", "eq", "true"), ids("a2 a5")),
        // §4.1: GUIDs with braces, any hex case.
        case("eq-guid-braced-upper", &a, &cond("accountid", "eq", "#^a3"), ids("a3")),
        case("eq-lookup", &a, &cond("ownerid", "eq", "#u1"), ids("a1 a4")),
        case("ne-lookup-matches-null", &a, &cond("ownerid", "ne", "#u1"), ids("a2 a3 a5 a6 a7")),
        case("ne-string-other-column", &a, &cond("accountnumber", "ne", "ACC-001"), ids("a2 a3 a4 a5 a6 a7")),
        case("eq-datetime-instant", &a, &cond("createdon", "eq", "2024-03-05T12:00:00Z"), ids("a4")),
        // ---- gt / ge / lt / le ----
        case("gt-integer-excludes-null", &a, &cond("numberofemployees", "gt", "100"), ids("a2 a5 a6")),
        case("ge-integer", &a, &cond("numberofemployees", "ge", "250"), ids("a2 a5 a6")),
        case("lt-integer", &a, &cond("numberofemployees", "lt", "100"), ids("a4 a7")),
        case("le-integer", &a, &cond("numberofemployees", "le", "100"), ids("a1 a4 a7")),
        case("gt-money-decimal", &a, &cond("revenue", "gt", "75000.5"), ids("a2")),
        case("ge-money-decimal", &a, &cond("revenue", "ge", "75000.5"), ids("a2 a3")),
        // Strings order case-insensitively (§4.2, §8); é sorts with e, Ä with a.
        case("gt-string-case-insensitive", &a, &cond("name", "gt", "d"), ids("a3 a7")),
        case("lt-string-non-ascii", &a, &cond("name", "lt", "b"), ids("a4 a6")),
        case("le-string-equal-bound", &a, &cond("name", "le", "CONTOSO"), ids("a1 a4 a6")),
        case("ge-string-accent-bound", &a, &cond("name", "ge", "ECOLE"), ids("a3 a7")),
        case("gt-datetime", &a, &cond("createdon", "gt", "2024-02-20T00:00:00Z"), ids("a2 a4 a6")),
        case("ge-datetime", &a, &cond("createdon", "ge", "2024-02-20T00:00:00Z"), ids("a2 a4 a5 a6")),
        case("lt-datetime", &a, &cond("createdon", "lt", "2024-01-01T00:00:00Z"), ids("a3 a7")),
        case("le-datetime", &a, &cond("createdon", "le", "2024-01-10T09:00:00Z"), ids("a1 a3 a7")),
        // ---- in / not-in ----
        case("in-picklist", &a, &condn("industrycode", "in", &["7", "20"]), ids("a1 a2 a6")),
        // [inferred] §4.3: not-in matches nulls.
        case("not-in-picklist-matches-null", &a, &condn("industrycode", "not-in", &["7", "20"]), ids("a3 a4 a5 a7")),
        case("in-string-case-insensitive", &a, &condn("name", "in", &["CONTOSO", "fabrikam", "nobody"]), ids("a1 a3")),
        case("not-in-string-matches-null", &a, &condn("name", "not-in", &["contoso", "FABRIKAM"]), ids("a2 a4 a5 a6 a7")),
        case("in-guid", &a, &condn("accountid", "in", &["#a2", "#^a7"]), ids("a2 a7")),
        case("in-integer-single-value", &a, &condn("numberofemployees", "in", &["10"]), ids("a4")),
        // ---- between / not-between (inclusive bounds [inferred] §3.1) ----
        case("between-money-inclusive", &a, &condn("revenue", "between", &["1000", "50000"]), ids("a1 a5 a6")),
        // [inferred] §3.1/§4.3: not-between matches nulls.
        case("not-between-money-matches-null", &a, &condn("revenue", "not-between", &["1000", "50000"]), ids("a2 a3 a4 a7")),
        case("between-datetime-inclusive", &a, &condn("createdon", "between", &["2024-01-01T00:00:00Z", "2024-02-20T00:00:00Z"]), ids("a1 a5")),
        case("not-between-datetime", &a, &condn("createdon", "not-between", &["2024-01-01T00:00:00Z", "2024-02-20T00:00:00Z"]), ids("a2 a3 a4 a6 a7")),
        case("between-integer", &a, &condn("numberofemployees", "between", &["10", "250"]), ids("a1 a2 a4 a6")),
        // [inferred] §3.1/§4.3: not-between matches nulls.
        case("not-between-integer-matches-null", &a, &condn("numberofemployees", "not-between", &["10", "250"]), ids("a3 a5 a7")),
        // ---- null / not-null ----
        case("null-money", &a, &cond0("revenue", "null"), ids("a4")),
        case("not-null-money", &a, &cond0("revenue", "not-null"), ids("a1 a2 a3 a5 a6 a7")),
        case("null-string", &a, &cond0("name", "null"), ids("a5")),
        case("not-null-string", &a, &cond0("name", "not-null"), ids("a1 a2 a3 a4 a6 a7")),
        case("null-boolean", &a, &cond0("creditonhold", "null"), ids("a4")),
        case("null-lookup", &a, &cond0("ownerid", "null"), ids("a7")),
        // ---- like / not-like (§4.4: % _ [..] [^..], case-insensitive) ----
        case("like-prefix", &a, &cond("name", "like", "contoso%"), ids("a1 a2")),
        case("like-suffix", &a, &cond("name", "like", "%O"), ids("a1")),
        case("like-underscore", &a, &cond("name", "like", "_ONTOSO"), ids("a1")),
        case("like-set", &a, &cond("name", "like", "[cf]%"), ids("a1 a2 a3")),
        case("like-negated-set", &a, &cond("name", "like", "[^cf]%"), ids("a4 a6 a7")),
        case("like-range", &a, &cond("accountnumber", "like", "ACC-00[1-3]"), ids("a1 a2 a3")),
        case("like-negated-range", &a, &cond("accountnumber", "like", "acc-00[^1-3]"), ids("a5 a6")),
        case("like-no-wildcard-is-equality", &a, &cond("name", "like", "FABRIKAM"), ids("a3")),
        case("like-inner-percent", &a, &cond("name", "like", "%o%o%o%"), ids("a1 a2")),
        case("like-non-ascii-case", &a, &cond("address1_city", "like", "zÜ%"), ids("a4")),
        // S4C-BDN: not-like matches nulls.
        case("like-accent-insensitive", &a, &cond("name", "like", "ECOLE%"), ids("a7")),
        case("like-range-accent-insensitive", &a, &cond("name", "like", "[a-b]%"), ids("a4 a6")),
        case("in-non-ascii-case", &a, &condn("address1_city", "in", &["ZÜRICH", "bern"]), ids("a4 a6")),
        case("ne-accent-insensitive-matches-null", &a, &cond("address1_city", "ne", "zurich"), ids("a1 a2 a3 a5 a6 a7")),
        case("not-like-matches-null", &a, &cond("name", "not-like", "contoso%"), ids("a3 a4 a5 a6 a7")),
        case("not-like-set", &a, &cond("accountnumber", "not-like", "ACC-00[1-3]"), ids("a4 a5 a6 a7")),
        // ---- begins-with / ends-with and negations ----
        case("begins-with-case-insensitive", &a, &cond("name", "begins-with", "con"), ids("a1 a2")),
        case("begins-with-non-ascii", &a, &cond("name", "begins-with", "ÉCOLE"), ids("a7")),
        case("ends-with-case-insensitive", &a, &cond("name", "ends-with", "LTD"), ids("a2")),
        // [inferred] §4.3: not-begin-with / not-end-with match nulls.
        case("not-begin-with-matches-null", &a, &cond("name", "not-begin-with", "con"), ids("a3 a4 a5 a6 a7")),
        case("not-end-with-matches-null", &a, &cond("name", "not-end-with", "ltd"), ids("a1 a3 a4 a5 a6 a7")),
        // ---- on / on-or-before / on-or-after (UTC days) ----
        case("on-date", &a, &cond("createdon", "on", "2024-02-20"), ids("a2 a5")),
        case("on-or-before-includes-whole-day", &a, &cond("createdon", "on-or-before", "2024-01-10"), ids("a1 a3 a7")),
        case("on-or-after", &a, &cond("createdon", "on-or-after", "2024-02-21"), ids("a4 a6")),
        // ---- filters ----
        // [inferred] §2.6: an empty filter imposes no restriction.
        case("empty-filter-all-rows", &a, &acct(""), ids("a1 a2 a3 a4 a5 a6 a7")),
        // §2.6 [inferred]: an empty filter imposes no restriction, whatever its type.
        case(
            "empty-or-filter-all-rows",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/><filter type="or"/></entity></fetch>"#,
            ids("a1 a2 a3 a4 a5 a6 a7"),
        ),
        case(
            "no-filter-all-rows",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/></entity></fetch>"#,
            ids("a1 a2 a3 a4 a5 a6 a7"),
        ),
        case(
            "and-default",
            &a,
            &acct(r#"<condition attribute="statecode" operator="eq" value="0"/><condition attribute="numberofemployees" operator="ge" value="100"/>"#),
            ids("a1 a2 a6"),
        ),
        case(
            "or-filter",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/><filter type="or"><condition attribute="statecode" operator="eq" value="1"/><condition attribute="name" operator="eq" value="contoso"/></filter></entity></fetch>"#,
            ids("a1 a3 a5"),
        ),
        case(
            "nested-and-or",
            &a,
            &acct(r#"<condition attribute="statecode" operator="eq" value="0"/><filter type="or"><condition attribute="address1_city" operator="eq" value="seattle"/><condition attribute="numberofemployees" operator="lt" value="50"/></filter>"#),
            ids("a1 a2 a4 a7"),
        ),
        case(
            "nested-or-of-ands",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/><filter type="or"><filter><condition attribute="statecode" operator="eq" value="1"/><condition attribute="creditonhold" operator="eq" value="1"/></filter><filter type="and"><condition attribute="revenue" operator="null"/></filter></filter></entity></fetch>"#,
            ids("a4 a5"),
        ),
        case(
            "nested-three-levels-with-negatives",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/><filter type="and"><condition attribute="name" operator="not-null"/><filter type="or"><condition attribute="creditonhold" operator="ne" value="0"/><filter type="and"><condition attribute="numberofemployees" operator="ge" value="250"/><condition attribute="industrycode" operator="not-in"><value>7</value></condition></filter></filter></filter></entity></fetch>"#,
            ids("a2 a4 a6"),
        ),
        // ---- columns and result shape (§7) ----
        case(
            "columns-nulls-omitted-primary-key-added",
            &a,
            r#"<fetch><entity name="account"><attribute name="name"/><attribute name="revenue"/><attribute name="creditonhold"/><filter><condition attribute="accountid" operator="in"><value>#a4</value><value>#a5</value><value>#a2</value></condition></filter></entity></fetch>"#,
            set(r##"[
              {"accountid": "#a2", "name": "contoso ltd", "revenue": 120000.75, "creditonhold": true},
              {"accountid": "#a4", "name": "Adventure Works"},
              {"accountid": "#a5", "revenue": 1000, "creditonhold": true}
            ]"##),
        ),
        case(
            "column-types-in-row-format",
            &a,
            r##"<fetch><entity name="account"><attribute name="numberofemployees"/><attribute name="industrycode"/><attribute name="statecode"/><attribute name="createdon"/><attribute name="ownerid"/><attribute name="accountnumber"/><filter><condition attribute="accountid" operator="eq" value="#a1"/></filter></entity></fetch>"##,
            set(r##"[{"accountid": "#a1", "numberofemployees": 100, "industrycode": 7, "statecode": 0,
                     "createdon": "2024-01-10T09:00:00Z", "ownerid": "#u1", "accountnumber": "ACC-001"}]"##),
        ),
        case(
            "attribute-alias-root",
            &a,
            r##"<fetch><entity name="account"><attribute name="name" alias="account_name"/><filter><condition attribute="accountid" operator="eq" value="#a1"/></filter></entity></fetch>"##,
            set(r##"[{"accountid": "#a1", "account_name": "Contoso"}]"##),
        ),
        case(
            "all-attributes-every-non-null-column",
            &[PEOPLE],
            r##"<fetch><entity name="team"><all-attributes/><filter><condition attribute="teamid" operator="eq" value="#t2"/></filter></entity></fetch>"##,
            set(r##"[{"teamid": "#t2", "name": "Beta Team", "businessunitid": "#b2",
                     "createdon": "2024-01-01T00:00:00Z", "modifiedon": "2024-01-02T00:00:00Z"}]"##),
        ),
        // ---- ordering (§8) ----
        case(
            "order-string-case-insensitive-non-ascii",
            &s,
            r#"<fetch><entity name="account"><attribute name="name"/><order attribute="name"/><filter><condition attribute="accountid" operator="in"><value>#a43</value><value>#a44</value><value>#a45</value><value>#a46</value><value>#a47</value></condition></filter></entity></fetch>"#,
            seq(r##"[{"accountid": "#a43", "name": "apple"}, {"accountid": "#a44", "name": "Banana"},
                     {"accountid": "#a45", "name": "cherry"}, {"accountid": "#a47", "name": "date"},
                     {"accountid": "#a46", "name": "Éclair"}]"##),
        ),
        case(
            "order-descending",
            &s,
            r#"<fetch><entity name="account"><attribute name="accountid"/><order attribute="name" descending="true"/><filter><condition attribute="accountid" operator="in"><value>#a43</value><value>#a44</value><value>#a45</value><value>#a46</value><value>#a47</value></condition></filter></entity></fetch>"#,
            ids_seq("a46 a47 a45 a44 a43"),
        ),
        // §8 [inferred]: nulls first ascending (SQL Server).
        case(
            "order-nulls-first-ascending",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/><order attribute="revenue"/><order attribute="accountid"/></entity></fetch>"#,
            ids_seq("a4 a7 a5 a6 a1 a3 a2"),
        ),
        // [inferred] §8: nulls last descending (SQL Server).
        case(
            "order-nulls-last-descending",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/><order attribute="numberofemployees" descending="true"/><order attribute="accountid"/></entity></fetch>"#,
            ids_seq("a5 a2 a6 a1 a4 a7 a3"),
        ),
        case(
            "order-multiple-columns",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/><order attribute="statecode"/><order attribute="revenue" descending="true"/></entity></fetch>"#,
            ids_seq("a2 a1 a6 a7 a4 a3 a5"),
        ),
        case(
            "order-picklist-by-label-active-before-inactive",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/><order attribute="statecode" descending="true"/><order attribute="createdon"/></entity></fetch>"#,
            ids_seq("a3 a5 a7 a1 a2 a6 a4"),
        ),
        // ORD-PAGE: no order → ordered by primary key (imported out of key order).
        case(
            "no-order-primary-key",
            &pg,
            r#"<fetch><entity name="account"><attribute name="accountid"/></entity></fetch>"#,
            ids_seq("a61 a62 a63 a64 a65 a66 a67 a68 a69"),
        ),
        case(
            "order-datetime",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/><order attribute="createdon"/></entity></fetch>"#,
            ids_seq("a7 a3 a1 a5 a2 a6 a4"),
        ),
        // §8: choice columns sort by label (Cold, Hot, Warm), nulls first.
        case(
            "order-choice-by-label",
            &[LEADS],
            r#"<fetch><entity name="lead"><attribute name="leadid"/><order attribute="leadqualitycode"/></entity></fetch>"#,
            seq(&id_rows("leadid", "l4 l3 l1 l2")),
        ),
        // §2.1/§8: useraworderby sorts choices by value.
        case(
            "order-choice-raw",
            &[LEADS],
            r#"<fetch useraworderby="true"><entity name="lead"><attribute name="leadid"/><order attribute="leadqualitycode"/></entity></fetch>"#,
            seq(&id_rows("leadid", "l4 l1 l2 l3")),
        ),
        case(
            "order-choice-by-label-descending",
            &[LEADS],
            r#"<fetch><entity name="lead"><attribute name="leadid"/><order attribute="leadqualitycode" descending="1"/></entity></fetch>"#,
            seq(&id_rows("leadid", "l2 l1 l3 l4")),
        ),
        // §8: lookup columns sort by the related row's primary name (Child A, Grandchild,
        // Other Root, Root), not by GUID.
        case(
            "order-lookup-by-primary-name",
            &h,
            r#"<fetch><entity name="account"><attribute name="accountid"/><order attribute="parentaccountid"/><order attribute="accountid"/></entity></fetch>"#,
            ids_seq("a21 a26 a24 a25 a27 a22 a23"),
        ),
        // One G-order revision: with useraworderby, lookups sort by GUID.
        case(
            "order-lookup-raw",
            &h,
            r#"<fetch useraworderby="1"><entity name="account"><attribute name="accountid"/><order attribute="parentaccountid"/><order attribute="accountid"/></entity></fetch>"#,
            ids_seq("a21 a26 a22 a23 a24 a25 a27"),
        ),
        // [inferred] §8: nulls first ascending; case- and accent-insensitive order.
        case(
            "order-string-nulls-first",
            &a,
            r#"<fetch><entity name="account"><attribute name="accountid"/><order attribute="name"/></entity></fetch>"#,
            ids_seq("a5 a4 a6 a1 a2 a7 a3"),
        ),
        case("eq-guid-upper-no-braces", &a, &cond("accountid", "eq", "AAAAAAAA-0000-4000-8000-000000000006"), ids("a6")),
        case("eq-money-trailing-zero", &a, &cond("revenue", "eq", "75000.50"), ids("a3")),
        case("not-in-lookup-matches-null", &a, &condn("ownerid", "not-in", &["#u1", "#u2"]), ids("a3 a5 a7")),
        // [inferred] §4.1: a literal without offset is in the caller's time zone (UTC here).
        case("ge-datetime-without-zone", &a, &cond("createdon", "ge", "2024-02-20T00:00:00"), ids("a2 a4 a5 a6")),
        // [inferred] ISO-8601 offsets are honoured: 02:00+02:00 is midnight UTC.
        case("ge-datetime-with-offset", &a, &cond("createdon", "ge", "2024-02-20T02:00:00+02:00"), ids("a2 a4 a5 a6")),
        case("like-percent-only-all-non-null", &a, &cond("name", "like", "%"), ids("a1 a2 a3 a4 a6 a7")),
        // ---- top / count / page / totals (§9) ----
        case(
            "top",
            &pg,
            r#"<fetch top="3"><entity name="account"><attribute name="name"/><order attribute="name" descending="true"/></entity></fetch>"#,
            seq(r##"[{"accountid": "#a69", "name": "P9"}, {"accountid": "#a68", "name": "P8"}, {"accountid": "#a67", "name": "P7"}]"##),
        ),
        case(
            "top-5000-allowed",
            &pg,
            r#"<fetch top="5000"><entity name="account"><attribute name="accountid"/><order attribute="name"/></entity></fetch>"#,
            ids_seq("a61 a62 a63 a64 a65 a66 a67 a68 a69"),
        ),
        case(
            "count-first-page-more",
            &pg,
            r#"<fetch count="3"><entity name="account"><attribute name="accountid"/><order attribute="name"/></entity></fetch>"#,
            ids_seq("a61 a62 a63"),
        )
        .more(true),
        case(
            "count-page-attributes",
            &pg,
            r#"<fetch count="3" page="2"><entity name="account"><attribute name="accountid"/><order attribute="name"/></entity></fetch>"#,
            ids_seq("a64 a65 a66"),
        )
        .more(true),
        case(
            "page-request-last-page",
            &pg,
            r#"<fetch><entity name="account"><attribute name="accountid"/><order attribute="name"/></entity></fetch>"#,
            ids_seq("a67 a68 a69"),
        )
        .request(Some(3), Some(3))
        .more(false),
        case(
            "page-request-no-order-pk",
            &pg,
            r#"<fetch><entity name="account"><attribute name="accountid"/></entity></fetch>"#,
            ids_seq("a65 a66 a67 a68"),
        )
        .request(Some(2), Some(4))
        .more(true),
        case(
            "count-larger-than-rows",
            &pg,
            r#"<fetch count="50"><entity name="account"><attribute name="accountid"/><order attribute="name"/></entity></fetch>"#,
            ids_seq("a61 a62 a63 a64 a65 a66 a67 a68 a69"),
        )
        .more(false),
        // PageRequest fields override the fetch element's count and page.
        case(
            "page-request-overrides-count",
            &pg,
            r#"<fetch count="2" page="1"><entity name="account"><attribute name="accountid"/><order attribute="name"/></entity></fetch>"#,
            ids_seq("a64 a65 a66"),
        )
        .request(Some(2), Some(3))
        .more(true),
        case(
            "returntotalrecordcount-single-page",
            &pg,
            r#"<fetch returntotalrecordcount="true"><entity name="account"><attribute name="accountid"/><filter><condition attribute="numberofemployees" operator="eq" value="20"/></filter></entity></fetch>"#,
            ids("a61 a63 a65 a67"),
        )
        .more(false)
        .total(4),
        case(
            "distinct-paged",
            &pg,
            r#"<fetch distinct="1" count="2" page="2"><entity name="account"><attribute name="numberofemployees"/><order attribute="numberofemployees"/></entity></fetch>"#,
            seq(r#"[{"numberofemployees": 20}, {"numberofemployees": 30}]"#),
        )
        .more(false),
        case(
            "page-beyond-the-end",
            &pg,
            r#"<fetch count="5" page="3"><entity name="account"><attribute name="accountid"/><order attribute="name"/></entity></fetch>"#,
            ids_seq(""),
        )
        .more(false),
        case(
            "returntotalrecordcount",
            &pg,
            r#"<fetch count="2" returntotalrecordcount="true"><entity name="account"><attribute name="accountid"/><order attribute="name"/><filter><condition attribute="numberofemployees" operator="not-null"/></filter></entity></fetch>"#,
            ids_seq("a61 a62"),
        )
        .more(true)
        .total(7),
        // ---- distinct (§9: no primary key, collapses join duplicates) ----
        case(
            "distinct-no-primary-key",
            &j,
            r#"<fetch distinct="true"><entity name="account"><attribute name="address1_city"/><order attribute="address1_city"/><filter><condition attribute="address1_city" operator="not-null"/></filter></entity></fetch>"#,
            seq(r#"[{"address1_city": "Bergen"}, {"address1_city": "Oslo"}]"#),
        ),
        case(
            "distinct-collapses-join-rows",
            &j,
            r#"<fetch distinct="true"><entity name="account"><attribute name="name"/><order attribute="name"/><link-entity name="opportunity" from="parentaccountid" to="accountid" alias="o"><attribute name="closeprobability"/></link-entity></entity></fetch>"#,
            seq(r#"[{"name": "Alpha", "o.closeprobability": 50}, {"name": "Beta", "o.closeprobability": 50}, {"name": "Gamma"}]"#),
        ),
        case(
            "not-distinct-keeps-join-rows",
            &j,
            r#"<fetch><entity name="account"><attribute name="name"/><order attribute="name"/><link-entity name="opportunity" from="parentaccountid" to="accountid" alias="o"><attribute name="closeprobability"/></link-entity></entity></fetch>"#,
            seq(r##"[{"accountid": "#a11", "name": "Alpha", "o.closeprobability": 50},
                     {"accountid": "#a11", "name": "Alpha", "o.closeprobability": 50},
                     {"accountid": "#a12", "name": "Beta", "o.closeprobability": 50},
                     {"accountid": "#a13", "name": "Gamma"}]"##),
        ),
    ];
    cases.extend(user_cases(&a));
    cases.extend(hierarchy_cases(&h));
    cases.extend(join_cases(&j));
    cases.extend(string_cases(&s));
    cases.extend(aggregate_cases(&g));
    cases.extend(relative_cases());
    cases.extend(error_cases(&a));
    cases
}

/// `eq-userid` & co with the caller `#u1` (business unit `#b1`, member of team `#t1`).
fn user_cases(a: &[&str]) -> Vec<Case> {
    let with_teams = [PEOPLE, MEMBERSHIP, ACCOUNTS];
    let users = |filter: &str| {
        format!(
            r#"<fetch><entity name="systemuser"><attribute name="systemuserid"/><filter>{filter}</filter></entity></fetch>"#
        )
    };
    vec![
        case("eq-userid", a, &cond0("ownerid", "eq-userid"), ids("a1 a4")),
        // [inferred] §3.4/§4.3: ne-userid matches nulls (S4C-F2S).
        case(
            "ne-userid-matches-null",
            a,
            &cond0("ownerid", "ne-userid"),
            ids("a2 a3 a5 a6 a7"),
        ),
        case(
            "eq-userid-on-primary-key",
            a,
            &users(r#"<condition attribute="systemuserid" operator="eq-userid"/>"#),
            set(&id_rows("systemuserid", "u1")),
        ),
        case(
            "eq-businessid",
            a,
            &users(r#"<condition attribute="businessunitid" operator="eq-businessid"/>"#),
            set(&id_rows("systemuserid", "u1 u3")),
        ),
        // [inferred] §4.3: ne-businessid matches nulls.
        case(
            "ne-businessid-matches-null",
            a,
            &users(r#"<condition attribute="businessunitid" operator="ne-businessid"/>"#),
            set(&id_rows("systemuserid", "u2 u4")),
        ),
        // §3.4: owner is a team the caller belongs to (membership from `teammembership`).
        case(
            "eq-userteams",
            &with_teams,
            &cond0("ownerid", "eq-userteams"),
            ids("a3"),
        )
        .catalogue(with_membership),
        case(
            "eq-useroruserteams",
            &with_teams,
            &cond0("ownerid", "eq-useroruserteams"),
            ids("a1 a3 a4"),
        )
        .catalogue(with_membership),
        // §3.6 on a custom multi-select column: "one of the specified values".
        case(
            "contain-values-one",
            &[TAGS],
            &condn("new_tags", "contain-values", &["2"]),
            ids("a71 a74"),
        )
        .catalogue(with_tags),
        case(
            "contain-values-any-of",
            &[TAGS],
            &condn("new_tags", "contain-values", &["3", "4"]),
            ids("a72 a74"),
        )
        .catalogue(with_tags),
        // [inferred] §3.6/§4.3: not-contain-values matches nulls (S4C-SCAN).
        case(
            "not-contain-values-matches-null",
            &[TAGS],
            &condn("new_tags", "not-contain-values", &["2"]),
            ids("a72 a73"),
        )
        .catalogue(with_tags),
    ]
}

/// Hierarchy operators on `account.parentaccountid` (§3.5, HIER).
fn hierarchy_cases(h: &[&str]) -> Vec<Case> {
    vec![
        case(
            "under",
            h,
            &cond("accountid", "under", "#a22"),
            ids("a24 a25"),
        ),
        case(
            "under-root",
            h,
            &cond("accountid", "under", "#a21"),
            ids("a22 a23 a24 a25"),
        ),
        case(
            "under-leaf-none",
            h,
            &cond("accountid", "under", "#a25"),
            ids(""),
        ),
        case(
            "eq-or-under",
            h,
            &cond("accountid", "eq-or-under", "#a22"),
            ids("a22 a24 a25"),
        ),
        case(
            "eq-or-under-braced-guid",
            h,
            &cond("accountid", "eq-or-under", "#^a26"),
            ids("a26 a27"),
        ),
        // [unclear] §3.5: whether not-under returns the anchor; the anchor is excluded here by
        // an extra condition so the case holds either way.
        case(
            "not-under",
            h,
            &acct(
                r##"<condition attribute="accountid" operator="not-under" value="#a22"/><condition attribute="accountid" operator="ne" value="#a22"/>"##,
            ),
            ids("a21 a23 a26 a27"),
        ),
        case(
            "not-under-root",
            h,
            &acct(
                r##"<condition attribute="accountid" operator="not-under" value="#a21"/><condition attribute="accountid" operator="ne" value="#a21"/>"##,
            ),
            ids("a26 a27"),
        ),
        case(
            "above",
            h,
            &cond("accountid", "above", "#a25"),
            ids("a24 a22 a21"),
        ),
        case(
            "above-root-none",
            h,
            &cond("accountid", "above", "#a21"),
            ids(""),
        ),
        case(
            "eq-or-above",
            h,
            &cond("accountid", "eq-or-above", "#a25"),
            ids("a25 a24 a22 a21"),
        ),
        case(
            "under-in-or-filter",
            h,
            r##"<fetch><entity name="account"><attribute name="accountid"/><filter type="or"><condition attribute="accountid" operator="under" value="#a26"/><condition attribute="name" operator="eq" value="child b"/></filter></entity></fetch>"##,
            ids("a27 a23"),
        ),
    ]
}

const OPP_LINK: &str = r#"link-entity name="opportunity" from="parentaccountid" to="accountid""#;

/// Joins, link filters, entityname, aliases, valueof (§5, §6, §7, §8).
fn join_cases(j: &[&str]) -> Vec<Case> {
    let root = |body: &str| {
        format!(r#"<fetch><entity name="account"><attribute name="name"/>{body}</entity></fetch>"#)
    };
    let any_filter = |link_type: &str| {
        root(&format!(
            r#"<filter><{OPP_LINK} link-type="{link_type}"><filter><condition attribute="statecode" operator="eq" value="1"/></filter></link-entity></filter>"#
        ))
    };
    let named = |tokens: &str| {
        let names = [
            ("a11", "Alpha"),
            ("a12", "Beta"),
            ("a13", "Gamma"),
            ("a14", "Delta"),
        ];
        let rows: Vec<String> = tokens
            .split_whitespace()
            .map(|token| {
                let name = names.iter().find(|(t, _)| *t == token).unwrap().1;
                format!(r##"{{"accountid": "#{token}", "name": "{name}"}}"##)
            })
            .collect();
        set(&format!("[{}]", rows.join(",")))
    };
    let opps = |filter: &str| {
        format!(
            r#"<fetch><entity name="opportunity"><attribute name="opportunityid"/><filter>{filter}</filter></entity></fetch>"#
        )
    };
    vec![
        case(
            "inner-one-to-many-repeats-parent",
            j,
            &root(&format!(r#"<{OPP_LINK} alias="o"><attribute name="name"/></link-entity>"#)),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "o.name": "Alpha deal 1"},
                     {"accountid": "#a11", "name": "Alpha", "o.name": "Alpha deal 2"},
                     {"accountid": "#a12", "name": "Beta", "o.name": "Beta deal"},
                     {"accountid": "#a13", "name": "Gamma", "o.name": "Gamma deal"}]"##),
        ),
        case(
            "inner-explicit",
            j,
            &root(&format!(r#"<{OPP_LINK} alias="o" link-type="inner"><attribute name="estimatedvalue"/></link-entity>"#)),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "o.estimatedvalue": 1000},
                     {"accountid": "#a11", "name": "Alpha", "o.estimatedvalue": 5000},
                     {"accountid": "#a12", "name": "Beta", "o.estimatedvalue": 2000},
                     {"accountid": "#a13", "name": "Gamma"}]"##),
        ),
        case(
            "outer-keeps-unmatched-parent",
            j,
            &root(&format!(r#"<{OPP_LINK} alias="o" link-type="outer"><attribute name="name"/></link-entity>"#)),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "o.name": "Alpha deal 1"},
                     {"accountid": "#a11", "name": "Alpha", "o.name": "Alpha deal 2"},
                     {"accountid": "#a12", "name": "Beta", "o.name": "Beta deal"},
                     {"accountid": "#a13", "name": "Gamma", "o.name": "Gamma deal"},
                     {"accountid": "#a14", "name": "Delta"}]"##),
        ),
        // §5: a filter inside an outer link decides which related rows join; all parents stay.
        case(
            "outer-link-filter-keeps-all-parents",
            j,
            &root(&format!(r#"<{OPP_LINK} alias="o" link-type="outer"><attribute name="name"/><filter><condition attribute="statecode" operator="eq" value="1"/></filter></link-entity>"#)),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "o.name": "Alpha deal 2"},
                     {"accountid": "#a12", "name": "Beta", "o.name": "Beta deal"},
                     {"accountid": "#a13", "name": "Gamma"},
                     {"accountid": "#a14", "name": "Delta"}]"##),
        ),
        case(
            "inner-link-filter-restricts-parents",
            j,
            &root(&format!(r#"<{OPP_LINK} alias="o"><attribute name="name"/><filter><condition attribute="statecode" operator="eq" value="1"/></filter></link-entity>"#)),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "o.name": "Alpha deal 2"},
                     {"accountid": "#a12", "name": "Beta", "o.name": "Beta deal"}]"##),
        ),
        case(
            "inner-link-filter-nested-or",
            j,
            &root(&format!(r#"<{OPP_LINK} alias="o"><attribute name="name"/><filter type="or"><filter><condition attribute="statecode" operator="eq" value="1"/><condition attribute="estimatedvalue" operator="ge" value="3000"/></filter><condition attribute="actualvalue" operator="lt" value="200"/></filter></link-entity>"#)),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "o.name": "Alpha deal 2"},
                     {"accountid": "#a13", "name": "Gamma", "o.name": "Gamma deal"}]"##),
        ),
        case(
            "inner-link-filter-matches-nothing",
            j,
            &root(&format!(r#"<{OPP_LINK} alias="o"><attribute name="name"/><filter><condition attribute="name" operator="eq" value="no such deal"/></filter></link-entity>"#)),
            set("[]"),
        ),
        case(
            "exists-parent-once",
            j,
            &root(&format!(r#"<{OPP_LINK} link-type="exists"><filter><condition attribute="statecode" operator="eq" value="0"/></filter></link-entity>"#)),
            named("a11 a13"),
        ),
        case(
            "exists-without-filter",
            j,
            &root(&format!(r#"<{OPP_LINK} link-type="exists"/>"#)),
            named("a11 a12 a13"),
        ),
        case(
            "in-parent-once",
            j,
            &root(&format!(r#"<{OPP_LINK} link-type="in"><filter><condition attribute="statecode" operator="eq" value="0"/></filter></link-entity>"#)),
            named("a11 a13"),
        ),
        case("any", j, &any_filter("any"), named("a11 a12")),
        case(
            "not-any-without-filter",
            j,
            &root(&format!(r#"<filter><{OPP_LINK} link-type="not any"/></filter>"#)),
            named("a14"),
        ),
        case("not-any", j, &any_filter("not any"), named("a13 a14")),
        // §6.3: filter-rows.md's SQL — all = EXISTS(related) AND NOT EXISTS(related AND filter);
        // the reference flags a conflicting doc revision ("every related row satisfies").
        case("all-filter-rows-sql", j, &any_filter("all"), named("a13")),
        // §6.3: not all ≡ any (filter-rows.md revision).
        case("not-all-filter-rows-sql", j, &any_filter("not all"), named("a11 a12")),
        case(
            "any-in-or-filter",
            j,
            &root(&format!(
                r#"<filter type="or"><condition attribute="name" operator="eq" value="delta"/><{OPP_LINK} link-type="any"><filter><condition attribute="statecode" operator="eq" value="1"/></filter></link-entity></filter>"#
            )),
            named("a11 a12 a14"),
        ),
        case(
            "any-and-root-condition",
            j,
            &root(&format!(
                r#"<filter><condition attribute="name" operator="ne" value="alpha"/><{OPP_LINK} link-type="any"><filter><condition attribute="statecode" operator="eq" value="1"/></filter></link-entity></filter>"#
            )),
            named("a12"),
        ),
        // G-join "Find records not in a set": outer join + entityname + null.
        case(
            "entityname-null-not-in-set",
            j,
            &root(&format!(
                r#"<{OPP_LINK} link-type="outer" alias="o"/><filter><condition entityname="o" attribute="opportunityid" operator="null"/></filter>"#
            )),
            named("a14"),
        ),
        // §2.7: entityname is the link's name when it has no alias (G-join's own example).
        case(
            "entityname-by-link-name",
            j,
            &root(&format!(
                r#"<{OPP_LINK} link-type="outer"/><filter><condition entityname="opportunity" attribute="parentaccountid" operator="null"/></filter>"#
            )),
            named("a14"),
        ),
        case(
            "entityname-not-null-keeps-join-rows",
            j,
            &root(&format!(
                r#"<{OPP_LINK} link-type="outer" alias="o"/><filter><condition entityname="o" attribute="opportunityid" operator="not-null"/></filter>"#
            )),
            set(r##"[{"accountid": "#a11", "name": "Alpha"}, {"accountid": "#a11", "name": "Alpha"},
                     {"accountid": "#a12", "name": "Beta"}, {"accountid": "#a13", "name": "Gamma"}]"##),
        ),
        case(
            "entityname-condition-after-join",
            j,
            &root(&format!(
                r#"<{OPP_LINK} alias="o"><attribute name="name"/></link-entity><filter><condition entityname="o" attribute="statecode" operator="eq" value="0"/></filter>"#
            )),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "o.name": "Alpha deal 1"},
                     {"accountid": "#a13", "name": "Gamma", "o.name": "Gamma deal"}]"##),
        ),
        // §4.3: ne matches the null link column of an unmatched outer row.
        case(
            "entityname-ne-matches-outer-null",
            j,
            &root(&format!(
                r#"<{OPP_LINK} alias="o" link-type="outer"><attribute name="name"/></link-entity><filter><condition entityname="o" attribute="statecode" operator="ne" value="1"/></filter>"#
            )),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "o.name": "Alpha deal 1"},
                     {"accountid": "#a13", "name": "Gamma", "o.name": "Gamma deal"},
                     {"accountid": "#a14", "name": "Delta"}]"##),
        ),
        case(
            "many-to-one-inner",
            j,
            &root(r#"<link-entity name="contact" from="contactid" to="primarycontactid" alias="pc"><attribute name="lastname"/></link-entity>"#),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "pc.lastname": "Zed"},
                     {"accountid": "#a12", "name": "Beta", "pc.lastname": "Young"},
                     {"accountid": "#a14", "name": "Delta", "pc.lastname": "delta"}]"##),
        ),
        // §2.9: generated alias {LogicalName}{N}.
        case(
            "generated-alias",
            j,
            &root(r#"<link-entity name="contact" from="contactid" to="primarycontactid" link-type="outer"><attribute name="lastname"/></link-entity>"#),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "contact1.lastname": "Zed"},
                     {"accountid": "#a12", "name": "Beta", "contact1.lastname": "Young"},
                     {"accountid": "#a13", "name": "Gamma"},
                     {"accountid": "#a14", "name": "Delta", "contact1.lastname": "delta"}]"##),
        ),
        // §2.9: N is the link-entity's sequence number in the document ([inferred] for N > 1).
        case(
            "generated-alias-second-link",
            j,
            &root(r#"<link-entity name="contact" from="contactid" to="primarycontactid" link-type="outer"><attribute name="lastname"/></link-entity><link-entity name="systemuser" from="systemuserid" to="ownerid"><attribute name="lastname"/></link-entity>"#),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "contact1.lastname": "Zed", "systemuser2.lastname": "Lovelace"},
                     {"accountid": "#a12", "name": "Beta", "contact1.lastname": "Young", "systemuser2.lastname": "Hopper"},
                     {"accountid": "#a13", "name": "Gamma", "systemuser2.lastname": "Lovelace"}]"##),
        ),
        case(
            "link-attribute-alias-replaces-key",
            j,
            &root(r#"<link-entity name="contact" from="contactid" to="primarycontactid" alias="pc"><attribute name="lastname" alias="contact_last"/></link-entity>"#),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "contact_last": "Zed"},
                     {"accountid": "#a12", "name": "Beta", "contact_last": "Young"},
                     {"accountid": "#a14", "name": "Delta", "contact_last": "delta"}]"##),
        ),
        case(
            "nested-link-entities",
            j,
            &root(r#"<link-entity name="systemuser" from="systemuserid" to="ownerid" alias="own"><attribute name="lastname"/><link-entity name="businessunit" from="businessunitid" to="businessunitid" alias="bu"><attribute name="name"/></link-entity></link-entity>"#),
            set(r##"[{"accountid": "#a11", "name": "Alpha", "own.lastname": "Lovelace", "bu.name": "Root BU"},
                     {"accountid": "#a12", "name": "Beta", "own.lastname": "Hopper", "bu.name": "Sales BU"},
                     {"accountid": "#a13", "name": "Gamma", "own.lastname": "Lovelace", "bu.name": "Root BU"}]"##),
        ),
        // §8: link-entity orders apply after the entity's orders, whatever the document order.
        case(
            "order-root-before-link",
            j,
            r#"<fetch><entity name="account"><attribute name="accountid"/><link-entity name="contact" from="contactid" to="primarycontactid" alias="pc"><attribute name="lastname"/><order attribute="lastname"/></link-entity><order attribute="name"/></entity></fetch>"#,
            seq(r##"[{"accountid": "#a11", "pc.lastname": "Zed"}, {"accountid": "#a12", "pc.lastname": "Young"},
                     {"accountid": "#a14", "pc.lastname": "delta"}]"##),
        ),
        // §8: an order under entity with entityname sorts by the link column first.
        case(
            "order-entityname-first",
            j,
            r#"<fetch><entity name="account"><attribute name="accountid"/><link-entity name="contact" from="contactid" to="primarycontactid" alias="pc"><attribute name="lastname"/></link-entity><order entityname="pc" attribute="lastname"/><order attribute="name"/></entity></fetch>"#,
            seq(r##"[{"accountid": "#a14", "pc.lastname": "delta"}, {"accountid": "#a12", "pc.lastname": "Young"},
                     {"accountid": "#a11", "pc.lastname": "Zed"}]"##),
        ),
        case(
            "order-link-descending-within-root",
            j,
            r#"<fetch><entity name="account"><attribute name="accountid"/><order attribute="name"/><link-entity name="opportunity" from="parentaccountid" to="accountid" alias="o" link-type="outer"><attribute name="name"/><order attribute="estimatedvalue" descending="true"/></link-entity></entity></fetch>"#,
            seq(r##"[{"accountid": "#a11", "o.name": "Alpha deal 2"}, {"accountid": "#a11", "o.name": "Alpha deal 1"},
                     {"accountid": "#a12", "o.name": "Beta deal"}, {"accountid": "#a14"},
                     {"accountid": "#a13", "o.name": "Gamma deal"}]"##),
        ),
        // §3.7: valueof, same row.
        case(
            "valueof-eq-same-row",
            j,
            &opps(r#"<condition attribute="estimatedvalue" operator="eq" valueof="actualvalue"/>"#),
            set(&id_rows("opportunityid", "o2")),
        ),
        case(
            "valueof-gt-same-row",
            j,
            &opps(r#"<condition attribute="estimatedvalue" operator="gt" valueof="actualvalue"/>"#),
            set(&id_rows("opportunityid", "o1")),
        ),
        case(
            "valueof-lt-same-row",
            j,
            &opps(r#"<condition attribute="estimatedvalue" operator="lt" valueof="actualvalue"/>"#),
            set(&id_rows("opportunityid", "o3")),
        ),
        // [inferred] §4.3 (S4C-BDN): ne with valueof is `a != b OR a IS NULL`.
        case(
            "valueof-ne-matches-null",
            j,
            &opps(r#"<condition attribute="estimatedvalue" operator="ne" valueof="actualvalue"/>"#),
            set(&id_rows("opportunityid", "o1 o3 o4")),
        ),
        // §3.7: cross-table valueof `alias.column`; strings compare case-insensitively.
        case(
            "valueof-cross-table-string",
            j,
            r#"<fetch><entity name="account"><attribute name="accountid"/><link-entity name="contact" from="contactid" to="primarycontactid" alias="pc"><attribute name="lastname"/></link-entity><filter><condition attribute="name" operator="eq" valueof="pc.lastname"/></filter></entity></fetch>"#,
            set(r##"[{"accountid": "#a14", "pc.lastname": "delta"}]"##),
        ),
        case(
            "valueof-cross-table-number",
            j,
            r#"<fetch><entity name="account"><attribute name="accountid"/><link-entity name="contact" from="contactid" to="primarycontactid" alias="pc"><attribute name="numberofchildren"/></link-entity><filter><condition attribute="numberofemployees" operator="gt" valueof="pc.numberofchildren"/></filter></entity></fetch>"#,
            set(r##"[{"accountid": "#a12", "pc.numberofchildren": 3}]"##),
        ),
        case(
            "valueof-cross-table-outer-null-no-match",
            j,
            r#"<fetch><entity name="account"><attribute name="accountid"/><link-entity name="contact" from="contactid" to="primarycontactid" alias="pc" link-type="outer"/><filter><condition attribute="name" operator="eq" valueof="pc.lastname"/></filter></entity></fetch>"#,
            ids("a14"),
        ),
        case(
            "aggregate-count-over-join",
            j,
            r#"<fetch aggregate="true"><entity name="account"><attribute name="accountid" aggregate="count" alias="n"/><link-entity name="opportunity" from="parentaccountid" to="accountid"/></entity></fetch>"#,
            set(r#"[{"n": 4}]"#),
        ),
        case(
            "fifteen-link-entities-allowed",
            j,
            &format!(
                r#"<fetch><entity name="account"><attribute name="accountid"/>{}<filter><condition attribute="name" operator="eq" value="alpha"/></filter></entity></fetch>"#,
                (1..=15)
                    .map(|i| format!(r#"<link-entity name="contact" from="contactid" to="primarycontactid" link-type="outer" alias="l{i}"/>"#))
                    .collect::<String>()
            ),
            ids("a11"),
        ),
    ]
}

/// Injection and wildcard literals (§4.4, issue 3 acceptance): compared literally, nothing
/// changed (every case also checks that all imported rows are still there).
fn string_cases(s: &[&str]) -> Vec<Case> {
    let everyone = "a31 a32 a33 a34 a35 a36 a37 a38 a39 a40 a41 a42 a43 a44 a45 a46 a47";
    let not_quotes = "a32 a33 a34 a35 a36 a37 a38 a39 a40 a41 a43 a44 a45 a46 a47";
    vec![
        case(
            "injection-eq-single-quote",
            s,
            &cond("name", "eq", "O'Brien"),
            ids("a31"),
        ),
        case(
            "injection-eq-double-quote",
            s,
            &cond("name", "eq", "say &quot;HI&quot;"),
            ids("a32"),
        ),
        case(
            "injection-eq-percent-is-literal",
            s,
            &cond("name", "eq", "100% Juice"),
            ids("a33"),
        ),
        case(
            "injection-eq-percent-no-wildcard",
            s,
            &cond("name", "eq", "100%"),
            ids(""),
        ),
        case(
            "injection-eq-underscore-is-literal",
            s,
            &cond("name", "eq", "under_score"),
            ids("a35"),
        ),
        case(
            "injection-eq-bracket",
            s,
            &cond("name", "eq", "a]b"),
            ids("a37"),
        ),
        case(
            "injection-eq-brackets-literal",
            s,
            &cond("name", "eq", "[bracket]"),
            ids("a41"),
        ),
        case(
            "injection-eq-comment",
            s,
            &cond("name", "eq", "a--b"),
            ids("a38"),
        ),
        case(
            "injection-eq-drop-table",
            s,
            &cond("name", "eq", "; DROP TABLE account; --"),
            ids("a39"),
        ),
        case(
            "injection-eq-keywords",
            s,
            &cond("name", "eq", "select * from ACCOUNT"),
            ids("a40"),
        ),
        case(
            "injection-eq-tautology-literal",
            s,
            &cond("name", "eq", "x' OR '1'='1"),
            ids("a42"),
        ),
        case(
            "injection-eq-tautology-none",
            s,
            &cond("name", "eq", "' OR 1=1 --"),
            ids(""),
        ),
        case(
            "injection-ne-tautology-all",
            s,
            &cond("name", "ne", "' OR 1=1 --"),
            ids(everyone),
        ),
        case(
            "injection-in-quotes",
            s,
            &condn(
                "name",
                "in",
                &[
                    "O'Brien",
                    "a--b",
                    "x' OR '1'='1",
                    "'); DELETE FROM account; --",
                ],
            ),
            ids("a31 a38 a42"),
        ),
        case(
            "injection-like-quote",
            s,
            &cond("name", "like", "%'%"),
            ids("a31 a42"),
        ),
        case(
            "injection-not-like-quote",
            s,
            &cond("name", "not-like", "%'%"),
            ids(not_quotes),
        ),
        case(
            "injection-like-comment",
            s,
            &cond("name", "like", "%--%"),
            ids("a38 a39"),
        ),
        case(
            "injection-like-semicolon",
            s,
            &cond("name", "like", "%;%"),
            ids("a39"),
        ),
        case(
            "like-escaped-percent",
            s,
            &cond("name", "like", "100[%]%"),
            ids("a33"),
        ),
        case(
            "like-percent-wildcard",
            s,
            &cond("name", "like", "100%"),
            ids("a33 a34"),
        ),
        case(
            "like-escaped-underscore",
            s,
            &cond("name", "like", "under[_]score"),
            ids("a35"),
        ),
        case(
            "like-underscore-wildcard",
            s,
            &cond("name", "like", "under_score"),
            ids("a35 a36"),
        ),
        case(
            "like-close-bracket-literal",
            s,
            &cond("name", "like", "%]%"),
            ids("a37 a41"),
        ),
        case(
            "like-escaped-open-bracket",
            s,
            &cond("name", "like", "[[]bracket]"),
            ids("a41"),
        ),
        case(
            "like-double-quote",
            s,
            &cond("name", "like", "%&quot;hi&quot;"),
            ids("a32"),
        ),
        // §4.4: begins-with values become LIKE 'v%', so their wildcards act as wildcards.
        case(
            "begins-with-wildcard-active",
            s,
            &cond("name", "begins-with", "100%"),
            ids("a33 a34"),
        ),
        case(
            "ends-with-bracket",
            s,
            &cond("name", "ends-with", "]"),
            ids("a41"),
        ),
        case(
            "injection-attribute-name",
            s,
            r#"<fetch><entity name="account"><attribute name='name" FROM account; DROP TABLE account; --'/></entity></fetch>"#,
            err(&["QueryBuilderNoAttribute"], &[]),
        ),
        case(
            "injection-condition-attribute",
            s,
            &cond("name&quot; = name OR 1=1; --", "eq", "x"),
            err(&["QueryBuilderNoAttribute"], &[]),
        ),
        case(
            "injection-order-attribute",
            s,
            r#"<fetch><entity name="account"><attribute name="name"/><order attribute="name; DROP TABLE account"/></entity></fetch>"#,
            err(&["QueryBuilderNoAttribute"], &[]),
        ),
        case(
            "injection-entity-name",
            s,
            r#"<fetch><entity name="account; DROP TABLE account; --"><attribute name="name"/></entity></fetch>"#,
            err(&["QueryBuilderNoEntity"], &[]),
        ),
        case(
            "injection-link-entity-name",
            s,
            r#"<fetch><entity name="account"><attribute name="name"/><link-entity name='contact" ON 1=1; DROP TABLE account; --' from="contactid" to="primarycontactid"/></entity></fetch>"#,
            err(&["QueryBuilderNoEntity"], &[]),
        ),
    ]
}

fn aggregate(body: &str) -> String {
    format!(r#"<fetch aggregate="true"><entity name="account">{body}</entity></fetch>"#)
}

/// Aggregates (§10) over the AGGREGATES table.
fn aggregate_cases(g: &[&str]) -> Vec<Case> {
    let stats = r#"<attribute name="accountid" aggregate="count" alias="n"/><attribute name="numberofemployees" aggregate="countcolumn" alias="cc"/><attribute name="numberofemployees" aggregate="sum" alias="s"/><attribute name="numberofemployees" aggregate="avg" alias="a"/><attribute name="numberofemployees" aggregate="min" alias="lo"/><attribute name="numberofemployees" aggregate="max" alias="hi"/>"#;
    let date = |grouping: &str, alias: &str| {
        format!(
            r#"<attribute name="createdon" groupby="true" dategrouping="{grouping}" usertimezone="false" alias="{alias}"/>"#
        )
    };
    vec![
        case(
            "aggregate-count",
            g,
            &aggregate(r#"<attribute name="accountid" aggregate="count" alias="n"/>"#),
            set(r#"[{"n": 6}]"#),
        ),
        case(
            "aggregate-countcolumn-skips-nulls",
            g,
            &aggregate(
                r#"<attribute name="numberofemployees" aggregate="countcolumn" alias="n"/>"#,
            ),
            set(r#"[{"n": 5}]"#),
        ),
        case(
            "aggregate-countcolumn-distinct",
            g,
            &aggregate(
                r#"<attribute name="numberofemployees" aggregate="countcolumn" distinct="true" alias="n"/>"#,
            ),
            set(r#"[{"n": 4}]"#),
        ),
        case(
            "aggregate-countcolumn-string",
            g,
            &aggregate(r#"<attribute name="name" aggregate="countcolumn" alias="n"/>"#),
            set(r#"[{"n": 5}]"#),
        ),
        case(
            "aggregate-sum-avg-min-max",
            g,
            &aggregate(stats),
            set(r#"[{"n": 6, "cc": 5, "s": 950, "a": 190, "lo": 50, "hi": 300}]"#),
        ),
        // Averages are exact here: §10 leaves integer-average rounding [unclear].
        case(
            "aggregate-avg-money",
            g,
            &aggregate(r#"<attribute name="revenue" aggregate="avg" alias="a"/>"#),
            set(r#"[{"a": 1550}]"#),
        ),
        case(
            "aggregate-min-max-datetime",
            g,
            &aggregate(
                r#"<attribute name="createdon" aggregate="min" alias="first"/><attribute name="createdon" aggregate="max" alias="last"/>"#,
            ),
            set(r#"[{"first": "2023-03-15T10:00:00Z", "last": "2024-05-02T23:30:00Z"}]"#),
        ),
        // §4.2: case-insensitive distinct values (cities Seattle/seattle count once).
        case(
            "aggregate-countcolumn-distinct-case-insensitive",
            &[PEOPLE, ACCOUNTS],
            &aggregate(
                r#"<attribute name="address1_city" aggregate="countcolumn" distinct="true" alias="n"/>"#,
            ),
            set(r#"[{"n": 5}]"#),
        ),
        case(
            "aggregate-filter-case-insensitive",
            g,
            &aggregate(
                r#"<attribute name="accountid" aggregate="count" alias="n"/><filter><condition attribute="address1_city" operator="eq" value="SEATTLE"/></filter>"#,
            ),
            set(r#"[{"n": 3}]"#),
        ),
        // §10: null values form their own group; [inferred] §8 it sorts first ascending.
        case(
            "groupby-with-null-group",
            g,
            &aggregate(
                r#"<attribute name="address1_city" groupby="true" alias="city"/><attribute name="accountid" aggregate="count" alias="n"/><order alias="city"/>"#,
            ),
            seq(r#"[{"n": 1}, {"city": "Redmond", "n": 2}, {"city": "Seattle", "n": 3}]"#),
        ),
        case(
            "groupby-all-functions",
            g,
            &aggregate(&format!(
                r#"<attribute name="address1_city" groupby="true" alias="city"/>{stats}<order alias="city"/>"#
            )),
            seq(r#"[{"n": 1, "cc": 1, "s": 50, "a": 50, "lo": 50, "hi": 50},
                    {"city": "Redmond", "n": 2, "cc": 1, "s": 300, "a": 300, "lo": 300, "hi": 300},
                    {"city": "Seattle", "n": 3, "cc": 3, "s": 600, "a": 200, "lo": 100, "hi": 300}]"#),
        ),
        case(
            "groupby-order-by-aggregate-descending",
            g,
            &aggregate(
                r#"<attribute name="address1_city" groupby="true" alias="city"/><attribute name="accountid" aggregate="count" alias="n"/><order alias="n" descending="true"/>"#,
            ),
            seq(r#"[{"city": "Seattle", "n": 3}, {"city": "Redmond", "n": 2}, {"n": 1}]"#),
        ),
        case(
            "groupby-sum-money",
            g,
            &aggregate(
                r#"<attribute name="address1_city" groupby="true" alias="city"/><attribute name="revenue" aggregate="sum" alias="total"/><order alias="city"/>"#,
            ),
            seq(
                r#"[{"total": 250}, {"city": "Redmond", "total": 4500}, {"city": "Seattle", "total": 3000}]"#,
            ),
        ),
        case(
            "groupby-statecode",
            g,
            &aggregate(
                r#"<attribute name="statecode" groupby="true" alias="st"/><attribute name="accountid" aggregate="count" alias="n"/><order alias="st"/>"#,
            ),
            seq(r#"[{"st": 0, "n": 5}, {"st": 1, "n": 1}]"#),
        ),
        case(
            "groupby-two-columns",
            g,
            &aggregate(
                r#"<attribute name="address1_city" groupby="true" alias="city"/><attribute name="statecode" groupby="true" alias="st"/><attribute name="accountid" aggregate="count" alias="n"/><order alias="city"/><order alias="st"/>"#,
            ),
            seq(
                r#"[{"st": 0, "n": 1}, {"city": "Redmond", "st": 0, "n": 1}, {"city": "Redmond", "st": 1, "n": 1},
                    {"city": "Seattle", "st": 0, "n": 3}]"#,
            ),
        ),
        // [inferred] §10: date groups come back as integers (the docs show formatted values).
        case(
            "dategrouping-year",
            g,
            &aggregate(&format!(
                r#"{}<attribute name="accountid" aggregate="count" alias="n"/><order alias="y"/>"#,
                date("year", "y")
            )),
            seq(r#"[{"y": 2023, "n": 2}, {"y": 2024, "n": 4}]"#),
        ),
        case(
            "dategrouping-year-month",
            g,
            &aggregate(&format!(
                r#"{}{}<attribute name="accountid" aggregate="count" alias="n"/><order alias="y"/><order alias="m"/>"#,
                date("year", "y"),
                date("month", "m")
            )),
            seq(
                r#"[{"y": 2023, "m": 3, "n": 2}, {"y": 2024, "m": 3, "n": 1}, {"y": 2024, "m": 5, "n": 3}]"#,
            ),
        ),
        // usertimezone="false": 2024-05-02T23:30:00Z is day 2 (UTC).
        case(
            "dategrouping-year-month-day-utc",
            g,
            &aggregate(&format!(
                r#"{}{}{}<attribute name="accountid" aggregate="count" alias="n"/><order alias="y"/><order alias="m"/><order alias="d"/>"#,
                date("year", "y"),
                date("month", "m"),
                date("day", "d")
            )),
            seq(
                r#"[{"y": 2023, "m": 3, "d": 15, "n": 1}, {"y": 2023, "m": 3, "d": 20, "n": 1},
                    {"y": 2024, "m": 3, "d": 15, "n": 1}, {"y": 2024, "m": 5, "d": 1, "n": 1},
                    {"y": 2024, "m": 5, "d": 2, "n": 2}]"#,
            ),
        ),
        // Grouping by a lookup returns its GUID (order of lookups by name is not asserted here).
        case(
            "groupby-lookup",
            g,
            &aggregate(
                r#"<attribute name="ownerid" groupby="true" alias="owner"/><attribute name="accountid" aggregate="count" alias="n"/>"#,
            ),
            set(r##"[{"owner": "#u1", "n": 4}, {"owner": "#u2", "n": 2}]"##),
        ),
        case(
            "groupby-avg-money",
            g,
            &aggregate(
                r#"<attribute name="address1_city" groupby="true" alias="city"/><attribute name="revenue" aggregate="avg" alias="a"/><order alias="city"/>"#,
            ),
            seq(r#"[{"a": 250}, {"city": "Redmond", "a": 2250}, {"city": "Seattle", "a": 1500}]"#),
        ),
        case(
            "dategrouping-quarter",
            g,
            &aggregate(&format!(
                r#"{}{}<attribute name="accountid" aggregate="count" alias="n"/><order alias="y"/><order alias="q"/>"#,
                date("year", "y"),
                date("quarter", "q")
            )),
            seq(
                r#"[{"y": 2023, "q": 1, "n": 2}, {"y": 2024, "q": 1, "n": 1}, {"y": 2024, "q": 2, "n": 3}]"#,
            ),
        ),
        case(
            "aggregate-inner-link-filter",
            g,
            &aggregate(
                r#"<attribute name="accountid" aggregate="count" alias="n"/><link-entity name="systemuser" from="systemuserid" to="ownerid"><filter><condition attribute="lastname" operator="eq" value="HOPPER"/></filter></link-entity>"#,
            ),
            set(r#"[{"n": 2}]"#),
        ),
        // §10: aggregatelimit lowers the 50,000-row limit.
        case(
            "error-aggregatelimit-exceeded",
            g,
            r#"<fetch aggregate="true" aggregatelimit="3"><entity name="account"><attribute name="accountid" aggregate="count" alias="n"/></entity></fetch>"#,
            err(&[], &["AggregateQueryRecordLimit"]),
        ),
        case(
            "aggregatelimit-not-reached",
            g,
            r#"<fetch aggregate="true" aggregatelimit="6"><entity name="account"><attribute name="accountid" aggregate="count" alias="n"/></entity></fetch>"#,
            set(r#"[{"n": 6}]"#),
        ),
        // §10: groupby on a link-entity column.
        case(
            "groupby-link-entity-column",
            g,
            &aggregate(
                r#"<attribute name="accountid" aggregate="count" alias="n"/><attribute name="numberofemployees" aggregate="sum" alias="s"/><link-entity name="systemuser" from="systemuserid" to="ownerid" alias="u"><attribute name="lastname" groupby="true" alias="owner"/></link-entity><order alias="owner"/>"#,
            ),
            seq(
                r#"[{"owner": "Hopper", "n": 2, "s": 600}, {"owner": "Lovelace", "n": 4, "s": 350}]"#,
            ),
        ),
        // [inferred] §10: an ungrouped aggregate over zero rows returns one row, count 0.
        case(
            "aggregate-count-zero-rows",
            g,
            &aggregate(
                r#"<attribute name="accountid" aggregate="count" alias="n"/><filter><condition attribute="name" operator="eq" value="nobody"/></filter>"#,
            ),
            set(r#"[{"n": 0}]"#),
        ),
        case(
            "aggregate-sum-zero-rows-omitted",
            g,
            &aggregate(
                r#"<attribute name="accountid" aggregate="count" alias="n"/><attribute name="revenue" aggregate="sum" alias="s"/><filter><condition attribute="name" operator="eq" value="nobody"/></filter>"#,
            ),
            set(r#"[{"n": 0}]"#),
        ),
        case(
            "groupby-zero-rows-no-groups",
            g,
            &aggregate(
                r#"<attribute name="address1_city" groupby="true" alias="city"/><attribute name="accountid" aggregate="count" alias="n"/><filter><condition attribute="name" operator="eq" value="nobody"/></filter><order alias="city"/>"#,
            ),
            seq("[]"),
        ),
    ]
}

/// Every relative-date operator (§3.3) with the clock at 2024-06-12T14:30:00Z.
fn relative_cases() -> Vec<Case> {
    vec![
        relative(
            "yesterday",
            "yesterday",
            None,
            &["2024-06-11T10:00:00Z"],
            &["2024-06-10T10:00:00Z", "2024-06-12T10:00:00Z"],
        ),
        relative(
            "today",
            "today",
            None,
            &["2024-06-12T01:00:00Z", "2024-06-12T20:00:00Z"],
            &["2024-06-11T23:00:00Z", "2024-06-13T01:00:00Z"],
        ),
        relative(
            "tomorrow",
            "tomorrow",
            None,
            &["2024-06-13T12:00:00Z"],
            &["2024-06-12T20:00:00Z", "2024-06-14T01:00:00Z"],
        ),
        relative(
            "last-seven-days",
            "last-seven-days",
            None,
            &["2024-06-08T12:00:00Z", "2024-06-12T10:00:00Z"],
            &["2024-06-01T12:00:00Z", "2024-06-20T12:00:00Z"],
        ),
        relative(
            "next-seven-days",
            "next-seven-days",
            None,
            &["2024-06-15T12:00:00Z", "2024-06-18T12:00:00Z"],
            &["2024-06-10T12:00:00Z", "2024-06-25T12:00:00Z"],
        ),
        relative(
            "last-week",
            "last-week",
            None,
            &["2024-06-05T12:00:00Z"],
            &["2024-06-11T12:00:00Z", "2024-05-27T12:00:00Z"],
        ),
        relative(
            "this-week",
            "this-week",
            None,
            &["2024-06-11T12:00:00Z", "2024-06-13T12:00:00Z"],
            &["2024-06-05T12:00:00Z", "2024-06-19T12:00:00Z"],
        ),
        relative(
            "next-week",
            "next-week",
            None,
            &["2024-06-19T12:00:00Z"],
            &["2024-06-13T12:00:00Z", "2024-06-26T12:00:00Z"],
        ),
        relative(
            "last-month",
            "last-month",
            None,
            &["2024-05-15T12:00:00Z"],
            &["2024-06-01T12:00:00Z", "2024-04-15T12:00:00Z"],
        ),
        relative(
            "this-month",
            "this-month",
            None,
            &["2024-06-01T12:00:00Z", "2024-06-28T12:00:00Z"],
            &["2024-05-31T12:00:00Z", "2024-07-01T12:00:00Z"],
        ),
        relative(
            "next-month",
            "next-month",
            None,
            &["2024-07-15T12:00:00Z"],
            &["2024-06-28T12:00:00Z", "2024-08-02T12:00:00Z"],
        ),
        relative(
            "last-year",
            "last-year",
            None,
            &["2023-07-01T12:00:00Z"],
            &["2024-01-02T12:00:00Z", "2022-12-30T12:00:00Z"],
        ),
        relative(
            "this-year",
            "this-year",
            None,
            &["2024-01-02T12:00:00Z", "2024-11-30T12:00:00Z"],
            &["2023-12-30T12:00:00Z", "2025-01-02T12:00:00Z"],
        ),
        relative(
            "next-year",
            "next-year",
            None,
            &["2025-06-01T12:00:00Z"],
            &["2024-12-30T12:00:00Z", "2026-01-02T12:00:00Z"],
        ),
        relative(
            "last-x-hours",
            "last-x-hours",
            Some("3"),
            &["2024-06-12T13:00:00Z"],
            &["2024-06-12T09:00:00Z", "2024-06-12T16:00:00Z"],
        ),
        relative(
            "next-x-hours",
            "next-x-hours",
            Some("3"),
            &["2024-06-12T16:00:00Z"],
            &["2024-06-12T13:00:00Z", "2024-06-12T20:00:00Z"],
        ),
        relative(
            "last-x-days",
            "last-x-days",
            Some("3"),
            &["2024-06-10T12:00:00Z"],
            &["2024-06-01T12:00:00Z", "2024-06-14T12:00:00Z"],
        ),
        relative(
            "next-x-days",
            "next-x-days",
            Some("3"),
            &["2024-06-14T12:00:00Z"],
            &["2024-06-10T12:00:00Z", "2024-06-20T12:00:00Z"],
        ),
        relative(
            "last-x-weeks",
            "last-x-weeks",
            Some("2"),
            &["2024-06-01T12:00:00Z"],
            &["2024-05-20T12:00:00Z", "2024-06-14T12:00:00Z"],
        ),
        relative(
            "next-x-weeks",
            "next-x-weeks",
            Some("2"),
            &["2024-06-20T12:00:00Z"],
            &["2024-06-05T12:00:00Z", "2024-07-05T12:00:00Z"],
        ),
        relative(
            "last-x-months",
            "last-x-months",
            Some("2"),
            &["2024-05-01T12:00:00Z"],
            &["2024-03-20T12:00:00Z", "2024-06-20T12:00:00Z"],
        ),
        relative(
            "next-x-months",
            "next-x-months",
            Some("2"),
            &["2024-07-20T12:00:00Z"],
            &["2024-06-05T12:00:00Z", "2024-09-01T12:00:00Z"],
        ),
        relative(
            "last-x-years",
            "last-x-years",
            Some("2"),
            &["2023-01-01T12:00:00Z"],
            &["2021-12-31T12:00:00Z", "2024-07-01T12:00:00Z"],
        ),
        relative(
            "next-x-years",
            "next-x-years",
            Some("2"),
            &["2025-06-01T12:00:00Z"],
            &["2024-01-01T12:00:00Z", "2027-01-01T12:00:00Z"],
        ),
        relative(
            "olderthan-x-minutes",
            "olderthan-x-minutes",
            Some("30"),
            &["2024-06-12T12:00:00Z"],
            &["2024-06-12T14:25:00Z", "2024-06-13T12:00:00Z"],
        ),
        relative(
            "olderthan-x-hours",
            "olderthan-x-hours",
            Some("2"),
            &["2024-06-12T10:00:00Z"],
            &["2024-06-12T13:00:00Z"],
        ),
        relative(
            "olderthan-x-days",
            "olderthan-x-days",
            Some("3"),
            &["2024-06-01T12:00:00Z"],
            &["2024-06-11T12:00:00Z"],
        ),
        relative(
            "olderthan-x-weeks",
            "olderthan-x-weeks",
            Some("2"),
            &["2024-05-10T12:00:00Z"],
            &["2024-06-05T12:00:00Z"],
        ),
        relative(
            "olderthan-x-months",
            "olderthan-x-months",
            Some("2"),
            &["2024-03-01T12:00:00Z"],
            &["2024-05-01T12:00:00Z"],
        ),
        relative(
            "olderthan-x-years",
            "olderthan-x-years",
            Some("1"),
            &["2022-01-01T12:00:00Z"],
            &["2024-01-01T12:00:00Z"],
        ),
    ]
}

/// The documented errors (§9, §10, §11).
fn error_cases(a: &[&str]) -> Vec<Case> {
    let fetch = |body: &str| format!(r#"<fetch><entity name="account">{body}</entity></fetch>"#);
    let many_links: String = (1..=16)
        .map(|i| format!(r#"<link-entity name="contact" from="contactid" to="primarycontactid" link-type="outer" alias="l{i}"/>"#))
        .collect();
    let many_conditions: String = (0..501)
        .map(|i| format!(r#"<condition attribute="numberofemployees" operator="ne" value="{i}"/>"#))
        .collect();
    vec![
        case(
            "error-unknown-entity",
            a,
            r#"<fetch><entity name="nosuchtable"><attribute name="name"/></entity></fetch>"#,
            err(&["QueryBuilderNoEntity"], &[]),
        ),
        case(
            "error-unknown-link-entity",
            a,
            &fetch(r#"<link-entity name="nosuchtable" from="x" to="accountid"/>"#),
            err(&["QueryBuilderNoEntity"], &[]),
        ),
        case(
            "error-unknown-attribute",
            a,
            &fetch(r#"<attribute name="nosuchcolumn"/>"#),
            err(&["QueryBuilderNoAttribute"], &[]),
        ),
        case(
            "error-unknown-condition-attribute",
            a,
            &cond("nosuchcolumn", "eq", "1"),
            err(&["QueryBuilderNoAttribute"], &[]),
        ),
        case(
            "error-unknown-order-attribute",
            a,
            &fetch(r#"<attribute name="name"/><order attribute="nosuchcolumn"/>"#),
            err(&["QueryBuilderNoAttribute"], &[]),
        ),
        case(
            "error-unknown-link-attribute",
            a,
            &fetch(
                r#"<link-entity name="contact" from="contactid" to="primarycontactid"><attribute name="nosuchcolumn"/></link-entity>"#,
            ),
            err(&["QueryBuilderNoAttribute"], &[]),
        ),
        case(
            "error-unknown-link-from",
            a,
            &fetch(r#"<link-entity name="contact" from="nosuchcolumn" to="primarycontactid"/>"#),
            err(&["QueryBuilderNoAttribute"], &[]),
        ),
        // §3.8: gte/lte are not FetchXML.
        case(
            "error-operator-gte",
            a,
            &cond("numberofemployees", "gte", "1"),
            err(&["QueryBuilderInvalidConditionOperator"], &[]),
        ),
        case(
            "error-operator-unknown",
            a,
            &cond("name", "contains", "x"),
            err(&["QueryBuilderInvalidConditionOperator"], &[]),
        ),
        case(
            "error-operator-case-sensitive",
            a,
            &cond("name", "EQ", "x"),
            err(&["QueryBuilderInvalidConditionOperator"], &[]),
        ),
        // §4.1 / §11: a value not convertible to the column's type.
        case(
            "error-value-not-integer",
            a,
            &cond("numberofemployees", "eq", "abc"),
            err(&["QueryBuilderInvalid_Value", "InvalidArgument"], &[]),
        ),
        case(
            "error-value-not-number",
            a,
            &cond("revenue", "gt", "lots"),
            err(&["QueryBuilderInvalid_Value", "InvalidArgument"], &[]),
        ),
        case(
            "error-value-not-date",
            a,
            &cond("createdon", "on", "yesterday-ish"),
            err(&["QueryBuilderInvalid_Value", "InvalidArgument"], &[]),
        ),
        case(
            "error-value-not-guid",
            a,
            &cond("accountid", "eq", "not-a-guid"),
            err(&["QueryBuilderInvalid_Value", "InvalidArgument"], &[]),
        ),
        case(
            "error-value-not-boolean",
            a,
            &cond("creditonhold", "eq", "maybe"),
            err(&["QueryBuilderInvalid_Value", "InvalidArgument"], &[]),
        ),
        case(
            "error-value-in-list-not-integer",
            a,
            &condn("industrycode", "in", &["7", "seven"]),
            err(&["QueryBuilderInvalid_Value", "InvalidArgument"], &[]),
        ),
        case(
            "error-relative-count-not-integer",
            a,
            &cond("createdon", "last-x-days", "three"),
            err(&[], &[]),
        ),
        // §11: wrong number of values (message wording [unclear]).
        case(
            "error-between-one-value",
            a,
            &condn("revenue", "between", &["1"]),
            err(&[], &[]),
        ),
        case(
            "error-eq-without-value",
            a,
            &cond0("name", "eq"),
            err(&[], &["value"]),
        ),
        // §3.7: valueof only with eq, ne, gt, ge, lt, le.
        case(
            "error-valueof-with-like",
            a,
            &acct(r#"<condition attribute="name" operator="like" valueof="address1_city"/>"#),
            err(&[], &[]),
        ),
        case(
            "error-malformed-xml",
            a,
            r#"<fetch><entity name="account"><attribute name="name"/></fetch>"#,
            err(&["InvalidXml"], &[]),
        ),
        case(
            "error-not-xml",
            a,
            "SELECT name FROM account",
            err(&["InvalidXml", "QueryBuilderDeserializeNoDocElemXml"], &[]),
        ),
        case(
            "error-empty",
            a,
            "",
            err(&["InvalidXml", "QueryBuilderDeserializeEmptyXml"], &[]),
        ),
        case(
            "error-unknown-element",
            a,
            &fetch(r#"<attribute name="name"/><bogus/>"#),
            err(&["QueryBuilderDeserializeInvalidNode"], &[]),
        ),
        case(
            "error-missing-operator",
            a,
            &acct(r#"<condition attribute="name" value="x"/>"#),
            err(
                &[
                    "QueryBuilderAttributeNotFound",
                    "QueryBuilderElementNotFound",
                ],
                &[],
            ),
        ),
        case(
            "error-invalid-filter-type",
            a,
            r#"<fetch><entity name="account"><attribute name="name"/><filter type="xor"><condition attribute="name" operator="null"/></filter></entity></fetch>"#,
            err(&["QueryBuilderInvalidFilterType"], &[]),
        ),
        case(
            "error-invalid-link-type",
            a,
            &fetch(
                r#"<link-entity name="contact" from="contactid" to="primarycontactid" link-type="sideways"/>"#,
            ),
            err(&["QueryBuilderDeserializeInvalidLinkType"], &[]),
        ),
        case(
            "error-invalid-distinct",
            a,
            r#"<fetch distinct="maybe"><entity name="account"><attribute name="name"/></entity></fetch>"#,
            err(&["QueryBuilderDeserializeInvalidDistinct"], &[]),
        ),
        case(
            "error-duplicate-alias",
            a,
            &fetch(
                r#"<link-entity name="contact" from="contactid" to="primarycontactid" alias="x"/><link-entity name="systemuser" from="systemuserid" to="ownerid" alias="x"/>"#,
            ),
            err(&["QueryBuilderDuplicateAlias"], &[]),
        ),
        case(
            "error-entityname-unknown-alias",
            a,
            &acct(r#"<condition entityname="nope" attribute="name" operator="null"/>"#),
            err(
                &["QueryBuilderAlias_Does_Not_Exist", "QueryBuilderNoAlias"],
                &[],
            ),
        ),
        // §9: top at most 5,000 (message [unclear]); not with page or returntotalrecordcount.
        case(
            "error-top-over-5000",
            a,
            r#"<fetch top="5001"><entity name="account"><attribute name="name"/></entity></fetch>"#,
            err(&[], &[]),
        ),
        case(
            "error-top-with-page",
            a,
            r#"<fetch top="5" page="2"><entity name="account"><attribute name="name"/></entity></fetch>"#,
            err(&[], &["top", "page"]),
        ),
        case(
            "error-top-with-totalrecordcount",
            a,
            r#"<fetch top="5" returntotalrecordcount="true"><entity name="account"><attribute name="name"/></entity></fetch>"#,
            err(&[], &["top", "returntotalrecordcount"]),
        ),
        case(
            "error-top-zero",
            a,
            r#"<fetch top="0"><entity name="account"><attribute name="name"/></entity></fetch>"#,
            err(&[], &[]),
        ),
        // §10: aggregate rules.
        case(
            "error-aggregate-without-alias",
            a,
            &aggregate(r#"<attribute name="accountid" aggregate="count"/>"#),
            err(&[], &["alias"]),
        ),
        case(
            "error-aggregate-plain-attribute",
            a,
            &aggregate(
                r#"<attribute name="name" alias="n"/><attribute name="accountid" aggregate="count" alias="c"/>"#,
            ),
            err(&[], &[]),
        ),
        case(
            "error-aggregate-order-by-attribute",
            a,
            &aggregate(
                r#"<attribute name="address1_city" groupby="true" alias="city"/><attribute name="accountid" aggregate="count" alias="n"/><order attribute="address1_city"/>"#,
            ),
            err(
                &[
                    "QueryBuilderAttributeNotAllowedForAggregateOrderBy",
                    "QueryBuilderAliasRequiredForAggregateOrderBy",
                ],
                &[],
            ),
        ),
        case(
            "error-aggregate-sum-of-string",
            a,
            &aggregate(r#"<attribute name="name" aggregate="sum" alias="s"/>"#),
            err(&["QueryBuilderInvalidAggregateAttribute"], &[]),
        ),
        case(
            "error-aggregate-groupby-and-aggregate",
            a,
            &aggregate(
                r#"<attribute name="numberofemployees" groupby="true" aggregate="sum" alias="s"/>"#,
            ),
            err(&["QueryBuilderAttributeCannotBeGroupByAndAggregate"], &[]),
        ),
        case(
            "error-invalid-dategrouping",
            a,
            &aggregate(
                r#"<attribute name="createdon" groupby="true" dategrouping="decade" alias="d"/><attribute name="accountid" aggregate="count" alias="n"/>"#,
            ),
            err(&["QueryBuilderInvalidDateGrouping"], &[]),
        ),
        // §6.4: at most 15 link-entities; §5: at most 500 conditions and links.
        case(
            "error-too-many-link-entities",
            a,
            &fetch(&format!(r#"<attribute name="name"/>{many_links}"#)),
            err(&[], &["link entities"]),
        ),
        case(
            "error-too-many-conditions",
            a,
            &acct(&many_conditions),
            err(&["TooManyConditionsInQuery"], &[]),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Paging through all rows with the paging cookie (§9, DESIGN 7.2)
// ---------------------------------------------------------------------------------------------

/// `numberofemployees` of a PAGING row, by account id.
fn employees_of(rows: &RowSet) -> BTreeMap<String, Option<i64>> {
    rows["account"]
        .iter()
        .map(|row| {
            (
                row["accountid"].as_str().unwrap().to_owned(),
                row.get("numberofemployees").and_then(Value::as_i64),
            )
        })
        .collect()
}

/// Reads every page of `fetch` with the cookie of the previous page; returns the rows in order.
fn page_through(org: &LocalOrg, fetch: &str, count: u32) -> Vec<Row> {
    page_through_with(org, fetch, count, true)
}

/// Same; `require_cookie = false` for queries Dataverse pages without a cookie (§9: e.g. sorted
/// by a link-entity column), where the next page is read by number.
fn page_through_with(org: &LocalOrg, fetch: &str, count: u32, require_cookie: bool) -> Vec<Row> {
    let mut all = Vec::new();
    let mut cookie = None;
    for page_number in 1..=50 {
        let request = PageRequest {
            page: Some(page_number),
            count: Some(count),
            paging_cookie: cookie.clone(),
        };
        let page = org
            .query(fetch, &request)
            .unwrap_or_else(|error| panic!("page {page_number} of {fetch}: {error}"));
        if page.more_records {
            assert_eq!(
                page.rows.len(),
                count as usize,
                "page {page_number} (not the last) of {fetch} is short"
            );
            assert!(
                page.paging_cookie.is_some() || !require_cookie,
                "page {page_number} of {fetch} has more records but no paging cookie"
            );
        } else {
            assert!(
                page.rows.len() <= count as usize,
                "last page {page_number} of {fetch} is too long"
            );
        }
        all.extend(page.rows);
        if !page.more_records {
            return all;
        }
        cookie = page.paging_cookie;
    }
    panic!("{fetch}: more_records never became false");
}

/// Sort key of `numberofemployees` for the check: nulls lowest (§8 [inferred]).
fn key(value: Option<i64>) -> i64 {
    value.unwrap_or(i64::MIN)
}

#[test]
fn paging_cookie_reads_every_row_once_when_sort_values_tie() {
    let rows = rowset(&[PAGING]);
    let org = org_with(&rows);
    let employees = employees_of(&rows);
    let all_ids: std::collections::BTreeSet<&String> = employees.keys().collect();
    for descending in [false, true] {
        for count in [1, 2, 3, 4] {
            let fetch = format!(
                r#"<fetch><entity name="account"><attribute name="accountid"/><attribute name="numberofemployees"/><order attribute="numberofemployees" descending="{descending}"/></entity></fetch>"#
            );
            let read = page_through(&org, &fetch, count);
            let read_ids: Vec<String> = read
                .iter()
                .map(|row| row["accountid"].as_str().unwrap().to_owned())
                .collect();
            let unique: std::collections::BTreeSet<&String> = read_ids.iter().collect();
            assert_eq!(
                unique.len(),
                read_ids.len(),
                "descending={descending} count={count}: duplicates in {read_ids:?}"
            );
            assert_eq!(
                unique, all_ids,
                "descending={descending} count={count}: gaps: read {read_ids:?}"
            );
            let keys: Vec<i64> = read_ids.iter().map(|id| key(employees[id])).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            if descending {
                sorted.reverse();
            }
            assert_eq!(
                keys, sorted,
                "descending={descending} count={count}: not in order: {read_ids:?}"
            );
        }
    }
}

#[test]
fn paging_a_join_sorted_by_a_link_column() {
    let rows = rowset(&[PEOPLE, JOINS]);
    let org = org_with(&rows);
    let fetch = r#"<fetch><entity name="account"><attribute name="name"/><order entityname="o" attribute="estimatedvalue" descending="true"/><order attribute="name"/><link-entity name="opportunity" from="parentaccountid" to="accountid" alias="o" link-type="outer"><attribute name="name"/></link-entity></entity></fetch>"#;
    for count in [1, 2, 3] {
        let read: Vec<(String, Option<String>)> = page_through_with(&org, fetch, count, false)
            .iter()
            .map(|row| {
                (
                    row["name"].as_str().unwrap().to_owned(),
                    row.get("o.name").and_then(Value::as_str).map(str::to_owned),
                )
            })
            .collect();
        // Estimated values 5000, 2000, 1000, then nulls last (descending): Gamma's deal and
        // Delta without deals, by name.
        let expected = [
            ("Alpha", Some("Alpha deal 2")),
            ("Beta", Some("Beta deal")),
            ("Alpha", Some("Alpha deal 1")),
            ("Delta", None),
            ("Gamma", Some("Gamma deal")),
        ]
        .map(|(name, deal)| (name.to_owned(), deal.map(str::to_owned)));
        assert_eq!(read, expected, "page size {count}");
    }
}

#[test]
fn paging_cookie_with_two_orders_and_a_filter() {
    let rows = rowset(&[PAGING]);
    let org = org_with(&rows);
    let fetch = r#"<fetch><entity name="account"><attribute name="name"/><order attribute="numberofemployees" descending="true"/><order attribute="name"/><filter><condition attribute="name" operator="ne" value="P6"/></filter></entity></fetch>"#;
    let read: Vec<String> = page_through(&org, fetch, 2)
        .iter()
        .map(|row| row["name"].as_str().unwrap().to_owned())
        .collect();
    // 20: P1 P3 P5 P7; 10: P2 P9; null (last, descending): P4 P8.
    assert_eq!(read, ["P1", "P3", "P5", "P7", "P2", "P9", "P4", "P8"]);
}

#[test]
fn simple_paging_and_cookie_paging_agree_without_an_order() {
    let rows = rowset(&[PAGING]);
    let org = org_with(&rows);
    let fetch = r#"<fetch><entity name="account"><attribute name="accountid"/></entity></fetch>"#;
    let with_cookie: Vec<Row> = page_through(&org, fetch, 2);
    let mut simple = Vec::new();
    for page in 1..=5 {
        let request = PageRequest {
            page: Some(page),
            count: Some(2),
            paging_cookie: None,
        };
        simple.extend(org.query(fetch, &request).expect("simple paging").rows);
    }
    assert_eq!(with_cookie, simple);
    let expected: Vec<String> = (61..=69).map(|n| guid('a', n)).collect();
    let read: Vec<&str> = simple
        .iter()
        .map(|row| row["accountid"].as_str().unwrap())
        .collect();
    assert_eq!(read, expected, "no order: ordered by primary key");
}

/// DESIGN 6.1 / 7.2: the cookie carries the last keys (keyset, never OFFSET), so a row of an
/// earlier page that stops matching the filter does not shift the next page.
#[test]
fn paging_cookie_is_a_keyset_not_an_offset() {
    use fetchflow::org::Write;
    let rows = rowset(&[PAGING]);
    let org = org_with(&rows);
    let fetch = r#"<fetch><entity name="account"><attribute name="name"/><order attribute="name"/><filter><condition attribute="numberofemployees" operator="not-null"/></filter></entity></fetch>"#;
    let names = |page: &Page| -> Vec<String> {
        page.rows
            .iter()
            .map(|row| row["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = org
        .query(
            fetch,
            &PageRequest {
                page: Some(1),
                count: Some(3),
                paging_cookie: None,
            },
        )
        .expect("page 1");
    assert_eq!(names(&first), ["P1", "P2", "P3"]);
    assert!(first.more_records);
    let mut values = Row::new();
    values.insert("numberofemployees".to_owned(), Value::Null);
    let results = org
        .write(&[Write::Update {
            entity: "account".to_owned(),
            id: guid('a', 61),
            values,
        }])
        .expect("write batch");
    assert!(results[0].is_ok(), "update failed: {:?}", results[0]);
    let second = org
        .query(
            fetch,
            &PageRequest {
                page: Some(2),
                count: Some(3),
                paging_cookie: first.paging_cookie.clone(),
            },
        )
        .expect("page 2");
    assert_eq!(
        names(&second),
        ["P5", "P6", "P7"],
        "an offset would skip P5"
    );
    let third = org
        .query(
            fetch,
            &PageRequest {
                page: Some(3),
                count: Some(3),
                paging_cookie: second.paging_cookie.clone(),
            },
        )
        .expect("page 3");
    assert_eq!(names(&third), ["P9"]);
    assert!(!third.more_records);
}

/// The comparison itself: exact keys, values, types, multiplicity and (when asked) order.
#[test]
fn the_conformance_harness_notices_differences() {
    let page = |rows: &str| Page {
        rows: serde_json::from_str(rows).unwrap(),
        more_records: false,
        paging_cookie: None,
        total_record_count: None,
        total_record_count_limit_exceeded: false,
    };
    let two = page(r#"[{"a": 1, "b": "x"}, {"a": 2}]"#);
    assert!(check_rows(&two, r#"[{"a": 2}, {"a": 1.0, "b": "x"}]"#, false).is_ok());
    assert!(check_rows(&two, r#"[{"a": 2}, {"a": 1, "b": "x"}]"#, true).is_err());
    assert!(check_rows(&two, r#"[{"a": 1, "b": "x"}, {"a": 2, "b": null}]"#, false).is_err());
    assert!(check_rows(&two, r#"[{"a": 1, "b": "x"}]"#, false).is_err());
    assert!(check_rows(&two, r#"[{"a": 1, "b": "X"}, {"a": 2}]"#, false).is_err());
    assert!(check_rows(&two, r#"[{"a": "1", "b": "x"}, {"a": 2}]"#, false).is_err());
    let doubled = page(r#"[{"a": 1}, {"a": 1}]"#);
    assert!(check_rows(&doubled, r#"[{"a": 1}]"#, false).is_err());
    assert_eq!(
        expand("#a1 #^c12 x#y"),
        "aaaaaaaa-0000-4000-8000-000000000001 {CCCCCCCC-0000-4000-8000-000000000012} x#y"
    );
}
