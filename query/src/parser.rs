//! Recursive-descent (Pratt) parser and static type checker for the PromQL subset.
//!
//! Precedence and associativity follow Prometheus's yacc grammar, lowest
//! first: `or`; `and unless`; `== != > < >= <=`; `+ -`; `* / % atan2`;
//! `^` (right-associative). Unary `-`/`+` bind like `*` (so `-2^2` is -4
//! and `-a*b` is `(-a)*b`); `[range]` and `offset` bind tightest.
//! Invariant: every [`Expr`] returned has passed the type checks Prometheus
//! applies at parse time (see [`crate::ast`]).

use crate::ast::{AggrOp, BinOp, Cardinality, Expr, ValueType, VectorMatching, VectorSelector};
use crate::catalog;
use crate::error::{ParseError, ParseErrorKind};
use crate::labels::{LabelMatcher, Labels, METRIC_NAME, MatchOp};
use crate::lexer::{Tok, Token, lex};

/// Parses a PromQL expression.
///
/// # Errors
/// [`ParseError`] with the byte position, line:column and what was expected.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let toks = lex(input)?;
    let mut p = Parser {
        src: input,
        toks,
        pos: 0,
    };
    let e = p.parse_expr(0)?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("binary operator or end of input"));
    }
    Ok(e)
}

/// Parses a series descriptor `name{l="v", ...}` into its label set
/// (used by the promqltest-style script runner).
///
/// # Errors
/// [`ParseError`] when the text is not a selector made only of `=` matchers.
pub fn parse_selector_labels(input: &str) -> Result<Labels, ParseError> {
    let sel = parse_selector(input)?;
    let mut out = Labels::new();
    for m in &sel.matchers {
        if m.op != MatchOp::Equal {
            return Err(ParseError::new(
                input,
                0,
                ParseErrorKind::Invalid("series descriptor may only use =".into()),
            ));
        }
        out.set(&m.name, m.value.clone());
    }
    Ok(out)
}

fn parse_selector(input: &str) -> Result<VectorSelector, ParseError> {
    let toks = lex(input)?;
    let mut p = Parser {
        src: input,
        toks,
        pos: 0,
    };
    let start = p.cur().start;
    let name = match p.peek().clone() {
        Tok::Ident(n) => {
            p.pos += 1;
            Some(n)
        }
        _ => None,
    };
    let sel = p.parse_selector_rest(name, start, false)?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("end of series descriptor"));
    }
    Ok(sel)
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "atan2",
];

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
}

type PResult<T> = Result<T, ParseError>;

impl<'a> Parser<'a> {
    fn cur(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case(word))
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn err_at(&self, pos: usize, kind: ParseErrorKind) -> ParseError {
        ParseError::new(self.src, pos, kind)
    }

    fn invalid(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        self.err_at(pos, ParseErrorKind::Invalid(msg.into()))
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        let t = self.cur();
        let found = t.tok.describe(&self.src[t.start..t.end]);
        self.err_at(
            t.start,
            ParseErrorKind::Unexpected {
                found,
                expected: expected.to_string(),
            },
        )
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> PResult<Token> {
        if *self.peek() == tok {
            Ok(self.bump())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn peek_binop(&self) -> Option<BinOp> {
        Some(match self.peek() {
            Tok::Add => BinOp::Add,
            Tok::Sub => BinOp::Sub,
            Tok::Mul => BinOp::Mul,
            Tok::Div => BinOp::Div,
            Tok::Mod => BinOp::Mod,
            Tok::Pow => BinOp::Pow,
            Tok::EqlC => BinOp::Eql,
            Tok::Neq => BinOp::Neq,
            Tok::Gtr => BinOp::Gtr,
            Tok::Lss => BinOp::Lss,
            Tok::Gte => BinOp::Gte,
            Tok::Lte => BinOp::Lte,
            Tok::Ident(w) => match w.to_ascii_lowercase().as_str() {
                "and" => BinOp::And,
                "or" => BinOp::Or,
                "unless" => BinOp::Unless,
                "atan2" => BinOp::Atan2,
                _ => return None,
            },
            _ => return None,
        })
    }

    fn parse_expr(&mut self, min_prec: u8) -> PResult<Expr> {
        let mut lhs = self.parse_unary()?;
        while let Some(op) = self.peek_binop() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_pos = self.bump().start;
            let return_bool = if self.is_ident("bool") {
                self.bump();
                true
            } else {
                false
            };
            let matching = self.parse_matching(op)?;
            let next_min = if op.right_assoc() { prec } else { prec + 1 };
            let rhs = self.parse_expr(next_min)?;
            lhs = self.make_binary(op, op_pos, lhs, rhs, return_bool, matching)?;
        }
        Ok(lhs)
    }

    /// `on(...)`/`ignoring(...)` then `group_left(...)`/`group_right(...)`.
    fn parse_matching(&mut self, op: BinOp) -> PResult<Option<(usize, VectorMatching)>> {
        let start = self.cur().start;
        let mut m = VectorMatching {
            card: if op.is_set() {
                Cardinality::ManyToMany
            } else {
                Cardinality::OneToOne
            },
            on: false,
            labels: Vec::new(),
            include: Vec::new(),
        };
        let mut any = false;
        if self.is_ident("on") || self.is_ident("ignoring") {
            m.on = self.is_ident("on");
            self.bump();
            m.labels = self.parse_label_list()?;
            any = true;
        }
        if self.is_ident("group_left") || self.is_ident("group_right") {
            let pos = self.cur().start;
            if op.is_set() {
                return Err(self.invalid(
                    pos,
                    format!("no grouping allowed for \"{}\" operation", op.as_str()),
                ));
            }
            m.card = if self.is_ident("group_left") {
                Cardinality::ManyToOne
            } else {
                Cardinality::OneToMany
            };
            self.bump();
            if *self.peek() == Tok::LParen {
                m.include = self.parse_label_list()?;
            }
            for l in &m.include {
                if m.on && m.labels.contains(l) {
                    return Err(self.invalid(
                        pos,
                        format!("label \"{l}\" must not occur in ON and GROUP clause at once"),
                    ));
                }
            }
            any = true;
        }
        Ok(any.then_some((start, m)))
    }

    fn make_binary(
        &self,
        op: BinOp,
        op_pos: usize,
        lhs: Expr,
        rhs: Expr,
        return_bool: bool,
        matching: Option<(usize, VectorMatching)>,
    ) -> PResult<Expr> {
        let (lt, rt) = (lhs.value_type(), rhs.value_type());
        let ok = |t| t == ValueType::Scalar || t == ValueType::Vector;
        if !ok(lt) || !ok(rt) {
            return Err(self.invalid(
                op_pos,
                "binary expression must contain only scalar and instant vector types",
            ));
        }
        if return_bool && !op.is_comparison() {
            return Err(self.invalid(
                op_pos,
                "bool modifier can only be used on comparison operators",
            ));
        }
        let both_vectors = lt == ValueType::Vector && rt == ValueType::Vector;
        if op.is_comparison() && lt == ValueType::Scalar && rt == ValueType::Scalar && !return_bool
        {
            return Err(self.invalid(op_pos, "comparisons between scalars must use BOOL modifier"));
        }
        if op.is_set() && !both_vectors {
            return Err(self.invalid(
                op_pos,
                format!(
                    "set operator \"{}\" not allowed in binary scalar expression",
                    op.as_str()
                ),
            ));
        }
        if let Some((pos, _)) = &matching
            && !both_vectors
        {
            return Err(self.invalid(*pos, "vector matching only allowed between instant vectors"));
        }
        let matching = if both_vectors {
            Some(matching.map(|(_, m)| m).unwrap_or(VectorMatching {
                card: if op.is_set() {
                    Cardinality::ManyToMany
                } else {
                    Cardinality::OneToOne
                },
                on: false,
                labels: Vec::new(),
                include: Vec::new(),
            }))
        } else {
            None
        };
        Ok(Expr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            return_bool,
            matching,
        })
    }

    fn parse_unary(&mut self) -> PResult<Expr> {
        match self.peek() {
            Tok::Sub | Tok::Add => {
                let t = self.bump();
                let operand = self.parse_expr(BinOp::Pow.precedence())?;
                let vt = operand.value_type();
                if vt != ValueType::Scalar && vt != ValueType::Vector {
                    return Err(self.invalid(
                        t.start,
                        "unary expression only allowed on expressions of type scalar or instant vector",
                    ));
                }
                Ok(match (t.tok, operand) {
                    (Tok::Add, e) => e,
                    (_, Expr::Number(n)) => Expr::Number(-n),
                    (_, e) => Expr::Neg(Box::new(e)),
                })
            }
            _ => self.parse_postfix(),
        }
    }

    fn parse_postfix(&mut self) -> PResult<Expr> {
        let mut e = self.parse_primary()?;
        loop {
            match self.peek() {
                Tok::LBracket => {
                    let pos = self.bump().start;
                    let range_ms = match self.peek().clone() {
                        Tok::Duration(d) => {
                            self.bump();
                            d
                        }
                        _ => return Err(self.unexpected("duration")),
                    };
                    if *self.peek() == Tok::Colon {
                        return Err(
                            self.err_at(self.cur().start, ParseErrorKind::Unsupported("subquery"))
                        );
                    }
                    self.expect(Tok::RBracket, "\"]\"")?;
                    if range_ms <= 0 {
                        return Err(self.invalid(pos, "range must be positive"));
                    }
                    e = match e {
                        Expr::VectorSelector(selector) => {
                            Expr::MatrixSelector { selector, range_ms }
                        }
                        _ => {
                            return Err(
                                self.invalid(pos, "ranges only allowed for vector selectors")
                            );
                        }
                    };
                }
                Tok::Ident(w) if w.eq_ignore_ascii_case("offset") => {
                    let pos = self.bump().start;
                    let neg = match self.peek() {
                        Tok::Sub => {
                            self.bump();
                            true
                        }
                        Tok::Add => {
                            self.bump();
                            false
                        }
                        _ => false,
                    };
                    let d = match self.peek().clone() {
                        Tok::Duration(d) => {
                            self.bump();
                            d
                        }
                        _ => return Err(self.unexpected("duration")),
                    };
                    let d = if neg { -d } else { d };
                    let sel = match &mut e {
                        Expr::VectorSelector(s) => s,
                        Expr::MatrixSelector { selector, .. } => selector,
                        _ => {
                            return Err(self.invalid(
                                pos,
                                "offset modifier must be preceded by an instant vector selector or range vector selector",
                            ));
                        }
                    };
                    if sel.offset_ms != 0 {
                        return Err(self.invalid(pos, "offset may not be set multiple times"));
                    }
                    sel.offset_ms = d;
                }
                Tok::At => {
                    return Err(
                        self.err_at(self.cur().start, ParseErrorKind::Unsupported("@ modifier"))
                    );
                }
                _ => break,
            }
        }
        Ok(e)
    }

    fn parse_primary(&mut self) -> PResult<Expr> {
        let start = self.cur().start;
        match self.peek().clone() {
            Tok::Number(n) => {
                self.bump();
                Ok(Expr::Number(n))
            }
            Tok::Duration(ms) => {
                self.bump();
                Ok(Expr::Number(ms as f64 / 1000.0))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::String(s))
            }
            Tok::LParen => {
                self.bump();
                let e = self.parse_expr(0)?;
                self.expect(Tok::RParen, "\")\"")?;
                Ok(Expr::Paren(Box::new(e)))
            }
            Tok::LBrace => Ok(Expr::VectorSelector(
                self.parse_selector_rest(None, start, true)?,
            )),
            Tok::Ident(word) => {
                let next = self.peek_at(1).clone();
                let lower = word.to_ascii_lowercase();
                let grouping_next = matches!(&next, Tok::Ident(w)
                    if w.eq_ignore_ascii_case("by") || w.eq_ignore_ascii_case("without"));
                if let Some(op) = AggrOp::from_name(&lower)
                    && (next == Tok::LParen || grouping_next)
                {
                    self.bump();
                    return self.parse_aggregate(op, start);
                }
                if next == Tok::LParen {
                    self.bump();
                    return self.parse_call(&word, start);
                }
                if KEYWORDS.contains(&lower.as_str()) {
                    return Err(self.unexpected("expression"));
                }
                self.bump();
                Ok(Expr::VectorSelector(self.parse_selector_rest(
                    Some(word),
                    start,
                    true,
                )?))
            }
            _ => Err(self.unexpected("expression")),
        }
    }

    /// After an optional metric name: optional `{matchers}`.
    fn parse_selector_rest(
        &mut self,
        name: Option<String>,
        start: usize,
        check_empty: bool,
    ) -> PResult<VectorSelector> {
        let mut matchers = Vec::new();
        if let Some(n) = &name {
            matchers.push(LabelMatcher::equal(METRIC_NAME, n.clone()));
        }
        if *self.peek() == Tok::LBrace {
            self.bump();
            loop {
                if *self.peek() == Tok::RBrace {
                    break;
                }
                let lpos = self.cur().start;
                let lname = match self.peek().clone() {
                    Tok::Ident(l) => {
                        self.bump();
                        l
                    }
                    _ => return Err(self.unexpected("label matching")),
                };
                let op = match self.peek() {
                    Tok::Assign => MatchOp::Equal,
                    Tok::Neq => MatchOp::NotEqual,
                    Tok::ReMatch => MatchOp::Regex,
                    Tok::ReNoMatch => MatchOp::NotRegex,
                    _ => return Err(self.unexpected("label matching operator")),
                };
                self.bump();
                let value = match self.peek().clone() {
                    Tok::Str(s) => {
                        self.bump();
                        s
                    }
                    _ => return Err(self.unexpected("string")),
                };
                if name.is_some() && lname == METRIC_NAME {
                    return Err(self.invalid(lpos, "metric name must not be set twice"));
                }
                let m = LabelMatcher::new(lname, op, value.clone()).map_err(|e| {
                    self.err_at(
                        lpos,
                        ParseErrorKind::BadRegex {
                            pattern: value,
                            reason: e.to_string(),
                        },
                    )
                })?;
                matchers.push(m);
                match self.peek() {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RBrace => {}
                    _ => return Err(self.unexpected("\",\" or \"}\"")),
                }
            }
            self.bump();
        }
        if check_empty && !matchers.iter().any(|m| !m.matches("")) {
            return Err(self.invalid(
                start,
                "vector selector must contain at least one non-empty matcher",
            ));
        }
        Ok(VectorSelector {
            name,
            matchers,
            offset_ms: 0,
        })
    }

    fn parse_label_list(&mut self) -> PResult<Vec<String>> {
        self.expect(Tok::LParen, "\"(\"")?;
        let mut out = Vec::new();
        loop {
            match self.peek().clone() {
                Tok::RParen => {
                    self.bump();
                    return Ok(out);
                }
                Tok::Ident(l) => {
                    self.bump();
                    out.push(l);
                    match self.peek() {
                        Tok::Comma => {
                            self.bump();
                        }
                        Tok::RParen => {}
                        _ => return Err(self.unexpected("\",\" or \")\"")),
                    }
                }
                _ => return Err(self.unexpected("label name or \")\"")),
            }
        }
    }

    fn parse_aggregate(&mut self, op: AggrOp, start: usize) -> PResult<Expr> {
        let mut grouping = None;
        if self.is_ident("by") || self.is_ident("without") {
            let without = self.is_ident("without");
            self.bump();
            grouping = Some((without, self.parse_label_list()?));
        }
        self.expect(Tok::LParen, "\"(\"")?;
        let mut param = None;
        if let Some(pt) = op.param_type() {
            let ppos = self.cur().start;
            let p = self.parse_expr(0)?;
            if p.value_type() != pt {
                return Err(self.err_at(
                    ppos,
                    ParseErrorKind::Type {
                        expected: pt.describe(),
                        context: "aggregation parameter".into(),
                        got: p.value_type().describe(),
                    },
                ));
            }
            param = Some(Box::new(p));
            self.expect(Tok::Comma, "\",\"")?;
        }
        let epos = self.cur().start;
        let expr = self.parse_expr(0)?;
        if expr.value_type() != ValueType::Vector {
            return Err(self.err_at(
                epos,
                ParseErrorKind::Type {
                    expected: ValueType::Vector.describe(),
                    context: "aggregation expression".into(),
                    got: expr.value_type().describe(),
                },
            ));
        }
        self.expect(Tok::RParen, "\")\"")?;
        if self.is_ident("by") || self.is_ident("without") {
            if grouping.is_some() {
                return Err(self.invalid(
                    self.cur().start,
                    "aggregation grouping may only be given once",
                ));
            }
            let without = self.is_ident("without");
            self.bump();
            grouping = Some((without, self.parse_label_list()?));
        }
        let (without, grouping) = grouping.unwrap_or((false, Vec::new()));
        let _ = start;
        Ok(Expr::Aggregate {
            op,
            expr: Box::new(expr),
            param,
            grouping,
            without,
        })
    }

    fn parse_call(&mut self, name: &str, start: usize) -> PResult<Expr> {
        let def = catalog::lookup(name)
            .ok_or_else(|| self.err_at(start, ParseErrorKind::UnknownFunction(name.to_string())))?;
        self.expect(Tok::LParen, "\"(\"")?;
        let mut args = Vec::new();
        let mut positions = Vec::new();
        loop {
            if *self.peek() == Tok::RParen {
                self.bump();
                break;
            }
            positions.push(self.cur().start);
            args.push(self.parse_expr(0)?);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {}
                _ => return Err(self.unexpected("\",\" or \")\"")),
            }
        }
        let n = def.args.len();
        let (ok, expected) = match def.variadic {
            0 => (args.len() == n, n.to_string()),
            -1 => (args.len() >= n - 1, format!("at least {}", n - 1)),
            k => {
                let min = n - k as usize;
                (
                    args.len() >= min && args.len() <= n,
                    format!("{min} to {n}"),
                )
            }
        };
        if !ok {
            return Err(self.err_at(
                start,
                ParseErrorKind::ArgCount {
                    name: name.to_string(),
                    expected,
                    got: args.len(),
                },
            ));
        }
        for (i, a) in args.iter().enumerate() {
            let want = def.args[i.min(n - 1)];
            if a.value_type() != want {
                return Err(self.err_at(
                    positions[i],
                    ParseErrorKind::Type {
                        expected: want.describe(),
                        context: format!("call to function \"{name}\""),
                        got: a.value_type().describe(),
                    },
                ));
            }
        }
        Ok(Expr::Call { func: def, args })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn num(e: &Expr) -> f64 {
        match e {
            Expr::Number(n) => *n,
            other => panic!("not a number: {other:?}"),
        }
    }

    #[test]
    fn precedence_and_assoc() {
        match p("1 + 2 * 3") {
            Expr::Binary {
                op: BinOp::Add,
                rhs,
                ..
            } => assert!(matches!(*rhs, Expr::Binary { op: BinOp::Mul, .. })),
            e => panic!("{e:?}"),
        }
        match p("2 ^ 3 ^ 2") {
            Expr::Binary {
                op: BinOp::Pow,
                lhs,
                rhs,
                ..
            } => {
                assert_eq!(num(&lhs), 2.0);
                assert!(matches!(*rhs, Expr::Binary { op: BinOp::Pow, .. }));
            }
            e => panic!("{e:?}"),
        }
        // Unary minus binds looser than ^.
        assert!(matches!(p("-2 ^ 2"), Expr::Neg(_)));
        assert_eq!(num(&p("-1")), -1.0);
        match p("a or b and c") {
            Expr::Binary {
                op: BinOp::Or, rhs, ..
            } => assert!(matches!(*rhs, Expr::Binary { op: BinOp::And, .. })),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn selectors_and_modifiers() {
        match p(r#"rate(http_requests_total{job=~"api.*", code!="500"}[5m] offset 1h)"#) {
            Expr::Call { func, args } => {
                assert_eq!(func.name, "rate");
                match &args[0] {
                    Expr::MatrixSelector { selector, range_ms } => {
                        assert_eq!(*range_ms, 300_000);
                        assert_eq!(selector.offset_ms, 3_600_000);
                        assert_eq!(selector.matchers.len(), 3);
                    }
                    e => panic!("{e:?}"),
                }
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(p("sum by (job) (x)"), Expr::Aggregate { .. }));
        assert!(matches!(
            p("sum(x) without (job,)"),
            Expr::Aggregate { without: true, .. }
        ));
        assert!(matches!(
            p("topk(3, x)"),
            Expr::Aggregate { param: Some(_), .. }
        ));
        match p("a * on(x) group_left(y) b") {
            Expr::Binary {
                matching: Some(m), ..
            } => {
                assert_eq!(m.card, Cardinality::ManyToOne);
                assert!(m.on);
                assert_eq!(m.include, vec!["y".to_string()]);
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            p("a > bool 1"),
            Expr::Binary {
                return_bool: true,
                ..
            }
        ));
    }

    #[test]
    fn errors_name_position_and_expectation() {
        let e = parse("sum(rate(x[5m])").unwrap_err();
        assert_eq!(
            e.to_string(),
            "1:16: unexpected end of input, expected \")\""
        );
        let e = parse("foo + )").unwrap_err();
        assert_eq!(e.pos, 6);
        assert_eq!(e.to_string(), "1:7: unexpected \")\", expected expression");
        assert!(
            parse("rate(x)")
                .unwrap_err()
                .to_string()
                .contains("expected type range vector")
        );
        assert!(parse("1 > 2").unwrap_err().to_string().contains("BOOL"));
        assert!(parse("{a=\"\"}").is_err());
        assert!(
            parse("x[5m:1m]")
                .unwrap_err()
                .to_string()
                .contains("not supported")
        );
        assert!(parse("foo{a=~\"(\"}").is_err());
        assert!(parse("1 and 2").is_err());
        assert!(parse("nosuchfn(x)").is_err());
    }
}
