//! Tidemark's storage engine: everything that touches disk.
//!
//! `storage` knows nothing of HTTP, PromQL or alerts; `src/` joins it to the
//! query layer. See ARCHITECTURE.md for the codemap.

pub mod encoding;
pub mod types;
pub mod wal;

pub use types::{Label, Labels, MatchOp, Matcher, MatcherError, Sample, SeriesId, Timestamp};
