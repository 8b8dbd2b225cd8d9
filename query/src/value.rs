//! Query results: scalars, instant vectors, range-vector matrices, strings.
//!
//! Timestamps are milliseconds since the Unix epoch; values follow
//! Prometheus float semantics. A result never contains the stale marker.

use crate::labels::Labels;

/// The bit pattern Prometheus writes as the "stale" marker (a NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the stale marker (not just any NaN).
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The stale marker as a float.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub labels: Labels,
    /// Evaluation timestamp (for `timestamp(x)` the sample's own), ms.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// One series of a matrix: labels plus samples sorted by time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// `(timestamp_ms, value)`, ascending by time.
    pub samples: Vec<(i64, f64)>,
}

/// The result of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number at the evaluation time.
    Scalar {
        /// Evaluation time, ms.
        t: i64,
        /// Value.
        v: f64,
    },
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector (instant query of `selector[range]`).
    Matrix(Vec<Series>),
    /// A string literal.
    String {
        /// Evaluation time, ms.
        t: i64,
        /// Value.
        v: String,
    },
}

impl Value {
    /// Prometheus's name of the result type (`scalar`, `vector`, `matrix`, `string`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
            Value::String { .. } => "string",
        }
    }
}
