//! Renders diagnostics for people (source line and caret, via miette), for machines (a stable
//! JSON array) and for GitHub Actions (workflow-command annotations).

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};

use crate::diagnostics::{Diagnostic, Severity};
use crate::source::SourceFile;

/// One diagnostic with the source it points into, in the shape miette renders.
struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: NamedSource<String>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = if self.diagnostic.path.is_empty() {
            None
        } else {
            Some(self.diagnostic.path.clone())
        };
        Some(Box::new(std::iter::once(LabeledSpan::new(
            label,
            self.diagnostic.offset,
            self.diagnostic.len,
        ))))
    }
}

/// Human rendering: `error[code]: message`, `file:line:column`, the source line with a caret,
/// and the help. `color` picks the themed or the plain output.
pub(crate) fn human(diagnostic: &Diagnostic, source: &SourceFile, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_links(false)
        .with_context_lines(1)
        .with_width(100);
    // A source that is too short to hold the span (unreadable files) renders without snippet.
    let text = if diagnostic.offset <= source.text.len() {
        source.text.clone()
    } else {
        String::new()
    };
    let report = Report {
        diagnostic,
        source: NamedSource::new(diagnostic.file.clone(), text),
    };
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        out = plain(diagnostic);
    }
    out
}

/// One-line form: `file:line:column: error[code]: message (help: ...)`.
pub(crate) fn plain(diagnostic: &Diagnostic) -> String {
    let severity = match diagnostic.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut line = format!(
        "{}:{}:{}: {severity}[{}]: {}",
        diagnostic.file, diagnostic.line, diagnostic.column, diagnostic.code, diagnostic.message
    );
    if let Some(help) = &diagnostic.help {
        line.push_str(&format!(" (help: {help})"));
    }
    line
}

/// The stable JSON array: `[{file, line, column, path, severity, code, message, help}]`.
pub(crate) fn json(diagnostics: &[&Diagnostic]) -> String {
    serde_json::to_string_pretty(diagnostics).unwrap_or_else(|_| "[]".to_string())
}

/// A GitHub Actions workflow command: `::error file=..,line=..,col=..,title=..::message`.
pub(crate) fn github(diagnostic: &Diagnostic) -> String {
    let command = match diagnostic.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut message = diagnostic.message.clone();
    if let Some(help) = &diagnostic.help {
        message.push('\n');
        message.push_str(help);
    }
    format!(
        "::{command} file={},line={},col={},title={}::{}",
        escape_property(&diagnostic.file),
        diagnostic.line,
        diagnostic.column,
        escape_property(&format!("fetchflow {}", diagnostic.code)),
        escape_data(&message)
    )
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Problem;

    #[test]
    fn github_annotations_escape_their_properties_and_data() {
        let source = SourceFile::new("w,1.yaml", "name: Bad\n");
        let diagnostic = Diagnostic::at(
            &source,
            6,
            3,
            "name",
            Problem::error("invalid-name", 0, 0, "100% bad: yes").with_help("rename"),
        );
        assert_eq!(
            github(&diagnostic),
            "::error file=w%2C1.yaml,line=1,col=7,title=fetchflow invalid-name::100%25 bad: yes%0Arename"
        );
    }

    #[test]
    fn human_output_shows_location_source_line_and_help() {
        let source = SourceFile::new("w.yaml", "name: Bad\n");
        let diagnostic = Diagnostic::at(
            &source,
            6,
            3,
            "name",
            Problem::error("invalid-name", 0, 0, "`Bad` is not a valid workflow name")
                .with_help("use `bad`"),
        );
        let out = human(&diagnostic, &source, false);
        assert!(out.contains("w.yaml:1:7"), "{out}");
        assert!(out.contains("name: Bad"), "{out}");
        assert!(out.contains("use `bad`"), "{out}");
        assert!(out.contains("invalid-name"), "{out}");
    }
}
