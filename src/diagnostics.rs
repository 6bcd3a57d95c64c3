//! Located problems: `Problem` (offset into one piece of text, produced by the pure checkers)
//! and `Diagnostic` (resolved to file, line and column), plus their renderers.

use serde::Serialize;

use crate::source::SourceFile;

/// How bad a problem is. Warnings do not fail `validate` unless `--deny-warnings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A problem found by a pure checker (FetchXML, template, cron), located by a byte range
/// inside the text that checker was given. `compile` maps it to a file position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// Stable, kebab-case machine code, e.g. `fetchxml-unknown-operator`.
    pub code: &'static str,
    /// Byte offset into the checked text.
    pub offset: usize,
    /// Byte length of the offending text (0 = a point).
    pub len: usize,
    /// What is wrong, lower-case, no trailing period.
    pub message: String,
    /// What to do about it, including any "did you mean".
    pub help: Option<String>,
}

impl Problem {
    pub fn error(
        code: &'static str,
        offset: usize,
        len: usize,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity: Severity::Error,
            code,
            offset,
            len,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(
        code: &'static str,
        offset: usize,
        len: usize,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, offset, len, message)
        }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A problem located in a file: what `validate` prints and what the API will report.
/// Field order is the stable JSON shape `{file, line, column, path, severity, code, message, help}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// YAML path of the node, e.g. `actions[1].update.set.ownerid` (empty for the whole file).
    pub path: String,
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
    /// Byte range in the file, for rendering the source line and caret.
    #[serde(skip)]
    pub offset: usize,
    #[serde(skip)]
    pub len: usize,
}

impl Diagnostic {
    /// A diagnostic at a byte range of `source`.
    pub fn at(
        source: &SourceFile,
        offset: usize,
        len: usize,
        path: &str,
        problem: Problem,
    ) -> Self {
        let offset = source.clamp(offset);
        let len = source.clamp(offset + len) - offset;
        let (line, column) = source.line_column(offset);
        Diagnostic {
            file: source.display_name(),
            line,
            column,
            path: path.to_string(),
            severity: problem.severity,
            code: problem.code,
            message: problem.message,
            help: problem.help,
            offset,
            len,
        }
    }

    /// A diagnostic about a file as a whole (unreadable, too large, ...), at line 1 column 1.
    pub fn whole_file(file: &str, problem: Problem) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: 1,
            column: 1,
            path: String::new(),
            severity: problem.severity,
            code: problem.code,
            message: problem.message,
            help: problem.help,
            offset: 0,
            len: 0,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The closest candidate to `name` by edit distance, if it is close enough to be a likely typo.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lowered = name.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&lowered, &candidate.to_lowercase());
        let limit = (name.chars().count().max(candidate.chars().count()) / 3).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["update", "assign", "delete"];
        assert_eq!(did_you_mean("updte", names), Some("update"));
        assert_eq!(did_you_mean("Assign", names), Some("assign"));
        assert_eq!(did_you_mean("frobnicate", names), None);
    }
}
