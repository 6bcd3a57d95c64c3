//! Static analysis of a template or `when:` expression: syntax check, every reference to the
//! render context with its byte span, every `secret(...)` call, unknown filters and tests.

use std::collections::HashSet;

use minijinja::{Environment, ErrorKind};

use crate::diagnostics::{Problem, did_you_mean};
use crate::template::lexer::{Kind, Token, tokenize};
use crate::template::{GLOBAL_FUNCTIONS, SECRET_FUNCTION, compile_environment};

/// What a template refers to, found without rendering it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Every lookup of a name the template does not bind itself (`{% set %}`, `{% for %}`, macro
    /// arguments, ...) and that is not a global function, in source order.
    pub references: Vec<Reference>,
    /// Every use of the `secret` function, in source order.
    pub secrets: Vec<SecretCall>,
}

impl Analysis {
    /// The distinct roots referenced, in order of first use.
    pub fn roots(&self) -> Vec<&str> {
        let mut seen = HashSet::new();
        self.references
            .iter()
            .map(|reference| reference.root.as_str())
            .filter(|root| seen.insert(*root))
            .collect()
    }

    /// Whether the text renders the same whatever the context (no references, no secrets).
    pub fn is_constant(&self) -> bool {
        self.references.is_empty() && self.secrets.is_empty()
    }
}

/// One lookup of the render context: `record["primarycontactid.fullname"]` is root `record`,
/// path `["primarycontactid.fullname"]`. The path stops at the first lookup that is not a plain
/// attribute or a string-literal subscript, and before method calls (`vars.x.upper()` has path
/// `["x"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub root: String,
    pub path: Vec<String>,
    /// Byte offset of the root name in the analyzed text.
    pub offset: usize,
    /// Byte length from the root name to the end of the last path element.
    pub len: usize,
}

impl Reference {
    /// `root.a.b` form for messages (path elements containing dots are kept as they are).
    pub fn dotted(&self) -> String {
        let mut res = self.root.clone();
        for element in &self.path {
            res.push('.');
            res.push_str(element);
        }
        res
    }
}

/// One use of `secret`: `secret('X')` has name `Some("X")`; a non-literal argument or a use of
/// `secret` that is not a call has name `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretCall {
    pub name: Option<String>,
    /// Byte offset of `secret` in the analyzed text.
    pub offset: usize,
    /// Byte length up to and including the closing parenthesis (or of the name alone).
    pub len: usize,
}

/// Checks a template and lists what it refers to.
///
/// Problems (the first found is returned): `template-syntax` at the offset minijinja reports,
/// `template-unsupported` for `include`, `extends`, `import` and `from` (fetchflow templates are
/// self-contained), `template-unknown-filter` and `template-unknown-test` (minijinja itself only
/// notices those when the filter runs, so the analysis checks every name against the environment).
pub fn analyze(text: &str) -> Result<Analysis, Problem> {
    let env = compile_environment();
    let template = env
        .template_from_str(text)
        .map_err(|error| unclosed_tag_problem(text, &error))?;
    let undeclared = template.undeclared_variables(true);
    let tokens = tokenize(text, false);
    finish(text, &env, &tokens, false, &undeclared)
}

/// Checks a bare expression (a `when:` condition) and lists what it refers to; the same output and
/// problems as [`analyze`].
pub fn analyze_expression(text: &str) -> Result<Analysis, Problem> {
    let env = compile_environment();
    let expression = env
        .compile_expression(text)
        .map_err(|error| syntax_problem(text, &error))?;
    let undeclared = expression.undeclared_variables(true);
    let tokens = tokenize(text, true);
    finish(text, &env, &tokens, true, &undeclared)
}

fn finish(
    text: &str,
    env: &Environment<'_>,
    tokens: &[Token],
    in_expr: bool,
    undeclared: &HashSet<String>,
) -> Result<Analysis, Problem> {
    let mut scanner = Scanner::new(text, in_expr);
    if in_expr {
        scanner.expr(tokens);
    } else {
        scanner.template(tokens);
    }
    if let Some(problem) = scanner.problem.take() {
        return Err(problem);
    }
    check_names(env, &scanner.filters, NameKind::Filter)?;
    check_names(env, &scanner.tests, NameKind::Test)?;
    let mut analysis = scanner.analysis;
    cross_check(&mut analysis, text, tokens, undeclared);
    Ok(analysis)
}

/// Maps a minijinja compile error to a `template-syntax` problem at a byte offset into `text`.
pub(super) fn syntax_problem(text: &str, error: &minijinja::Error) -> Problem {
    let (offset, len) = match error.range() {
        Some(range) => {
            // minijinja widens point errors by one byte, which can end inside a character.
            let start = char_boundary(text, range.start, false);
            let end = char_boundary(text, range.end.max(range.start), true);
            (start, end - start)
        }
        None => (line_offset(text, error.line()), 0),
    };
    let detail = error.detail().unwrap_or("invalid template syntax");
    Problem::error("template-syntax", offset, len, detail.to_string())
}

/// Like [`syntax_problem`], but an "unexpected end of input" inside a `{{` or `{%` that is never
/// closed points at the opening delimiter rather than at the last token.
fn unclosed_tag_problem(text: &str, error: &minijinja::Error) -> Problem {
    let problem = syntax_problem(text, error);
    if !problem.message.starts_with("unexpected end of input") {
        return problem;
    }
    let tokens = tokenize(text, false);
    match tokens
        .iter()
        .rposition(|token| matches!(token.kind, Kind::VarStart | Kind::BlockStart))
    {
        Some(idx)
            if !tokens[idx..]
                .iter()
                .any(|token| matches!(token.kind, Kind::VarEnd | Kind::BlockEnd)) =>
        {
            let open = &tokens[idx];
            let what = if open.kind == Kind::VarStart {
                "`{{`"
            } else {
                "`{%`"
            };
            Problem::error(
                "template-syntax",
                open.start,
                open.end - open.start,
                format!("{what} is never closed"),
            )
            .with_help(problem.message)
        }
        _ => problem,
    }
}

/// `offset` clamped to `text` and moved to a character boundary (forward when `up`).
fn char_boundary(text: &str, offset: usize, up: bool) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        if up {
            offset += 1;
        } else {
            offset -= 1;
        }
    }
    offset
}

fn line_offset(text: &str, line: Option<usize>) -> usize {
    let Some(line) = line.filter(|line| *line > 1) else {
        return 0;
    };
    text.match_indices('\n')
        .nth(line - 2)
        .map_or(text.len(), |(idx, _)| idx + 1)
}

/// Every root minijinja itself finds must be in the analysis, so nothing slips by; a root the
/// scanner missed is added at its first occurrence.
fn cross_check(
    analysis: &mut Analysis,
    text: &str,
    tokens: &[Token],
    undeclared: &HashSet<String>,
) {
    let mut missing: Vec<(&str, Vec<String>)> = undeclared
        .iter()
        .filter_map(|dotted| {
            let mut parts = dotted.split('.');
            let root = parts.next()?;
            let known = root == SECRET_FUNCTION
                || GLOBAL_FUNCTIONS.contains(&root)
                || analysis.references.iter().any(|r| r.root == root);
            (!known).then(|| (root, parts.map(str::to_string).collect()))
        })
        .collect();
    missing.sort();
    missing.dedup_by(|a, b| a.0 == b.0);
    for (root, path) in missing {
        let offset = tokens
            .iter()
            .find(|token| token.kind == Kind::Ident && &text[token.start..token.end] == root)
            .map_or(0, |token| token.start);
        analysis.references.push(Reference {
            root: root.to_string(),
            path,
            offset,
            len: root.len(),
        });
    }
}

#[derive(Clone, Copy)]
enum NameKind {
    Filter,
    Test,
}

/// A filter or test name as used, with its span.
struct NameUse {
    name: String,
    offset: usize,
    len: usize,
}

const BUILTIN_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "chain",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "zip",
];

const BUILTIN_TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "equalto",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "greaterthan",
    "gt",
    "in",
    "int",
    "integer",
    "iterable",
    "le",
    "lessthan",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "safe",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

fn check_names(env: &Environment<'_>, uses: &[NameUse], kind: NameKind) -> Result<(), Problem> {
    let mut checked = HashSet::new();
    for name_use in uses {
        if !checked.insert(name_use.name.as_str()) || is_known(env, &name_use.name, kind) {
            continue;
        }
        let (code, what, builtins) = match kind {
            NameKind::Filter => ("template-unknown-filter", "filter", BUILTIN_FILTERS),
            NameKind::Test => ("template-unknown-test", "test", BUILTIN_TESTS),
        };
        let problem = Problem::error(
            code,
            name_use.offset,
            name_use.len,
            format!("unknown {what} `{}`", name_use.name),
        );
        let candidates = builtins
            .iter()
            .copied()
            .filter(|candidate| is_known(env, candidate, kind));
        return Err(match did_you_mean(&name_use.name, candidates) {
            Some(suggestion) => problem.with_help(format!("did you mean `{suggestion}`?")),
            None => problem,
        });
    }
    Ok(())
}

/// Whether the environment has this filter or test: minijinja has no public registry lookup, so
/// apply it to `none` and see whether the error says it is unknown.
fn is_known(env: &Environment<'_>, name: &str, kind: NameKind) -> bool {
    let (source, unknown) = match kind {
        NameKind::Filter => (format!("none | {name}"), ErrorKind::UnknownFilter),
        NameKind::Test => (format!("none is {name}"), ErrorKind::UnknownTest),
    };
    match env.compile_expression_owned(source) {
        Ok(expression) => expression
            .eval(())
            .err()
            .is_none_or(|error| error.kind() != unknown),
        Err(_) => false,
    }
}

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None",
];

/// Walks the tokens of a template like minijinja's parser and undeclared-variable tracker,
/// keeping a stack of scopes for names the template binds itself.
struct Scanner<'a> {
    text: &'a str,
    scopes: Vec<Vec<String>>,
    analysis: Analysis,
    filters: Vec<NameUse>,
    tests: Vec<NameUse>,
    problem: Option<Problem>,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str, in_expr: bool) -> Self {
        let root = if in_expr {
            Vec::new()
        } else {
            vec!["self".to_string()]
        };
        Scanner {
            text,
            scopes: vec![root],
            analysis: Analysis::default(),
            filters: Vec::new(),
            tests: Vec::new(),
            problem: None,
        }
    }

    fn src(&self, token: &Token) -> &'a str {
        &self.text[token.start..token.end]
    }

    fn is_bound(&self, name: &str) -> bool {
        self.scopes
            .iter()
            .any(|scope| scope.iter().any(|n| n == name))
    }

    fn bind(&mut self, name: &str) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(name.to_string());
        }
    }

    fn push_scope(&mut self, names: Vec<String>) {
        self.scopes.push(names);
    }

    fn pop_scope(&mut self) {
        if self.scopes.len() > 1 {
            self.scopes.pop();
        }
    }

    fn template(&mut self, tokens: &[Token]) {
        let mut idx = 0;
        while idx < tokens.len() {
            let end_kind = match tokens[idx].kind {
                Kind::VarStart => Kind::VarEnd,
                Kind::BlockStart => Kind::BlockEnd,
                _ => {
                    idx += 1;
                    continue;
                }
            };
            let start = idx + 1;
            let end = tokens[start..]
                .iter()
                .position(|token| token.kind == end_kind)
                .map_or(tokens.len(), |pos| start + pos);
            if end_kind == Kind::VarEnd {
                self.expr(&tokens[start..end]);
            } else {
                self.statement(&tokens[start..end]);
            }
            idx = end + 1;
        }
    }

    fn statement(&mut self, tokens: &[Token]) {
        let Some((keyword, rest)) = tokens.split_first() else {
            return;
        };
        match self.src(keyword) {
            "for" => self.for_statement(rest),
            "if" | "autoescape" => {
                self.expr(rest);
                self.push_scope(Vec::new());
            }
            "elif" => {
                self.pop_scope();
                self.push_scope(Vec::new());
                self.expr(rest);
            }
            "else" => {
                self.pop_scope();
                self.push_scope(Vec::new());
            }
            "set" => self.set_statement(rest),
            "with" => self.with_statement(rest),
            "filter" => {
                self.filter_chain(rest);
                self.push_scope(Vec::new());
            }
            "macro" => {
                if let Some((name, params)) = rest.split_first() {
                    let name = self.src(name).to_string();
                    self.bind(&name);
                    let mut names = self.params(params.get(1..).unwrap_or_default());
                    names.push("caller".to_string());
                    self.push_scope(names);
                }
            }
            "call" => {
                let mut names = Vec::new();
                let mut call = rest;
                if rest.first().is_some_and(|t| t.kind == Kind::Open(b'(')) {
                    let close = matching_close(rest, 0);
                    names = self.params(&rest[1..=close.min(rest.len() - 1)]);
                    call = rest.get(close + 1..).unwrap_or_default();
                }
                self.expr(call);
                names.push("caller".to_string());
                self.push_scope(names);
            }
            "block" => self.push_scope(vec!["super".to_string()]),
            "do" => self.expr(rest),
            "include" | "extends" | "import" | "from" => {
                if self.problem.is_none() {
                    let span_end = tokens.last().map_or(keyword.end, |token| token.end);
                    let problem = Problem::error(
                        "template-unsupported",
                        keyword.start,
                        span_end - keyword.start,
                        format!(
                            "`{}` is not supported in fetchflow templates",
                            self.src(keyword)
                        ),
                    )
                    .with_help("templates are self-contained; use a macro in the same template");
                    self.problem = Some(problem);
                }
            }
            name if name.starts_with("end") => self.pop_scope(),
            _ => self.expr(rest),
        }
    }

    fn for_statement(&mut self, tokens: &[Token]) {
        let in_idx = self
            .depth0_position(tokens, |scanner, token| scanner.src(token) == "in")
            .unwrap_or(tokens.len());
        let targets = self.idents(&tokens[..in_idx]);
        let rest = tokens.get(in_idx + 1..).unwrap_or_default();
        let rest = match rest.last() {
            Some(last) if self.src(last) == "recursive" => &rest[..rest.len() - 1],
            _ => rest,
        };
        let if_idx = self
            .depth0_position(rest, |scanner, token| scanner.src(token) == "if")
            .unwrap_or(rest.len());
        self.expr(&rest[..if_idx]);
        let mut names = targets;
        names.push("loop".to_string());
        self.push_scope(names);
        self.expr(rest.get(if_idx + 1..).unwrap_or_default());
    }

    fn set_statement(&mut self, tokens: &[Token]) {
        let split = self
            .depth0_position(tokens, |_, token| {
                matches!(token.kind, Kind::Assign | Kind::Pipe)
            })
            .unwrap_or(tokens.len());
        let target = &tokens[..split];
        let is_block = tokens.get(split).is_none_or(|t| t.kind == Kind::Pipe);
        let rest = tokens.get(split + 1..).unwrap_or_default();
        if is_block {
            if !rest.is_empty() {
                self.filter_chain(rest);
            }
        } else {
            self.expr(rest);
        }
        if target.iter().any(|token| token.kind == Kind::Dot) {
            // `{% set ns.attr = ... %}` assigns into an existing namespace: a lookup, not a binding.
            self.expr(target);
        } else {
            for name in self.idents(target) {
                self.bind(&name);
            }
        }
        if is_block {
            self.push_scope(Vec::new());
        }
    }

    fn with_statement(&mut self, tokens: &[Token]) {
        let mut names = Vec::new();
        for assignment in self.split_depth0(tokens, |token| token.kind == Kind::Comma) {
            let eq = assignment
                .iter()
                .position(|token| token.kind == Kind::Assign)
                .unwrap_or(assignment.len());
            names.extend(self.idents(&assignment[..eq]));
            self.expr(assignment.get(eq + 1..).unwrap_or_default());
        }
        self.push_scope(names);
    }

    /// `name(args) | name2 ...` of a filter block or a set block: the first name is a filter.
    fn filter_chain(&mut self, tokens: &[Token]) {
        if let Some(first) = tokens.first().filter(|token| token.kind == Kind::Ident) {
            self.filters.push(NameUse {
                name: self.src(first).to_string(),
                offset: first.start,
                len: first.end - first.start,
            });
            self.expr(&tokens[1..]);
        } else {
            self.expr(tokens);
        }
    }

    /// Parameter names of a macro or call block (tokens after the opening parenthesis); default
    /// values are scanned as expressions in the enclosing scope.
    fn params(&mut self, tokens: &[Token]) -> Vec<String> {
        let inner = match tokens.last() {
            Some(last) if last.kind == Kind::Close(b')') => &tokens[..tokens.len() - 1],
            _ => tokens,
        };
        let mut names = Vec::new();
        for param in self.split_depth0(inner, |token| token.kind == Kind::Comma) {
            if let Some(name) = param.first().filter(|token| token.kind == Kind::Ident) {
                names.push(self.src(name).to_string());
            }
            if param.get(1).is_some_and(|token| token.kind == Kind::Assign) {
                self.expr(&param[2..]);
            }
        }
        names
    }

    /// Identifiers of an assignment target (`a`, `a, b`, `(a, b)`).
    fn idents(&self, tokens: &[Token]) -> Vec<String> {
        tokens
            .iter()
            .filter(|token| token.kind == Kind::Ident)
            .map(|token| self.src(token).to_string())
            .collect()
    }

    fn depth0_position(
        &self,
        tokens: &[Token],
        pred: impl Fn(&Self, &Token) -> bool,
    ) -> Option<usize> {
        let mut depth = 0isize;
        for (idx, token) in tokens.iter().enumerate() {
            match token.kind {
                Kind::Open(_) => depth += 1,
                Kind::Close(_) => depth -= 1,
                _ if depth == 0 && pred(self, token) => return Some(idx),
                _ => {}
            }
        }
        None
    }

    fn split_depth0<'t>(
        &self,
        tokens: &'t [Token],
        pred: impl Fn(&Token) -> bool,
    ) -> Vec<&'t [Token]> {
        let mut parts = Vec::new();
        let mut depth = 0isize;
        let mut start = 0;
        for (idx, token) in tokens.iter().enumerate() {
            match token.kind {
                Kind::Open(_) => depth += 1,
                Kind::Close(_) => depth -= 1,
                _ if depth == 0 && pred(token) => {
                    parts.push(&tokens[start..idx]);
                    start = idx + 1;
                }
                _ => {}
            }
        }
        parts.push(&tokens[start..]);
        parts.retain(|part| !part.is_empty());
        parts
    }

    /// Records every context lookup, secret use, filter and test in an expression.
    fn expr(&mut self, tokens: &[Token]) {
        let mut idx = 0;
        while idx < tokens.len() {
            let token = &tokens[idx];
            idx += 1;
            if token.kind != Kind::Ident {
                continue;
            }
            let name = self.src(token);
            let prev = idx.checked_sub(2).map(|i| &tokens[i]);
            let prev_src = prev.map(|t| self.src(t));
            let name_use = || NameUse {
                name: name.to_string(),
                offset: token.start,
                len: token.end - token.start,
            };
            if prev.is_some_and(|t| t.kind == Kind::Dot) {
                continue;
            }
            if prev.is_some_and(|t| t.kind == Kind::Pipe) {
                self.filters.push(name_use());
                continue;
            }
            let after_is = prev_src == Some("is")
                || (prev_src == Some("not")
                    && idx.checked_sub(3).map(|i| self.src(&tokens[i])) == Some("is"));
            if after_is && !matches!(name, "not") {
                self.tests.push(name_use());
                continue;
            }
            if KEYWORDS.contains(&name)
                || tokens.get(idx).is_some_and(|t| t.kind == Kind::Assign)
                || self.is_bound(name)
                || GLOBAL_FUNCTIONS.contains(&name)
            {
                continue;
            }
            if name == SECRET_FUNCTION {
                idx = self.secret(tokens, idx - 1);
            } else {
                idx = self.reference(tokens, idx - 1);
            }
        }
    }

    /// Records a `secret` use starting at `tokens[at]`; returns the index after it.
    fn secret(&mut self, tokens: &[Token], at: usize) -> usize {
        let start = tokens[at].start;
        if tokens
            .get(at + 1)
            .is_none_or(|t| t.kind != Kind::Open(b'('))
        {
            self.analysis.secrets.push(SecretCall {
                name: None,
                offset: start,
                len: tokens[at].end - start,
            });
            return at + 1;
        }
        let close = matching_close(tokens, at + 1);
        let name = match (tokens.get(at + 2), close == at + 3) {
            (
                Some(Token {
                    kind: Kind::Str(value),
                    ..
                }),
                true,
            ) => Some(value.clone()),
            _ => None,
        };
        let end = tokens.get(close).map_or(self.text.len(), |t| t.end);
        self.analysis.secrets.push(SecretCall {
            name: name.clone(),
            offset: start,
            len: end - start,
        });
        if name.is_some() {
            close + 1
        } else {
            // Scan the arguments: a computed name can refer to the context.
            at + 1
        }
    }

    /// Records a reference starting at `tokens[at]`; returns the index after its path.
    fn reference(&mut self, tokens: &[Token], at: usize) -> usize {
        let root = &tokens[at];
        let mut path = Vec::new();
        let mut end = root.end;
        let mut idx = at + 1;
        loop {
            match (tokens.get(idx), tokens.get(idx + 1), tokens.get(idx + 2)) {
                (Some(dot), Some(attr), next)
                    if dot.kind == Kind::Dot
                        && attr.kind == Kind::Ident
                        && next.is_none_or(|t| t.kind != Kind::Open(b'(')) =>
                {
                    path.push(self.src(attr).to_string());
                    end = attr.end;
                    idx += 2;
                }
                (
                    Some(open),
                    Some(Token {
                        kind: Kind::Str(key),
                        ..
                    }),
                    Some(close),
                ) if open.kind == Kind::Open(b'[') && close.kind == Kind::Close(b']') => {
                    path.push(key.clone());
                    end = close.end;
                    idx += 3;
                }
                _ => break,
            }
        }
        self.analysis.references.push(Reference {
            root: self.src(root).to_string(),
            path,
            offset: root.start,
            len: end - root.start,
        });
        idx
    }
}

/// Index of the token closing the bracket opened at `tokens[open]` (or the last index).
fn matching_close(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0isize;
    for (idx, token) in tokens.iter().enumerate().skip(open) {
        match token.kind {
            Kind::Open(_) => depth += 1,
            Kind::Close(_) => {
                depth -= 1;
                if depth == 0 {
                    return idx;
                }
            }
            _ => {}
        }
    }
    tokens.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (root, path, spanned text) of every reference.
    fn refs(text: &str) -> Vec<(String, Vec<String>, &str)> {
        analyze(text)
            .unwrap()
            .references
            .into_iter()
            .map(|r| (r.root, r.path, &text[r.offset..r.offset + r.len]))
            .collect()
    }

    fn roots(text: &str) -> Vec<String> {
        analyze(text)
            .unwrap()
            .roots()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    fn reference(
        root: &str,
        path: &[&str],
        span: &'static str,
    ) -> (String, Vec<String>, &'static str) {
        (
            root.to_string(),
            path.iter().map(|p| p.to_string()).collect(),
            span,
        )
    }

    fn problem(text: &str) -> Problem {
        analyze(text).unwrap_err()
    }

    /// Scanner output alone (no fallback) must cover every root minijinja reports.
    fn assert_scanner_covers_minijinja(text: &str) {
        let env = compile_environment();
        let undeclared = env
            .template_from_str(text)
            .unwrap()
            .undeclared_variables(true);
        let mut scanner = Scanner::new(text, false);
        scanner.template(&tokenize(text, false));
        for dotted in &undeclared {
            let root = dotted.split('.').next().unwrap();
            let found = root == SECRET_FUNCTION
                || GLOBAL_FUNCTIONS.contains(&root)
                || scanner.analysis.references.iter().any(|r| r.root == root);
            assert!(found, "{text:?}: scanner missed `{dotted}`");
        }
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        let p = problem("ab {{ x");
        assert_eq!((p.code, p.offset, p.len), ("template-syntax", 3, 2));
        assert_eq!(p.message, "`{{` is never closed");
        let p = problem("ab {%- if x");
        assert_eq!((p.offset, p.len), (3, 3));
        let p = problem("line one\n\n  {{ a b }}");
        assert_eq!((p.code, p.offset, p.len), ("template-syntax", 17, 1));
        assert!(p.message.contains("unexpected identifier"), "{}", p.message);
        let p = problem("{{ 'abc }}");
        assert_eq!(p.code, "template-syntax");
        assert!(p.offset <= 10);
        let p = problem("text {% if x %}yes");
        assert_eq!(p.code, "template-syntax");
        assert!(p.message.contains("end of input"), "{}", p.message);
        let p = analyze_expression("record.x and (vars.y").unwrap_err();
        assert_eq!((p.code, p.offset), ("template-syntax", 19));
        let p = analyze_expression("a b").unwrap_err();
        assert_eq!((p.offset, p.len), (2, 1));
        let p = analyze_expression("üü").unwrap_err();
        assert_eq!((p.offset, p.len), (0, 2));
    }

    #[test]
    fn references_with_spans() {
        let text = r#"{{ vars.territory }} {{ record["primarycontactid.fullname"] }} {{ record.name | upper }} {{ id }} {{ now }} {{ operation.status }}"#;
        assert_eq!(
            refs(text),
            vec![
                reference("vars", &["territory"], "vars.territory"),
                reference(
                    "record",
                    &["primarycontactid.fullname"],
                    r#"record["primarycontactid.fullname"]"#
                ),
                reference("record", &["name"], "record.name"),
                reference("id", &[], "id"),
                reference("now", &[], "now"),
                reference("operation", &["status"], "operation.status"),
            ]
        );
        assert_scanner_covers_minijinja(text);
    }

    #[test]
    fn offsets_are_bytes_into_the_text() {
        let text = "Grüße {{- workflow.name -}} é";
        let analysis = analyze(text).unwrap();
        let r = &analysis.references[0];
        assert_eq!(&text[r.offset..r.offset + r.len], "workflow.name");
        assert_eq!(r.offset, "Grüße {{- ".len());
    }

    #[test]
    fn paths_stop_at_methods_and_computed_subscripts() {
        assert_eq!(
            refs("{{ vars.name.upper() }}{{ record.tags[0].x }}{{ record[vars.key] }}"),
            vec![
                reference("vars", &["name"], "vars.name"),
                reference("record", &["tags"], "record.tags"),
                reference("record", &[], "record"),
                reference("vars", &["key"], "vars.key"),
            ]
        );
    }

    #[test]
    fn names_bound_by_the_template_are_not_references() {
        let text = "{% set total = vars.base %}{% for a, b in record.pairs if a %}{{ a }}{{ b }}\
                    {{ loop.index }}{{ total }}{% else %}{{ b }}{% endfor %}{{ a }}\
                    {% macro m(x, y=vars.dflt) %}{{ x }}{{ y }}{{ caller() }}{% endmacro %}{{ m(1) }}\
                    {% with w = record.w %}{{ w }}{% endwith %}{{ w }}\
                    {% set block_var %}{{ id }}{% endset %}{{ block_var }}\
                    {% if true %}{% set inner = 1 %}{% endif %}{{ inner }}\
                    {% set ns = namespace(n=0) %}{% set ns.n = ns.n + 1 %}{{ ns.n }}";
        assert_eq!(
            roots(text),
            ["vars", "record", "b", "a", "w", "id", "inner"]
        );
        assert_scanner_covers_minijinja(text);
    }

    #[test]
    fn filters_tests_keywords_and_literals_are_not_references() {
        let text = "{{ record.x | default(vars.fallback) | replace('{{ a }}', \"b.c\") }}\
                    {% if record.y is defined and record.z is not none and not id %}{% endif %}\
                    {{ 'x.y' ~ \"{% z %}\" }}{{ [1, 2] | join(sep=', ') }}{{ true or none }}\
                    {{ range(3) | list }}{{ dict(a=1) }}";
        assert_eq!(
            refs(text),
            vec![
                reference("record", &["x"], "record.x"),
                reference("vars", &["fallback"], "vars.fallback"),
                reference("record", &["y"], "record.y"),
                reference("record", &["z"], "record.z"),
                reference("id", &[], "id"),
            ]
        );
        assert_scanner_covers_minijinja(text);
    }

    #[test]
    fn comments_and_raw_blocks_are_skipped() {
        let text = "{# {{ hidden }} #}{% raw %}{{ also.hidden }}{% endraw %}{%- raw -%} {{ x }} {%- endraw %}{{ shown }}";
        assert_eq!(refs(text), vec![reference("shown", &[], "shown")]);
        assert_scanner_covers_minijinja(text);
    }

    #[test]
    fn secret_calls_are_detected() {
        let text = "{{ secret('CALLBACK_SECRET') }} {{ secret(vars.name) }} {% set s = secret %}";
        let analysis = analyze(text).unwrap();
        let secrets: Vec<_> = analysis
            .secrets
            .iter()
            .map(|s| (s.name.as_deref(), &text[s.offset..s.offset + s.len]))
            .collect();
        assert_eq!(
            secrets,
            [
                (Some("CALLBACK_SECRET"), "secret('CALLBACK_SECRET')"),
                (None, "secret(vars.name)"),
                (None, "secret"),
            ]
        );
        assert_eq!(analysis.roots(), ["vars"]);
        assert!(!analysis.is_constant());
        assert_scanner_covers_minijinja(text);
    }

    #[test]
    fn expressions_are_analyzed_like_templates() {
        let text = "record.statecode == 0 and vars.enabled and record['a.b'] is defined";
        let analysis = analyze_expression(text).unwrap();
        let found: Vec<_> = analysis
            .references
            .iter()
            .map(|r| (r.dotted(), &text[r.offset..r.offset + r.len]))
            .collect();
        assert_eq!(
            found,
            [
                ("record.statecode".to_string(), "record.statecode"),
                ("vars.enabled".to_string(), "vars.enabled"),
                ("record.a.b".to_string(), "record['a.b']"),
            ]
        );
    }

    #[test]
    fn unknown_filters_and_tests_are_problems() {
        let p = problem("{{ record.name | uper }}");
        assert_eq!(
            (p.code, p.offset, p.len),
            ("template-unknown-filter", 17, 4)
        );
        assert_eq!(p.message, "unknown filter `uper`");
        assert_eq!(p.help.as_deref(), Some("did you mean `upper`?"));
        let p = problem("{% filter nope %}x{% endfilter %}");
        assert_eq!((p.code, p.offset), ("template-unknown-filter", 10));
        let p = analyze_expression("record.x is defind").unwrap_err();
        assert_eq!((p.code, p.offset, p.len), ("template-unknown-test", 12, 6));
        assert_eq!(p.help.as_deref(), Some("did you mean `defined`?"));
        assert!(analyze("{{ x | tojson }}{{ x | lower }}{{ x is odd }}").is_ok());
    }

    #[test]
    fn includes_and_imports_are_unsupported() {
        for text in [
            "{% include 'other' %}",
            "a {% import 'm' as m %}",
            "{% extends 'base' %}",
        ] {
            let p = problem(text);
            assert_eq!(p.code, "template-unsupported", "{text}");
            assert!(text[p.offset..].starts_with(|c: char| c.is_ascii_lowercase()));
        }
    }

    #[test]
    fn scanner_agrees_with_minijinja_on_tricky_templates() {
        for text in [
            "{{ a.b.c }}{{ a['b'].c }}{{ d[e] }}",
            "{% for x in x %}{{ x }}{% endfor %}",
            "{% for item in items recursive %}{{ loop(item.children) }}{% endfor %}",
            "{% call(user) m(users) %}{{ user }}{{ outer }}{% endcall %}",
            "{{ {'k': v, w: 1} }}{{ (p, q) }}{{ f(*args, **kw) }}",
            "{% if a %}{% elif b %}{% set c = 1 %}{% else %}{{ c }}{% endif %}",
            "{% autoescape true %}{{ z }}{% endautoescape %}",
            "{% block body %}{{ super() }}{{ y }}{% endblock %}",
            "{{ x if cond else other }}{{ -n }}{{ m.0 }}{{ 1.5e3 + k }}",
        ] {
            assert_scanner_covers_minijinja(text);
        }
    }

    /// Random templates built from every construct the scanner handles: whatever minijinja
    /// accepts, the scanner alone must find every root minijinja finds.
    #[test]
    fn scanner_covers_minijinja_on_generated_templates() {
        struct Gen(u64);
        impl Gen {
            fn pick<'p>(&mut self, items: &[&'p str]) -> &'p str {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                items[(self.0 % items.len() as u64) as usize]
            }
            fn expr(&mut self, depth: u32) -> String {
                let name =
                    self.pick(&["a", "b", "record", "vars", "loop", "x", "caller", "secret"]);
                if depth == 0 {
                    return name.to_string();
                }
                let (e1, e2) = (self.expr(depth - 1), self.expr(depth - 1));
                match self.pick(&[
                    "attr", "item", "filter", "test", "concat", "call", "lit", "list", "map", "if",
                    "not",
                ]) {
                    "attr" => format!("{e1}.name"),
                    "item" => format!("{e1}['k.j']"),
                    "filter" => format!("{e1} | default({e2}) | upper"),
                    "test" => format!("{e1} is not defined"),
                    "concat" => format!("({e1} ~ {e2})"),
                    "call" => format!("{name}({e1}, k={e2})"),
                    "lit" => "'{{ a }}.b'".to_string(),
                    "list" => format!("[{e1}, 1, {e2}]"),
                    "map" => format!("{{'a': {e1}, {e2}: 2}}"),
                    "if" => format!("{e1} if {e2} else 3"),
                    _ => format!("not {e1}"),
                }
            }
        }
        fn body(generator: &mut Gen, depth: u32) -> String {
            let mut text = String::new();
            for _ in 0..3 {
                let e = generator.expr(2);
                let n = generator.pick(&["a", "b", "x", "c"]);
                let inner = if depth == 0 {
                    format!("{{{{ {n} }}}}")
                } else {
                    body(generator, depth - 1)
                };
                let segment = match generator.pick(&[
                    "emit", "set", "for", "if", "macro", "with", "text", "comment", "raw",
                    "setblock", "call",
                ]) {
                    "emit" => format!("{{{{ {e} }}}}"),
                    "set" => format!("{{% set {n} = {e} %}}"),
                    "for" => format!(
                        "{{% for {n}, y in {e} if {n} %}}{inner}{{% else %}}{inner}{{% endfor %}}"
                    ),
                    "if" => format!(
                        "{{%- if {e} -%}}{inner}{{% elif {n} %}}{inner}{{% else %}}{inner}{{% endif %}}"
                    ),
                    "macro" => format!("{{% macro m({n}, z={e}) %}}{inner}{{% endmacro %}}"),
                    "with" => format!("{{% with {n} = {e} %}}{inner}{{% endwith %}}"),
                    "text" => "text { } %".to_string(),
                    "comment" => format!("{{# {{{{ {e} }}}} #}}"),
                    "raw" => format!("{{% raw %}}{{{{ {e} }}}}{{% endraw %}}"),
                    "setblock" => format!("{{% set {n} | trim %}}{inner}{{% endset %}}"),
                    _ => format!("{{% call({n}) m({e}) %}}{inner}{{% endcall %}}"),
                };
                text.push_str(&segment);
            }
            text
        }
        let mut generator = Gen(0x2545_f491_4f6c_dd1d);
        let env = compile_environment();
        let mut checked = 0;
        for _ in 0..500 {
            let text = body(&mut generator, 2);
            if env.template_from_str(&text).is_ok() {
                assert_scanner_covers_minijinja(&text);
                checked += 1;
            }
        }
        assert!(
            checked > 100,
            "only {checked} generated templates were valid"
        );
    }

    #[test]
    fn constant_templates_have_no_references() {
        assert!(analyze("plain text").unwrap().is_constant());
        assert!(
            analyze("{% for i in range(3) %}{{ i }}{% endfor %}")
                .unwrap()
                .is_constant()
        );
    }
}
