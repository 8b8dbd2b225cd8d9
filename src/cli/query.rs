//! `tidemark query EXPR`: run a PromQL query against a data directory
//! (opened directly; the server must not be running on it) or a running
//! server (`--url`), and print a table or Prometheus's JSON (`--json`).
//!
//! Without `--start/--end` it is an instant query at `--time` (default
//! now); with them it is a range query with `--step` (default: 250 points).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tidemark_query::{EvalOptions, Value};

use crate::config::duration::parse_duration;
use crate::source::DbSource;

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The PromQL expression.
    pub expr: String,
    /// Data directory to query directly.
    #[arg(long, conflicts_with = "url")]
    pub data_dir: Option<PathBuf>,
    /// Server to query, e.g. http://127.0.0.1:9201.
    #[arg(long)]
    pub url: Option<String>,
    /// Instant query time (Unix seconds or RFC 3339); default now.
    #[arg(long, conflicts_with_all = ["start", "end"])]
    pub time: Option<String>,
    /// Range query start (Unix seconds or RFC 3339).
    #[arg(long, requires = "end")]
    pub start: Option<String>,
    /// Range query end.
    #[arg(long, requires = "start")]
    pub end: Option<String>,
    /// Range query step, e.g. 15s or 1m; default (end - start) / 250.
    #[arg(long, value_parser = parse_duration)]
    pub step: Option<Duration>,
    /// Print Prometheus's JSON response instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_time(s: &str) -> anyhow::Result<i64> {
    crate::server::parse_time_param("time", s).map_err(|e| anyhow::anyhow!(e.message))
}

pub fn run(args: &QueryArgs) -> anyhow::Result<()> {
    let now = crate::server::now_ms();
    let range = match (&args.start, &args.end) {
        (Some(s), Some(e)) => {
            let (start, end) = (parse_time(s)?, parse_time(e)?);
            if end < start {
                bail!("--end is before --start");
            }
            let step = args
                .step
                .map_or(((end - start) / 250).max(1000), |d| d.as_millis() as i64);
            Some((start, end, step.max(1)))
        }
        _ => None,
    };
    let time = args
        .time
        .as_deref()
        .map(parse_time)
        .transpose()?
        .unwrap_or(now);
    if let Some(url) = &args.url {
        return query_server(url, args, range, time);
    }
    let Some(dir) = &args.data_dir else {
        bail!("give --data-dir DIR or --url URL");
    };
    let expr = tidemark_query::parse(&args.expr).context("parsing the query")?;
    // The default configuration's tiers, so history past raw retention
    // is answered from rollups as the server would.
    let db = super::open_stopped(dir, None)?;
    let src = DbSource::new(&db, EvalOptions::default().max_series);
    let opts = EvalOptions::default();
    let value = match range {
        Some((start, end, step)) => Value::Matrix(tidemark_query::eval_range(
            &src, &expr, start, end, step, &opts,
        )?),
        None => tidemark_query::eval_instant(&src, &expr, time, &opts)?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        super::print_json_line(&mut out, &crate::server::value_json(&value))?;
    } else {
        print_table(&value, &mut out)?;
    }
    drop(out);
    db.close()?;
    Ok(())
}

fn print_table(value: &Value, out: &mut impl Write) -> std::io::Result<()> {
    let fmt_t = |t: i64| format!("{:.3}", t as f64 / 1000.0);
    match value {
        Value::Scalar { t, v } => writeln!(
            out,
            "scalar @{}  {}",
            fmt_t(*t),
            crate::server::format_value(*v)
        ),
        Value::String { t, v } => writeln!(out, "string @{}  {v:?}", fmt_t(*t)),
        Value::Vector(samples) => {
            for s in samples {
                writeln!(
                    out,
                    "{}  @{}  {}",
                    s.labels,
                    fmt_t(s.t),
                    crate::server::format_value(s.v)
                )?;
            }
            writeln!(out, "({} series)", samples.len())
        }
        Value::Matrix(series) => {
            for s in series {
                writeln!(out, "{}", s.labels)?;
                for (t, v) in &s.samples {
                    writeln!(out, "  @{}  {}", fmt_t(*t), crate::server::format_value(*v))?;
                }
            }
            writeln!(out, "({} series)", series.len())
        }
    }
}

/// Asks a running server over plain HTTP/1.1 and prints its answer.
fn query_server(
    url: &str,
    args: &QueryArgs,
    range: Option<(i64, i64, i64)>,
    time: i64,
) -> anyhow::Result<()> {
    let host = url
        .strip_prefix("http://")
        .context("--url must start with http:// (https is not supported here)")?
        .trim_end_matches('/');
    let secs = |ms: i64| format!("{}", ms as f64 / 1000.0);
    let q = serde_urlencoded::to_string([("query", args.expr.as_str())])
        .context("encoding the query")?;
    let path = match range {
        Some((start, end, step)) => format!(
            "/api/v1/query_range?{q}&start={}&end={}&step={}",
            secs(start),
            secs(end),
            secs(step)
        ),
        None => format!("/api/v1/query?{q}&time={}", secs(time)),
    };
    let mut stream = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_vec()
    };
    let json: serde_json::Value =
        serde_json::from_slice(&body).context("the server's answer is not JSON")?;
    if json["status"] != "success" {
        bail!(
            "{}: {}",
            json["errorType"].as_str().unwrap_or("error"),
            json["error"].as_str().unwrap_or("")
        );
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        super::print_json_line(&mut out, &json)?;
        return Ok(());
    }
    let data = &json["data"];
    let results = data["result"].as_array().cloned().unwrap_or_default();
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => writeln!(out, "{}", data["result"])?,
        _ => {
            for r in &results {
                writeln!(out, "{}", r["metric"])?;
                let points: Vec<serde_json::Value> = match r.get("values") {
                    Some(v) => v.as_array().cloned().unwrap_or_default(),
                    None => vec![r["value"].clone()],
                };
                for p in points {
                    writeln!(out, "  @{}  {}", p[0], p[1].as_str().unwrap_or(""))?;
                }
            }
            writeln!(out, "({} series)", results.len())?;
        }
    }
    Ok(())
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let Ok(size) = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16) else {
            break;
        };
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}
