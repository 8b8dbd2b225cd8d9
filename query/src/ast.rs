//! The PromQL syntax tree produced by [`crate::parse`].
//!
//! Invariants (established by the parser's type check): every node has a
//! static [`ValueType`]; function arguments, aggregation operands and binary
//! operands have the types Prometheus requires; a [`Expr::MatrixSelector`]
//! only appears where a range vector is allowed (function arguments and the
//! top level); comparisons between two scalars carry `bool`.

use std::fmt;

use crate::labels::LabelMatcher;

/// The type of value an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A number.
    Scalar,
    /// An instant vector.
    Vector,
    /// A range vector.
    Matrix,
    /// A string.
    String,
}

impl ValueType {
    /// Prometheus's wording ("instant vector", "range vector", ...).
    pub fn describe(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
        }
    }
}

/// An instant vector selector: `name{matchers} offset d`.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSelector {
    /// The metric name, if written outside the braces.
    pub name: Option<String>,
    /// All matchers, including `__name__="name"` for the written name.
    pub matchers: Vec<LabelMatcher>,
    /// `offset`, ms (may be negative).
    pub offset_ms: i64,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `atan2`
    Atan2,
    /// `==`
    Eql,
    /// `!=`
    Neq,
    /// `>`
    Gtr,
    /// `<`
    Lss,
    /// `>=`
    Gte,
    /// `<=`
    Lte,
    /// `and`
    And,
    /// `or`
    Or,
    /// `unless`
    Unless,
}

impl BinOp {
    /// Binding strength; higher binds tighter (Prometheus's yacc table).
    pub(crate) fn precedence(self) -> u8 {
        use BinOp::*;
        match self {
            Or => 1,
            And | Unless => 2,
            Eql | Neq | Gtr | Lss | Gte | Lte => 3,
            Add | Sub => 4,
            Mul | Div | Mod | Atan2 => 5,
            Pow => 6,
        }
    }

    /// `^` is the only right-associative operator.
    pub(crate) fn right_assoc(self) -> bool {
        self == BinOp::Pow
    }

    /// `== != > < >= <=`
    pub fn is_comparison(self) -> bool {
        use BinOp::*;
        matches!(self, Eql | Neq | Gtr | Lss | Gte | Lte)
    }

    /// `and or unless`
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        use BinOp::*;
        match self {
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
            Pow => "^",
            Atan2 => "atan2",
            Eql => "==",
            Neq => "!=",
            Gtr => ">",
            Lss => "<",
            Gte => ">=",
            Lte => "<=",
            And => "and",
            Or => "or",
            Unless => "unless",
        }
    }
}

/// Which side of a vector/vector operation may have several matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// Default for arithmetic and comparisons.
    OneToOne,
    /// `group_left`
    ManyToOne,
    /// `group_right`
    OneToMany,
    /// Set operators.
    ManyToMany,
}

/// How the two sides of a vector/vector operation are matched.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatching {
    /// Cardinality.
    pub card: Cardinality,
    /// `on(...)` when true, `ignoring(...)` (or nothing) when false.
    pub on: bool,
    /// The labels of `on`/`ignoring`.
    pub labels: Vec<String>,
    /// Labels of `group_left(...)`/`group_right(...)` copied from the "one" side.
    pub include: Vec<String>,
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggrOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
    /// `group`
    Group,
    /// `stddev`
    Stddev,
    /// `stdvar`
    Stdvar,
    /// `topk(k, v)`
    Topk,
    /// `bottomk(k, v)`
    Bottomk,
    /// `quantile(q, v)`
    Quantile,
    /// `count_values("label", v)`
    CountValues,
}

impl AggrOp {
    pub(crate) fn from_name(s: &str) -> Option<Self> {
        use AggrOp::*;
        Some(match s {
            "sum" => Sum,
            "avg" => Avg,
            "min" => Min,
            "max" => Max,
            "count" => Count,
            "group" => Group,
            "stddev" => Stddev,
            "stdvar" => Stdvar,
            "topk" => Topk,
            "bottomk" => Bottomk,
            "quantile" => Quantile,
            "count_values" => CountValues,
            _ => return None,
        })
    }

    /// The type of the parameter, if the operator takes one.
    pub(crate) fn param_type(self) -> Option<ValueType> {
        match self {
            AggrOp::Topk | AggrOp::Bottomk | AggrOp::Quantile => Some(ValueType::Scalar),
            AggrOp::CountValues => Some(ValueType::String),
            _ => None,
        }
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        use AggrOp::*;
        match self {
            Sum => "sum",
            Avg => "avg",
            Min => "min",
            Max => "max",
            Count => "count",
            Group => "group",
            Stddev => "stddev",
            Stdvar => "stdvar",
            Topk => "topk",
            Bottomk => "bottomk",
            Quantile => "quantile",
            CountValues => "count_values",
        }
    }
}

/// A parsed PromQL expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number literal (`1`, `0x1f`, `Inf`, `5m` as seconds).
    Number(f64),
    /// A string literal.
    String(String),
    /// `foo{a="b"} offset 5m`
    VectorSelector(VectorSelector),
    /// `foo{a="b"}[5m] offset 1m`
    MatrixSelector {
        /// The selector (with its offset).
        selector: VectorSelector,
        /// Range, ms.
        range_ms: i64,
    },
    /// `f(args...)`
    Call {
        /// The function.
        func: &'static crate::catalog::FunctionDef,
        /// Arguments, type-checked against `func`.
        args: Vec<Expr>,
    },
    /// `op [by|without (labels)] ([param,] expr)`
    Aggregate {
        /// Operator.
        op: AggrOp,
        /// The aggregated vector.
        expr: Box<Expr>,
        /// `k`, `q` or the count_values label.
        param: Option<Box<Expr>>,
        /// `by`/`without` labels.
        grouping: Vec<String>,
        /// `without` when true, `by` (or nothing) when false.
        without: bool,
    },
    /// `lhs op [bool] [on|ignoring(...)] [group_x(...)] rhs`
    Binary {
        /// Operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
        /// The `bool` modifier.
        return_bool: bool,
        /// Matching, for vector/vector operations only.
        matching: Option<VectorMatching>,
    },
    /// `-expr` (unary plus is dropped by the parser).
    Neg(Box<Expr>),
    /// `(expr)`
    Paren(Box<Expr>),
}

impl Expr {
    /// The static type of the expression.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number(_) => ValueType::Scalar,
            Expr::String(_) => ValueType::String,
            Expr::VectorSelector(_) => ValueType::Vector,
            Expr::MatrixSelector { .. } => ValueType::Matrix,
            Expr::Call { func, .. } => func.ret,
            Expr::Aggregate { .. } => ValueType::Vector,
            Expr::Binary { lhs, rhs, .. } => {
                if lhs.value_type() == ValueType::Scalar && rhs.value_type() == ValueType::Scalar {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Neg(e) | Expr::Paren(e) => e.value_type(),
        }
    }

    /// The expression without enclosing parentheses.
    pub fn unparen(&self) -> &Expr {
        let mut e = self;
        while let Expr::Paren(inner) = e {
            e = inner;
        }
        e
    }
}

impl fmt::Display for VectorSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.name {
            f.write_str(n)?;
        }
        let rest: Vec<_> = self
            .matchers
            .iter()
            .filter(|m| {
                !(self.name.is_some()
                    && m.name == crate::labels::METRIC_NAME
                    && m.op == crate::MatchOp::Equal)
            })
            .collect();
        if !rest.is_empty() || self.name.is_none() {
            f.write_str("{")?;
            for (i, m) in rest.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{m:?}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}
