//! Unicode case- and accent-insensitive text for the local org: the `ff_ci` collation (Dataverse's
//! default English collation, Latin1_General_CI_AI) and the SQL functions `ff_like` (T-SQL
//! `LIKE` with `%`, `_`, `[..]`, `[^..]`) and `ff_fold`, registered on every connection.
//!
//! Folding: full Unicode lower-casing, then Latin letters of Latin-1 Supplement and Latin
//! Extended-A lose their diacritics (`é` → `e`, `ß` → `ss`, `æ` → `ae`, `ø` → `o`, `œ` → `oe`)
//! and combining marks (U+0300–U+036F) are dropped. Two strings compare as their folded
//! character sequences compare, code point by code point; strings that fold alike are equal
//! (so `=` , `IN`, `DISTINCT` and `GROUP BY` treat `Café` and `CAFE` as one value), and queries
//! make their order deterministic by appending the primary key, not by a collation tie-break.

use std::cmp::Ordering;
use std::str::Chars;
use std::sync::Arc;

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Error};

use crate::org::local::COLLATION;

/// Registers the collation and functions on one connection.
pub(crate) fn register(connection: &Connection) -> rusqlite::Result<()> {
    connection.create_collation(COLLATION, compare)?;
    let flags = FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_UTF8;
    connection.create_scalar_function("ff_like", 2, flags, like_function)?;
    connection.create_scalar_function("ff_fold", 1, flags, |context| {
        Ok(match context.get_raw(0) {
            ValueRef::Text(bytes) => Some(fold(&String::from_utf8_lossy(bytes))),
            _ => None,
        })
    })?;
    Ok(())
}

/// Compares two strings as the `ff_ci` collation does.
pub(crate) fn compare(left: &str, right: &str) -> Ordering {
    if left.is_ascii() && right.is_ascii() {
        let left = left.bytes().map(|byte| byte.to_ascii_lowercase());
        let right = right.bytes().map(|byte| byte.to_ascii_lowercase());
        return left.cmp(right);
    }
    Folded::new(left).cmp(Folded::new(right))
}

/// The folded form of a string (lower-case, Latin diacritics removed).
pub(crate) fn fold(text: &str) -> String {
    Folded::new(text).collect()
}

/// Base letters of U+0100..=U+017F (Latin Extended-A) once lower-cased; `*` marks the two
/// ligatures that fold to two letters (`ĳ` → `ij`, `œ` → `oe`).
const EXTENDED_A: &[u8; 128] = b"aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiii**jjkkkllllllllllnnnnnnnnnoooooo**rrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";

/// Appends the folded form of one lower-case character to `out`.
fn strip(c: char, out: &mut Pending) {
    let code = u32::from(c);
    match code {
        0x0300..=0x036F => {}
        0x00DF => out.push_str("ss"),
        0x00E0..=0x00E5 => out.push('a'),
        0x00E6 => out.push_str("ae"),
        0x00E7 => out.push('c'),
        0x00E8..=0x00EB => out.push('e'),
        0x00EC..=0x00EF => out.push('i'),
        0x00F0 => out.push('d'),
        0x00F1 => out.push('n'),
        0x00F2..=0x00F6 | 0x00F8 => out.push('o'),
        0x00F9..=0x00FC => out.push('u'),
        0x00FD | 0x00FF => out.push('y'),
        0x00FE => out.push_str("th"),
        0x0132 | 0x0133 => out.push_str("ij"),
        0x0152 | 0x0153 => out.push_str("oe"),
        0x0100..=0x017F => {
            let index = usize::try_from(code - 0x0100).unwrap_or(0);
            out.push(char::from(EXTENDED_A[index]));
        }
        _ => out.push(c),
    }
}

/// Up to a few folded characters waiting to be yielded.
#[derive(Clone, Default)]
struct Pending {
    chars: [char; 8],
    len: u8,
    pos: u8,
}

impl Pending {
    fn push(&mut self, c: char) {
        if usize::from(self.len) < self.chars.len() {
            self.chars[usize::from(self.len)] = c;
            self.len += 1;
        }
    }

    fn push_str(&mut self, text: &str) {
        text.chars().for_each(|c| self.push(c));
    }

    fn next(&mut self) -> Option<char> {
        (self.pos < self.len).then(|| {
            let c = self.chars[usize::from(self.pos)];
            self.pos += 1;
            c
        })
    }
}

/// The folded characters of a string, without allocating.
#[derive(Clone)]
pub(crate) struct Folded<'a> {
    chars: Chars<'a>,
    pending: Pending,
}

impl<'a> Folded<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Folded {
            chars: text.chars(),
            pending: Pending::default(),
        }
    }
}

impl Iterator for Folded<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        loop {
            if let Some(c) = self.pending.next() {
                return Some(c);
            }
            let c = self.chars.next()?;
            if c.is_ascii() {
                return Some(c.to_ascii_lowercase());
            }
            self.pending = Pending::default();
            for lower in c.to_lowercase() {
                strip(lower, &mut self.pending);
            }
        }
    }
}

/// One element of a compiled LIKE pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `%`: any run of characters.
    Many,
    /// `_`: any one character.
    One,
    /// A literal (folded) character.
    Char(char),
    /// `[..]` / `[^..]`: one character in (or not in) the folded ranges.
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A T-SQL LIKE pattern, folded, compiled once per statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles a pattern. An unclosed `[` is a literal `[`.
    pub(crate) fn new(pattern: &str) -> Pattern {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut index = 0;
        while index < chars.len() {
            let c = chars[index];
            index += 1;
            match c {
                '%' => {
                    if tokens.last() != Some(&Token::Many) {
                        tokens.push(Token::Many);
                    }
                }
                '_' => tokens.push(Token::One),
                '[' => match chars[index..].iter().position(|&c| c == ']') {
                    Some(close) => {
                        tokens.push(set(&chars[index..index + close]));
                        index += close + 1;
                    }
                    None => tokens.push(Token::Char('[')),
                },
                c => {
                    let mut buffer = [0u8; 4];
                    for folded in Folded::new(c.encode_utf8(&mut buffer)) {
                        tokens.push(Token::Char(folded));
                    }
                }
            }
        }
        Pattern { tokens }
    }

    /// Whether `text` matches the whole pattern (case- and accent-insensitively).
    ///
    /// Iterative with one backtrack point (the last `%`): O(text × pattern), never exponential.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let tokens = &self.tokens;
        let mut text_at = Folded::new(text);
        let mut token = 0;
        // The position after the last `%` and the text position it is currently matched up to.
        let mut star: Option<(usize, Folded<'_>)> = None;
        loop {
            let mut lookahead = text_at.clone();
            let next = lookahead.next();
            match (tokens.get(token), next) {
                (Some(Token::Many), _) => {
                    token += 1;
                    star = Some((token, text_at.clone()));
                    continue;
                }
                (Some(single), Some(c)) if single_matches(single, c) => {
                    token += 1;
                    text_at = lookahead;
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            // Mismatch: let the last `%` swallow one more character, or fail.
            match &mut star {
                Some((star_token, star_text)) => {
                    if star_text.next().is_none() {
                        return false;
                    }
                    token = *star_token;
                    text_at = star_text.clone();
                }
                None => return false,
            }
        }
    }
}

fn single_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Many => false,
        Token::One => true,
        Token::Char(expected) => *expected == c,
        Token::Set { negated, ranges } => {
            ranges.iter().any(|&(low, high)| low <= c && c <= high) != *negated
        }
    }
}

/// The body of `[..]` (without brackets): `^` negates, `a-f` is a range, a leading or trailing
/// `-` is literal. Characters are folded, so `[A-F]` and `[a-f]` are the same set.
fn set(body: &[char]) -> Token {
    let (negated, body) = match body.split_first() {
        Some(('^', rest)) => (true, rest),
        _ => (false, body),
    };
    let fold_one = |c: char| {
        let mut buffer = [0u8; 4];
        Folded::new(c.encode_utf8(&mut buffer)).next().unwrap_or(c)
    };
    let mut ranges = Vec::new();
    let mut index = 0;
    while index < body.len() {
        let low = body[index];
        if index + 2 < body.len() && body[index + 1] == '-' {
            let (low, high) = (fold_one(low), fold_one(body[index + 2]));
            ranges.push((low.min(high), low.max(high)));
            index += 3;
        } else {
            let mut buffer = [0u8; 4];
            for folded in Folded::new(low.encode_utf8(&mut buffer)) {
                ranges.push((folded, folded));
            }
            index += 1;
        }
    }
    Token::Set { negated, ranges }
}

/// `ff_like(value, pattern)`: NULL when either is NULL, else 1 or 0.
fn like_function(context: &mut Context<'_>) -> rusqlite::Result<Option<bool>> {
    let Some(value) = text_of(context.get_raw(0)) else {
        return Ok(None);
    };
    if matches!(context.get_raw(1), ValueRef::Null) {
        return Ok(None);
    }
    let pattern: Arc<Pattern> = context.get_or_create_aux(1, |raw| {
        text_of(raw)
            .map(|text| Pattern::new(&text))
            .ok_or(Error::InvalidQuery)
    })?;
    Ok(Some(pattern.matches(&value)))
}

/// A SQL value as text (NULL → `None`).
fn text_of(raw: ValueRef<'_>) -> Option<std::borrow::Cow<'_, str>> {
    match raw {
        ValueRef::Null => None,
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(String::from_utf8_lossy(bytes)),
        ValueRef::Integer(number) => Some(number.to_string().into()),
        ValueRef::Real(number) => Some(number.to_string().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_a_table_covers_the_block() {
        assert_eq!(
            fold("ĀăĆčĎđĒěĞģĤħĨıĲĵĶĸĹłŃŋŌőŒŕŘśŠţŦũŰųŴŶŸŹžſ"),
            "aaccddeegghhiiijjkkllnnoooerrssttuuuwyyzzs"
        );
    }

    #[test]
    fn folds_case_and_accents() {
        for (input, folded) in [
            ("Café", "cafe"),
            ("STRASSE", "strasse"),
            ("Straße", "strasse"),
            ("Æsir", "aesir"),
            ("Øresund", "oresund"),
            ("ÉCOLE", "ecole"),
            ("Ærøskøbing", "aeroskobing"),
            ("Œuvre", "oeuvre"),
            ("Łódź", "lodz"),
            ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),
            ("e\u{301}", "e"),
        ] {
            assert_eq!(fold(input), folded, "{input}");
        }
    }

    #[test]
    fn collation_orders_and_equates_folded_strings() {
        assert_eq!(compare("apple", "APPLE"), Ordering::Equal);
        assert_eq!(compare("Café", "cafe"), Ordering::Equal);
        assert_eq!(compare("Straße", "STRASSE"), Ordering::Equal);
        assert_eq!(compare("a", "B"), Ordering::Less);
        assert_eq!(compare("Zebra", "apple"), Ordering::Greater);
        assert_eq!(compare("ábc", "abd"), Ordering::Less);
        assert_eq!(compare("Ábd", "abc"), Ordering::Greater);
        assert_eq!(compare("ab", "abc"), Ordering::Less);
        assert_eq!(compare("", "a"), Ordering::Less);
        let mut words = [
            "émile",
            "Zoë",
            "zoe",
            "Adam",
            "éclair",
            "Eve",
            "ångström",
            "bob",
        ];
        words.sort_by(|a, b| compare(a, b));
        assert_eq!(words[..3], ["Adam", "ångström", "bob"]);
        assert_eq!(words[3..6], ["éclair", "émile", "Eve"]);
    }

    #[test]
    fn collation_in_sqlite_sorts_and_compares() {
        let connection = Connection::open_in_memory().unwrap();
        register(&connection).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE t (v TEXT COLLATE ff_ci);
                 INSERT INTO t VALUES ('b'), ('Á'), ('a2'), ('C'), (NULL), ('ä1');",
            )
            .unwrap();
        let mut statement = connection.prepare("SELECT v FROM t ORDER BY v").unwrap();
        let order: Vec<Option<String>> = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let expected = [
            None,
            Some("Á"),
            Some("ä1"),
            Some("a2"),
            Some("b"),
            Some("C"),
        ];
        assert_eq!(order, expected.map(|v| v.map(str::to_owned)));
        let n: i64 = connection
            .query_row("SELECT count(*) FROM t WHERE v = 'a'", [], |row| row.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    fn like(value: &str, pattern: &str) -> bool {
        Pattern::new(pattern).matches(value)
    }

    #[test]
    fn like_matches_like_t_sql() {
        let table: &[(&str, &str, bool)] = &[
            ("Contoso", "Contoso", true),
            ("Contoso", "contoso", true),
            ("Contoso", "CON%", true),
            ("Contoso", "%oso", true),
            ("Contoso", "%nt%", true),
            ("Contoso", "%x%", false),
            ("Contoso", "C_ntoso", true),
            ("Contoso", "C_toso", false),
            ("", "%", true),
            ("", "_", false),
            ("", "", true),
            ("a", "", false),
            ("abc", "a%%c", true),
            ("50%", "50[%]", true),
            ("500", "50[%]", false),
            ("a_b", "a[_]b", true),
            ("axb", "a[_]b", false),
            ("[x]", "[[]x]", true),
            ("b", "[a-c]", true),
            ("B", "[a-c]", true),
            ("d", "[a-c]", false),
            ("d", "[^a-c]", true),
            ("b", "[^a-c]", false),
            ("Ç", "[a-c]", true),
            ("x", "[xyz]", true),
            ("-", "[a-]", true),
            ("]", "]", true),
            ("a[b", "a[b", true),
            ("Émile", "emile", true),
            ("émile", "EMI%", true),
            ("Straße", "strasse", true),
            ("CAFÉ", "%é", true),
            ("mississippi", "%iss%ipp_", true),
            ("mississippi", "m%s%s%s%z", false),
            ("O'Brien", "O'%", true),
        ];
        for &(value, pattern, expected) in table {
            assert_eq!(like(value, pattern), expected, "{value:?} LIKE {pattern:?}");
        }
    }

    #[test]
    fn like_has_no_backtracking_blow_up() {
        let value = "a".repeat(10_000);
        let pattern = format!("{}b", "%a".repeat(50));
        let started = std::time::Instant::now();
        assert!(!like(&value, &pattern));
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn like_function_in_sqlite() {
        let connection = Connection::open_in_memory().unwrap();
        register(&connection).unwrap();
        let query = |value: &str, pattern: &str| -> Option<bool> {
            connection
                .query_row("SELECT ff_like(?1, ?2)", [value, pattern], |row| row.get(0))
                .unwrap()
        };
        assert_eq!(query("Ångström", "ang%"), Some(true));
        assert_eq!(query("abc", "[^a]%"), Some(false));
        let null: Option<bool> = connection
            .query_row("SELECT ff_like(NULL, 'a')", [], |row| row.get(0))
            .unwrap();
        assert_eq!(null, None);
        let folded: String = connection
            .query_row("SELECT ff_fold('ÉCOLE')", [], |row| row.get(0))
            .unwrap();
        assert_eq!(folded, "ecole");
    }
}
