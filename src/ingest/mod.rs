//! Text ingest formats: Influx line protocol ([`lineproto`]) and
//! OpenMetrics / Prometheus text ([`openmetrics`]).
//!
//! This module owns turning request or file bodies into borrowed points; it
//! does not resolve series or touch storage (the importer in `cli::import` and
//! the HTTP handlers do that).
//!
//! Invariants shared by both parsers:
//! - A body is parsed line by line; a malformed line is reported with its
//!   1-based line number and parsing continues with the next line, so a bad
//!   line never loses its neighbours.
//! - Parsing allocates nothing per line in the steady state: names and label
//!   values are handed out as [`Text`] views into the body, unescaped only on
//!   request (and then only when they contain an escape).
//! - Timestamps are converted to milliseconds since the Unix epoch before a
//!   point is handed out.

use std::borrow::Cow;
use std::fmt;

pub mod lineproto;
pub mod openmetrics;
pub mod remote_write;
pub mod resolver;

/// How many line errors a [`ParseSummary`] keeps verbatim; the rest are only
/// counted. Enough to show a user what is wrong without letting a garbage
/// file of millions of lines grow the summary without bound.
pub const DEFAULT_MAX_ERRORS: usize = 16;

/// The escape convention of a [`Text`]'s raw bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaping {
    /// Line protocol names and tag values: `\,` `\ ` `\=` `\\` stand for the
    /// character after the backslash; any other backslash is literal.
    LineProtocol,
    /// OpenMetrics label values and HELP text: `\\` `\"` `\n`; any other
    /// backslash is literal.
    OpenMetrics,
}

/// A name or value as it appears in the body, unescaped lazily.
///
/// `raw` is the exact input text (still escaped); [`Text::unescape`] returns
/// the value it denotes and allocates only when `raw` contains an escape.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text<'a> {
    raw: &'a str,
    escaped: bool,
    escaping: Escaping,
}

impl<'a> Text<'a> {
    pub(crate) fn new(raw: &'a str, escaped: bool, escaping: Escaping) -> Self {
        Self {
            raw,
            escaped,
            escaping,
        }
    }

    /// The input text, escapes included.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether `raw` contains a backslash (so [`Text::unescape`] may differ).
    pub fn has_escapes(&self) -> bool {
        self.escaped
    }

    /// The denoted value.
    pub fn unescape(&self) -> Cow<'a, str> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        let mut out = String::with_capacity(self.raw.len());
        self.unescape_into(&mut out);
        Cow::Owned(out)
    }

    /// Appends the denoted value to `out` (no allocation beyond `out`'s).
    pub fn unescape_into(&self, out: &mut String) {
        if !self.escaped {
            out.push_str(self.raw);
            return;
        }
        let mut chars = self.raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let rest = chars.as_str();
            match (self.escaping, rest.chars().next()) {
                (Escaping::LineProtocol, Some(n @ (',' | ' ' | '=' | '\\'))) => {
                    out.push(n);
                    chars.next();
                }
                (Escaping::OpenMetrics, Some(n @ ('\\' | '"'))) => {
                    out.push(n);
                    chars.next();
                }
                (Escaping::OpenMetrics, Some('n')) => {
                    out.push('\n');
                    chars.next();
                }
                _ => out.push('\\'),
            }
        }
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.unescape(), f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.unescape())
    }
}

/// A byte range of the current line, kept by a parser between lines so the
/// per-line vectors hold no borrows and can be reused.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
    pub(crate) escaped: bool,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize, escaped: bool) -> Self {
        // Lines are at most `u32::MAX` bytes: `split_lines` rejects longer ones.
        Self {
            start: start as u32,
            end: end as u32,
            escaped,
        }
    }

    pub(crate) fn text<'a>(&self, line: &'a str, escaping: Escaping) -> Text<'a> {
        Text::new(
            &line[self.start as usize..self.end as usize],
            self.escaped,
            escaping,
        )
    }
}

/// The longest line a parser accepts. Longer lines are rejected (spans are
/// `u32`), which also bounds the importer's block buffer.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Counts of one parse call, plus the first errors verbatim.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParseSummary {
    /// Lines seen, including blank lines and comments (so a caller feeding a
    /// file block by block knows the next block's first line number).
    pub lines_seen: u64,
    /// Lines that yielded a point (or were valid metadata).
    pub lines_accepted: u64,
    /// Numeric samples handed to the sink.
    pub samples: u64,
    /// Lines rejected as malformed.
    pub rejected_lines: u64,
    /// The first rejected lines' errors, in line order.
    pub errors: Vec<LineError>,
}

impl ParseSummary {
    /// Adds `other` (a later block of the same input) into `self`, keeping at
    /// most `max_errors` errors.
    pub fn merge(&mut self, other: ParseSummary, max_errors: usize) {
        self.lines_seen += other.lines_seen;
        self.lines_accepted += other.lines_accepted;
        self.samples += other.samples;
        self.rejected_lines += other.rejected_lines;
        let room = max_errors.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
    }

    pub(crate) fn reject(&mut self, err: LineError, max_errors: usize) {
        self.rejected_lines += 1;
        if self.errors.len() < max_errors {
            self.errors.push(err);
        }
    }
}

/// A malformed line: where, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct LineError {
    /// 1-based line number within the input.
    pub line: u64,
    pub kind: LineErrorKind,
}

/// What is wrong with a line. Values are quoted as they appear in the input
/// (truncated to [`QUOTE_LIMIT`] bytes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineErrorKind {
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    #[error("line is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("missing measurement")]
    MissingMeasurement,
    #[error("missing field set")]
    MissingFieldSet,
    #[error("invalid tag {0:?}: expected key=value")]
    InvalidTag(String),
    #[error("invalid field {0:?}: expected key=value")]
    InvalidField(String),
    #[error("missing value for field {0:?}")]
    MissingFieldValue(String),
    #[error("invalid float {value:?} for field {field:?}")]
    InvalidFloat { field: String, value: String },
    #[error("invalid integer {value:?} for field {field:?}")]
    InvalidInteger { field: String, value: String },
    #[error("invalid unsigned integer {value:?} for field {field:?}")]
    InvalidUnsigned { field: String, value: String },
    #[error("unterminated string value for field {0:?}")]
    UnterminatedString(String),
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    #[error("timestamp {0:?} is out of range")]
    TimestampOutOfRange(String),
    #[error("unexpected text after timestamp: {0:?}")]
    TrailingText(String),
    #[error("missing metric name")]
    MissingMetricName,
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    #[error("invalid label set: {0}")]
    InvalidLabels(String),
    #[error("missing value")]
    MissingValue,
    #[error("invalid value {0:?}")]
    InvalidValue(String),
    #[error("invalid {kind} line: {reason}")]
    InvalidMetadata { kind: &'static str, reason: String },
    #[error("unknown metric type {0:?}")]
    UnknownMetricType(String),
    #[error("data after # EOF")]
    AfterEof,
}

/// Longest input excerpt an error quotes.
pub const QUOTE_LIMIT: usize = 64;

/// `s` cut to at most [`QUOTE_LIMIT`] bytes on a char boundary, owned (errors
/// are rare, so the allocation is off the hot path).
pub(crate) fn quote(s: &str) -> String {
    if s.len() <= QUOTE_LIMIT {
        return s.to_string();
    }
    let mut end = QUOTE_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Splits `body` into lines (on `\n`, dropping one trailing `\r`) and calls
/// `f(line_no, line)` with 1-based numbers starting at `first_line`, where
/// `line` is the line's text or why it is unusable (not UTF-8, too long). A
/// final line without a newline is included. Returns the number of lines
/// seen.
///
/// The body is validated as UTF-8 once as a whole (fast on long ASCII runs);
/// only when that fails is each line validated on its own, so one bad byte
/// costs only its own line.
pub(crate) fn for_each_line<'b>(
    body: &'b [u8],
    first_line: u64,
    mut f: impl FnMut(u64, Result<&'b str, LineErrorKind>),
) -> u64 {
    let whole = std::str::from_utf8(body).ok();
    let mut line_no = first_line;
    let mut start = 0;
    let mut seen = 0;
    while start < body.len() {
        let (end, next) = match memchr::memchr(b'\n', &body[start..]) {
            Some(i) => (start + i, start + i + 1),
            None => (body.len(), body.len()),
        };
        let end = if end > start && body[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        let line = if end - start > MAX_LINE_BYTES {
            Err(LineErrorKind::LineTooLong)
        } else if let Some(text) = whole {
            // Cut at ASCII bytes, so always on char boundaries.
            Ok(&text[start..end])
        } else {
            std::str::from_utf8(&body[start..end]).map_err(|_| LineErrorKind::InvalidUtf8)
        };
        f(line_no, line);
        line_no += 1;
        seen += 1;
        start = next;
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_line_protocol() {
        let t = Text::new(r"a\,b\ c\=d\\e\x", true, Escaping::LineProtocol);
        assert_eq!(t.unescape(), r"a,b c=d\e\x");
        let t = Text::new("plain", false, Escaping::LineProtocol);
        assert!(matches!(t.unescape(), Cow::Borrowed("plain")));
        let t = Text::new(r"trailing\", true, Escaping::LineProtocol);
        assert_eq!(t.unescape(), r"trailing\");
    }

    #[test]
    fn unescape_openmetrics() {
        let t = Text::new(r#"a\"b\\c\nd\x"#, true, Escaping::OpenMetrics);
        assert_eq!(t.unescape(), "a\"b\\c\nd\\x");
    }

    #[test]
    fn lines_are_numbered_and_crlf_stripped() {
        let mut got = Vec::new();
        let n = for_each_line(b"a\r\n\nb", 5, |no, l| got.push((no, l)));
        assert_eq!(n, 3);
        assert_eq!(got, vec![(5, Ok("a")), (6, Ok("")), (7, Ok("b"))]);
        got.clear();
        for_each_line(b"ok\n\xffno\nok", 1, |no, l| got.push((no, l)));
        assert_eq!(
            got,
            vec![
                (1, Ok("ok")),
                (2, Err(LineErrorKind::InvalidUtf8)),
                (3, Ok("ok"))
            ]
        );
    }

    #[test]
    fn summary_merge_caps_errors() {
        let err = |line| LineError {
            line,
            kind: LineErrorKind::MissingFieldSet,
        };
        let mut a = ParseSummary::default();
        a.reject(err(1), 2);
        let mut b = ParseSummary::default();
        b.reject(err(5), 2);
        b.reject(err(6), 2);
        a.merge(b, 2);
        assert_eq!(a.rejected_lines, 3);
        assert_eq!(a.errors, vec![err(1), err(5)]);
        assert_eq!(err(17).to_string(), "line 17: missing field set");
    }
}
