//! Table-driven diagnostics: each bad input is a small edit of a valid workflow, and the
//! expected diagnostic is named by its code and by the text it must point at, so the
//! expected line and column are where that text is in the edited file.

use super::support::tempdir;
use fetchflow::compile::{CompileContext, FileOutcome, compile_source};
use fetchflow::diagnostics::Severity;
use fetchflow::load::compile_files;
use fetchflow::metadata::Catalogue;
use fetchflow::source::SourceFile;

pub(crate) const BASE: &str = r#"name: demo
triggers:
  - cron: "0 2 * * *"
    timezone: Europe/London
vars:
  territory: West
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <filter>
          <condition attribute="address1_stateorprovince" operator="eq" value="{{ vars.territory }}"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        description: "Reviewed {{ record.name }}"
"#;

pub(crate) fn compile_text(text: &str) -> FileOutcome {
    let catalogue = Catalogue::builtin();
    let context = CompileContext {
        catalogue: &catalogue,
        connections: None,
    };
    compile_source(SourceFile::new("demo.yaml", text), &context)
}

/// 1-based line and column (in characters) of the first occurrence of `anchor` in `text`.
fn position_of(text: &str, anchor: &str) -> (usize, usize) {
    let offset = text
        .find(anchor)
        .unwrap_or_else(|| panic!("anchor {anchor:?} not in text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    (line, column)
}

struct Case {
    name: &'static str,
    /// Edit of BASE: replace the first `from` with `to` (empty `from` appends `to`).
    from: &'static str,
    to: &'static str,
    code: &'static str,
    /// The text the diagnostic must point at, in the edited file.
    at: &'static str,
    severity: Severity,
}

const fn error(
    name: &'static str,
    from: &'static str,
    to: &'static str,
    code: &'static str,
    at: &'static str,
) -> Case {
    Case {
        name,
        from,
        to,
        code,
        at,
        severity: Severity::Error,
    }
}

const fn warning(
    name: &'static str,
    from: &'static str,
    to: &'static str,
    code: &'static str,
    at: &'static str,
) -> Case {
    Case {
        name,
        from,
        to,
        code,
        at,
        severity: Severity::Warning,
    }
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // YAML syntax, types, unknown and duplicate keys.
    error("tab indentation", "    timezone: Europe/London", "\ttimezone: Europe/London", "yaml-syntax", "timezone: Europe"),
    error("unclosed flow sequence", "  territory: West", "  territory: [West", "yaml-syntax", ":\n  fetchxml"),
    error("unknown top-level key", "vars:", "varz:", "unknown-key", "varz"),
    error("unknown nested key", "    timezone:", "    tz:", "unknown-key", "tz:"),
    error("duplicate key", "vars:\n", "name: other\nvars:\n", "duplicate-key", "name: other"),
    error("string where a number is expected", "", "batch: {size: big}\n", "type", "big"),
    error("unknown mode", "", "mode: later\n", "unknown-value", "later"),
    error("yaml 1.1 boolean", "", "batch: {bypass_plugins: yes}\n", "type", "yes"),
    error("missing select", "select:\n  fetchxml: |\n", "other:\n  fetchxml: |\n", "unknown-key", "other:"),
    // Names and connections.
    error("invalid name", "name: demo", "name: Demo Job", "invalid-name", "Demo Job"),
    error("unknown connection", "", "connection: prod\n", "unknown-connection", "prod"),
    error("invalid var name", "  territory: West", "  territory: West\n  2nd: x", "invalid-var-name", "2nd"),
    // Triggers: cron and time zones.
    error("cron minute out of range", "\"0 2 * * *\"", "\"61 2 * * *\"", "cron-range", "61 2"),
    error("cron hour out of range", "\"0 2 * * *\"", "\"0 25 * * *\"", "cron-range", "25"),
    error("cron with four fields", "\"0 2 * * *\"", "\"0 2 * *\"", "cron-field-count", "0 2 * *"),
    error("cron with a year field", "\"0 2 * * *\"", "\"0 0 2 * * * 2026\"", "cron-field-count", "2026"),
    error("cron bad weekday name", "\"0 2 * * *\"", "\"0 2 * * MOM\"", "cron-syntax", "MOM"),
    warning("cron that never fires", "\"0 2 * * *\"", "\"0 0 30 2 *\"", "cron-never-fires", "30 2 *"),
    error("unknown time zone", "Europe/London", "Europe/Londn", "timezone-unknown", "Europe/Londn"),
    error("trigger with cron and webhook", "    timezone: Europe/London", "    webhook: {}", "invalid-trigger", "cron:"),
    error("missed on a webhook", "  - cron: \"0 2 * * *\"\n    timezone: Europe/London", "  - webhook: {}\n    missed: skip", "invalid-trigger", "skip"),
    // FetchXML.
    error("malformed xml", "<attribute name=\"name\"/>", "<attribute name=\"name\">", "fetchxml-xml", "</entity>"),
    error("dtd in fetchxml", "    <fetch>", "    <!DOCTYPE fetch [<!ENTITY x \"y\">]>\n    <fetch>", "fetchxml-dtd", "<!DOCTYPE"),
    error("unknown operator", "operator=\"eq\"", "operator=\"gte\"", "fetchxml-unknown-operator", "gte"),
    error("unknown entity", "name=\"account\"", "name=\"accout\"", "fetchxml-unknown-entity", "accout"),
    error("unknown column in attribute", "<attribute name=\"name\"/>", "<attribute name=\"nmae\"/>", "fetchxml-unknown-column", "nmae"),
    error("unknown element", "<attribute name=\"name\"/>", "<atribute name=\"name\"/>", "fetchxml-unknown-element", "atribute"),
    error("top with page", "    <fetch>", "    <fetch top=\"10\" page=\"2\">", "fetchxml-top-with-paging", "10\""),
    error("between with one value", "operator=\"eq\" value=\"{{ vars.territory }}\"", "operator=\"between\" value=\"a\"", "fetchxml-value-count", "a\"/>"),
    error("value of the wrong type", "attribute=\"address1_stateorprovince\" operator=\"eq\" value=\"{{ vars.territory }}\"", "attribute=\"revenue\" operator=\"eq\" value=\"lots\"", "fetchxml-invalid-condition-value", "lots"),
    error("var default of the wrong type", "attribute=\"address1_stateorprovince\" operator=\"eq\"", "attribute=\"numberofemployees\" operator=\"eq\"", "fetchxml-invalid-condition-value", "{{ vars.territory }}"),
    error("aggregate without alias", "<fetch>", "<fetch aggregate=\"true\">", "fetchxml-aggregate-alias", "attribute name=\"name\"/>"),
    error("two entities", "      </entity>\n", "      </entity>\n      <entity name=\"contact\"/>\n", "fetchxml-duplicate-element", "entity name=\"contact\""),
    error("aggregate selection", "<fetch>", "<fetch aggregate=\"true\">", "selection-not-records", "fetch aggregate"),
    error("distinct selection", "<fetch>", "<fetch distinct=\"true\">", "selection-not-records", "fetch distinct"),
    // Templates.
    error("unclosed template", "{{ record.name }}", "{{ record.name }", "template-syntax", "}\"\n"),
    error("undeclared var", "{{ record.name }}", "{{ vars.teritory }}", "unknown-var", "vars.teritory"),
    error("column not selected", "{{ record.name }}", "{{ record.accountnumber }}", "column-not-selected", "record.accountnumber"),
    error("column that does not exist", "{{ record.name }}", "{{ record.nmae }}", "unknown-column", "record.nmae"),
    error("secret in an action", "{{ record.name }}", "{{ secret('TOKEN') }}", "secret-not-allowed", "secret('TOKEN')"),
    error("secret in the selection", "value=\"{{ vars.territory }}\"", "value=\"{{ secret('X') }}\"", "secret-not-allowed", "secret('X')"),
    error("record in the selection", "value=\"{{ vars.territory }}\"", "value=\"{{ record.name }}\"", "record-not-available", "record.name }}\"/>"),
    error("callback-only name in an action", "{{ record.name }}", "{{ operation.status }}", "unknown-name", "operation.status"),
    error("unknown filter", "{{ record.name }}", "{{ record.name | shout }}", "template-unknown-filter", "shout"),
    error("when syntax error", "  - update:\n", "  - when: \"record.name ==\"\n    update:\n", "template-syntax", "=="),
    // Actions.
    error("two kinds in one action", "  - update:\n", "  - delete: {}\n    update:\n", "invalid-action", "delete"),
    error("action with no kind", "", "  - when: \"true\"\n", "invalid-action", "when: \"true\""),
    error("unknown action kind", "  - update:", "  - updte:", "unknown-key", "updte"),
    error("unknown column in update", "description:", "descripton:", "unknown-column", "descripton"),
    error("read-only column", "description:", "createdon:", "not-writable", "createdon"),
    error("state through update", "description: \"Reviewed {{ record.name }}\"", "statecode: 1", "not-writable", "statecode"),
    error("text into a number column", "description: \"Reviewed {{ record.name }}\"", "numberofemployees: many", "value-type", "many"),
    error("bad lookup literal", "description: \"Reviewed {{ record.name }}\"", "primarycontactid: not-a-guid", "value-type", "not-a-guid"),
    error("option that does not exist", "description: \"Reviewed {{ record.name }}\"", "industrycode: 999", "value-type", "999"),
    error("invalid owner", "", "  - assign: {owner: bob}\n", "invalid-owner", "bob"),
    error("create without entity", "", "  - create: {set: {subject: x}}\n", "create-needs-entity", "{set"),
    error("create of an unknown table", "", "  - create: {entity: tsk, set: {subject: x}}\n", "unknown-entity", "tsk"),
    error("statecode that does not exist", "", "  - set_state: {statecode: 5, statuscode: 1}\n", "invalid-state", "5,"),
    error("statuscode of another state", "", "  - set_state: {statecode: 0, statuscode: 2}\n", "invalid-status", "2}"),
    // Limits, callback, sync.
    error("batch size zero", "", "batch: {size: 0}\n", "out-of-range", "0}"),
    error("batch concurrency over 52", "", "batch: {concurrency: 53}\n", "out-of-range", "53"),
    error("negative max_failures", "", "max_failures: -1\n", "out-of-range", "-1"),
    error("callback over ftp", "", "callback: {url: \"ftp://example.com/x\"}\n", "invalid-url", "\"ftp"),
    error("callback method", "", "callback: {url: \"https://example.com\", method: TRACE}\n", "invalid-method", "TRACE"),
    error("callback record reference", "", "callback: {url: \"https://example.com/{{ record.name }}\"}\n", "record-not-available", "record.name }}\"}\n"),
    error("callback on nothing", "", "callback: {url: \"https://example.com\", on: []}\n", "empty-on", "[]"),
    error("sync timeout", "", "sync: {timeout: 2 minutes}\n", "invalid-duration", "2 minutes"),
    error("sync max_records zero", "", "sync: {max_records: 0}\n", "out-of-range", "0}"),
];

#[test]
fn the_base_workflow_is_valid() {
    let outcome = compile_text(BASE);
    assert!(outcome.diagnostics.is_empty(), "{:#?}", outcome.diagnostics);
    assert!(outcome.workflow.is_some());
}

#[test]
fn every_bad_input_is_reported_at_its_line_and_column() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for case in CASES {
        let text = if case.from.is_empty() {
            format!("{BASE}{}", case.to)
        } else {
            assert!(
                BASE.contains(case.from),
                "{}: edit does not apply",
                case.name
            );
            BASE.replacen(case.from, case.to, 1)
        };
        let (line, column) = position_of(&text, case.at);
        let outcome = compile_text(&text);
        let found = outcome.diagnostics.iter().any(|d| {
            d.code == case.code
                && d.line == line
                && d.column == column
                && d.severity == case.severity
        });
        if !found {
            failures.push(format!(
                "{}: expected {:?} {} at {line}:{column}, got {:?}",
                case.name,
                case.severity,
                case.code,
                outcome
                    .diagnostics
                    .iter()
                    .map(|d| format!("{} {}:{} {}", d.code, d.line, d.column, d.message))
                    .collect::<Vec<_>>()
            ));
        }
        if case.severity == Severity::Error {
            assert!(
                outcome.workflow.is_none(),
                "{}: compiled despite an error",
                case.name
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn all_problems_of_a_file_are_reported_in_one_pass() {
    let text = BASE
        .replacen("Europe/London", "Europe/Londn", 1)
        .replacen("operator=\"eq\"", "operator=\"gte\"", 1)
        .replacen(
            "{{ record.name }}",
            "{{ vars.nope }} {{ record.accountnumber }}",
            1,
        )
        + "batch: {size: 5000}\n";
    let outcome = compile_text(&text);
    let codes: Vec<&str> = outcome.diagnostics.iter().map(|d| d.code).collect();
    for code in [
        "timezone-unknown",
        "fetchxml-unknown-operator",
        "unknown-var",
        "column-not-selected",
        "out-of-range",
    ] {
        assert!(codes.contains(&code), "missing {code} in {codes:?}");
    }
}

#[test]
fn warnings_do_not_stop_a_compile() {
    let outcome = compile_text(&BASE.replacen("\"0 2 * * *\"", "\"0 0 30 2 *\"", 1));
    assert!(outcome.workflow.is_some());
    assert_eq!(outcome.diagnostics.len(), 1);
    assert_eq!(outcome.diagnostics[0].severity, Severity::Warning);
}

#[test]
fn help_suggests_the_likely_name() {
    let outcome = compile_text(&BASE.replacen("{{ record.name }}", "{{ vars.teritory }}", 1));
    let help = outcome.diagnostics[0].help.as_deref().unwrap_or_default();
    assert!(help.contains("vars.territory"), "{help}");
    let outcome =
        compile_text(&BASE.replacen("{{ record.name }}", "{{ record.accountnumber }}", 1));
    let help = outcome.diagnostics[0].help.as_deref().unwrap_or_default();
    assert!(
        help.contains("<attribute name=\"accountnumber\"/>"),
        "{help}"
    );
}

#[test]
fn duplicate_names_across_files_name_both_files() {
    let dir = tempdir("dup");
    std::fs::write(dir.join("a.yaml"), BASE).unwrap();
    std::fs::write(dir.join("b.yaml"), format!("# another copy\n{BASE}")).unwrap();
    let catalogue = Catalogue::builtin();
    let context = CompileContext {
        catalogue: &catalogue,
        connections: None,
    };
    let paths = fetchflow::load::workflow_paths(std::slice::from_ref(&dir)).unwrap();
    let outcomes = compile_files(&paths, &context);
    assert_eq!(outcomes.len(), 2);
    let a = &outcomes[0].diagnostics;
    let b = &outcomes[1].diagnostics;
    assert_eq!(
        (a[0].code, a[0].line, a[0].column),
        ("duplicate-name", 1, 7)
    );
    assert_eq!(
        (b[0].code, b[0].line, b[0].column),
        ("duplicate-name", 2, 7)
    );
    assert!(a[0].message.contains("b.yaml:2:7"), "{}", a[0].message);
    assert!(b[0].message.contains("a.yaml:1:7"), "{}", b[0].message);
    assert!(outcomes.iter().all(|outcome| outcome.workflow.is_none()));
}
