//! Influx line protocol parser.
//!
//! ```text
//! measurement[,tag=value...] field=value[,field=value...] [timestamp]
//! ```
//!
//! Owns: splitting a body into lines, tokenizing each line, parsing field
//! values and converting timestamps to milliseconds. Series naming follows
//! VictoriaMetrics: one sample per numeric field, metric name
//! `measurement_field` (see [`Point::metric_name_into`]).
//!
//! Invariants:
//! - Escapes (`\,` `\ ` `\=` `\\`) in the measurement, tag keys, tag values
//!   and field keys are kept raw in the [`Text`] views and resolved lazily.
//! - Quoted string fields are validated (they must be terminated) and then
//!   skipped: they are not numeric samples. Booleans map to 1/0, `i`/`u`
//!   suffixed integers to their float value.
//! - A malformed line produces one [`LineError`] and yields nothing; the lines
//!   around it are unaffected.
//! - [`LineParser::parse`] reuses the parser's span vectors: no allocation per
//!   line once they have grown to the widest line's size.

use std::str::FromStr;

use super::{
    DEFAULT_MAX_ERRORS, Escaping, LineError, LineErrorKind, ParseSummary, Span, Text,
    for_each_line, quote,
};

/// Unit of the timestamps in a line protocol body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
}

impl Precision {
    /// Converts a timestamp in this unit to milliseconds (flooring), or
    /// `None` when it does not fit in an `i64` of milliseconds.
    pub fn to_millis(self, ts: i64) -> Option<i64> {
        match self {
            Precision::Nanoseconds => Some(ts.div_euclid(1_000_000)),
            Precision::Microseconds => Some(ts.div_euclid(1_000)),
            Precision::Milliseconds => Some(ts),
            Precision::Seconds => ts.checked_mul(1_000),
        }
    }
}

/// An unknown precision name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision {0:?}: expected ns, us, ms or s")]
pub struct PrecisionError(pub String);

impl FromStr for Precision {
    type Err = PrecisionError;

    /// Accepts the InfluxDB 2 names (`ns`, `us`, `ms`, `s`) and the 1.x
    /// short forms (`n`, `u`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ns" | "n" => Ok(Precision::Nanoseconds),
            "us" | "u" | "µs" => Ok(Precision::Microseconds),
            "ms" => Ok(Precision::Milliseconds),
            "s" => Ok(Precision::Seconds),
            other => Err(PrecisionError(other.to_string())),
        }
    }
}

/// One parsed line: a measurement, its tags and its numeric fields.
///
/// Borrowed from the body and the parser; valid only inside the sink call.
#[derive(Clone, Copy, Debug)]
pub struct Point<'a> {
    /// 1-based line number.
    pub line: u64,
    /// Timestamp in milliseconds, `None` when the line has none (the caller
    /// picks "now").
    pub timestamp_ms: Option<i64>,
    text: &'a str,
    measurement: Span,
    series_key_end: u32,
    tags: &'a [(Span, Span)],
    fields: &'a [(Span, f64)],
}

impl<'a> Point<'a> {
    pub fn measurement(&self) -> Text<'a> {
        self.measurement.text(self.text, Escaping::LineProtocol)
    }

    /// The raw `measurement,tag=value,...` prefix, escapes included: equal
    /// keys denote the same tag set, so callers can cache on it without
    /// unescaping (different tag order gives different keys for one series).
    pub fn series_key(&self) -> &'a str {
        &self.text[..self.series_key_end as usize]
    }

    /// Tags in input order.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = (Text<'a>, Text<'a>)> + 'a {
        let text = self.text;
        self.tags.iter().map(move |(k, v)| {
            (
                k.text(text, Escaping::LineProtocol),
                v.text(text, Escaping::LineProtocol),
            )
        })
    }

    /// Numeric fields in input order (string fields are skipped).
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (Text<'a>, f64)> + 'a {
        let text = self.text;
        self.fields
            .iter()
            .map(move |(k, v)| (k.text(text, Escaping::LineProtocol), *v))
    }

    /// Appends the metric name of `field`'s series to `out`:
    /// `measurement_field`, unescaped.
    pub fn metric_name_into(&self, field: &Text<'_>, out: &mut String) {
        self.measurement().unescape_into(out);
        out.push('_');
        field.unescape_into(out);
    }
}

/// A reusable line protocol parser.
#[derive(Debug)]
pub struct LineParser {
    precision: Precision,
    max_errors: usize,
    tags: Vec<(Span, Span)>,
    fields: Vec<(Span, f64)>,
}

impl Default for LineParser {
    fn default() -> Self {
        Self::new(Precision::default())
    }
}

impl LineParser {
    pub fn new(precision: Precision) -> Self {
        Self {
            precision,
            max_errors: DEFAULT_MAX_ERRORS,
            tags: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// How many errors a summary keeps verbatim (the rest are counted).
    pub fn with_max_errors(mut self, max_errors: usize) -> Self {
        self.max_errors = max_errors;
        self
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Parses every line of `body`, numbering them from `first_line`, and
    /// calls `sink` once per valid line that has at least one numeric field.
    /// Malformed lines are counted and reported in the summary.
    pub fn parse(
        &mut self,
        body: &[u8],
        first_line: u64,
        mut sink: impl FnMut(&Point<'_>),
    ) -> ParseSummary {
        let mut summary = ParseSummary::default();
        let max_errors = self.max_errors;
        summary.lines_seen = for_each_line(body, first_line, |line_no, line| {
            let text = match line {
                Ok(t) => t,
                Err(kind) => {
                    summary.reject(
                        LineError {
                            line: line_no,
                            kind,
                        },
                        max_errors,
                    );
                    return;
                }
            };
            match self.parse_line(text) {
                Ok(None) => {}
                Ok(Some(parsed)) => {
                    summary.lines_accepted += 1;
                    summary.samples += self.fields.len() as u64;
                    if !self.fields.is_empty() {
                        sink(&Point {
                            line: line_no,
                            timestamp_ms: parsed.timestamp_ms,
                            text,
                            measurement: parsed.measurement,
                            series_key_end: parsed.series_key_end,
                            tags: &self.tags,
                            fields: &self.fields,
                        });
                    }
                }
                Err(kind) => summary.reject(
                    LineError {
                        line: line_no,
                        kind,
                    },
                    max_errors,
                ),
            }
        });
        summary
    }

    /// Tokenizes one line into `self.tags` / `self.fields`. `Ok(None)` for
    /// blank lines and comments.
    fn parse_line(&mut self, text: &str) -> Result<Option<ParsedLine>, LineErrorKind> {
        self.tags.clear();
        self.fields.clear();
        let b = text.as_bytes();
        let n = b.len();
        let mut i = skip_spaces(b, 0);
        if i == n || b[i] == b'#' {
            return Ok(None);
        }

        // Measurement: up to an unescaped ',' or ' '.
        let start = i;
        let (end, escaped) = scan(b, i, COMMA | SPACE);
        if end == start {
            return Err(LineErrorKind::MissingMeasurement);
        }
        let measurement = Span::new(start, end, escaped);
        i = end;

        // Tags: ,key=value pairs up to an unescaped ' '.
        while i < n && b[i] == b',' {
            let kstart = i + 1;
            let (kend, kesc) = scan(b, kstart, EQ | COMMA | SPACE);
            if kend == kstart || kend == n || b[kend] != b'=' {
                let (whole, _) = scan(b, kstart, COMMA | SPACE);
                return Err(LineErrorKind::InvalidTag(quote(&text[kstart..whole])));
            }
            let vstart = kend + 1;
            let (vend, vesc) = scan(b, vstart, COMMA | SPACE);
            if vend == vstart {
                return Err(LineErrorKind::InvalidTag(quote(&text[kstart..vend])));
            }
            self.tags
                .push((Span::new(kstart, kend, kesc), Span::new(vstart, vend, vesc)));
            i = vend;
        }
        let series_key_end = i as u32;

        i = skip_spaces(b, i);
        if i == n {
            return Err(LineErrorKind::MissingFieldSet);
        }

        // Fields: key=value pairs separated by ',' up to an unescaped ' '.
        loop {
            let kstart = i;
            let (kend, kesc) = scan(b, kstart, EQ | COMMA | SPACE);
            if kend == kstart || kend == n || b[kend] != b'=' {
                let (whole, _) = scan(b, kstart, COMMA | SPACE);
                return Err(LineErrorKind::InvalidField(quote(&text[kstart..whole])));
            }
            let key = Span::new(kstart, kend, kesc);
            let vstart = kend + 1;
            let field_name = || quote(&key.text(text, Escaping::LineProtocol).unescape());
            if vstart < n && b[vstart] == b'"' {
                // String field: validated, then skipped.
                let mut j = vstart + 1;
                loop {
                    match b.get(j) {
                        None => return Err(LineErrorKind::UnterminatedString(field_name())),
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
                if i < n && b[i] != b',' && b[i] != b' ' {
                    return Err(LineErrorKind::InvalidField(quote(&text[kstart..])));
                }
            } else {
                let mut vend = vstart;
                while vend < n && CLASS[b[vend] as usize] & (COMMA | SPACE) == 0 {
                    vend += 1;
                }
                if vend == vstart {
                    return Err(LineErrorKind::MissingFieldValue(field_name()));
                }
                let value = parse_field_value(&text[vstart..vend], field_name)?;
                self.fields.push((key, value));
                i = vend;
            }
            if i < n && b[i] == b',' {
                i += 1;
                continue;
            }
            break;
        }

        // Optional timestamp, then only trailing whitespace.
        i = skip_spaces(b, i);
        let mut timestamp_ms = None;
        if i < n {
            let tstart = i;
            let tend = b[tstart..]
                .iter()
                .position(|&c| c == b' ' || c == b'\t')
                .map_or(n, |p| tstart + p);
            let raw = &text[tstart..tend];
            let ts: i64 = raw
                .parse()
                .map_err(|_| LineErrorKind::InvalidTimestamp(quote(raw)))?;
            timestamp_ms = Some(
                self.precision
                    .to_millis(ts)
                    .ok_or_else(|| LineErrorKind::TimestampOutOfRange(quote(raw)))?,
            );
            let rest = skip_spaces(b, tend);
            if rest < n {
                return Err(LineErrorKind::TrailingText(quote(&text[rest..])));
            }
        }
        Ok(Some(ParsedLine {
            measurement,
            series_key_end,
            timestamp_ms,
        }))
    }
}

/// The scalar results of tokenizing a line (the vectors stay in the parser).
struct ParsedLine {
    measurement: Span,
    series_key_end: u32,
    timestamp_ms: Option<i64>,
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

// Byte classes for the tokenizer: one table load per byte instead of a
// chain of comparisons (the series key scan is most of the parse time).
const SPACE: u8 = 1;
const COMMA: u8 = 2;
const EQ: u8 = 4;
const BACKSLASH: u8 = 8;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b' ' as usize] = SPACE;
    t[b',' as usize] = COMMA;
    t[b'=' as usize] = EQ;
    t[b'\\' as usize] = BACKSLASH;
    t
};

/// Scans from `i` to the first byte whose class is in `stop` and that is
/// not escaped by a backslash. Returns its index (or `b.len()`) and whether
/// a backslash was seen.
#[inline]
fn scan(b: &[u8], mut i: usize, stop: u8) -> (usize, bool) {
    let mut escaped = false;
    let mask = stop | BACKSLASH;
    loop {
        while i < b.len() && CLASS[b[i] as usize] & mask == 0 {
            i += 1;
        }
        if i < b.len() && b[i] == b'\\' {
            escaped = true;
            i = (i + 2).min(b.len());
            continue;
        }
        return (i, escaped);
    }
}

/// Parses a non-string field value: float, `i`/`u` integer or boolean.
fn parse_field_value(raw: &str, field: impl Fn() -> String) -> Result<f64, LineErrorKind> {
    let last = raw.as_bytes()[raw.len() - 1];
    match last {
        b'i' => raw[..raw.len() - 1]
            .parse::<i64>()
            .map(|v| v as f64)
            .map_err(|_| LineErrorKind::InvalidInteger {
                field: field(),
                value: quote(raw),
            }),
        b'u' => raw[..raw.len() - 1]
            .parse::<u64>()
            .map(|v| v as f64)
            .map_err(|_| LineErrorKind::InvalidUnsigned {
                field: field(),
                value: quote(raw),
            }),
        _ => match raw {
            "t" | "T" | "true" | "True" | "TRUE" => Ok(1.0),
            "f" | "F" | "false" | "False" | "FALSE" => Ok(0.0),
            _ => raw.parse::<f64>().map_err(|_| LineErrorKind::InvalidFloat {
                field: field(),
                value: quote(raw),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A point with everything unescaped, for comparisons.
    #[derive(Clone, Debug, PartialEq)]
    struct Owned {
        line: u64,
        measurement: String,
        tags: Vec<(String, String)>,
        fields: Vec<(String, f64)>,
        ts: Option<i64>,
    }

    fn collect(p: &mut LineParser, body: &str) -> (Vec<Owned>, ParseSummary) {
        let mut out = Vec::new();
        let s = p.parse(body.as_bytes(), 1, |pt| {
            out.push(Owned {
                line: pt.line,
                measurement: pt.measurement().unescape().into_owned(),
                tags: pt
                    .tags()
                    .map(|(k, v)| (k.unescape().into_owned(), v.unescape().into_owned()))
                    .collect(),
                fields: pt
                    .fields()
                    .map(|(k, v)| (k.unescape().into_owned(), v))
                    .collect(),
                ts: pt.timestamp_ms,
            })
        });
        (out, s)
    }

    fn parse(body: &str) -> (Vec<Owned>, ParseSummary) {
        collect(&mut LineParser::new(Precision::Milliseconds), body)
    }

    fn one_error(line: &str) -> LineErrorKind {
        let (pts, s) = parse(line);
        assert!(pts.is_empty(), "{line:?} parsed: {pts:?}");
        assert_eq!(s.rejected_lines, 1, "{line:?}");
        assert_eq!(s.errors[0].line, 1);
        s.errors[0].kind.clone()
    }

    #[test]
    fn parses_dataset_line() {
        let (pts, s) = parse(
            "http,host=host-01,instance=host-01:8080,job=api,service=api \
             requests_total=1234,errors_total=5,response_bytes_total=99,latency_p99_seconds=0.1234 \
             1699920000000\n",
        );
        assert_eq!(s.lines_accepted, 1);
        assert_eq!(s.samples, 4);
        let p = &pts[0];
        assert_eq!(p.measurement, "http");
        assert_eq!(p.tags.len(), 4);
        assert_eq!(p.tags[1], ("instance".into(), "host-01:8080".into()));
        assert_eq!(p.fields[3], ("latency_p99_seconds".into(), 0.1234));
        assert_eq!(p.ts, Some(1699920000000));
    }

    #[test]
    fn metric_name_is_measurement_underscore_field() {
        let mut p = LineParser::new(Precision::Milliseconds);
        let mut names = Vec::new();
        p.parse(b"http,host=a requests_total=1 1\nmy\\ m up=1i", 1, |pt| {
            for (f, _) in pt.fields() {
                let mut s = String::new();
                pt.metric_name_into(&f, &mut s);
                names.push(s);
            }
            assert!(pt.series_key().starts_with(pt.measurement().raw()));
        });
        assert_eq!(names, vec!["http_requests_total", "my m_up"]);
    }

    #[test]
    fn escaping_in_names_tags_and_fields() {
        let (pts, s) = parse(r#"m\,x\ y,t\=k=v\,1\ 2\\ f\ 1=1,s="a \"q\" ,=",b=t 7"#);
        assert_eq!(s.rejected_lines, 0, "{:?}", s.errors);
        let p = &pts[0];
        assert_eq!(p.measurement, "m,x y");
        assert_eq!(p.tags, vec![("t=k".into(), r"v,1 2\".into())]);
        assert_eq!(p.fields, vec![("f 1".into(), 1.0), ("b".into(), 1.0)]);
        assert_eq!(p.ts, Some(7));
    }

    #[test]
    fn field_value_kinds() {
        let (pts, _) = parse("m a=1.5,b=-3i,c=7u,d=t,e=FALSE,f=1e3,g=True,h=\"str\"");
        assert_eq!(
            pts[0].fields,
            vec![
                ("a".into(), 1.5),
                ("b".into(), -3.0),
                ("c".into(), 7.0),
                ("d".into(), 1.0),
                ("e".into(), 0.0),
                ("f".into(), 1000.0),
                ("g".into(), 1.0),
            ]
        );
        assert_eq!(pts[0].ts, None);
    }

    #[test]
    fn string_only_line_is_accepted_without_samples() {
        let (pts, s) = parse("m msg=\"hello world\" 5");
        assert!(pts.is_empty());
        assert_eq!((s.lines_accepted, s.samples, s.rejected_lines), (1, 0, 0));
    }

    #[test]
    fn blank_lines_and_comments_are_skipped() {
        let (pts, s) = parse("\n# comment\n   \nm v=1 1\r\n\t# indented\n");
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].line, 4);
        assert_eq!(s.lines_seen, 5);
        assert_eq!((s.lines_accepted, s.rejected_lines), (1, 0));
    }

    #[test]
    fn every_error_kind_names_its_line() {
        use LineErrorKind::*;
        assert_eq!(one_error("m"), MissingFieldSet);
        assert_eq!(one_error("m,t=1"), MissingFieldSet);
        assert_eq!(one_error("m,t=1  "), MissingFieldSet);
        assert_eq!(one_error(",t=1 v=1"), MissingMeasurement);
        assert_eq!(one_error("m,t v=1"), InvalidTag("t".into()));
        assert_eq!(one_error("m,t= v=1"), InvalidTag("t=".into()));
        assert_eq!(one_error("m,=v v=1"), InvalidTag("=v".into()));
        assert_eq!(one_error("m v"), InvalidField("v".into()));
        assert_eq!(one_error("m v=1,"), InvalidField("".into()));
        assert_eq!(one_error("m v="), MissingFieldValue("v".into()));
        assert_eq!(one_error("m v=,w=1"), MissingFieldValue("v".into()));
        assert_eq!(
            one_error("m x=1.2.3"),
            InvalidFloat {
                field: "x".into(),
                value: "1.2.3".into()
            }
        );
        assert_eq!(
            one_error("m x=1.5i"),
            InvalidInteger {
                field: "x".into(),
                value: "1.5i".into()
            }
        );
        assert_eq!(
            one_error("m x=-1u"),
            InvalidUnsigned {
                field: "x".into(),
                value: "-1u".into()
            }
        );
        assert_eq!(one_error("m s=\"abc"), UnterminatedString("s".into()));
        assert_eq!(one_error("m s=\"abc\\\""), UnterminatedString("s".into()));
        assert_eq!(one_error("m s=\"a\"x"), InvalidField("s=\"a\"x".into()));
        assert_eq!(one_error("m v=1 12ab"), InvalidTimestamp("12ab".into()));
        assert_eq!(one_error("m v=1 1 2"), TrailingText("2".into()));
        let (_, s) = collect(
            &mut LineParser::new(Precision::Seconds),
            &format!("m v=1 {}", i64::MAX),
        );
        assert_eq!(
            s.errors[0].kind,
            TimestampOutOfRange("9223372036854775807".into())
        );
        let s = LineParser::new(Precision::Milliseconds).parse(b"m v=1\n\xff v=1\n", 1, |_| {});
        assert_eq!(s.errors[0].line, 2);
        assert_eq!(s.errors[0].kind, InvalidUtf8);
    }

    #[test]
    fn error_messages_name_line_and_problem() {
        let (_, s) = parse("m v=1 1\n\n\n\n\n\n\n\nm x=1.2.3 1\nm\n");
        let msgs: Vec<String> = s.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "line 9: invalid float \"1.2.3\" for field \"x\"",
                "line 10: missing field set"
            ]
        );
    }

    #[test]
    fn bad_line_between_good_lines_keeps_both() {
        let (pts, s) = parse("a v=1 1000\nb v=oops 2000\nc v=3 3000\n");
        assert_eq!(pts.len(), 2);
        assert_eq!(
            (pts[0].measurement.as_str(), pts[0].line),
            ("a", 1),
            "first good line kept"
        );
        assert_eq!(
            (pts[1].measurement.as_str(), pts[1].line, pts[1].fields[0].1),
            ("c", 3, 3.0)
        );
        assert_eq!((s.lines_accepted, s.samples, s.rejected_lines), (2, 2, 1));
        assert_eq!(s.errors[0].line, 2);
    }

    #[test]
    fn error_list_is_capped_but_all_rejections_counted() {
        let body = "bad\n".repeat(10);
        let mut p = LineParser::new(Precision::Milliseconds).with_max_errors(3);
        let s = p.parse(body.as_bytes(), 1, |_| {});
        assert_eq!(s.rejected_lines, 10);
        assert_eq!(s.errors.len(), 3);
        assert_eq!(s.errors[2].line, 3);
    }

    #[test]
    fn first_line_offsets_numbering() {
        let mut p = LineParser::new(Precision::Milliseconds);
        let s = p.parse(b"ok v=1\nbad\n", 100, |pt| assert_eq!(pt.line, 100));
        assert_eq!(s.errors[0].line, 101);
    }

    #[test]
    fn precision_conversions() {
        let ts = |prec: Precision, body: &str| {
            let (pts, s) = collect(&mut LineParser::new(prec), body);
            assert_eq!(s.rejected_lines, 0, "{:?}", s.errors);
            pts[0].ts
        };
        assert_eq!(
            ts(Precision::Nanoseconds, "m v=1 1699920000123456789"),
            Some(1699920000123)
        );
        assert_eq!(
            ts(Precision::Microseconds, "m v=1 1699920000123456"),
            Some(1699920000123)
        );
        assert_eq!(
            ts(Precision::Milliseconds, "m v=1 1699920000123"),
            Some(1699920000123)
        );
        assert_eq!(
            ts(Precision::Seconds, "m v=1 1699920000"),
            Some(1699920000000)
        );
        // Flooring, not truncation toward zero, before the epoch.
        assert_eq!(ts(Precision::Nanoseconds, "m v=1 -1"), Some(-1));
        assert_eq!(LineParser::default().precision(), Precision::Nanoseconds);
        assert_eq!("us".parse(), Ok(Precision::Microseconds));
        assert_eq!("n".parse(), Ok(Precision::Nanoseconds));
        assert!("h".parse::<Precision>().is_err());
    }

    #[test]
    fn parser_reuse_does_not_leak_between_lines() {
        let (pts, _) = parse("a,x=1,y=2 f=1,g=2 1\nb h=3 2\n");
        assert!(pts[1].tags.is_empty());
        assert_eq!(pts[1].fields, vec![("h".into(), 3.0)]);
    }

    // ---- round trip ----

    fn escape(s: &str, specials: &[char]) -> String {
        let mut out = String::new();
        for c in s.chars() {
            if c == '\\' || specials.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    #[derive(Clone, Debug)]
    enum Val {
        Float(f64),
        Int(i64),
        Uint(u64),
        Bool(bool),
        Str(String),
    }

    impl Val {
        fn format(&self) -> String {
            match self {
                Val::Float(v) => format!("{v:?}"),
                Val::Int(v) => format!("{v}i"),
                Val::Uint(v) => format!("{v}u"),
                Val::Bool(v) => if *v { "true" } else { "F" }.to_string(),
                Val::Str(s) => format!("\"{}\"", escape(s, &['"'])),
            }
        }
        fn numeric(&self) -> Option<f64> {
            match self {
                Val::Float(v) => Some(*v),
                Val::Int(v) => Some(*v as f64),
                Val::Uint(v) => Some(*v as f64),
                Val::Bool(v) => Some(if *v { 1.0 } else { 0.0 }),
                Val::Str(_) => None,
            }
        }
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z_][a-zA-Z0-9_ ,=\\\\.:-]{0,12}"
    }

    fn val() -> impl Strategy<Value = Val> {
        prop_oneof![
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(Val::Float),
            any::<i64>().prop_map(Val::Int),
            any::<u64>().prop_map(Val::Uint),
            any::<bool>().prop_map(Val::Bool),
            "[a-z \",=\\\\]{0,8}".prop_map(Val::Str),
        ]
    }

    type Line = (
        String,
        Vec<(String, String)>,
        Vec<(String, Val)>,
        Option<i64>,
    );

    fn line() -> impl Strategy<Value = Line> {
        (
            name(),
            proptest::collection::vec((name(), name()), 0..4),
            proptest::collection::vec((name(), val()), 1..5),
            proptest::option::of(any::<i64>()),
        )
    }

    fn format_line((m, tags, fields, ts): &Line) -> String {
        let mut s = escape(m, &[',', ' ']);
        for (k, v) in tags {
            s.push(',');
            s.push_str(&escape(k, &[',', ' ', '=']));
            s.push('=');
            s.push_str(&escape(v, &[',', ' ', '=']));
        }
        s.push(' ');
        let fs: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k, &[',', ' ', '=']), v.format()))
            .collect();
        s.push_str(&fs.join(","));
        if let Some(ts) = ts {
            s.push_str(&format!(" {ts}"));
        }
        s
    }

    proptest! {
        #[test]
        fn round_trip(lines in proptest::collection::vec(line(), 1..8)) {
            let body: String = lines.iter().map(|l| format_line(l) + "\n").collect();
            let (pts, s) = parse(&body);
            prop_assert_eq!(s.rejected_lines, 0, "{:?}\n{}", s.errors, body);
            let expected: Vec<Owned> = lines
                .iter()
                .enumerate()
                .filter_map(|(i, (m, tags, fields, ts))| {
                    let fields: Vec<(String, f64)> = fields
                        .iter()
                        .filter_map(|(k, v)| v.numeric().map(|n| (k.clone(), n)))
                        .collect();
                    (!fields.is_empty()).then(|| Owned {
                        line: i as u64 + 1,
                        measurement: m.clone(),
                        tags: tags.clone(),
                        fields,
                        ts: *ts,
                    })
                })
                .collect();
            prop_assert_eq!(pts, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut p = LineParser::new(Precision::Seconds);
            let s = p.parse(&body, 1, |_| {});
            prop_assert!(s.lines_accepted + s.rejected_lines <= s.lines_seen);
        }
    }
}
