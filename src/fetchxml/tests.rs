//! Table-driven tests of the FetchXML parser and checker: codes, offsets, valid queries,
//! hostile input (DTDs, deep nesting, mutations).

use std::time::{Duration, Instant};

use crate::diagnostics::Problem;
use crate::fetchxml::{
    Aggregate, FilterItem, FilterType, LinkType, OPERATORS, Operator, check, parse,
};
use crate::metadata::Catalogue;

/// Parses and, when a query comes back, checks against the built-in catalogue.
fn problems(text: &str) -> Vec<Problem> {
    let (query, mut problems) = parse(text);
    if let Some(query) = query {
        problems.extend(check(&query, &Catalogue::builtin()));
    }
    problems
}

fn wrap(filter: &str) -> String {
    format!(
        "<fetch><entity name='account'><attribute name='name'/><filter>{filter}</filter></entity></fetch>"
    )
}

/// (input, expected code, text expected at the problem's offset).
const CASES: &[(&str, &str, &str)] = &[
    // XML and document shape.
    (
        "<fetch><entity name='account'></fetch>",
        "fetchxml-xml",
        "</fetch>",
    ),
    ("<fetch>", "fetchxml-xml", ""),
    (
        "<!DOCTYPE fetch [<!ENTITY a 'x'>]><fetch/>",
        "fetchxml-dtd",
        "<!DOCTYPE",
    ),
    (
        "<query><entity name='account'/></query>",
        "fetchxml-root",
        "query",
    ),
    ("<fetch></fetch>", "fetchxml-missing-element", "fetch"),
    (
        "<fetch><entity name='account'/><entity name='contact'/></fetch>",
        "fetchxml-duplicate-element",
        "entity name='contact'",
    ),
    (
        "<fetch><entity name='account'><atribute name='name'/></entity></fetch>",
        "fetchxml-unknown-element",
        "atribute",
    ),
    (
        "<fetch><entity name='account'><condition attribute='name' operator='null'/></entity></fetch>",
        "fetchxml-misplaced-element",
        "condition",
    ),
    (
        "<fetch><entity name='account'>hello</entity></fetch>",
        "fetchxml-unexpected-text",
        "hello",
    ),
    (
        "<fetch><entity name='account'><all-attributes/><all-attributes/></entity></fetch>",
        "fetchxml-duplicate-element",
        "all-attributes/></entity>",
    ),
    (
        "<fetch><entity name='account'><filter/><filter/></entity></fetch>",
        "fetchxml-duplicate-element",
        "filter/></entity>",
    ),
    // Attributes.
    (
        "<fetch tpo='5'><entity name='account'/></fetch>",
        "fetchxml-unknown-attribute",
        "tpo",
    ),
    (
        "<fetch><entity nme='account'/></fetch>",
        "fetchxml-unknown-attribute",
        "nme",
    ),
    (
        "<fetch><entity name='account'><attribute/></entity></fetch>",
        "fetchxml-missing-attribute",
        "attribute/>",
    ),
    (
        "<fetch distinct='yes'><entity name='account'/></fetch>",
        "fetchxml-invalid-value",
        "yes",
    ),
    (
        "<fetch top='0'><entity name='account'/></fetch>",
        "fetchxml-invalid-value",
        "0'",
    ),
    (
        "<fetch count='-3'><entity name='account'/></fetch>",
        "fetchxml-invalid-value",
        "-3",
    ),
    (
        "<fetch><entity name='account'><filter type='xor'/></entity></fetch>",
        "fetchxml-invalid-value",
        "xor",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='contactid' to='primarycontactid' link-type='left'/></entity></fetch>",
        "fetchxml-invalid-value",
        "left",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='revenue' alias='r' aggregate='total'/></entity></fetch>",
        "fetchxml-invalid-value",
        "total",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='createdon' alias='d' groupby='true' dategrouping='hour'/></entity></fetch>",
        "fetchxml-invalid-value",
        "hour",
    ),
    // Paging and limits.
    (
        "<fetch top='5' page='2'><entity name='account'/></fetch>",
        "fetchxml-top-with-paging",
        "5' page",
    ),
    (
        "<fetch top='5' returntotalrecordcount='true'><entity name='account'/></fetch>",
        "fetchxml-top-with-paging",
        "5'",
    ),
    (
        "<fetch top='5001'><entity name='account'/></fetch>",
        "fetchxml-limit-exceeded",
        "5001",
    ),
    (
        "<fetch count='6000'><entity name='account'/></fetch>",
        "fetchxml-limit-exceeded",
        "6000",
    ),
    (
        "<fetch aggregate='true' aggregatelimit='60000'><entity name='account'><attribute name='accountid' alias='n' aggregate='count'/></entity></fetch>",
        "fetchxml-limit-exceeded",
        "60000",
    ),
    // Operators and values.
    (
        "<condition attribute='revenue' operator='gte' value='5'/>",
        "fetchxml-unknown-operator",
        "gte",
    ),
    (
        "<condition attribute='name' operator='begins_with' value='a'/>",
        "fetchxml-unknown-operator",
        "begins_with",
    ),
    (
        "<condition attribute='name' operator='null' value='x'/>",
        "fetchxml-value-count",
        "x'",
    ),
    (
        "<condition attribute='ownerid' operator='eq-userid'><value>1</value></condition>",
        "fetchxml-value-count",
        "1</value>",
    ),
    (
        "<condition attribute='name' operator='eq'/>",
        "fetchxml-value-count",
        "eq'",
    ),
    (
        "<condition attribute='name' operator='eq' value='a'><value>b</value></condition>",
        "fetchxml-value-count",
        "b</value>",
    ),
    (
        "<condition attribute='industrycode' operator='in'/>",
        "fetchxml-value-count",
        "in'",
    ),
    (
        "<condition attribute='industrycode' operator='in' value='1'/>",
        "fetchxml-value-count",
        "1'",
    ),
    (
        "<condition attribute='revenue' operator='between'><value>1</value></condition>",
        "fetchxml-value-count",
        "between",
    ),
    (
        "<condition attribute='revenue' operator='between'><value>1</value><value>2</value><value>3</value></condition>",
        "fetchxml-value-count",
        "3</value>",
    ),
    (
        "<condition attribute='createdon' operator='last-x-days' value='-2'/>",
        "fetchxml-invalid-value",
        "-2",
    ),
    (
        "<condition attribute='name' operator='like' valueof='accountnumber'/>",
        "fetchxml-valueof-not-allowed",
        "accountnumber",
    ),
    (
        "<condition attribute='createdon' operator='this-fiscal-year'/>",
        "fetchxml-fiscal-unsupported",
        "this-fiscal-year",
    ),
    (
        "<condition attribute='createdon' operator='in-fiscal-period-and-year'><value>1</value><value>2023</value></condition>",
        "fetchxml-fiscal-unsupported",
        "in-fiscal",
    ),
    // Aggregates.
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='revenue' aggregate='sum'/></entity></fetch>",
        "fetchxml-aggregate-alias",
        "attribute name='revenue'",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='name' alias='n'/></entity></fetch>",
        "fetchxml-aggregate-groupby",
        "attribute name",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='name' alias='n' groupby='true' aggregate='count'/></entity></fetch>",
        "fetchxml-aggregate-groupby",
        "attribute name",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><all-attributes/></entity></fetch>",
        "fetchxml-aggregate-all-attributes",
        "all-attributes",
    ),
    (
        "<fetch><entity name='account'><attribute name='revenue' aggregate='sum' alias='t'/></entity></fetch>",
        "fetchxml-aggregate-not-allowed",
        "aggregate='sum'",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='name' alias='n' groupby='true'/><order attribute='name'/></entity></fetch>",
        "fetchxml-order-needs-alias",
        "name'/></entity>",
    ),
    (
        "<fetch><entity name='account'><order alias='n'/></entity></fetch>",
        "fetchxml-order-needs-attribute",
        "n'/>",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='name' alias='n' groupby='true'/><order alias='m'/></entity></fetch>",
        "fetchxml-unknown-alias",
        "m'/>",
    ),
    // Links and aliases.
    (
        "<fetch><entity name='account'><link-entity name='contact' to='primarycontactid'/></entity></fetch>",
        "fetchxml-missing-attribute",
        "link-entity",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='contactid' to='primarycontactid' alias='c'/><link-entity name='contact' from='parentcustomerid' to='accountid' alias='c'/></entity></fetch>",
        "fetchxml-duplicate-alias",
        "c'/></entity>",
    ),
    (
        "<fetch><entity name='account'><attribute name='name' alias='x'/><attribute name='accountnumber' alias='x'/></entity></fetch>",
        "fetchxml-duplicate-alias",
        "x'/></entity>",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='parentcustomerid' to='accountid' link-type='any'/></entity></fetch>",
        "fetchxml-link-type-placement",
        "any",
    ),
    (
        "<link-entity name='contact' from='parentcustomerid' to='accountid' link-type='outer'/>",
        "fetchxml-link-type-placement",
        "outer",
    ),
    (
        "<link-entity name='contact' from='parentcustomerid' to='accountid'/>",
        "fetchxml-link-type-placement",
        "link-entity",
    ),
    (
        "<condition entityname='ct' attribute='fullname' operator='not-null'/>",
        "fetchxml-unknown-alias",
        "ct'",
    ),
    (
        "<fetch><entity name='account'><order entityname='pc' attribute='fullname'/><link-entity name='contact' from='contactid' to='primarycontactid' alias='cp'/></entity></fetch>",
        "fetchxml-unknown-alias",
        "pc'",
    ),
    (
        "<condition attribute='name' operator='eq' valueof='zz.fullname'/>",
        "fetchxml-unknown-alias",
        "zz.fullname",
    ),
    // Metadata.
    (
        "<fetch><entity name='acount'/></fetch>",
        "fetchxml-unknown-entity",
        "acount",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contacts' from='contactid' to='primarycontactid'/></entity></fetch>",
        "fetchxml-unknown-entity",
        "contacts",
    ),
    (
        "<fetch><entity name='account'><attribute name='nmae'/></entity></fetch>",
        "fetchxml-unknown-column",
        "nmae",
    ),
    (
        "<fetch><entity name='account'><order attribute='revnue'/></entity></fetch>",
        "fetchxml-unknown-column",
        "revnue",
    ),
    (
        "<condition attribute='statuscod' operator='eq' value='1'/>",
        "fetchxml-unknown-column",
        "statuscod",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='contactidd' to='primarycontactid'/></entity></fetch>",
        "fetchxml-unknown-column",
        "contactidd",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='contactid' to='primarycontact'/></entity></fetch>",
        "fetchxml-unknown-column",
        "primarycontact'",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='fullname' to='primarycontactid'/></entity></fetch>",
        "fetchxml-link-type-mismatch",
        "fullname",
    ),
    (
        "<condition attribute='name' operator='eq' valueof='numberofemployees'/>",
        "fetchxml-valueof-type-mismatch",
        "numberofemployees",
    ),
    (
        "<condition attribute='numberofemployees' operator='gt' value='many'/>",
        "fetchxml-invalid-condition-value",
        "many",
    ),
    (
        "<condition attribute='revenue' operator='ge' value='1,5'/>",
        "fetchxml-invalid-condition-value",
        "1,5",
    ),
    (
        "<condition attribute='creditonhold' operator='eq' value='yes'/>",
        "fetchxml-invalid-condition-value",
        "yes",
    ),
    (
        "<condition attribute='ownerid' operator='eq' value='not-a-guid'/>",
        "fetchxml-invalid-condition-value",
        "not-a-guid",
    ),
    (
        "<condition attribute='createdon' operator='on-or-after' value='15/03/2023'/>",
        "fetchxml-invalid-condition-value",
        "15/03/2023",
    ),
    (
        "<condition attribute='industrycode' operator='in'><value>1</value><value>99</value></condition>",
        "fetchxml-invalid-condition-value",
        "99",
    ),
    (
        "<condition attribute='statecode' operator='eq' value='5'/>",
        "fetchxml-invalid-condition-value",
        "5'",
    ),
    (
        "<condition attribute='numberofemployees' operator='like' value='1%'/>",
        "fetchxml-operator-type",
        "like",
    ),
    (
        "<condition attribute='name' operator='today'/>",
        "fetchxml-operator-type",
        "today",
    ),
    (
        "<condition attribute='parentaccountid' operator='under' value='5e000000-0000-4000-8000-000000000002'/>",
        "fetchxml-operator-type",
        "under",
    ),
    (
        "<condition attribute='industrycode' operator='contain-values'><value>1</value></condition>",
        "fetchxml-operator-type",
        "contain-values",
    ),
    (
        "<condition attribute='creditonhold' operator='between'><value>0</value><value>1</value></condition>",
        "fetchxml-operator-type",
        "between",
    ),
    (
        "<condition attribute='accountid' operator='under' value='nope'/>",
        "fetchxml-invalid-condition-value",
        "nope",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='name' alias='s' aggregate='sum'/></entity></fetch>",
        "fetchxml-aggregate-type",
        "sum",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='name' alias='s' groupby='true' dategrouping='month'/></entity></fetch>",
        "fetchxml-aggregate-type",
        "month",
    ),
    // More grammar.
    (
        "<fetch><entity name='account' name='contact'/></fetch>",
        "fetchxml-xml",
        "name='contact'",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='createdon' alias='fy' groupby='true' dategrouping='fiscal-year'/></entity></fetch>",
        "fetchxml-fiscal-unsupported",
        "fiscal-year",
    ),
    (
        "<fetch aggregate='true'><entity name='account'><attribute name='createdon' alias='d' aggregate='count' dategrouping='month'/></entity></fetch>",
        "fetchxml-aggregate-groupby",
        "month",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='contactid' to='primarycontactid' link-type='exists'><attribute name='fullname'/></link-entity></entity></fetch>",
        "fetchxml-ignored-columns",
        "attribute name='fullname'",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='contactid' to='primarycontactid' alias='c'><order attribute='fullname' entityname='c'/></link-entity></entity></fetch>",
        "fetchxml-misplaced-attribute",
        "c'/>",
    ),
    (
        "<fetch mapping='physical'><entity name='account'/></fetch>",
        "fetchxml-invalid-value",
        "physical",
    ),
    (
        "<fetch><entity name='account'><attribute name='name'><value>x</value></attribute></entity></fetch>",
        "fetchxml-misplaced-element",
        "value",
    ),
    (
        "<condition attribute='name' operator='eq' value='a'><foo/></condition>",
        "fetchxml-unknown-element",
        "foo",
    ),
    (
        "<condition attribute='name' operator='eq'>abc</condition>",
        "fetchxml-unexpected-text",
        "abc",
    ),
    (
        "<condition attribute='name' operator='eq' value='a' valueof='accountnumber'/>",
        "fetchxml-value-count",
        "a'",
    ),
    (
        "<condition operator='eq' value='a'/>",
        "fetchxml-missing-attribute",
        "condition",
    ),
    (
        "<condition attribute='name' operator='' value='a'/>",
        "fetchxml-missing-attribute",
        "' value",
    ),
    (
        "<fetch><entity name='account'><order/></entity></fetch>",
        "fetchxml-missing-attribute",
        "order",
    ),
    (
        "<condition attribute='name' operator='neq' value='a'/>",
        "fetchxml-deprecated-operator",
        "neq",
    ),
    // More metadata.
    (
        "<condition attribute='name' operator='eq-userid'/>",
        "fetchxml-operator-type",
        "eq-userid",
    ),
    (
        "<condition attribute='name' operator='eq-userlanguage'/>",
        "fetchxml-operator-type",
        "eq-userlanguage",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='contactid' to='primarycontactid' alias='c'/><filter><condition attribute='name' operator='eq' valueof='c.fulname'/></filter></entity></fetch>",
        "fetchxml-unknown-column",
        "fulname",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='contactid' to='primarycontactid' alias='c'/><filter><condition entityname='c' attribute='name' operator='null'/></filter></entity></fetch>",
        "fetchxml-unknown-column",
        "name' operator",
    ),
    (
        "<fetch><entity name='account'><link-entity name='contact' from='contactid' to='primarycontactid'><filter><condition attribute='revenue' operator='null'/></filter></link-entity></entity></fetch>",
        "fetchxml-unknown-column",
        "revenue",
    ),
    (
        "<condition attribute='statuscode' operator='eq'><value>9</value></condition>",
        "fetchxml-invalid-condition-value",
        "9</value>",
    ),
    (
        "<condition attribute='numberofemployees' operator='eq' value='99999999999'/>",
        "fetchxml-invalid-condition-value",
        "99999999999",
    ),
];

#[test]
fn table_of_problems() {
    let mut failures = Vec::new();
    for (input, code, at) in CASES {
        let text = if input.starts_with("<condition") || input.starts_with("<link-entity") {
            wrap(input)
        } else {
            (*input).to_owned()
        };
        let found = problems(&text);
        let hit = found.iter().find(|problem| problem.code == *code);
        match hit {
            Some(problem) if text[problem.offset..].starts_with(at) => {
                assert!(problem.offset + problem.len <= text.len());
                assert!(!problem.message.ends_with('.'), "{}", problem.message);
                assert!(
                    problem
                        .message
                        .chars()
                        .next()
                        .is_some_and(|c| !c.is_uppercase())
                        || problem.code == "fetchxml-dtd"
                        || problem.message.starts_with('`'),
                    "{}",
                    problem.message
                );
            }
            Some(problem) => failures.push(format!(
                "{input}\n  {code} at {} ({:?}), expected at {at:?}",
                problem.offset,
                &text[problem.offset..]
            )),
            None => failures.push(format!("{input}\n  expected {code}, got {found:#?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn helpful_suggestions() {
    let cases: &[(&str, &str)] = &[
        (
            "<condition attribute='revenue' operator='gte' value='5'/>",
            "use `ge`",
        ),
        (
            "<condition attribute='revenue' operator='lte' value='5'/>",
            "use `le`",
        ),
        (
            "<condition attribute='name' operator='begins_with' value='a'/>",
            "did you mean `begins-with`?",
        ),
        (
            "<condition attribute='statuscod' operator='eq' value='1'/>",
            "did you mean `statuscode`?",
        ),
        (
            "<condition attribute='name' operator='not-nul'/>",
            "did you mean `not-null`?",
        ),
        (
            "<condition attribute='industrycode' operator='eq' value='99'/>",
            "7 (Consulting)",
        ),
        ("<filter typ='or'/>", "did you mean `type`?"),
    ];
    for (input, help) in cases {
        let found = problems(&wrap(input));
        assert!(
            found.iter().any(|problem| problem
                .help
                .as_deref()
                .is_some_and(|text| text.contains(help))),
            "{input}: {found:#?}"
        );
    }
    let found = problems(
        "<fetch><entity name='account'><link-entity name='contact' to='primarycontactid'/></entity></fetch>",
    );
    assert!(
        found[0].help.as_deref().unwrap().contains("does not infer"),
        "{found:#?}"
    );
    let found = problems(
        "<fetch><entity name='account'><link-entity name='contact' from='fullname' to='primarycontactid'/></entity></fetch>",
    );
    assert_eq!(
        found[0].message,
        "data types don't match for the link-entity join attributes `fullname` (String) and `primarycontactid` (Lookup)"
    );
    let found = problems("<fetch><entity name='acount'/></fetch>");
    assert_eq!(found[0].help.as_deref(), Some("did you mean `account`?"));
    let found = problems("<fetch><entity name='account'><atribute name='name'/></entity></fetch>");
    assert_eq!(found[0].help.as_deref(), Some("did you mean `attribute`?"));
    let found = problems("<fetch top='5' page='2'><entity name='account'/></fetch>");
    assert_eq!(
        found[0].message,
        "the top attribute can't be specified with paging attribute page"
    );
    let found = problems("<!DOCTYPE x><fetch/>");
    assert_eq!(
        found[0].message,
        "DTDs and entity declarations are not allowed in FetchXML"
    );
}

#[test]
fn reports_every_problem_in_one_pass() {
    let text = "<fetch top='9999' distinct='maybe'>
  <entity name='account'>
    <attribute name='nme'/>
    <atribute name='x'/>
    <filter type='and'>
      <condition attribute='revenue' operator='gte' value='5'/>
      <condition attribute='statecode' operator='eq' value='7'/>
      <condition attribute='createdon' operator='today' value='x'/>
    </filter>
  </entity>
</fetch>";
    let codes: Vec<&str> = problems(text).iter().map(|problem| problem.code).collect();
    for code in [
        "fetchxml-limit-exceeded",
        "fetchxml-invalid-value",
        "fetchxml-unknown-column",
        "fetchxml-unknown-element",
        "fetchxml-unknown-operator",
        "fetchxml-invalid-condition-value",
        "fetchxml-value-count",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
}

const VALID: &[&str] = &[
    "<fetch><entity name='account'/></fetch>",
    "<fetch top='50'>
  <entity name='account'>
    <attribute name='name'/>
    <attribute name='revenue'/>
    <order attribute='name' descending='true'/>
    <filter type='and'>
      <condition attribute='address1_stateorprovince' operator='eq' value='West'/>
      <condition attribute='statecode' operator='eq' value='0'/>
      <condition attribute='creditonhold' operator='ne' value='true'/>
      <condition attribute='createdon' operator='on-or-after' value='2023-03-15'/>
      <condition attribute='modifiedon' operator='lt' value='2023-03-15T10:00:00Z'/>
      <condition attribute='ownerid' operator='eq' value='{5E000000-0000-4000-8000-000000000002}'/>
      <condition attribute='industrycode' operator='in'><value>1</value><value>7</value></condition>
      <condition attribute='numberofemployees' operator='between'><value>10</value><value>500</value></condition>
      <condition attribute='createdon' operator='last-x-days' value='30'/>
      <filter type='or'>
        <condition attribute='name' operator='like' value='%contoso%'/>
        <condition attribute='name' operator='begins-with' value='Fab'/>
        <filter type='and'>
          <condition attribute='description' operator='null'/>
          <condition attribute='accountnumber' operator='not-null'/>
        </filter>
      </filter>
    </filter>
  </entity>
</fetch>",
    "<fetch distinct='true' count='100' page='2' paging-cookie='&lt;cookie page=&quot;1&quot;/&gt;' returntotalrecordcount='1' no-lock='1'>
  <entity name='contact'>
    <attribute name='fullname'/>
    <attribute name='emailaddress1' alias='email'/>
    <order attribute='name' entityname='acct'/>
    <link-entity name='account' from='accountid' to='parentcustomerid' alias='acct' link-type='outer'>
      <attribute name='name'/>
      <filter><condition attribute='statecode' operator='eq' value='0'/></filter>
      <link-entity name='systemuser' from='systemuserid' to='ownerid' alias='owner'>
        <attribute name='fullname' alias='owner_name'/>
      </link-entity>
    </link-entity>
    <filter>
      <condition entityname='acct' attribute='name' operator='not-null'/>
      <condition attribute='jobtitle' operator='eq' valueof='acct.name'/>
      <condition attribute='ownerid' operator='eq-userid'/>
      <condition attribute='gendercode' operator='ne' value='{{ vars.gender }}'/>
    </filter>
  </entity>
</fetch>",
    "<fetch aggregate='true' aggregatelimit='1000'>
  <entity name='opportunity'>
    <attribute name='estimatedvalue' alias='total' aggregate='sum'/>
    <attribute name='estimatedvalue' alias='average' aggregate='avg'/>
    <attribute name='opportunityid' alias='n' aggregate='count'/>
    <attribute name='customerid' alias='customers' aggregate='countcolumn' distinct='true'/>
    <attribute name='estimatedclosedate' alias='month' groupby='true' dategrouping='month' usertimezone='false'/>
    <attribute name='estimatedclosedate' alias='latest' aggregate='max'/>
    <order alias='month' descending='true'/>
    <link-entity name='account' from='accountid' to='parentaccountid' alias='a'>
      <attribute name='industrycode' alias='industry' groupby='true'/>
    </link-entity>
  </entity>
</fetch>",
    "<fetch>
  <entity name='account'>
    <attribute name='name'/>
    <filter type='or'>
      <link-entity name='contact' from='parentcustomerid' to='accountid' link-type='any'>
        <filter><condition attribute='statecode' operator='eq' value='1'/></filter>
      </link-entity>
      <link-entity name='task' from='regardingobjectid' to='accountid' link-type='not any'>
        <filter><condition attribute='scheduledend' operator='olderthan-x-days' value='10'/></filter>
      </link-entity>
      <link-entity name='lead' from='parentaccountid' to='accountid' link-type='all'/>
    </filter>
  </entity>
</fetch>",
    "<fetch><entity name='account'><attribute name='name'/><filter>
      <condition attribute='accountid' operator='eq-or-under' value='5e000000-0000-4000-8000-000000000002'/>
      <condition attribute='accountid' operator='not-under' value='{5e000000-0000-4000-8000-000000000003}'/>
    </filter><link-entity name='contact' from='contactid' to='primarycontactid' link-type='exists'/></entity></fetch>",
    "<?xml version='1.0'?><!-- selection --><fetch version='1.0' mapping='logical' output-format='xml-platform'>
  <entity name='task'><attribute name='subject'/><filter><condition attribute='statuscode' operator='in'><value>2</value><value>3</value></condition>
  <condition attribute='regardingobjectid' operator='eq' value='{{ id }}'/></filter></entity></fetch>",
];

#[test]
fn valid_queries_have_no_problems() {
    for text in VALID {
        let found = problems(text);
        assert!(found.is_empty(), "{text}\n{found:#?}");
    }
}

#[test]
fn model_of_a_realistic_query() {
    let (query, problems) = parse(VALID[2]);
    assert!(problems.is_empty());
    let query = query.unwrap();
    assert_eq!(query.root_entity(), "contact");
    assert!(query.distinct && query.return_total_record_count && query.no_lock);
    assert_eq!(query.count.as_ref().unwrap().value, 100);
    assert_eq!(query.page.as_ref().unwrap().value, 2);
    assert_eq!(
        query.paging_cookie.as_ref().unwrap().value,
        "<cookie page=\"1\"/>"
    );
    let link = &query.entity.links[0];
    assert_eq!(
        (link.name.as_str(), link.link_type),
        ("account", LinkType::Outer)
    );
    assert_eq!(&VALID[2][link.from.span.offset..][..9], "accountid");
    assert_eq!(link.links[0].result_alias, "owner");
    let filter = query.entity.filter.as_ref().unwrap();
    assert_eq!(filter.kind, FilterType::And);
    let FilterItem::Condition(condition) = &filter.items[1] else {
        panic!("expected a condition")
    };
    assert_eq!(condition.operator.value, Operator::Eq);
    assert_eq!(condition.valueof.as_ref().unwrap().value, "acct.name");

    let selected = query.selected_columns();
    let keys: Vec<&str> = selected
        .columns
        .iter()
        .map(|column| column.key.as_str())
        .collect();
    assert_eq!(keys, ["fullname", "email", "acct.name", "owner_name"]);
    assert!(!selected.includes_primary_key && !selected.all_root);
    let catalogue = Catalogue::builtin();
    assert!(selected.allows("acct.name", &catalogue));
    assert!(!selected.allows("contactid", &catalogue));
    assert!(!selected.allows("emailaddress1", &catalogue));
}

#[test]
fn selected_columns_rules() {
    let catalogue = Catalogue::builtin();
    let (query, _) = parse(VALID[0]);
    let selected = query.unwrap().selected_columns();
    assert!(selected.all_root && selected.includes_primary_key);
    assert!(selected.allows("revenue", &catalogue));
    assert!(selected.allows("accountid", &catalogue));
    assert!(!selected.allows("nothing", &catalogue));

    let (query, _) = parse(
        "<fetch><entity name='account'><attribute name='name'/>
         <link-entity name='contact' from='contactid' to='primarycontactid'><attribute name='fullname'/></link-entity>
         <link-entity name='systemuser' from='systemuserid' to='ownerid' alias='u'><all-attributes/></link-entity>
         </entity></fetch>",
    );
    let selected = query.unwrap().selected_columns();
    let keys: Vec<&str> = selected
        .columns
        .iter()
        .map(|column| column.key.as_str())
        .collect();
    assert_eq!(keys, ["name", "contact1.fullname"]);
    assert!(selected.allows("accountid", &catalogue));
    assert!(selected.allows("u.internalemailaddress", &catalogue));
    assert!(!selected.allows("u.nope", &catalogue));
    assert!(!selected.allows("revenue", &catalogue));

    let (query, _) = parse(VALID[3]);
    let selected = query.unwrap().selected_columns();
    assert!(!selected.includes_primary_key && !selected.all_root);
    assert_eq!(selected.columns[0].aggregate, Some(Aggregate::Sum));
    assert!(selected.allows("industry", &catalogue));
    assert!(!selected.allows("opportunityid", &catalogue));
}

#[test]
fn operator_table_is_complete() {
    assert_eq!(OPERATORS.len(), 83);
    for (index, info) in OPERATORS.iter().enumerate() {
        assert_eq!(info.operator as usize, index);
        assert_eq!(Operator::from_name(info.name), Some(info.operator));
    }
    let mut names: Vec<&str> = Operator::names().collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 83);
    assert!(Operator::Ne.info().matches_null && !Operator::Eq.info().matches_null);
    assert!(Operator::NotIn.info().matches_null);
    assert!(Operator::InFiscalYear.info().fiscal);
    assert_eq!(Operator::from_name("gte"), None);
}

#[test]
fn xml_error_offsets_are_bytes() {
    // Multi-byte characters before the error: the offset must still point at the bad byte.
    let text =
        "<fetch>\n  <entity name='café'>\n    <attribute name='é' x=1/>\n  </entity>\n</fetch>";
    let found = problems(text);
    assert_eq!(found[0].code, "fetchxml-xml");
    assert!(
        text[found[0].offset..].starts_with('1'),
        "{:?}",
        &text[found[0].offset..]
    );
}

#[test]
fn dtd_and_billion_laughs_are_rejected_fast() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<fetch><entity name="account"><filter><condition attribute="name" operator="eq" value="&lol9;"/></filter></entity></fetch>"#;
    let start = Instant::now();
    for text in [
        laughs,
        "<!ENTITY x 'y'><fetch/>",
        "<fetch><!DOCTYPE x></fetch>",
    ] {
        let (query, found) = parse(text);
        assert!(query.is_none());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "fetchxml-dtd", "{text}");
    }
    assert!(start.elapsed() < Duration::from_millis(100));
}

#[test]
fn deep_nesting_does_not_overflow() {
    let depth = 10_000;
    let text = format!(
        "<fetch><entity name='account'>{}<condition attribute='name' operator='null'/>{}</entity></fetch>",
        "<filter>".repeat(depth),
        "</filter>".repeat(depth)
    );
    let found = problems(&text);
    assert_eq!(
        found
            .iter()
            .filter(|problem| problem.code == "fetchxml-too-deep")
            .count(),
        1,
        "{:?}",
        found.iter().map(|problem| problem.code).collect::<Vec<_>>()
    );
    let links = format!(
        "<fetch><entity name='account'>{}{}</entity></fetch>",
        "<link-entity name='account' from='accountid' to='parentaccountid'>".repeat(2_000),
        "</link-entity>".repeat(2_000)
    );
    let codes: Vec<&str> = problems(&links)
        .iter()
        .map(|problem| problem.code)
        .collect();
    assert!(codes.contains(&"fetchxml-too-deep"));
    assert!(codes.contains(&"fetchxml-too-many-links"));
}

#[test]
fn huge_documents_are_refused() {
    let text = format!(
        "<fetch><entity name='account'>{}</entity></fetch>",
        "<x/>".repeat(250_000)
    );
    let (query, found) = parse(&text);
    assert!(query.is_none());
    assert_eq!(found[0].code, "fetchxml-too-large");
}

#[test]
fn too_many_conditions() {
    let conditions = "<condition attribute='name' operator='not-null'/>".repeat(501);
    let found = problems(&wrap(&conditions));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code, "fetchxml-too-many-conditions");
}

#[test]
fn template_values_are_not_checked() {
    let text = wrap(
        "<condition attribute='numberofemployees' operator='gt' value='{{ vars.n }}'/>
         <condition attribute='createdon' operator='last-x-days' value='{{ vars.days }}'/>
         <condition attribute='statecode' operator='in'><value>{% if x %}1{% endif %}</value></condition>",
    );
    assert!(problems(&text).is_empty());
}

#[test]
fn arbitrary_input_does_not_panic() {
    let catalogue = Catalogue::builtin();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces = [
        "<",
        ">",
        "/",
        "'",
        "\"",
        "=",
        "&",
        "é",
        "<filter>",
        "</filter>",
        "<value>",
        "&amp;",
        " ",
        "{{",
    ];
    for base in VALID {
        let bytes: Vec<char> = base.chars().collect();
        for cut in (0..bytes.len()).step_by(7) {
            let truncated: String = bytes[..cut].iter().collect();
            if let (Some(query), _) = parse(&truncated) {
                check(&query, &catalogue);
                query.selected_columns();
            }
        }
        for _ in 0..300 {
            let mut mutated: Vec<char> = bytes.clone();
            for _ in 0..3 {
                let len = mutated.len();
                if len == 0 {
                    break;
                }
                let position = usize::try_from(next()).unwrap_or(0) % len;
                let piece = pieces[usize::try_from(next()).unwrap_or(0) % pieces.len()];
                match next() % 3 {
                    0 => {
                        mutated.remove(position);
                    }
                    1 => mutated
                        .splice(position..position, piece.chars())
                        .for_each(drop),
                    _ => mutated.swap(position, (position + 5).min(len - 1)),
                }
            }
            let text: String = mutated.into_iter().collect();
            let (query, found) = parse(&text);
            for problem in &found {
                assert!(
                    problem.offset <= text.len() && text.is_char_boundary(problem.offset),
                    "{text}"
                );
            }
            if let Some(query) = query {
                for problem in check(&query, &catalogue) {
                    assert!(problem.offset + problem.len <= text.len(), "{text}");
                }
            }
        }
    }
}

#[test]
fn parse_and_check_are_fast() {
    let catalogue = Catalogue::builtin();
    let start = Instant::now();
    for _ in 0..100 {
        let (query, problems) = parse(VALID[1]);
        assert!(problems.is_empty());
        assert!(check(&query.unwrap(), &catalogue).is_empty());
    }
    // 100 parses of a 30-line query; generous for unoptimised test builds.
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn guid_and_date_forms() {
    use crate::fetchxml::{is_date, is_guid, normalize_guid};
    assert!(is_guid("{5E000000-0000-4000-8000-000000000002}"));
    assert!(is_guid("5e000000-0000-4000-8000-000000000002"));
    assert!(!is_guid("{5e000000-0000-4000-8000-000000000002"));
    assert!(!is_guid("5e000000000040008000000000000002"));
    assert_eq!(
        normalize_guid(" {5E000000-0000-4000-8000-00000000000A} ").as_deref(),
        Some("5e000000-0000-4000-8000-00000000000a")
    );
    for date in [
        "2023-03-15",
        "2023-03-15T10:00:00Z",
        "2023-03-15T10:00:00+01:00",
        "2023-03-15T10:00",
    ] {
        assert!(is_date(date), "{date}");
    }
    for date in ["2023-02-30", "15/03/2023", "yesterday", ""] {
        assert!(!is_date(date), "{date}");
    }
}
