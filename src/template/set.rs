//! `TemplateSet`: templates and `when:` conditions compiled once by key and rendered per record,
//! and `RenderError`, what went wrong in user terms (never a secret's value).

use std::collections::HashMap;
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, Value};

use crate::diagnostics::Problem;
use crate::template::analysis::syntax_problem;
use crate::template::{
    FUEL_PER_RENDER, SecretError, SecretSource, XML_NAME_SUFFIX, analyze, analyze_expression, build,
};

/// Why a render failed, in the terms of the workflow author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("no template `{key}`")]
    UnknownTemplate { key: String },
    /// A strict-undefined failure: `expr` is the template text that was undefined, e.g. `record.x`.
    #[error("`{expr}` is undefined in `{key}`")]
    Undefined { key: String, expr: String },
    #[error("`{key}` used more than {limit} steps")]
    OutOfFuel { key: String, limit: u64 },
    #[error("secret `{name}` used in `{key}` is not set")]
    SecretMissing { key: String, name: String },
    #[error("secret `{name}` is not available in `{key}`")]
    SecretUnavailable { key: String, name: String },
    /// Any other failure (bad operands, unknown filter, ...). For a template that uses `secret`,
    /// `message` is only the kind of failure, so that no value can leak.
    #[error("{message} in `{key}`")]
    Failed { key: String, message: String },
}

/// Templates and conditions compiled once, rendered many times. Keys are the caller's, e.g.
/// `actions[0].update.set.description`; adding a key again replaces it.
pub struct TemplateSet {
    env: Environment<'static>,
    entries: HashMap<String, Entry>,
}

struct Entry {
    /// The name of the compiled template inside `env`.
    name: String,
    /// Whether errors must hide minijinja's details (the template calls `secret`).
    uses_secrets: bool,
    /// What was compiled (for conditions, the wrapped expression); error ranges index into it.
    source: String,
}

impl Default for TemplateSet {
    fn default() -> Self {
        TemplateSet::new()
    }
}

impl TemplateSet {
    /// A set whose templates cannot read secrets (actions, selection).
    pub fn new() -> Self {
        TemplateSet {
            env: build(None),
            entries: HashMap::new(),
        }
    }

    /// A set whose templates read `secret('NAME')` from `secrets` (callbacks, connections).
    pub fn with_secrets(secrets: Arc<dyn SecretSource>) -> Self {
        TemplateSet {
            env: build(Some(secrets)),
            entries: HashMap::new(),
        }
    }

    /// Compiles a template; the problem is one [`analyze`] reports.
    pub fn add(&mut self, key: &str, text: &str) -> Result<(), Problem> {
        let analysis = analyze(text)?;
        self.insert(
            key,
            format!("t\u{0}{key}"),
            text.to_string(),
            analysis.secrets.is_empty(),
        )
    }

    /// Compiles a template whose `{{ }}` values are XML-escaped (the FetchXML selection).
    pub fn add_xml(&mut self, key: &str, text: &str) -> Result<(), Problem> {
        let analysis = analyze(text)?;
        let name = format!("x\u{0}{key}{XML_NAME_SUFFIX}");
        self.insert(key, name, text.to_string(), analysis.secrets.is_empty())
    }

    /// Compiles a `when:` condition (a bare expression); the problem is one
    /// [`analyze_expression`] reports.
    pub fn add_condition(&mut self, key: &str, expression: &str) -> Result<(), Problem> {
        let analysis = analyze_expression(expression)?;
        // A valid expression has balanced brackets and no `}}` or `%}` outside strings, so the
        // parentheses keep it inside the tag.
        let source = format!("{{% if (\n{expression}\n) %}}1{{% endif %}}");
        self.insert(
            key,
            format!("c\u{0}{key}"),
            source,
            analysis.secrets.is_empty(),
        )
    }

    fn insert(
        &mut self,
        key: &str,
        name: String,
        source: String,
        no_secrets: bool,
    ) -> Result<(), Problem> {
        self.env
            .add_template_owned(name.clone(), source.clone())
            .map_err(|error| syntax_problem(&source, &error))?;
        let entry = Entry {
            name,
            uses_secrets: !no_secrets,
            source,
        };
        if let Some(old) = self.entries.insert(key.to_string(), entry)
            && old.name != self.entries[key].name
        {
            self.env.remove_template(&old.name);
        }
        Ok(())
    }

    /// Whether a template or condition is stored under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Renders the template stored under `key` with `ctx` as the context.
    pub fn render(&self, key: &str, ctx: &Value) -> Result<String, RenderError> {
        let entry = self
            .entries
            .get(key)
            .ok_or_else(|| RenderError::UnknownTemplate {
                key: key.to_string(),
            })?;
        let template = self
            .env
            .get_template(&entry.name)
            .map_err(|error| render_error(key, entry, &error))?;
        template
            .render(ctx)
            .map_err(|error| render_error(key, entry, &error))
    }

    /// Evaluates the condition stored under `key` (truthiness, strict about undefined values).
    pub fn eval_condition(&self, key: &str, ctx: &Value) -> Result<bool, RenderError> {
        Ok(self.render(key, ctx)? == "1")
    }
}

fn render_error(key: &str, entry: &Entry, error: &minijinja::Error) -> RenderError {
    let key = key.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        if let Some(secret) = current.downcast_ref::<SecretError>() {
            return match secret.clone() {
                SecretError::Missing(name) => RenderError::SecretMissing { key, name },
                SecretError::Unavailable(name) => RenderError::SecretUnavailable { key, name },
            };
        }
        cause = current.source();
    }
    let snippet = error
        .range()
        .and_then(|range| entry.source.get(range))
        .map(str::trim)
        .filter(|snippet| !snippet.is_empty());
    match error.kind() {
        ErrorKind::OutOfFuel => RenderError::OutOfFuel {
            key,
            limit: FUEL_PER_RENDER,
        },
        ErrorKind::UndefinedError => {
            let from_detail = error
                .detail()
                .filter(|_| !entry.uses_secrets)
                .and_then(|detail| detail.strip_prefix('`')?.strip_suffix("` is undefined"));
            let expr = from_detail.or(snippet).unwrap_or("a value").to_string();
            RenderError::Undefined { key, expr }
        }
        kind => {
            let mut message = match error.detail() {
                Some(detail) if !entry.uses_secrets => detail.to_string(),
                _ => kind.to_string(),
            };
            if let Some(snippet) = snippet {
                message.push_str(&format!(" at `{snippet}`"));
            }
            RenderError::Failed { key, message }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use minijinja::context;

    use super::*;

    fn set_with(key: &str, text: &str) -> TemplateSet {
        let mut set = TemplateSet::new();
        set.add(key, text).unwrap();
        set
    }

    #[test]
    fn renders_per_record() {
        let set = set_with("subject", "Review {{ record.name }} ({{ id }})");
        for (name, id) in [("Contoso", "1"), ("Fabrikam", "2")] {
            let ctx = context!(record => context!(name => name), id => id);
            assert_eq!(
                set.render("subject", &ctx).unwrap(),
                format!("Review {name} ({id})")
            );
        }
    }

    #[test]
    fn strict_undefined_names_the_expression() {
        let set = set_with("k", "{{ record.missing }}");
        let err = set
            .render("k", &context!(record => context!(name => "x")))
            .unwrap_err();
        assert_eq!(
            err,
            RenderError::Undefined {
                key: "k".into(),
                expr: "record.missing".into()
            }
        );
        assert_eq!(err.to_string(), "`record.missing` is undefined in `k`");
    }

    #[test]
    fn fuel_exhaustion_fails_fast() {
        let set = set_with("loop", "{% for i in range(100000) %}{% endfor %}");
        let started = Instant::now();
        let err = set.render("loop", &context!()).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            err,
            RenderError::OutOfFuel {
                key: "loop".into(),
                limit: FUEL_PER_RENDER
            }
        );
        assert_eq!(err.to_string(), "`loop` used more than 50000 steps");
    }

    #[test]
    fn xml_values_are_escaped() {
        let mut set = TemplateSet::new();
        set.add_xml(
            "select",
            r#"<condition attribute="name" operator="eq" value="{{ vars.territory }}"/>"#,
        )
        .unwrap();
        let ctx = context!(vars => context!(territory => "x\" or 1=1 <a>&"));
        assert_eq!(
            set.render("select", &ctx).unwrap(),
            r#"<condition attribute="name" operator="eq" value="x&quot; or 1=1 &lt;a&gt;&amp;"/>"#
        );
        // Plain templates are not escaped.
        let set = set_with("plain", "{{ vars.territory }}");
        assert_eq!(set.render("plain", &ctx).unwrap(), "x\" or 1=1 <a>&");
    }

    #[test]
    fn xml_escapes_apostrophes_and_non_strings() {
        let mut set = TemplateSet::new();
        set.add_xml("s", "{{ a }}|{{ b }}|{{ c | safe }}").unwrap();
        let ctx = context!(a => "O'Neil", b => 5, c => "<raw/>");
        assert_eq!(set.render("s", &ctx).unwrap(), "O&apos;Neil|5|<raw/>");
    }

    #[test]
    fn conditions_use_truthiness_and_stay_strict() {
        let mut set = TemplateSet::new();
        set.add_condition("when", "record.count > 2 and vars.enabled")
            .unwrap();
        let ctx = |count: i64, enabled: bool| context!(record => context!(count => count), vars => context!(enabled => enabled));
        assert!(set.eval_condition("when", &ctx(3, true)).unwrap());
        assert!(!set.eval_condition("when", &ctx(3, false)).unwrap());
        assert!(!set.eval_condition("when", &ctx(1, true)).unwrap());
        set.add_condition("lenient", "record.x is defined").unwrap();
        assert!(!set.eval_condition("lenient", &ctx(1, true)).unwrap());
        set.add_condition("strict", "record.x").unwrap();
        assert!(matches!(
            set.eval_condition("strict", &ctx(1, true)),
            Err(RenderError::Undefined { .. })
        ));
    }

    #[test]
    fn condition_syntax_error_points_into_the_expression() {
        let err = TemplateSet::new()
            .add_condition("when", "record.x ==")
            .unwrap_err();
        assert_eq!(err.code, "template-syntax");
        assert!(err.offset <= "record.x ==".len());
    }

    #[test]
    fn missing_secret_is_named_and_values_never_leak() {
        let secrets =
            Arc::new(|name: &str| (name == "CALLBACK_SECRET").then(|| "hunter2-value".to_string()));
        let mut set = TemplateSet::with_secrets(secrets);
        set.add("ok", "{{ secret('CALLBACK_SECRET') }}").unwrap();
        set.add("missing", "{{ secret('NOPE') }}").unwrap();
        set.add("misuse", "{{ secret('CALLBACK_SECRET') + 1 }}")
            .unwrap();
        set.add("undefined", "{{ secret('CALLBACK_SECRET')[record.x] }}")
            .unwrap();
        set.add("int", "{{ secret('CALLBACK_SECRET') | int }}")
            .unwrap();
        let ctx = context!(record => context!(name => "x"));
        assert_eq!(set.render("ok", &ctx).unwrap(), "hunter2-value");
        let err = set.render("missing", &ctx).unwrap_err();
        assert_eq!(
            err,
            RenderError::SecretMissing {
                key: "missing".into(),
                name: "NOPE".into()
            }
        );
        for key in ["misuse", "undefined", "int"] {
            let err = set.render(key, &ctx).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{key}: {shown}");
        }
    }

    #[test]
    fn secrets_are_unavailable_without_a_source() {
        let set = set_with("callback", "{{ secret('CALLBACK_SECRET') }}");
        assert_eq!(
            set.render("callback", &context!()).unwrap_err(),
            RenderError::SecretUnavailable {
                key: "callback".into(),
                name: "CALLBACK_SECRET".into()
            }
        );
    }

    #[test]
    fn other_failures_carry_the_detail_and_location() {
        let set = set_with("k", "{{ 1 / 0 }}");
        let err = set.render("k", &context!()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to calculate 1 / 0 at `1 / 0` in `k`"
        );
        assert_eq!(
            TemplateSet::new().render("nope", &context!()).unwrap_err(),
            RenderError::UnknownTemplate { key: "nope".into() }
        );
    }

    #[test]
    fn adding_a_key_again_replaces_it() {
        let mut set = set_with("k", "a");
        set.add_xml("k", "b").unwrap();
        assert_eq!(set.render("k", &context!()).unwrap(), "b");
        assert!(set.contains("k"));
    }

    #[test]
    fn sets_can_be_shared_between_workers() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TemplateSet>();
        assert_send_sync::<RenderError>();
    }

    #[test]
    fn renders_the_design_callback_body() {
        let mut set = TemplateSet::with_secrets(Arc::new(|_: &str| Some("k".to_string())));
        let body = r#"{"workflow": "{{ workflow.name }}", "status": "{{ operation.status }}", "succeeded": {{ operation.succeeded }}, "ok": {{ operation.ok }}}"#;
        set.add("callback.body", body).unwrap();
        let ctx = crate::template::value_from_json(&serde_json::json!({
            "workflow": {"name": "territory-restructure"},
            "operation": {"status": "succeeded", "succeeded": 12, "ok": true},
        }));
        assert_eq!(
            set.render("callback.body", &ctx).unwrap(),
            r#"{"workflow": "territory-restructure", "status": "succeeded", "succeeded": 12, "ok": true}"#
        );
    }

    #[test]
    fn rendering_is_cheap() {
        let set = set_with(
            "k",
            "Moved {{ record.name }} from {{ vars.territory }} on {{ now }}",
        );
        let ctx = context!(
            record => context!(name => "Contoso"),
            vars => context!(territory => "West"),
            now => "2026-11-26T02:00:00Z"
        );
        let started = Instant::now();
        for _ in 0..100_000 {
            set.render("k", &ctx).unwrap();
        }
        // Well under a second in release; generous here for unoptimized builds and busy machines.
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
