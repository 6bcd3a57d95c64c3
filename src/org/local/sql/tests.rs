//! Unit tests of the FetchXML engine (compiler in `sql`, runner in `query`) on small in-memory
//! orgs with the real schema; rows are inserted with plain SQL so these tests do not depend on
//! the importer. Expected rows come from the documented semantics (reference fetchxml.md).

use std::collections::BTreeSet;
use std::sync::Arc;

use rusqlite::types::Value;
use serde_json::{Value as Json, json};

use crate::metadata::{AttributeMeta, AttributeType, Catalogue};
use crate::org::local::{LocalOrg, query, quote};
use crate::org::{OrgError, Page, PageRequest, Row};

const NOW: &str = "2024-05-15T13:45:10Z";

/// `aaaaaaaa-0000-0000-0000-00000000000N`: ids with letters, so case normalization shows.
fn id(n: u32) -> String {
    format!("aaaaaaaa-0000-0000-0000-{n:012}")
}

fn catalogue() -> Catalogue {
    let mut catalogue = Catalogue::builtin();
    let account = catalogue.entity_mut("account").unwrap();
    account.add_attribute(
        AttributeMeta::new("new_tags", AttributeType::MultiSelectPicklist).with_options([
            (1, "Red"),
            (2, "Green"),
            (3, "Blue"),
        ]),
    );
    catalogue
}

/// An empty org with the real schema (`schema::create`), the fixed clock and caller `id(101)`.
fn empty_org(catalogue: Catalogue) -> LocalOrg {
    let now = chrono::DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&chrono::Utc);
    LocalOrg::in_memory(catalogue)
        .unwrap()
        .with_caller(Some(id(101)))
        .with_clock(Arc::new(move || now))
}

fn to_sql(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(flag) => Value::Integer(i64::from(*flag)),
        Json::Number(number) => number
            .as_i64()
            .map_or_else(|| Value::Real(number.as_f64().unwrap()), Value::Integer),
        Json::String(text) => Value::Text(text.clone()),
        other => Value::Text(other.to_string()),
    }
}

fn insert(org: &LocalOrg, entity: &str, rows: &Json) {
    let connection = org.connection();
    for row in rows.as_array().unwrap() {
        let row = row.as_object().unwrap();
        let columns: Vec<String> = row.keys().map(|key| quote(key)).collect();
        let placeholders: Vec<String> = (1..=row.len()).map(|n| format!("?{n}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(entity),
            columns.join(", "),
            placeholders.join(", ")
        );
        let values: Vec<Value> = row.values().map(to_sql).collect();
        connection
            .execute(&sql, rusqlite::params_from_iter(values))
            .unwrap();
    }
}

/// The org most tests use: six accounts, four contacts, two users, a team, two business units.
fn sample() -> LocalOrg {
    let org = empty_org(catalogue());
    insert(
        &org,
        "systemuser",
        &json!([
            {"systemuserid": id(101), "fullname": "Zed Adams", "businessunitid": id(201), "createdon": "2024-01-01T00:00:00Z"},
            {"systemuserid": id(102), "fullname": "Amy Blue", "businessunitid": id(202), "createdon": "2024-01-01T00:00:00Z"},
        ]),
    );
    insert(
        &org,
        "team",
        &json!([{"teamid": id(301), "name": "Sales Team"}, {"teamid": id(302), "name": "Other"}]),
    );
    insert(
        &org,
        "teammembership",
        &json!([
            {"teammembershipid": id(401), "systemuserid": id(101), "teamid": id(301)},
            {"teammembershipid": id(402), "systemuserid": id(102), "teamid": id(302)},
        ]),
    );
    insert(
        &org,
        "businessunit",
        &json!([{"businessunitid": id(201), "name": "North"}, {"businessunitid": id(202), "name": "South"}]),
    );
    insert(
        &org,
        "account",
        &json!([
            {"accountid": id(1), "name": "Contoso", "numberofemployees": 100, "revenue": 1000.5,
             "industrycode": 7, "statecode": 0, "statuscode": 1, "creditonhold": 1,
             "createdon": "2024-05-15T09:00:00Z", "modifiedon": "2024-05-15T09:00:00Z",
             "address1_city": "Seattle", "primarycontactid": id(11), "description": "50% off",
             "ownerid": id(101), "ownerid@target": "systemuser", "owningbusinessunit": id(201),
             "new_tags": "[1,2]"},
            {"accountid": id(2), "name": "contoso ltd", "numberofemployees": 50, "revenue": 200.0,
             "industrycode": 1, "statecode": 0, "statuscode": 1, "creditonhold": 0,
             "createdon": "2024-05-14T10:00:00Z", "modifiedon": "2024-05-15T10:00:00Z",
             "address1_city": "Redmond", "parentaccountid": id(1), "description": "under_score",
             "ownerid": id(102), "ownerid@target": "systemuser", "owningbusinessunit": id(202),
             "new_tags": "[3]"},
            {"accountid": id(3), "name": "Fabrikam", "statecode": 1, "statuscode": 2,
             "createdon": "2024-04-20T00:00:00Z", "parentaccountid": id(2),
             "ownerid": id(301), "ownerid@target": "team"},
            {"accountid": id(4), "name": "Émile Café", "numberofemployees": 10, "revenue": 99.99,
             "industrycode": 33, "statecode": 0, "statuscode": 1, "creditonhold": 0,
             "createdon": "2023-01-10T00:00:00Z", "address1_city": "Paris", "parentaccountid": id(2),
             "ownerid": id(101), "ownerid@target": "systemuser", "owningbusinessunit": id(201)},
            {"accountid": id(5), "name": "Adventure Works", "numberofemployees": 100, "revenue": 5000.0,
             "industrycode": 7, "statecode": 0, "statuscode": 1,
             "createdon": "2024-05-16T08:00:00Z", "address1_city": "seattle", "parentaccountid": id(4),
             "ownerid": id(101), "ownerid@target": "systemuser"},
            {"accountid": id(6), "numberofemployees": 0, "revenue": 0.0, "statecode": 1, "statuscode": 2,
             "address1_city": "Boston"},
        ]),
    );
    insert(
        &org,
        "contact",
        &json!([
            {"contactid": id(11), "fullname": "Ann Lee", "parentcustomerid": id(1), "parentcustomerid@target": "account",
             "statecode": 0, "gendercode": 1, "annualincome": 50000.0},
            {"contactid": id(12), "fullname": "Bob Ray", "parentcustomerid": id(1), "parentcustomerid@target": "account",
             "statecode": 1, "gendercode": 2},
            {"contactid": id(13), "fullname": "Cid Moe", "parentcustomerid": id(2), "parentcustomerid@target": "account",
             "statecode": 0},
            {"contactid": id(14), "fullname": "Dee"},
        ]),
    );
    org
}

fn page(org: &LocalOrg, fetchxml: &str) -> Page {
    query::run(org, fetchxml, &PageRequest::default())
        .unwrap_or_else(|error| panic!("{fetchxml}\n{error:?}"))
}

fn rows(org: &LocalOrg, fetchxml: &str) -> Vec<Row> {
    page(org, fetchxml).rows
}

fn error(org: &LocalOrg, fetchxml: &str) -> OrgError {
    match query::run(org, fetchxml, &PageRequest::default()) {
        Ok(page) => panic!("{fetchxml} should fail, got {:?}", page.rows),
        Err(error) => error,
    }
}

/// The account numbers (N of `id(N)`) a filter on account selects.
fn accounts(org: &LocalOrg, filter: &str) -> BTreeSet<u32> {
    let fetchxml = format!(
        "<fetch><entity name='account'><attribute name='accountid'/><filter>{filter}</filter></entity></fetch>"
    );
    rows(org, &fetchxml)
        .iter()
        .map(|row| number_of(&row["accountid"]))
        .collect()
}

fn number_of(value: &Json) -> u32 {
    value.as_str().unwrap()[24..].parse().unwrap()
}

fn set(numbers: &[u32]) -> BTreeSet<u32> {
    numbers.iter().copied().collect()
}

fn keys(rows: &[Row], key: &str) -> Vec<Option<Json>> {
    rows.iter().map(|row| row.get(key).cloned()).collect()
}

#[test]
fn every_operator() {
    let org = sample();
    let upper = id(1).to_uppercase();
    let cases: Vec<(String, &[u32])> = vec![
        ("<condition attribute='name' operator='eq' value='CONTOSO'/>".into(), &[1]),
        ("<condition attribute='name' operator='eq' value='emile cafe'/>".into(), &[4]),
        (format!("<condition attribute='accountid' operator='eq' value='{{{upper}}}'/>"), &[1]),
        ("<condition attribute='name' operator='ne' value='contoso'/>".into(), &[2, 3, 4, 5, 6]),
        ("<condition attribute='name' operator='neq' value='contoso'/>".into(), &[2, 3, 4, 5, 6]),
        ("<condition attribute='numberofemployees' operator='gt' value='50'/>".into(), &[1, 5]),
        ("<condition attribute='numberofemployees' operator='ge' value='50'/>".into(), &[1, 2, 5]),
        ("<condition attribute='numberofemployees' operator='lt' value='50'/>".into(), &[4, 6]),
        ("<condition attribute='numberofemployees' operator='le' value='10'/>".into(), &[4, 6]),
        ("<condition attribute='name' operator='gt' value='D'/>".into(), &[3, 4]),
        ("<condition attribute='revenue' operator='ge' value='1000.5'/>".into(), &[1, 5]),
        ("<condition attribute='modifiedon' operator='eq' valueof='createdon'/>".into(), &[1]),
        ("<condition attribute='modifiedon' operator='ne' valueof='createdon'/>".into(), &[2, 3, 4, 5, 6]),
        ("<condition attribute='modifiedon' operator='gt' valueof='createdon'/>".into(), &[2]),
        ("<condition attribute='numberofemployees' operator='in'><value>10</value><value>100</value></condition>".into(), &[1, 4, 5]),
        ("<condition attribute='name' operator='in'><value>FABRIKAM</value><value>contoso</value></condition>".into(), &[1, 3]),
        ("<condition attribute='numberofemployees' operator='not-in'><value>10</value><value>100</value></condition>".into(), &[2, 3, 6]),
        ("<condition attribute='numberofemployees' operator='between'><value>10</value><value>50</value></condition>".into(), &[2, 4]),
        ("<condition attribute='numberofemployees' operator='not-between'><value>10</value><value>50</value></condition>".into(), &[1, 3, 5, 6]),
        ("<condition attribute='createdon' operator='between'><value>2024-05-14</value><value>2024-05-15T09:00:00Z</value></condition>".into(), &[1, 2]),
        ("<condition attribute='numberofemployees' operator='null'/>".into(), &[3]),
        ("<condition attribute='numberofemployees' operator='not-null'/>".into(), &[1, 2, 4, 5, 6]),
        ("<condition attribute='name' operator='like' value='%on%'/>".into(), &[1, 2]),
        ("<condition attribute='name' operator='like' value='[a-c]%'/>".into(), &[1, 2, 5]),
        ("<condition attribute='name' operator='like' value='[^a-c]%'/>".into(), &[3, 4]),
        ("<condition attribute='name' operator='like' value='%CAF_'/>".into(), &[4]),
        ("<condition attribute='description' operator='like' value='50[%]%'/>".into(), &[1]),
        ("<condition attribute='description' operator='like' value='%[_]%'/>".into(), &[2]),
        ("<condition attribute='name' operator='not-like' value='%on%'/>".into(), &[3, 4, 5, 6]),
        ("<condition attribute='name' operator='begins-with' value='con'/>".into(), &[1, 2]),
        ("<condition attribute='name' operator='begins-with' value='c_n'/>".into(), &[1, 2]),
        ("<condition attribute='name' operator='not-begin-with' value='con'/>".into(), &[3, 4, 5, 6]),
        ("<condition attribute='name' operator='ends-with' value='WORKS'/>".into(), &[5]),
        ("<condition attribute='name' operator='not-end-with' value='works'/>".into(), &[1, 2, 3, 4, 6]),
        ("<condition attribute='createdon' operator='on' value='2024-05-15'/>".into(), &[1]),
        ("<condition attribute='createdon' operator='on' value='2024-05-15T23:00:00Z'/>".into(), &[1]),
        ("<condition attribute='createdon' operator='on-or-before' value='2024-05-14'/>".into(), &[2, 3, 4]),
        ("<condition attribute='createdon' operator='on-or-after' value='2024-05-15'/>".into(), &[1, 5]),
        ("<condition attribute='createdon' operator='today'/>".into(), &[1]),
        ("<condition attribute='createdon' operator='yesterday'/>".into(), &[2]),
        ("<condition attribute='createdon' operator='tomorrow'/>".into(), &[5]),
        ("<condition attribute='createdon' operator='last-seven-days'/>".into(), &[1, 2]),
        ("<condition attribute='createdon' operator='next-seven-days'/>".into(), &[5]),
        ("<condition attribute='createdon' operator='this-week'/>".into(), &[1, 2, 5]),
        ("<condition attribute='createdon' operator='last-week'/>".into(), &[]),
        ("<condition attribute='createdon' operator='next-week'/>".into(), &[]),
        ("<condition attribute='createdon' operator='this-month'/>".into(), &[1, 2, 5]),
        ("<condition attribute='createdon' operator='last-month'/>".into(), &[3]),
        ("<condition attribute='createdon' operator='next-month'/>".into(), &[]),
        ("<condition attribute='createdon' operator='this-year'/>".into(), &[1, 2, 3, 5]),
        ("<condition attribute='createdon' operator='last-year'/>".into(), &[4]),
        ("<condition attribute='createdon' operator='next-year'/>".into(), &[]),
        ("<condition attribute='createdon' operator='last-x-hours' value='5'/>".into(), &[1]),
        ("<condition attribute='createdon' operator='next-x-hours' value='24'/>".into(), &[5]),
        ("<condition attribute='createdon' operator='last-x-days' value='30'/>".into(), &[1, 2, 3]),
        ("<condition attribute='createdon' operator='next-x-days' value='1'/>".into(), &[5]),
        ("<condition attribute='createdon' operator='last-x-weeks' value='1'/>".into(), &[1, 2]),
        ("<condition attribute='createdon' operator='next-x-weeks' value='1'/>".into(), &[5]),
        ("<condition attribute='createdon' operator='last-x-months' value='1'/>".into(), &[1, 2, 3]),
        ("<condition attribute='createdon' operator='next-x-months' value='1'/>".into(), &[5]),
        ("<condition attribute='createdon' operator='last-x-years' value='2'/>".into(), &[1, 2, 3, 4]),
        ("<condition attribute='createdon' operator='next-x-years' value='1'/>".into(), &[5]),
        ("<condition attribute='createdon' operator='olderthan-x-minutes' value='60'/>".into(), &[1, 2, 3, 4]),
        ("<condition attribute='createdon' operator='olderthan-x-hours' value='1'/>".into(), &[1, 2, 3, 4]),
        ("<condition attribute='createdon' operator='olderthan-x-days' value='1'/>".into(), &[3, 4]),
        ("<condition attribute='createdon' operator='olderthan-x-weeks' value='1'/>".into(), &[3, 4]),
        ("<condition attribute='createdon' operator='olderthan-x-months' value='1'/>".into(), &[4]),
        ("<condition attribute='createdon' operator='olderthan-x-years' value='1'/>".into(), &[4]),
        ("<condition attribute='ownerid' operator='eq-userid'/>".into(), &[1, 4, 5]),
        ("<condition attribute='ownerid' operator='ne-userid'/>".into(), &[2, 3, 6]),
        ("<condition attribute='owningbusinessunit' operator='eq-businessid'/>".into(), &[1, 4]),
        ("<condition attribute='owningbusinessunit' operator='ne-businessid'/>".into(), &[2, 3, 5, 6]),
        ("<condition attribute='ownerid' operator='eq-userteams'/>".into(), &[3]),
        ("<condition attribute='ownerid' operator='eq-useroruserteams'/>".into(), &[1, 3, 4, 5]),
        ("<condition attribute='ownerid' operator='eq-useroruserhierarchy'/>".into(), &[1, 4, 5]),
        ("<condition attribute='ownerid' operator='eq-useroruserhierarchyandteams'/>".into(), &[1, 3, 4, 5]),
        ("<condition attribute='numberofemployees' operator='eq-userlanguage'/>".into(), &[]),
        (format!("<condition attribute='accountid' operator='under' value='{}'/>", id(1)), &[2, 3, 4, 5]),
        (format!("<condition attribute='accountid' operator='eq-or-under' value='{upper}'/>"), &[1, 2, 3, 4, 5]),
        (format!("<condition attribute='accountid' operator='under' value='{}'/>", id(2)), &[3, 4, 5]),
        (format!("<condition attribute='accountid' operator='not-under' value='{}'/>", id(2)), &[1, 2, 6]),
        (format!("<condition attribute='accountid' operator='above' value='{}'/>", id(5)), &[1, 2, 4]),
        (format!("<condition attribute='accountid' operator='eq-or-above' value='{}'/>", id(5)), &[1, 2, 4, 5]),
        ("<condition attribute='new_tags' operator='contain-values'><value>1</value><value>3</value></condition>".into(), &[1, 2]),
        ("<condition attribute='new_tags' operator='not-contain-values'><value>1</value></condition>".into(), &[2, 3, 4, 5, 6]),
        ("<condition attribute='creditonhold' operator='eq' value='1'/>".into(), &[1]),
        ("<condition attribute='creditonhold' operator='eq' value='true'/>".into(), &[1]),
        ("<condition attribute='creditonhold' operator='eq' value='false'/>".into(), &[2, 4]),
        ("<condition attribute='creditonhold' operator='ne' value='1'/>".into(), &[2, 3, 4, 5, 6]),
        ("<condition attribute='industrycode' operator='eq' value='7'/>".into(), &[1, 5]),
        ("<condition attribute='statecode' operator='eq' value='1'/>".into(), &[3, 6]),
        (format!("<condition attribute='parentaccountid' operator='eq' value='{{{}}}'/>", id(2).to_uppercase()), &[3, 4]),
        ("<filter type='or'><condition attribute='name' operator='eq' value='Fabrikam'/><filter><condition attribute='address1_city' operator='eq' value='SEATTLE'/><condition attribute='numberofemployees' operator='gt' value='50'/></filter></filter>".into(), &[1, 3, 5]),
        ("<filter/>".into(), &[1, 2, 3, 4, 5, 6]),
    ];
    let mut tested = BTreeSet::new();
    for (filter, expected) in &cases {
        assert_eq!(accounts(&org, filter), set(expected), "{filter}");
        if let Some(start) = filter.find("operator='") {
            let rest = &filter[start + 10..];
            tested.insert(rest[..rest.find('\'').unwrap()].to_owned());
        }
    }
    let untested: Vec<&str> = crate::fetchxml::OPERATORS
        .iter()
        .filter(|info| !info.fiscal && !tested.contains(info.name))
        .map(|info| info.name)
        .collect();
    assert!(
        untested.is_empty(),
        "operators without a case: {untested:?}"
    );
}

#[test]
fn negative_operators_match_nulls() {
    let org = sample();
    // Account 3 has no numberofemployees, 6 no name and no createdon.
    for (filter, null_row) in [
        (
            "<condition attribute='numberofemployees' operator='ne' value='1'/>",
            3,
        ),
        (
            "<condition attribute='numberofemployees' operator='not-in'><value>1</value></condition>",
            3,
        ),
        (
            "<condition attribute='numberofemployees' operator='not-between'><value>1</value><value>2</value></condition>",
            3,
        ),
        (
            "<condition attribute='name' operator='not-like' value='x'/>",
            6,
        ),
        (
            "<condition attribute='name' operator='not-begin-with' value='x'/>",
            6,
        ),
        (
            "<condition attribute='name' operator='not-end-with' value='x'/>",
            6,
        ),
        (
            "<condition attribute='new_tags' operator='not-contain-values'><value>1</value></condition>",
            6,
        ),
        ("<condition attribute='ownerid' operator='ne-userid'/>", 6),
        (
            "<condition attribute='owningbusinessunit' operator='ne-businessid'/>",
            6,
        ),
    ] {
        assert!(accounts(&org, filter).contains(&null_row), "{filter}");
    }
    for (filter, null_row) in [
        (
            "<condition attribute='numberofemployees' operator='lt' value='1000'/>",
            3,
        ),
        (
            "<condition attribute='numberofemployees' operator='in'><value>1</value></condition>",
            3,
        ),
        ("<condition attribute='name' operator='like' value='%'/>", 6),
        (
            "<condition attribute='createdon' operator='olderthan-x-days' value='1'/>",
            6,
        ),
    ] {
        assert!(!accounts(&org, filter).contains(&null_row), "{filter}");
    }
}

#[test]
fn link_types() {
    let org = sample();
    let link = |link_type: &str, inner: &str| {
        format!(
            "<fetch><entity name='account'><attribute name='name'/><order attribute='name'/>\
             <link-entity name='contact' from='parentcustomerid' to='accountid' alias='c' link-type='{link_type}'>{inner}</link-entity>\
             </entity></fetch>"
        )
    };
    let inner = rows(
        &org,
        &link(
            "inner",
            "<attribute name='fullname'/><order attribute='fullname'/>",
        ),
    );
    assert_eq!(
        keys(&inner, "c.fullname"),
        [
            Some(json!("Ann Lee")),
            Some(json!("Bob Ray")),
            Some(json!("Cid Moe"))
        ]
    );
    assert_eq!(inner[0]["accountid"], json!(id(1)));

    let outer = rows(&org, &link("outer", "<attribute name='fullname'/>"));
    assert_eq!(outer.len(), 7);
    assert!(
        outer
            .iter()
            .filter(|row| !row.contains_key("c.fullname"))
            .count()
            == 4
    );

    let outer_filtered = rows(
        &org,
        &link(
            "outer",
            "<attribute name='fullname'/><filter><condition attribute='statecode' operator='eq' value='0'/></filter>",
        ),
    );
    assert_eq!(
        outer_filtered.len(),
        6,
        "a link filter decides which rows join"
    );
    let inner_filtered = rows(
        &org,
        &link(
            "inner",
            "<attribute name='fullname'/><filter><condition attribute='statecode' operator='eq' value='1'/></filter>",
        ),
    );
    assert_eq!(
        keys(&inner_filtered, "c.fullname"),
        [Some(json!("Bob Ray"))]
    );

    let without_contacts = "<fetch><entity name='account'><attribute name='accountid'/>\
        <link-entity name='contact' from='parentcustomerid' to='accountid' alias='c' link-type='outer'/>\
        <filter><condition entityname='c' attribute='contactid' operator='null'/></filter></entity></fetch>";
    let found: BTreeSet<u32> = rows(&org, without_contacts)
        .iter()
        .map(|row| number_of(&row["accountid"]))
        .collect();
    assert_eq!(found, set(&[3, 4, 5, 6]));

    for (link_type, expected) in [("exists", vec![1, 2]), ("in", vec![1, 2])] {
        let found = rows(&org, &link(link_type, ""));
        let numbers: Vec<u32> = found
            .iter()
            .map(|row| number_of(&row["accountid"]))
            .collect();
        assert_eq!(numbers, expected, "{link_type}");
    }
    let filtered_exists = rows(
        &org,
        &link(
            "exists",
            "<filter><condition attribute='statecode' operator='eq' value='1'/></filter>",
        ),
    );
    assert_eq!(filtered_exists.len(), 1);

    let in_filter = |link_type: &str| {
        accounts(
            &org,
            &format!(
                "<link-entity name='contact' from='parentcustomerid' to='accountid' link-type='{link_type}'>\
                 <filter><condition attribute='statecode' operator='eq' value='1'/></filter></link-entity>"
            ),
        )
    };
    assert_eq!(in_filter("any"), set(&[1]));
    assert_eq!(in_filter("not any"), set(&[2, 3, 4, 5, 6]));
    // filter-rows.md §6.3: `all` = has related rows and none satisfies the filter; `not all` = any.
    assert_eq!(in_filter("all"), set(&[2]));
    assert_eq!(in_filter("not all"), set(&[1]));
    let or_any = accounts(
        &org,
        "<filter type='or'><condition attribute='name' operator='eq' value='Fabrikam'/>\
         <link-entity name='contact' from='parentcustomerid' to='accountid' link-type='any'>\
         <filter><condition attribute='fullname' operator='eq' value='cid moe'/></filter></link-entity></filter>",
    );
    assert_eq!(or_any, set(&[2, 3]));

    let first = rows(
        &org,
        &link(
            "matchfirstrowusingcrossapply",
            "<attribute name='fullname'/>",
        ),
    );
    assert_eq!(
        keys(&first, "fullname"),
        [Some(json!("Ann Lee")), Some(json!("Cid Moe"))]
    );

    let unaliased = rows(
        &org,
        "<fetch><entity name='account'><attribute name='name'/><filter><condition attribute='name' operator='eq' value='contoso'/></filter>\
         <link-entity name='systemuser' from='systemuserid' to='ownerid'><attribute name='fullname'/></link-entity>\
         <link-entity name='contact' from='contactid' to='primarycontactid'><attribute name='fullname' alias='primary'/></link-entity>\
         </entity></fetch>",
    );
    assert_eq!(unaliased[0]["systemuser1.fullname"], json!("Zed Adams"));
    assert_eq!(unaliased[0]["primary"], json!("Ann Lee"));

    let cross_table = rows(
        &org,
        "<fetch><entity name='account'><attribute name='accountid'/>\
         <link-entity name='systemuser' from='systemuserid' to='ownerid' alias='u'/>\
         <filter><condition attribute='createdon' operator='lt' valueof='u.createdon'/></filter></entity></fetch>",
    );
    assert_eq!(keys(&cross_table, "accountid"), [Some(json!(id(4)))]);
}

#[test]
fn ordering_rules() {
    let org = sample();
    let order = |orders: &str, raw: bool| {
        let fetchxml = format!(
            "<fetch useraworderby='{raw}'><entity name='account'><attribute name='accountid'/>{orders}</entity></fetch>"
        );
        rows(&org, &fetchxml)
            .iter()
            .map(|row| number_of(&row["accountid"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        order("", false),
        [1, 2, 3, 4, 5, 6],
        "primary key order by default"
    );
    assert_eq!(
        order("<order attribute='name'/>", false),
        [6, 5, 1, 2, 4, 3]
    );
    assert_eq!(
        order("<order attribute='name' descending='true'/>", false),
        [3, 4, 2, 1, 5, 6]
    );
    assert_eq!(
        order(
            "<order attribute='address1_city'/><order attribute='name' descending='true'/>",
            false
        ),
        [3, 6, 4, 2, 1, 5],
        "Seattle and seattle tie, then name descending"
    );
    // Lookups sort by the referenced row's primary name: Amy Blue, Sales Team (a team), Zed Adams.
    assert_eq!(
        order("<order attribute='ownerid'/>", false),
        [6, 2, 3, 1, 4, 5]
    );
    assert_eq!(
        order(
            "<order attribute='numberofemployees' descending='true'/><order attribute='revenue'/>",
            false
        ),
        [1, 5, 2, 4, 6, 3]
    );

    let contacts = |raw: bool| {
        let fetchxml = format!(
            "<fetch useraworderby='{raw}'><entity name='contact'><attribute name='fullname'/><order attribute='gendercode'/></entity></fetch>"
        );
        keys(&rows(&org, &fetchxml), "fullname")
    };
    // Choices sort by label (Female before Male) unless useraworderby.
    assert_eq!(
        contacts(false),
        [
            Some(json!("Cid Moe")),
            Some(json!("Dee")),
            Some(json!("Bob Ray")),
            Some(json!("Ann Lee"))
        ]
    );
    assert_eq!(
        contacts(true),
        [
            Some(json!("Cid Moe")),
            Some(json!("Dee")),
            Some(json!("Ann Lee")),
            Some(json!("Bob Ray"))
        ]
    );

    let linked = |orders: &str, link_order: &str| {
        let fetchxml = format!(
            "<fetch><entity name='account'><attribute name='name'/>{orders}\
             <link-entity name='contact' from='parentcustomerid' to='accountid' alias='c' link-type='outer'>\
             <attribute name='fullname'/>{link_order}</link-entity></entity></fetch>"
        );
        rows(&org, &fetchxml)
            .iter()
            .map(|row| {
                format!(
                    "{}/{}",
                    row.get("name").and_then(Json::as_str).unwrap_or("-"),
                    row.get("c.fullname").and_then(Json::as_str).unwrap_or("-")
                )
            })
            .collect::<Vec<_>>()
    };
    // Link orders come after root orders…
    assert_eq!(
        linked(
            "<order attribute='name'/>",
            "<order attribute='fullname' descending='true'/>"
        )[..4],
        [
            "-/-",
            "Adventure Works/-",
            "Contoso/Bob Ray",
            "Contoso/Ann Lee"
        ]
    );
    // …unless an `entityname` order puts them first, in document position.
    assert_eq!(
        linked(
            "<order entityname='c' attribute='fullname' descending='true'/><order attribute='name'/>",
            ""
        )[..4],
        [
            "contoso ltd/Cid Moe",
            "Contoso/Bob Ray",
            "Contoso/Ann Lee",
            "-/-"
        ]
    );
}

#[test]
fn result_shape() {
    let org = sample();
    let all = rows(
        &org,
        "<fetch><entity name='account'><filter><condition attribute='name' operator='eq' value='contoso'/></filter></entity></fetch>",
    );
    let row = &all[0];
    assert_eq!(row["accountid"], json!(id(1)));
    assert_eq!(row["numberofemployees"], json!(100));
    assert_eq!(row["revenue"], json!(1000.5));
    assert_eq!(row["creditonhold"], json!(true));
    assert_eq!(row["createdon"], json!("2024-05-15T09:00:00Z"));
    assert_eq!(row["ownerid"], json!(id(101)));
    assert_eq!(row["new_tags"], json!([1, 2]));
    assert!(!row.contains_key("parentaccountid"), "nulls are omitted");
    assert!(!row.contains_key("ownerid@target"));

    let selected = rows(
        &org,
        "<fetch><entity name='account'><attribute name='name' alias='title'/><filter><condition attribute='name' operator='eq' value='contoso'/></filter></entity></fetch>",
    );
    assert_eq!(
        selected[0].keys().collect::<Vec<_>>(),
        ["accountid", "title"]
    );

    let distinct = rows(
        &org,
        "<fetch distinct='true'><entity name='account'><attribute name='address1_city'/><order attribute='address1_city'/></entity></fetch>",
    );
    assert_eq!(distinct.len(), 5, "Seattle and seattle are one value");
    assert!(distinct.iter().all(|row| !row.contains_key("accountid")));

    let top = page(
        &org,
        "<fetch top='2'><entity name='account'><attribute name='name'/><order attribute='name'/></entity></fetch>",
    );
    assert_eq!(top.rows.len(), 2);
    assert!(!top.more_records && top.paging_cookie.is_none());

    let counted = page(
        &org,
        "<fetch count='2' returntotalrecordcount='true'><entity name='account'><attribute name='name'/></entity></fetch>",
    );
    assert_eq!(
        (counted.rows.len(), counted.total_record_count),
        (2, Some(6))
    );
    assert!(counted.more_records && !counted.total_record_count_limit_exceeded);

    let children = rows(
        &org,
        &format!(
            "<fetch><entity name='account'><attribute name='accountid' alias='children' rowaggregate='CountChildren'/><filter><condition attribute='accountid' operator='eq' value='{}'/></filter></entity></fetch>",
            id(2)
        ),
    );
    assert_eq!(children[0]["children"], json!(2));
}

#[test]
fn aggregates() {
    let org = sample();
    let totals = rows(
        &org,
        "<fetch aggregate='true'><entity name='account'>\
         <attribute name='accountid' alias='n' aggregate='count'/>\
         <attribute name='numberofemployees' alias='with' aggregate='countcolumn'/>\
         <attribute name='address1_city' alias='cities' aggregate='countcolumn' distinct='true'/>\
         <attribute name='numberofemployees' alias='total' aggregate='sum'/>\
         <attribute name='numberofemployees' alias='mean' aggregate='avg'/>\
         <attribute name='revenue' alias='mean_revenue' aggregate='avg'/>\
         <attribute name='numberofemployees' alias='least' aggregate='min'/>\
         <attribute name='createdon' alias='latest' aggregate='max'/>\
         </entity></fetch>",
    );
    assert_eq!(
        Json::Object(totals[0].clone()),
        json!({"n": 6, "with": 5, "cities": 4, "total": 260, "mean": 52,
               "mean_revenue": (1000.5 + 200.0 + 99.99 + 5000.0) / 5.0,
               "least": 0, "latest": "2024-05-16T08:00:00Z"})
    );

    let empty = rows(
        &org,
        "<fetch aggregate='true'><entity name='account'><attribute name='accountid' alias='n' aggregate='count'/>\
         <attribute name='revenue' alias='total' aggregate='sum'/>\
         <filter><condition attribute='name' operator='eq' value='nobody'/></filter></entity></fetch>",
    );
    assert_eq!(empty.len(), 1);
    assert_eq!(Json::Object(empty[0].clone()), json!({"n": 0}));

    let grouped_empty = rows(
        &org,
        "<fetch aggregate='true'><entity name='account'><attribute name='accountid' alias='n' aggregate='count'/>\
         <attribute name='address1_city' alias='city' groupby='true'/>\
         <filter><condition attribute='name' operator='eq' value='nobody'/></filter></entity></fetch>",
    );
    assert!(grouped_empty.is_empty());

    let by_city = rows(
        &org,
        "<fetch aggregate='true'><entity name='account'><attribute name='accountid' alias='n' aggregate='count'/>\
         <attribute name='address1_city' alias='city' groupby='true'/><order alias='city'/></entity></fetch>",
    );
    let cities: Vec<(Option<String>, i64)> = by_city
        .iter()
        .map(|row| {
            (
                row.get("city")
                    .and_then(Json::as_str)
                    .map(str::to_lowercase),
                row["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cities,
        [
            (None, 1),
            (Some("boston".into()), 1),
            (Some("paris".into()), 1),
            (Some("redmond".into()), 1),
            (Some("seattle".into()), 2)
        ]
    );

    let by_year = rows(
        &org,
        "<fetch aggregate='true'><entity name='account'><attribute name='accountid' alias='n' aggregate='count'/>\
         <attribute name='createdon' alias='year' groupby='true' dategrouping='year'/><order alias='year' descending='true'/></entity></fetch>",
    );
    assert_eq!(
        by_year
            .iter()
            .map(|row| Json::Object(row.clone()))
            .collect::<Vec<_>>(),
        [
            json!({"n": 4, "year": 2024}),
            json!({"n": 1, "year": 2023}),
            json!({"n": 1})
        ]
    );
    let parts = rows(
        &org,
        &format!(
            "<fetch aggregate='true'><entity name='account'><attribute name='accountid' alias='n' aggregate='count'/>\
             <attribute name='createdon' alias='d' groupby='true' dategrouping='day'/>\
             <attribute name='createdon' alias='w' groupby='true' dategrouping='week'/>\
             <attribute name='createdon' alias='m' groupby='true' dategrouping='month'/>\
             <attribute name='createdon' alias='q' groupby='true' dategrouping='quarter'/>\
             <filter><condition attribute='accountid' operator='in'><value>{}</value><value>{}</value></condition></filter>\
             <order alias='d'/></entity></fetch>",
            id(1),
            id(4)
        ),
    );
    assert_eq!(
        parts
            .iter()
            .map(|row| Json::Object(row.clone()))
            .collect::<Vec<_>>(),
        // 2023-01-10 is in week 2 (Jan 1 2023 is a Sunday); 2024-05-15 in week 20.
        [
            json!({"n": 1, "d": 10, "w": 2, "m": 1, "q": 1}),
            json!({"n": 1, "d": 15, "w": 20, "m": 5, "q": 2})
        ]
    );

    let by_link = rows(
        &org,
        "<fetch aggregate='true'><entity name='contact'><attribute name='contactid' alias='n' aggregate='count'/>\
         <link-entity name='account' from='accountid' to='parentcustomerid' alias='a'>\
         <attribute name='name' alias='account' groupby='true'/></link-entity><order alias='n' descending='true'/></entity></fetch>",
    );
    assert_eq!(
        by_link
            .iter()
            .map(|row| Json::Object(row.clone()))
            .collect::<Vec<_>>(),
        [
            json!({"n": 2, "account": "Contoso"}),
            json!({"n": 1, "account": "contoso ltd"})
        ]
    );

    let limited = error(
        &org,
        "<fetch aggregate='true' aggregatelimit='5'><entity name='account'><attribute name='accountid' alias='n' aggregate='count'/></entity></fetch>",
    );
    assert_eq!(
        (limited.number, limited.message.as_str()),
        (
            -2_147_164_125,
            "AggregateQueryRecordLimit exceeded. Cannot perform this operation."
        )
    );
}

#[test]
fn total_record_count_is_capped_at_5000() {
    let org = empty_org(catalogue());
    let accounts: Vec<Json> = (1..=5002)
        .map(|n| json!({"accountid": id(n), "name": format!("A{n}")}))
        .collect();
    insert(&org, "account", &Json::Array(accounts));
    let counted = page(
        &org,
        "<fetch count='10' returntotalrecordcount='true'><entity name='account'><attribute name='name'/></entity></fetch>",
    );
    assert_eq!(counted.total_record_count, Some(5000));
    assert!(counted.total_record_count_limit_exceeded && counted.more_records);
    let unpaged = page(
        &org,
        "<fetch><entity name='account'><attribute name='name'/></entity></fetch>",
    );
    assert_eq!(unpaged.rows.len(), 5000, "a page holds at most 5,000 rows");
    assert!(unpaged.more_records);
}

/// 23 accounts whose sort values repeat across page boundaries (groups of 4, pages of 5).
fn paging_org() -> LocalOrg {
    let org = empty_org(catalogue());
    let rows: Vec<Json> = (1..=23)
        .map(|n| {
            let name = if n % 7 == 0 {
                Json::Null
            } else {
                json!(format!("Name {}", (n * 5) % 6))
            };
            let employees = if n % 5 == 0 { Json::Null } else { json!(n / 4) };
            let industry = [1, 7, 33][(n % 3) as usize];
            json!({"accountid": id(n), "name": name, "numberofemployees": employees,
                   "industrycode": industry, "revenue": f64::from(n % 4) / 3.0})
        })
        .collect();
    insert(&org, "account", &Json::Array(rows));
    org
}

fn page_through(org: &LocalOrg, fetchxml: &str, size: u32) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut request = PageRequest {
        page: Some(1),
        count: Some(size),
        paging_cookie: None,
    };
    loop {
        let page = query::run(org, fetchxml, &request).unwrap();
        pages.push(
            page.rows
                .iter()
                .map(|row| row["accountid"].as_str().unwrap().to_owned())
                .collect(),
        );
        if !page.more_records {
            assert!(page.paging_cookie.is_none());
            break;
        }
        request.page = request.page.map(|n| n + 1);
        request.paging_cookie = page.paging_cookie;
        assert!(pages.len() < 10, "paging does not end");
    }
    pages
}

#[test]
fn cookie_paging_has_no_gaps_or_duplicates() {
    let org = paging_org();
    for orders in [
        "",
        "<order attribute='name'/>",
        "<order attribute='name' descending='true'/>",
        "<order attribute='numberofemployees' descending='true'/><order attribute='name'/>",
        "<order attribute='numberofemployees'/><order attribute='industrycode' descending='true'/>",
        "<order attribute='revenue' descending='true'/>",
    ] {
        let fetchxml = format!(
            "<fetch><entity name='account'><attribute name='accountid'/>{orders}</entity></fetch>"
        );
        let whole: Vec<String> = rows(&org, &fetchxml)
            .iter()
            .map(|row| row["accountid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(whole.len(), 23);
        let pages = page_through(&org, &fetchxml, 5);
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [5, 5, 5, 5, 3],
            "{orders}"
        );
        assert_eq!(pages.concat(), whole, "{orders}");

        // Simple paging (no cookie) gives the same pages.
        let third = query::run(
            &org,
            &fetchxml,
            &PageRequest {
                page: Some(3),
                count: Some(5),
                paging_cookie: None,
            },
        )
        .unwrap();
        let third: Vec<String> = third
            .rows
            .iter()
            .map(|row| row["accountid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(third, pages[2], "{orders}");
    }
}

#[test]
fn paging_edges() {
    let org = paging_org();
    let fetchxml = "<fetch><entity name='account'><attribute name='name'/></entity></fetch>";
    let first = query::run(
        &org,
        fetchxml,
        &PageRequest {
            page: Some(1),
            count: Some(5),
            paging_cookie: None,
        },
    )
    .unwrap();
    let cookie = first.paging_cookie.unwrap();
    assert!(cookie.starts_with("<cookie page=\"1\">"), "{cookie}");
    assert!(cookie.contains(&format!(
        "<accountid last=\"{{{}}}\" first=\"{{{}}}\"/>",
        id(5).to_uppercase(),
        id(1).to_uppercase()
    )));
    // A cookie of another page is ignored: simple paging.
    let skipped = query::run(
        &org,
        fetchxml,
        &PageRequest {
            page: Some(3),
            count: Some(5),
            paging_cookie: Some(cookie.clone()),
        },
    )
    .unwrap();
    assert_eq!(skipped.rows[0]["accountid"], json!(id(11)));
    // A cookie of the previous page whose keys don't match the order is rejected.
    let mismatch = query::run(
        &org,
        "<fetch><entity name='account'><attribute name='name'/><order attribute='name'/></entity></fetch>",
        &PageRequest {
            page: Some(2),
            count: Some(5),
            paging_cookie: Some(cookie),
        },
    )
    .unwrap_err();
    assert_eq!(mismatch.code, "QueryBuilderPagingOrderBy");
    // Simple paging stops at 50,000 rows.
    let far = query::run(
        &org,
        fetchxml,
        &PageRequest {
            page: Some(11),
            count: Some(5000),
            paging_cookie: None,
        },
    )
    .unwrap_err();
    assert_eq!(far.code, "QueryBuilderPagingLimit");
    // The fetch element's own count and page work too.
    let own = page(
        &org,
        "<fetch count='4' page='6'><entity name='account'><attribute name='name'/></entity></fetch>",
    );
    assert_eq!(own.rows.len(), 3);
    assert!(!own.more_records);
}

#[test]
fn values_are_compared_literally() {
    let org = empty_org(catalogue());
    let hostile = [
        "O'Brien",
        "say \"hi\"",
        "100%",
        "100x",
        "a_b",
        "axb",
        "[x]",
        "x]",
        "-- comment",
        "'; DROP TABLE account; --",
        "\"); DROP TABLE account; --",
        "Robert'); DELETE FROM account WHERE ('1'='1",
    ];
    let rows_json: Vec<Json> = hostile
        .iter()
        .enumerate()
        .map(|(n, name)| json!({"accountid": id(n as u32 + 1), "name": name}))
        .collect();
    insert(&org, "account", &Json::Array(rows_json));
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('\'', "&apos;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    };
    for (n, name) in hostile.iter().enumerate() {
        let found = accounts(
            &org,
            &format!(
                "<condition attribute='name' operator='eq' value='{}'/>",
                escape(name)
            ),
        );
        assert_eq!(found, set(&[n as u32 + 1]), "{name}");
        let listed = accounts(
            &org,
            &format!(
                "<condition attribute='name' operator='in'><value>{}</value><value>{}</value></condition>",
                escape(name),
                escape("' OR 1=1 --")
            ),
        );
        assert_eq!(listed, set(&[n as u32 + 1]), "{name}");
    }
    assert_eq!(
        accounts(
            &org,
            "<condition attribute='name' operator='like' value='100[%]'/>"
        ),
        set(&[3])
    );
    assert_eq!(
        accounts(
            &org,
            "<condition attribute='name' operator='like' value='%]'/>"
        ),
        set(&[7, 8])
    );
    assert_eq!(
        accounts(
            &org,
            "<condition attribute='name' operator='like' value='[[]%'/>"
        ),
        set(&[7])
    );
    let aliased = rows(
        &org,
        "<fetch><entity name='account'><attribute name='name' alias='x&quot;; DROP TABLE account; --'/><order attribute='name'/></entity></fetch>",
    );
    assert!(aliased[0].contains_key("x\"; DROP TABLE account; --"));
    assert_eq!(
        accounts(&org, "").len(),
        hostile.len(),
        "the table is intact"
    );
}

#[test]
fn errors_are_worded_like_dataverse() {
    let org = sample();
    let cases = [
        (
            "<fetch><entity name='account'><attribute name='nmae'/></entity></fetch>",
            "QueryBuilderNoAttribute",
            -2_147_217_149,
        ),
        (
            "<fetch><entity name='acount'/></fetch>",
            "QueryBuilderNoEntity",
            -2_147_217_150,
        ),
        (
            "<fetch><entity name='account'>",
            "InvalidXml",
            -2_147_220_991,
        ),
        (
            "<fetch><entity name='account'><filter><condition attribute='name' operator='gte' value='a'/></filter></entity></fetch>",
            "QueryBuilderInvalidConditionOperator",
            -2_147_217_120,
        ),
        (
            "<fetch><entity name='account'><filter><condition attribute='numberofemployees' operator='eq' value='many'/></filter></entity></fetch>",
            "QueryBuilderInvalid_Value",
            -2_147_217_144,
        ),
        (
            "<fetch><entity name='account'><filter><condition attribute='createdon' operator='this-fiscal-year'/></filter></entity></fetch>",
            "NotSupported",
            -2_147_220_715,
        ),
        (
            "<fetch><entity name='account'><filter><condition entityname='x' attribute='name' operator='null'/></filter></entity></fetch>",
            "QueryBuilderAlias_Does_Not_Exist",
            -2_147_217_142,
        ),
        (
            "<fetch><entity name='account'><filter type='xor'/></entity></fetch>",
            "QueryBuilderInvalidFilterType",
            -2_147_217_118,
        ),
    ];
    for (fetchxml, code, number) in cases {
        let error = error(&org, fetchxml);
        assert_eq!(
            (error.code, error.number),
            (code, number),
            "{fetchxml}: {}",
            error.message
        );
        assert!(!error.message.is_empty());
    }
    let message = error(&org, cases[0].0).message;
    assert!(
        message.starts_with("The specified attribute does not exist on this entity."),
        "{message}"
    );
}

#[test]
fn string_filters_on_indexed_columns_use_the_index() {
    let org = sample();
    let environment = crate::org::local::sql::Environment {
        catalogue: org.catalogue(),
        now: org.now(),
        caller: None,
    };
    let (query, _) = crate::fetchxml::parse(
        "<fetch><entity name='account'><attribute name='name'/><filter><condition attribute='name' operator='eq' value='x'/></filter></entity></fetch>",
    );
    let compiled = crate::org::local::sql::compile(&query.unwrap(), environment).unwrap();
    let connection = org.connection();
    let plan: Vec<String> = connection
        .prepare(&format!("EXPLAIN QUERY PLAN {}", compiled.inner))
        .unwrap()
        .query_map(rusqlite::params_from_iter(compiled.params.iter()), |row| {
            row.get(3)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        plan.iter().any(|step| step.contains("ix_account_name")),
        "{plan:?}"
    );
}
