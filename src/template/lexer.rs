//! A best-effort token scanner over template text with byte spans, mirroring minijinja's lexer
//! (default delimiters, no line statements). It only runs on text minijinja already accepted.

/// What a token is. Operators the analysis does not care about collapse into `Op`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// `{{`, `{{-` or `{{+`.
    VarStart,
    /// `}}`, `-}}` or `+}}`.
    VarEnd,
    /// `{%`, `{%-` or `{%+`.
    BlockStart,
    /// `%}`, `-%}` or `+%}`.
    BlockEnd,
    Ident,
    /// A string literal, unescaped.
    Str(String),
    Number,
    Dot,
    Pipe,
    Comma,
    /// A single `=` (keyword arguments and assignments; `==` is an `Op`).
    Assign,
    /// `(`, `[` or `{`.
    Open(u8),
    /// `)`, `]` or `}`.
    Close(u8),
    Op,
}

/// One token and its byte range in the scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Root,
    Variable,
    Block,
}

/// Tokenizes a whole template (`in_expr = false`) or a bare expression (`in_expr = true`).
/// Template data, comments and raw blocks produce no tokens.
pub(super) fn tokenize(text: &str, in_expr: bool) -> Vec<Token> {
    let mut lexer = Lexer {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        balance: 0,
        tokens: Vec::new(),
    };
    lexer.run(if in_expr {
        State::Variable
    } else {
        State::Root
    });
    lexer.tokens
}

struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    balance: isize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn run(&mut self, mut state: State) {
        while self.pos < self.bytes.len() {
            state = match state {
                State::Root => self.root(),
                State::Variable => self.inside(b"}}", Kind::VarEnd, State::Variable),
                State::Block => self.inside(b"%}", Kind::BlockEnd, State::Block),
            };
        }
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize) {
        self.tokens.push(Token { kind, start, end });
        self.pos = end;
    }

    fn at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(offset).copied()
    }

    fn root(&mut self) -> State {
        let Some(start) = find_marker(self.bytes, self.pos) else {
            self.pos = self.bytes.len();
            return State::Root;
        };
        let ws = usize::from(matches!(self.at(start + 2), Some(b'-' | b'+')));
        match self.bytes[start + 1] {
            b'#' => {
                self.pos =
                    find(self.bytes, start + 2, b"#}").map_or(self.bytes.len(), |end| end + 2);
                State::Root
            }
            b'{' => {
                self.balance = 0;
                self.push(Kind::VarStart, start, start + 2 + ws);
                State::Variable
            }
            _ => {
                if let Some(after) = basic_tag(self.bytes, start + 2 + ws, b"raw", false) {
                    self.pos = self.skip_raw(after);
                    State::Root
                } else {
                    self.balance = 0;
                    self.push(Kind::BlockStart, start, start + 2 + ws);
                    State::Block
                }
            }
        }
    }

    /// The position after the `{% endraw %}` that closes a raw block starting at `from`.
    fn skip_raw(&self, from: usize) -> usize {
        let mut ptr = from;
        while let Some(block) = find(self.bytes, ptr, b"{%") {
            if let Some(after) = basic_tag(self.bytes, block + 2, b"endraw", true) {
                return after;
            }
            ptr = block + 2;
        }
        self.bytes.len()
    }

    fn inside(&mut self, end: &[u8], end_kind: Kind, state: State) -> State {
        let start = self.pos;
        let rest = &self.bytes[start..];
        if let Some(skip) = rest.iter().position(|b| !b.is_ascii_whitespace()) {
            if skip > 0 {
                self.pos += skip;
                return state;
            }
        } else {
            self.pos = self.bytes.len();
            return state;
        }
        if self.balance == 0 {
            if matches!(rest[0], b'-' | b'+') && rest[1..].starts_with(end) {
                self.push(end_kind, start, start + 1 + end.len());
                return State::Root;
            }
            if rest.starts_with(end) {
                self.push(end_kind, start, start + end.len());
                return State::Root;
            }
        }
        if let Some(b"//" | b"**" | b"==" | b"!=" | b">=" | b"<=") = rest.get(..2) {
            self.push(Kind::Op, start, start + 2);
            return state;
        }
        let kind = match rest[0] {
            b'.' => Kind::Dot,
            b',' => Kind::Comma,
            b'|' => Kind::Pipe,
            b'=' => Kind::Assign,
            open @ (b'(' | b'[' | b'{') => {
                self.balance += 1;
                Kind::Open(open)
            }
            close @ (b')' | b']' | b'}') => {
                self.balance -= 1;
                Kind::Close(close)
            }
            quote @ (b'\'' | b'"') => {
                self.string(quote);
                return state;
            }
            b'0'..=b'9' => {
                self.number();
                return state;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let len = rest
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                self.push(Kind::Ident, start, start + len);
                return state;
            }
            _ => {
                let len = self.text[start..].chars().next().map_or(1, char::len_utf8);
                self.push(Kind::Op, start, start + len);
                return state;
            }
        };
        self.push(kind, start, start + 1);
        state
    }

    fn string(&mut self, quote: u8) {
        let start = self.pos;
        let mut value = String::new();
        let mut chars = self.text[start + 1..].char_indices();
        let mut end = self.bytes.len();
        while let Some((idx, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped)) => value.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        other => other,
                    }),
                    None => break,
                },
                c if c as u32 == u32::from(quote) => {
                    end = start + 1 + idx + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        self.push(Kind::Str(value), start, end);
    }

    fn number(&mut self) {
        let start = self.pos;
        let after_dot = start > 0 && self.bytes[start - 1] == b'.';
        let mut end = start;
        loop {
            end += self.bytes[end..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            let exponent_sign = matches!(self.bytes[end - 1], b'e' | b'E')
                && matches!(self.at(end), Some(b'+' | b'-'))
                && self.at(end + 1).is_some_and(|b| b.is_ascii_digit());
            let fraction = !after_dot
                && self.at(end) == Some(b'.')
                && self.at(end + 1).is_some_and(|b| b.is_ascii_digit())
                && !self.bytes[start..end].contains(&b'.');
            if exponent_sign || fraction {
                end += 1;
            } else {
                break;
            }
        }
        self.push(Kind::Number, start, end);
    }
}

/// The next `{{`, `{%` or `{#` at or after `from`.
fn find_marker(bytes: &[u8], from: usize) -> Option<usize> {
    let mut ptr = from;
    loop {
        let idx = ptr + bytes.get(ptr..)?.iter().position(|&b| b == b'{')?;
        if matches!(bytes.get(idx + 1), Some(b'{' | b'%' | b'#')) {
            return Some(idx);
        }
        ptr = idx + 1;
    }
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|idx| from + idx)
}

/// Matches `[-+]? ws* name ws* [-+]? %}` at `from` (the leading sign only when `leading_sign`,
/// as minijinja does for `raw` / `endraw`) and returns the position after `%}`.
fn basic_tag(bytes: &[u8], from: usize, name: &[u8], leading_sign: bool) -> Option<usize> {
    let mut ptr = from;
    let skip_ws = |mut ptr: usize| {
        while bytes.get(ptr).is_some_and(u8::is_ascii_whitespace) {
            ptr += 1;
        }
        ptr
    };
    if leading_sign && matches!(bytes.get(ptr), Some(b'-' | b'+')) {
        ptr += 1;
    }
    ptr = skip_ws(ptr);
    if !bytes.get(ptr..)?.starts_with(name) {
        return None;
    }
    ptr = skip_ws(ptr + name.len());
    if matches!(bytes.get(ptr), Some(b'-' | b'+')) {
        ptr += 1;
    }
    bytes.get(ptr..)?.starts_with(b"%}").then_some(ptr + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, &str)> {
        tokenize(text, false)
            .into_iter()
            .map(|token| (token.kind, &text[token.start..token.end]))
            .collect()
    }

    #[test]
    fn skips_data_comments_and_raw_blocks() {
        let text = "a {# {{ x }} #} {% raw %}{{ y }}{% endraw %} {{- z -}} {%+ if w +%}";
        let tokens = kinds(text);
        assert_eq!(
            tokens,
            vec![
                (Kind::VarStart, "{{-"),
                (Kind::Ident, "z"),
                (Kind::VarEnd, "-}}"),
                (Kind::BlockStart, "{%+"),
                (Kind::Ident, "if"),
                (Kind::Ident, "w"),
                (Kind::BlockEnd, "+%}"),
            ]
        );
    }

    #[test]
    fn strings_numbers_and_nested_braces() {
        let tokens = kinds(r#"{{ {'a': "b\"}}"}['a'] ~ 1.5e+3 ~ x.0.1 }}"#);
        let strs: Vec<_> = tokens
            .iter()
            .filter_map(|(kind, _)| match kind {
                Kind::Str(value) => Some(value.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(strs, ["a", "b\"}}", "a"]);
        assert!(tokens.contains(&(Kind::Number, "1.5e+3")));
        assert!(tokens.contains(&(Kind::Number, "0")));
        assert_eq!(tokens.last(), Some(&(Kind::VarEnd, "}}")));
    }
}
