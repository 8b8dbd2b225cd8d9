//! Limits, API shapes and a scale smoke test for the evaluator.

use std::time::{Duration, Instant};

use tidemark_query::{
    EvalError, EvalOptions, Labels, MemorySource, Value, eval_instant, eval_range, parse, stale_nan,
};

fn source(series: usize, points: usize, step_ms: i64) -> MemorySource {
    let mut src = MemorySource::new();
    for s in 0..series {
        let labels = Labels::from_pairs([
            ("__name__", "http_requests_total".to_string()),
            ("service", format!("svc-{}", s % 10)),
            ("instance", format!("i-{s}")),
        ]);
        let samples = (0..points).map(|i| (i as i64 * step_ms, (i * (s % 7 + 1)) as f64));
        src.add(labels, samples);
    }
    src
}

#[test]
fn too_many_samples_fails_fast() {
    let src = source(50, 1000, 10_000);
    let opts = EvalOptions {
        max_samples: 10_000,
        ..EvalOptions::default()
    };
    let e = parse("sum(rate(http_requests_total[5m]))").unwrap();
    let err = eval_range(&src, &e, 0, 9_990_000, 10_000, &opts).unwrap_err();
    assert!(
        matches!(err, EvalError::TooManySamples { limit: 10_000 }),
        "{err}"
    );
}

#[test]
fn too_many_steps_fails_before_allocating() {
    let src = source(1, 10, 10_000);
    let e = parse("1 + time()").unwrap();
    let err = eval_range(&src, &e, 0, i64::MAX / 2, 1, &EvalOptions::default()).unwrap_err();
    assert!(matches!(err, EvalError::TooManySamples { .. }), "{err}");
}

#[test]
fn too_many_series_fails() {
    let src = source(50, 10, 10_000);
    let opts = EvalOptions {
        max_series: 49,
        ..EvalOptions::default()
    };
    let e = parse("http_requests_total").unwrap();
    let err = eval_instant(&src, &e, 50_000, &opts).unwrap_err();
    assert!(
        matches!(err, EvalError::TooManySeries { limit: 49 }),
        "{err}"
    );
    let opts = EvalOptions {
        max_series: 50,
        ..EvalOptions::default()
    };
    assert!(eval_instant(&src, &e, 50_000, &opts).is_ok());
}

#[test]
fn timeout_fails() {
    let src = source(10, 10, 10_000);
    let opts = EvalOptions {
        timeout: Duration::ZERO,
        ..EvalOptions::default()
    };
    let e = parse("http_requests_total").unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let err = eval_instant(&src, &e, 50_000, &opts).unwrap_err();
    assert!(matches!(err, EvalError::Timeout { .. }), "{err}");
}

#[test]
fn result_shapes() {
    let src = source(2, 100, 10_000);
    let opts = EvalOptions::default();
    let v = eval_instant(&src, &parse("1 + 1").unwrap(), 5_000, &opts).unwrap();
    assert_eq!(v, Value::Scalar { t: 5_000, v: 2.0 });
    let v = eval_instant(&src, &parse("\"hi\"").unwrap(), 5_000, &opts).unwrap();
    assert_eq!(
        v,
        Value::String {
            t: 5_000,
            v: "hi".into()
        }
    );
    let v = eval_instant(
        &src,
        &parse("http_requests_total[30s]").unwrap(),
        100_000,
        &opts,
    )
    .unwrap();
    match v {
        Value::Matrix(m) => {
            assert_eq!(m.len(), 2);
            assert_eq!(
                m[0].samples.len(),
                4,
                "[70s, 100s] holds 4 samples at 10s spacing"
            );
        }
        other => panic!("{other:?}"),
    }
    // A scalar range query is one series without labels.
    let m = eval_range(&src, &parse("time()").unwrap(), 0, 60_000, 30_000, &opts).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].samples, vec![(0, 0.0), (30_000, 30.0), (60_000, 60.0)]);
    // Range vectors cannot be range-query results.
    assert!(matches!(
        eval_range(
            &src,
            &parse("http_requests_total[1m]").unwrap(),
            0,
            60_000,
            30_000,
            &opts
        ),
        Err(EvalError::BadResultType { .. })
    ));
    assert!(matches!(
        eval_range(&src, &parse("1").unwrap(), 0, 60_000, 0, &opts),
        Err(EvalError::BadRange { .. })
    ));
}

#[test]
fn stale_marker_ends_series_in_range_query() {
    let mut src = MemorySource::new();
    src.add(
        Labels::from_pairs([("__name__", "up")]),
        [(0, 1.0), (60_000, stale_nan())],
    );
    let m = eval_range(
        &src,
        &parse("up").unwrap(),
        0,
        120_000,
        30_000,
        &EvalOptions::default(),
    )
    .unwrap();
    assert_eq!(m[0].samples, vec![(0, 1.0), (30_000, 1.0)]);
}

/// 2,000 series x 4,320 points (the peers dataset shape), queried over the
/// whole range at a 60 s step like the peer benchmark. Timing is printed;
/// run with `--ignored --nocapture` (a debug build is ~10-30x slower than release).
#[test]
#[ignore]
fn scale_smoke() {
    let step = 10_000;
    let points = 4320;
    let src = source(2000, points, step);
    let end = (points as i64 - 1) * step;
    let opts = EvalOptions::default();
    for q in [
        "rate(http_requests_total[5m])",
        "sum by (service) (rate(http_requests_total[5m]))",
        "max_over_time(http_requests_total[1h])",
        "sum by (service) (rate(http_requests_total[5m])) / sum by (service) (rate(http_requests_total[5m]))",
    ] {
        let e = parse(q).unwrap();
        let t = Instant::now();
        let m = eval_range(&src, &e, 0, end, 60_000, &opts).unwrap();
        eprintln!("{q}: {} series in {:?}", m.len(), t.elapsed());
    }
}
