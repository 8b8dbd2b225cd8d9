//! Error types of the query crate: one enum per operation.
//!
//! - [`ParseError`]: a PromQL text could not be parsed or type-checked; it
//!   carries the byte position, the line/column and what was expected.
//! - [`SourceError`]: the [`SeriesSource`](crate::SeriesSource) failed.
//! - [`EvalError`]: evaluation failed: a limit was hit (samples, series,
//!   timeout), the data violates a PromQL rule (duplicate label sets,
//!   many-to-many matching), or the source failed.

use std::time::Duration;

/// A PromQL text that could not be parsed or type-checked.
///
/// `Display` renders `line:col: message`, e.g.
/// `1:12: unexpected ")", expected expression`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{line}:{col}: {kind}")]
pub struct ParseError {
    /// Byte offset of the offending token in the input.
    pub pos: usize,
    /// 1-based line of `pos`.
    pub line: usize,
    /// 1-based column (in characters) of `pos`.
    pub col: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(input: &str, pos: usize, kind: ParseErrorKind) -> Self {
        let pos = pos.min(input.len());
        let before = &input[..floor_char_boundary(input, pos)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ParseError {
            pos,
            line,
            col,
            kind,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The reason a [`ParseError`] was raised.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A token that does not fit the grammar here.
    #[error("unexpected {found}, expected {expected}")]
    Unexpected {
        /// The token found, quoted (`")"`) or described (`end of input`).
        found: String,
        /// What the grammar allows at this point.
        expected: String,
    },
    /// A character that starts no token.
    #[error("unexpected character {0:?}")]
    BadChar(char),
    /// A string literal without its closing quote.
    #[error("unterminated string literal")]
    UnterminatedString,
    /// A bad escape sequence inside a string literal.
    #[error("invalid escape sequence in string literal: {0}")]
    BadEscape(String),
    /// A number literal that does not parse.
    #[error("invalid number {0:?}")]
    BadNumber(String),
    /// A duration literal that does not parse (units must be in
    /// descending order, each at most once: `1h30m`).
    #[error("invalid duration {0:?}")]
    BadDuration(String),
    /// A regular expression in a matcher or `label_replace` that does not compile.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    BadRegex {
        /// The pattern as written.
        pattern: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// A call of a function this subset does not know.
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    /// A function called with the wrong number of arguments.
    #[error("wrong number of arguments for function {name:?}: expected {expected}, got {got}")]
    ArgCount {
        /// Function name.
        name: String,
        /// Human-readable expected count (`2`, `at least 3`, `1 or 2`).
        expected: String,
        /// Number of arguments given.
        got: usize,
    },
    /// An operand or argument of the wrong value type.
    #[error("expected type {expected} in {context}, got {got}")]
    Type {
        /// The type required.
        expected: &'static str,
        /// Where (e.g. `call to function "rate"`).
        context: String,
        /// The type found.
        got: &'static str,
    },
    /// A syntactically valid construct PromQL forbids, e.g. a comparison
    /// between scalars without `bool`, or a selector that matches everything.
    #[error("{0}")]
    Invalid(String),
    /// A PromQL feature this subset does not implement (subqueries, `@`).
    #[error("{0} is not supported")]
    Unsupported(&'static str),
}

/// A failure of the [`SeriesSource`](crate::SeriesSource) the evaluator reads through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The backing store failed (I/O, corruption it could not skip, ...).
    #[error("series source failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The source refused to return more series than it was asked to.
    #[error("series source refused the selection: more than {limit} series")]
    TooManySeries {
        /// The limit the source enforced.
        limit: usize,
    },
}

/// An evaluation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// More samples would be held in memory than `EvalOptions::max_samples`.
    #[error("query processing would load too many samples into memory (limit {limit})")]
    TooManySamples {
        /// The configured limit.
        limit: usize,
    },
    /// The query ran longer than `EvalOptions::timeout`.
    #[error("query timed out after {limit:?}")]
    Timeout {
        /// The configured limit.
        limit: Duration,
    },
    /// The selectors of the query matched more series than `EvalOptions::max_series`.
    #[error("query selects too many series (limit {limit})")]
    TooManySeries {
        /// The configured limit.
        limit: usize,
    },
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A function or operator produced two series with one label set at one
    /// timestamp (Prometheus: "vector cannot contain metrics with the same labelset").
    #[error("vector cannot contain metrics with the same labelset: {labels}")]
    DuplicateLabelset {
        /// The label set, rendered `{a="b"}`.
        labels: String,
    },
    /// Several series on the "one" side of a binary operation share match labels.
    #[error(
        "found duplicate series for the match group {group} on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
    )]
    ManyToMany {
        /// The match group, rendered `{a="b"}`.
        group: String,
        /// `left` or `right`.
        side: &'static str,
    },
    /// A one-to-one match found several series on the "many" side, or a
    /// many-to-one match produced the same output twice.
    #[error("multiple matches for labels: {0}")]
    MultipleMatches(&'static str),
    /// An argument value PromQL rejects at run time (bad label name in
    /// `label_replace`, `topk` parameter overflowing int64, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The expression has a type the requested evaluation cannot return
    /// (a range vector in a range query).
    #[error("invalid expression type {got:?} for range query, must be scalar or instant vector")]
    BadResultType {
        /// The type found.
        got: &'static str,
    },
    /// `eval_range` called with `step <= 0` or `end < start`.
    #[error("invalid range query: start {start}, end {end}, step {step}")]
    BadRange {
        /// Start, ms.
        start: i64,
        /// End, ms.
        end: i64,
        /// Step, ms.
        step: i64,
    },
}

impl EvalError {
    /// Prometheus's API `errorType` for this error: `timeout` (HTTP 503),
    /// `internal` (500, the source failed) or `execution` (422, everything
    /// else, including the sample and series limits).
    pub fn prometheus_error_type(&self) -> &'static str {
        match self {
            EvalError::Timeout { .. } => "timeout",
            // A source's own limit is the query's fault, like our limits.
            EvalError::Source(SourceError::TooManySeries { .. }) => "execution",
            EvalError::Source(_) => "internal",
            _ => "execution",
        }
    }
}
