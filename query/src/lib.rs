//! PromQL subset for Tidemark: lexer, parser and evaluator with Prometheus
//! 2.42 semantics.
//!
//! Key design decision: the evaluator reads through its own small
//! [`SeriesSource`] trait and never depends on `tidemark-storage`; `src/`
//! implements that trait over the engine, tests use [`MemorySource`].
//! Every query is evaluated as a range query (an instant query is one
//! step): each selector is read once for the whole range and walked with a
//! cursor per step.
//!
//! ```
//! use tidemark_query::{parse, eval_instant, EvalOptions, Labels, MemorySource, Value};
//! let mut src = MemorySource::new();
//! src.add(Labels::from_pairs([("__name__", "up")]), [(0, 1.0)]);
//! let expr = parse("up * 2").unwrap();
//! let v = eval_instant(&src, &expr, 10_000, &EvalOptions::default()).unwrap();
//! assert!(matches!(v, Value::Vector(s) if s[0].v == 2.0));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ast;
pub mod catalog;
mod error;
mod eval;
mod labels;
mod lexer;
pub mod notation;
mod parser;
mod source;
mod value;

pub use error::{EvalError, ParseError, ParseErrorKind, SourceError};
pub use eval::{EvalOptions, SelectorRead, eval_instant, eval_range, instant_reads};
pub use labels::{Label, LabelMatcher, Labels, METRIC_NAME, MatchOp};
pub use parser::parse;
pub use source::{
    Bucket, BucketSeries, MemorySource, SelectHints, Selection, SeriesData, SeriesSource,
    sorted_unique,
};
pub use value::{STALE_NAN_BITS, Sample, Series, Value, is_stale_nan, stale_nan};

#[doc(hidden)]
pub mod testing {
    //! Helpers for the promqltest-style script runner in `tests/`.
    pub use crate::parser::parse_selector_labels;
}
