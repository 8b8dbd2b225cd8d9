//! The function catalog: every PromQL function this subset knows, with its
//! argument and return types. The parser type-checks calls against it; the
//! evaluator dispatches on [`Func`].

use crate::ast::ValueType::{self, Matrix, Scalar, String as Str, Vector};

/// Function identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Func {
    Abs,
    Absent,
    AbsentOverTime,
    Acos,
    Acosh,
    Asin,
    Asinh,
    Atan,
    Atanh,
    AvgOverTime,
    Ceil,
    Changes,
    Clamp,
    ClampMax,
    ClampMin,
    Cos,
    Cosh,
    CountOverTime,
    Deg,
    Delta,
    Deriv,
    Exp,
    Floor,
    HistogramQuantile,
    Idelta,
    Increase,
    Irate,
    LabelJoin,
    LabelReplace,
    LastOverTime,
    Ln,
    Log10,
    Log2,
    MaxOverTime,
    MinOverTime,
    Pi,
    PredictLinear,
    PresentOverTime,
    QuantileOverTime,
    Rad,
    Rate,
    Resets,
    Round,
    Scalar,
    Sgn,
    Sin,
    Sinh,
    Sort,
    SortDesc,
    Sqrt,
    StddevOverTime,
    StdvarOverTime,
    SumOverTime,
    Tan,
    Tanh,
    Time,
    Timestamp,
    Vector,
}

/// A function's signature.
#[derive(Debug, PartialEq)]
pub struct FunctionDef {
    /// Name as written.
    pub name: &'static str,
    /// Identity for dispatch.
    pub func: Func,
    /// Argument types; with `variadic` the last one may repeat or be optional.
    pub args: &'static [ValueType],
    /// 0: exactly `args.len()` arguments; n > 0: up to n more optional
    /// arguments of the last type may be omitted (`round`); -1: the last
    /// argument may repeat without bound (`label_join`).
    pub variadic: i8,
    /// Return type.
    pub ret: ValueType,
}

macro_rules! f {
    ($name:literal, $func:ident, [$($a:expr),*], $var:literal, $ret:expr) => {
        FunctionDef { name: $name, func: Func::$func, args: &[$($a),*], variadic: $var, ret: $ret }
    };
}

static FUNCTIONS: &[FunctionDef] = &[
    f!("abs", Abs, [Vector], 0, Vector),
    f!("absent", Absent, [Vector], 0, Vector),
    f!("absent_over_time", AbsentOverTime, [Matrix], 0, Vector),
    f!("acos", Acos, [Vector], 0, Vector),
    f!("acosh", Acosh, [Vector], 0, Vector),
    f!("asin", Asin, [Vector], 0, Vector),
    f!("asinh", Asinh, [Vector], 0, Vector),
    f!("atan", Atan, [Vector], 0, Vector),
    f!("atanh", Atanh, [Vector], 0, Vector),
    f!("avg_over_time", AvgOverTime, [Matrix], 0, Vector),
    f!("ceil", Ceil, [Vector], 0, Vector),
    f!("changes", Changes, [Matrix], 0, Vector),
    f!("clamp", Clamp, [Vector, Scalar, Scalar], 0, Vector),
    f!("clamp_max", ClampMax, [Vector, Scalar], 0, Vector),
    f!("clamp_min", ClampMin, [Vector, Scalar], 0, Vector),
    f!("cos", Cos, [Vector], 0, Vector),
    f!("cosh", Cosh, [Vector], 0, Vector),
    f!("count_over_time", CountOverTime, [Matrix], 0, Vector),
    f!("deg", Deg, [Vector], 0, Vector),
    f!("delta", Delta, [Matrix], 0, Vector),
    f!("deriv", Deriv, [Matrix], 0, Vector),
    f!("exp", Exp, [Vector], 0, Vector),
    f!("floor", Floor, [Vector], 0, Vector),
    f!(
        "histogram_quantile",
        HistogramQuantile,
        [Scalar, Vector],
        0,
        Vector
    ),
    f!("idelta", Idelta, [Matrix], 0, Vector),
    f!("increase", Increase, [Matrix], 0, Vector),
    f!("irate", Irate, [Matrix], 0, Vector),
    f!("label_join", LabelJoin, [Vector, Str, Str, Str], -1, Vector),
    f!(
        "label_replace",
        LabelReplace,
        [Vector, Str, Str, Str, Str],
        0,
        Vector
    ),
    f!("last_over_time", LastOverTime, [Matrix], 0, Vector),
    f!("ln", Ln, [Vector], 0, Vector),
    f!("log10", Log10, [Vector], 0, Vector),
    f!("log2", Log2, [Vector], 0, Vector),
    f!("max_over_time", MaxOverTime, [Matrix], 0, Vector),
    f!("min_over_time", MinOverTime, [Matrix], 0, Vector),
    f!("pi", Pi, [], 0, Scalar),
    f!("predict_linear", PredictLinear, [Matrix, Scalar], 0, Vector),
    f!("present_over_time", PresentOverTime, [Matrix], 0, Vector),
    f!(
        "quantile_over_time",
        QuantileOverTime,
        [Scalar, Matrix],
        0,
        Vector
    ),
    f!("rad", Rad, [Vector], 0, Vector),
    f!("rate", Rate, [Matrix], 0, Vector),
    f!("resets", Resets, [Matrix], 0, Vector),
    f!("round", Round, [Vector, Scalar], 1, Vector),
    f!("scalar", Scalar, [Vector], 0, Scalar),
    f!("sgn", Sgn, [Vector], 0, Vector),
    f!("sin", Sin, [Vector], 0, Vector),
    f!("sinh", Sinh, [Vector], 0, Vector),
    f!("sort", Sort, [Vector], 0, Vector),
    f!("sort_desc", SortDesc, [Vector], 0, Vector),
    f!("sqrt", Sqrt, [Vector], 0, Vector),
    f!("stddev_over_time", StddevOverTime, [Matrix], 0, Vector),
    f!("stdvar_over_time", StdvarOverTime, [Matrix], 0, Vector),
    f!("sum_over_time", SumOverTime, [Matrix], 0, Vector),
    f!("tan", Tan, [Vector], 0, Vector),
    f!("tanh", Tanh, [Vector], 0, Vector),
    f!("time", Time, [], 0, Scalar),
    f!("timestamp", Timestamp, [Vector], 0, Vector),
    f!("vector", Vector, [Scalar], 0, Vector),
];

/// Looks a function up by name.
pub fn lookup(name: &str) -> Option<&'static FunctionDef> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Every known function.
pub fn all() -> &'static [FunctionDef] {
    FUNCTIONS
}
