//! `Checker`: collects the diagnostics of one file and maps positions inside YAML scalars
//! (template text, FetchXML, cron expressions) back to file positions.

use serde_saphyr::Spanned;

use crate::diagnostics::{Diagnostic, Problem, Severity};
use crate::model::{len_of, offset_of};
use crate::source::SourceFile;

pub(crate) struct Checker<'a> {
    pub(crate) source: &'a SourceFile,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(source: &'a SourceFile) -> Self {
        Checker {
            source,
            diagnostics: Vec::new(),
        }
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|diagnostic| diagnostic.severity == Severity::Error)
    }

    /// Reports a problem about a whole node (its offset and length come from the node).
    pub(crate) fn at_node<T>(&mut self, node: &Spanned<T>, path: &str, mut problem: Problem) {
        problem.offset = offset_of(node);
        problem.len = len_of(node);
        self.push(path, problem);
    }

    /// Reports a problem whose offset is already a file offset.
    pub(crate) fn push(&mut self, path: &str, problem: Problem) {
        let diagnostic = Diagnostic::at(self.source, problem.offset, problem.len, path, problem);
        self.diagnostics.push(diagnostic);
    }

    /// Reports a problem whose offset is relative to the string value of `node`.
    pub(crate) fn in_scalar(&mut self, node: &Spanned<String>, path: &str, mut problem: Problem) {
        let start = self.scalar_offset(offset_of(node), &node.value, problem.offset);
        let end = self.scalar_offset(offset_of(node), &node.value, problem.offset + problem.len);
        problem.offset = start;
        problem.len = end.saturating_sub(start);
        self.push(path, problem);
    }

    /// The file offset of byte `value_offset` of a scalar's value, found by walking the
    /// source text from the node's start, skipping what the value does not contain
    /// (quotes, block indentation). Exact for plain, single-quoted and literal block
    /// scalars; approximate after escape sequences in double-quoted ones.
    pub(crate) fn scalar_offset(
        &self,
        node_offset: usize,
        value: &str,
        value_offset: usize,
    ) -> usize {
        // Skipping more than this many source characters for one value character means the
        // value and the source have diverged (an escape sequence); stop there.
        const MAX_SKIP: usize = 200;
        let text = &self.source.text;
        let mut position = self.source.clamp(node_offset);
        if text[position..].starts_with(['"', '\'']) {
            position += 1;
        }
        let value_offset = value_offset.min(value.len());
        let prefix = value.get(..value_offset).unwrap_or(value);
        for wanted in prefix.chars() {
            let mut skipped = 0;
            loop {
                let Some(found) = text[position..].chars().next() else {
                    return text.len();
                };
                position += found.len_utf8();
                if found == wanted {
                    break;
                }
                skipped += 1;
                if skipped > MAX_SKIP {
                    return position;
                }
            }
        }
        // Land on the next value character, not on indentation before it.
        if let Some(next) = value[value_offset..].chars().next() {
            let rest = &text[position..];
            if let Some(skip) = rest
                .find(next)
                .filter(|&skip| skip <= MAX_SKIP && rest[..skip].trim().is_empty())
            {
                position += skip;
            }
        }
        position
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_in(text: &str, node_offset: usize, value: &str, value_offset: usize) -> usize {
        let source = SourceFile::new("t.yaml", text);
        Checker::new(&source).scalar_offset(node_offset, value, value_offset)
    }

    #[test]
    fn maps_offsets_in_plain_quoted_and_block_scalars() {
        let text = "a: \"x {{ y }}\"\n";
        assert_eq!(offset_in(text, 3, "x {{ y }}", 2), text.find("{{").unwrap());
        let text = "f: |\n  <fetch>\n    <entity name=\"x\"/>\n";
        let value = "<fetch>\n  <entity name=\"x\"/>\n";
        let node = text.find("<fetch").unwrap();
        let wanted = value.find("<entity").unwrap();
        assert_eq!(
            offset_in(text, node, value, wanted),
            text.find("<entity").unwrap()
        );
    }
}
