//! Templates: the minijinja environment fetchflow renders with, static analysis of what a template
//! refers to (validate time) and a compiled, reusable template set (run time). Pure: no I/O; the
//! values of `secret('NAME')` come from an injected [`SecretSource`].
//!
//! Decisions:
//! - Strict undefined: printing, iterating, testing the truth of or looking into an undefined
//!   value fails the render; `x is defined` and `x | default(...)` are the way to be lenient.
//! - Every render is bounded by [`FUEL_PER_RENDER`] steps.
//! - No loader: `include`, `extends`, `import` and `from` are rejected by [`analyze`].
//! - Unknown filters and tests: minijinja only notices them when they run, so [`analyze`] checks
//!   every filter and test name and reports `template-unknown-filter` / `template-unknown-test`.
//! - No auto-escaping, except in templates added with [`TemplateSet::add_xml`] (the FetchXML
//!   selection), where every value inserted by `{{ }}` is XML-escaped; `| safe` opts out.
//! - `secret('NAME')`: outside a runtime set it fails with "not available"; at run time it asks
//!   the [`SecretSource`]. A missing secret is an error naming the variable; the value is never part
//!   of an error (for a template that uses `secret`, minijinja's error details are dropped).
//! - Booleans print as `true` / `false` (JSON, YAML and Dataverse spelling), not Jinja's `True`.
//! - The `debug()` global is removed and minijinja's debug mode is off, so errors never carry a
//!   dump of the render context.

mod analysis;
mod context;
mod lexer;
mod set;

use std::sync::Arc;

use minijinja::value::ValueKind;
use minijinja::{
    AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior, Value,
};

pub use analysis::{Analysis, Reference, SecretCall, analyze, analyze_expression};
pub use context::value_from_json;
pub use set::{RenderError, TemplateSet};

/// The most steps (instructions, roughly) one render may take.
pub const FUEL_PER_RENDER: u64 = 50_000;

/// The names the engine puts in the render context (DESIGN.md section 2, "Template context").
pub const CONTEXT_ROOTS: &[&str] = &["record", "id", "vars", "workflow", "now", "operation"];

/// The function that reads a secret.
pub(crate) const SECRET_FUNCTION: &str = "secret";

/// Global functions other than `secret`: calling them is not a reference to the context.
pub(crate) const GLOBAL_FUNCTIONS: &[&str] = &["range", "dict", "namespace"];

/// The auto-escape mode of templates added with [`TemplateSet::add_xml`].
const XML_ESCAPE: &str = "xml";

/// Suffix of the internal template names that are XML-escaped.
pub(crate) const XML_NAME_SUFFIX: &str = "\u{0}xml";

/// Where `secret('NAME')` gets its value at run time (the engine passes the process environment:
/// `|name: &str| std::env::var(name).ok()`).
pub trait SecretSource: Send + Sync {
    fn secret(&self, name: &str) -> Option<String>;
}

impl<F> SecretSource for F
where
    F: Fn(&str) -> Option<String> + Send + Sync,
{
    fn secret(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Why `secret(...)` failed; attached to the minijinja error as its source so that
/// [`RenderError`] can name the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SecretError {
    #[error("secret `{0}` is not set")]
    Missing(String),
    #[error("secret `{0}` is not available here")]
    Unavailable(String),
}

/// The validate-time environment: strict, fueled, no loader, no auto-escape (XML for internal
/// `add_xml` names), and a `secret` function that never resolves a value.
pub fn environment() -> Environment<'static> {
    build(None)
}

/// The run-time environment: as [`environment`], with `secret` reading from `secrets`.
pub fn runtime_environment(secrets: Arc<dyn SecretSource>) -> Environment<'static> {
    build(Some(secrets))
}

/// Whether `text` has no template syntax at all (no `{{`, `{%` or `{#`), so it renders as itself.
pub fn is_literal(text: &str) -> bool {
    !(text.contains("{{") || text.contains("{%") || text.contains("{#"))
}

/// The validate-time environment for any source lifetime (analysis borrows the analyzed text).
pub(crate) fn compile_environment<'s>() -> Environment<'s> {
    build(None)
}

fn build<'s>(secrets: Option<Arc<dyn SecretSource>>) -> Environment<'s> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL_PER_RENDER));
    env.set_debug(false);
    env.remove_global("debug");
    env.set_auto_escape_callback(|name| {
        if name.ends_with(XML_NAME_SUFFIX) {
            AutoEscape::Custom(XML_ESCAPE.into())
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(format_value);
    env.add_function(
        SECRET_FUNCTION,
        move |name: String| -> Result<String, Error> {
            let failure = match &secrets {
                Some(source) => match source.secret(&name) {
                    Some(value) => return Ok(value),
                    None => SecretError::Missing(name),
                },
                None => SecretError::Unavailable(name),
            };
            Err(Error::new(ErrorKind::InvalidOperation, failure.to_string()).with_source(failure))
        },
    );
    env
}

fn format_value(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if value.kind() == ValueKind::Bool {
        let text = if value.is_true() { "true" } else { "false" };
        return out.write_str(text).map_err(Error::from);
    }
    match state.auto_escape() {
        AutoEscape::Custom(mode) if mode == XML_ESCAPE && !value.is_safe() => {
            match value.as_str() {
                Some(text) => write_xml_escaped(out, text),
                None => write_xml_escaped(out, &value.to_string()),
            }
            .map_err(Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn write_xml_escaped(out: &mut Output, text: &str) -> std::fmt::Result {
    let mut last = 0;
    for (idx, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&apos;",
            _ => continue,
        };
        out.write_str(&text[last..idx])?;
        out.write_str(entity)?;
        last = idx + 1;
    }
    out.write_str(&text[last..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_text_has_no_template_syntax() {
        assert!(is_literal("plain { text } with % and #"));
        assert!(!is_literal("a {{ b }}"));
        assert!(!is_literal("{% if x %}{% endif %}"));
        assert!(!is_literal("{# note #}"));
    }

    #[test]
    fn environment_is_strict_and_has_no_debug_global() {
        let env = environment();
        assert!(env.render_str("{{ missing }}", ()).is_err());
        assert!(env.render_str("{{ debug() }}", ()).is_err());
        assert_eq!(env.render_str("{{ '<&>' }}", ()).unwrap(), "<&>");
        assert_eq!(env.fuel(), Some(FUEL_PER_RENDER));
    }

    #[test]
    fn compile_time_secret_never_resolves() {
        let err = environment()
            .render_str("{{ secret('HOME') }}", ())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOperation);
        assert!(err.to_string().contains("secret `HOME` is not available"));
    }

    #[test]
    fn runtime_secret_reads_the_injected_source() {
        let env = runtime_environment(Arc::new(|name: &str| {
            (name == "TOKEN").then(|| "s3cr3t".to_string())
        }));
        assert_eq!(
            env.render_str("{{ secret('TOKEN') }}", ()).unwrap(),
            "s3cr3t"
        );
        let err = env.render_str("{{ secret('OTHER') }}", ()).unwrap_err();
        assert!(err.to_string().contains("secret `OTHER` is not set"));
    }
}
