//! PromQL tokenizer.
//!
//! Owns the byte-level grammar: identifiers (metric names may contain `:`),
//! numbers (decimal, exponent, hex, `Inf`/`NaN`), durations (`5m`, `1h30m`,
//! `1.5` is a number, `1m5` is an error), strings in `"`, `'` (Go escapes)
//! and backticks (raw), operators and punctuation; `#` starts a comment.
//! Every token records its byte offset so parse errors can point at it.
//! Keywords are not recognised here: they are identifiers the parser
//! interprets by context (`by` can be a label name).

use crate::error::{ParseError, ParseErrorKind};

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Number(f64),
    /// Milliseconds.
    Duration(i64),
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    At,
    Assign,
    EqlC,
    Neq,
    ReMatch,
    ReNoMatch,
    Lss,
    Lte,
    Gtr,
    Gte,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eof,
}

impl Tok {
    /// How the token is named in "unexpected ..." messages.
    pub(crate) fn describe(&self, src: &str) -> String {
        match self {
            Tok::Eof => "end of input".to_string(),
            Tok::Ident(s) => format!("identifier {s:?}"),
            Tok::Number(_) => format!("number {src:?}"),
            Tok::Duration(_) => format!("duration {src:?}"),
            Tok::Str(_) => format!("string {src}"),
            _ => format!("{src:?}"),
        }
    }
}

/// A token and its byte span in the input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Splits `input` into tokens, ending with [`Tok::Eof`].
pub(crate) fn lex(input: &str) -> Result<Vec<Token>, ParseError> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos: usize, kind: ParseErrorKind| ParseError::new(input, pos, kind);
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let two = |s: &[u8]| b[i..].starts_with(s);
        let (tok, len) = match c {
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b',' => (Tok::Comma, 1),
            b':' => (Tok::Colon, 1),
            b'@' => (Tok::At, 1),
            b'+' => (Tok::Add, 1),
            b'-' => (Tok::Sub, 1),
            b'*' => (Tok::Mul, 1),
            b'/' => (Tok::Div, 1),
            b'%' => (Tok::Mod, 1),
            b'^' => (Tok::Pow, 1),
            b'=' if two(b"==") => (Tok::EqlC, 2),
            b'=' if two(b"=~") => (Tok::ReMatch, 2),
            b'=' => (Tok::Assign, 1),
            b'!' if two(b"!=") => (Tok::Neq, 2),
            b'!' if two(b"!~") => (Tok::ReNoMatch, 2),
            b'<' if two(b"<=") => (Tok::Lte, 2),
            b'<' => (Tok::Lss, 1),
            b'>' if two(b">=") => (Tok::Gte, 2),
            b'>' => (Tok::Gtr, 1),
            b'"' | b'\'' | b'`' => {
                let (s, len) = lex_string(input, i).map_err(|(p, k)| err(p, k))?;
                (Tok::Str(s), len)
            }
            b'0'..=b'9' | b'.' => lex_number(input, i).map_err(|k| err(start, k))?,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':')
                {
                    j += 1;
                }
                let word = &input[i..j];
                let tok = if word.eq_ignore_ascii_case("inf") {
                    Tok::Number(f64::INFINITY)
                } else if word.eq_ignore_ascii_case("nan") {
                    Tok::Number(f64::NAN)
                } else {
                    Tok::Ident(word.to_string())
                };
                (tok, j - i)
            }
            _ => {
                let ch = input[i..].chars().next().unwrap_or('\0');
                return Err(err(i, ParseErrorKind::BadChar(ch)));
            }
        };
        i += len;
        out.push(Token { tok, start, end: i });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: b.len(),
        end: b.len(),
    });
    Ok(out)
}

/// Lexes a number or a duration starting at `i`; returns the token and its length.
fn lex_number(input: &str, i: usize) -> Result<(Tok, usize), ParseErrorKind> {
    let b = input.as_bytes();
    // Hex integer.
    if b[i..].len() > 2 && b[i] == b'0' && (b[i + 1] == b'x' || b[i + 1] == b'X') {
        let mut j = i + 2;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        let text = &input[i..j];
        let v = u64::from_str_radix(&text[2..], 16)
            .map_err(|_| ParseErrorKind::BadNumber(text.to_string()))?;
        return Ok((Tok::Number(v as f64), j - i));
    }
    // Duration: digits followed by a unit letter.
    let mut j = i;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j > i && j < b.len() && matches!(b[j], b's' | b'm' | b'h' | b'd' | b'w' | b'y') {
        let mut k = j;
        while k < b.len() && (b[k].is_ascii_alphanumeric()) {
            k += 1;
        }
        let text = &input[i..k];
        let ms =
            parse_duration(text).ok_or_else(|| ParseErrorKind::BadDuration(text.to_string()))?;
        return Ok((Tok::Duration(ms), k - i));
    }
    // Decimal float: digits [. digits] [e [+-] digits].
    let mut j = i;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j < b.len() && b[j] == b'.' {
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
        let mut k = j + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        if k < b.len() && b[k].is_ascii_digit() {
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    // A number glued to letters (`1x`, `5mm`) is an error, not two tokens.
    let mut end = j;
    while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
        end += 1;
    }
    let text = &input[i..end];
    if end != j || text == "." {
        return Err(ParseErrorKind::BadNumber(text.to_string()));
    }
    let v: f64 = text
        .parse()
        .map_err(|_| ParseErrorKind::BadNumber(text.to_string()))?;
    Ok((Tok::Number(v), j - i))
}

/// Parses a Prometheus duration (`1h30m`, `500ms`, `2d`) into milliseconds.
/// Units: `y`=365d, `w`, `d`, `h`, `m`, `s`, `ms`, each at most once, in this order.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut next_unit = 0;
    if b.is_empty() {
        return None;
    }
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return None;
        }
        let n: i64 = s[st..i].parse().ok()?;
        let ust = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ust..i];
        let pos = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        total = total.checked_add(n.checked_mul(UNITS[pos].1)?)?;
        next_unit = pos + 1;
    }
    Some(total)
}

/// Lexes a quoted string at `i`; returns the unescaped value and the length.
fn lex_string(input: &str, i: usize) -> Result<(String, usize), (usize, ParseErrorKind)> {
    let b = input.as_bytes();
    let q = b[i];
    let mut j = i + 1;
    let mut out = String::new();
    if q == b'`' {
        while j < b.len() && b[j] != b'`' {
            j += 1;
        }
        if j >= b.len() {
            return Err((i, ParseErrorKind::UnterminatedString));
        }
        return Ok((input[i + 1..j].to_string(), j + 1 - i));
    }
    loop {
        let Some(ch) = input[j..].chars().next() else {
            return Err((i, ParseErrorKind::UnterminatedString));
        };
        if ch == '\n' {
            return Err((i, ParseErrorKind::UnterminatedString));
        }
        if ch as u32 == q as u32 {
            return Ok((out, j + 1 - i));
        }
        if ch != '\\' {
            out.push(ch);
            j += ch.len_utf8();
            continue;
        }
        let esc_start = j;
        j += 1;
        let Some(e) = input[j..].chars().next() else {
            return Err((i, ParseErrorKind::UnterminatedString));
        };
        j += e.len_utf8();
        let bad = |j: usize| {
            let mut end = j.min(input.len());
            while !input.is_char_boundary(end) {
                end -= 1;
            }
            (
                esc_start,
                ParseErrorKind::BadEscape(input[esc_start..end].to_string()),
            )
        };
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' | '\'' if e as u32 == q as u32 => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex = input.get(j..j + n).ok_or_else(|| bad(j + n))?;
                let v = u32::from_str_radix(hex, 16).map_err(|_| bad(j + n))?;
                j += n;
                if e == 'x' {
                    // Go treats \xNN as a raw byte; we accept ASCII only.
                    if v > 0x7f {
                        return Err(bad(j));
                    }
                }
                out.push(char::from_u32(v).ok_or_else(|| bad(j))?);
            }
            '0'..='7' => {
                let oct = input.get(j - 1..j + 2).ok_or_else(|| bad(j + 2))?;
                let v = u32::from_str_radix(oct, 8).map_err(|_| bad(j + 2))?;
                j += 2;
                if v > 0x7f {
                    return Err(bad(j));
                }
                out.push(char::from_u32(v).ok_or_else(|| bad(j))?);
            }
            _ => return Err(bad(j)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(
            toks("1.5e3 0x1F .5"),
            vec![
                Tok::Number(1500.0),
                Tok::Number(31.0),
                Tok::Number(0.5),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("5m 1h30m 500ms"),
            vec![
                Tok::Duration(300_000),
                Tok::Duration(5_400_000),
                Tok::Duration(500),
                Tok::Eof
            ]
        );
        assert!(lex("1m1h").is_err());
        assert!(lex("5x").is_err());
        assert!(matches!(toks("Inf")[0], Tok::Number(v) if v.is_infinite()));
    }

    #[test]
    fn strings_and_operators() {
        assert_eq!(
            toks(r#"a:b{c=~"x\"y"} != 'q\n' `r\n`"#),
            vec![
                Tok::Ident("a:b".into()),
                Tok::LBrace,
                Tok::Ident("c".into()),
                Tok::ReMatch,
                Tok::Str("x\"y".into()),
                Tok::RBrace,
                Tok::Neq,
                Tok::Str("q\n".into()),
                Tok::Str("r\\n".into()),
                Tok::Eof
            ]
        );
        assert!(lex("\"abc").is_err());
        // Escapes running into multi-byte characters are errors, not panics.
        assert!(lex("\"\\xé\"").is_err());
        assert!(lex("\"\\uéé\"").is_err());
    }
}
