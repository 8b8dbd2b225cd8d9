//! The notifier around the core: deliveries run concurrently, so a channel
//! that never answers holds up neither the other channels nor the rule
//! evaluator, and is not sent to again while its delivery is in flight.

use std::sync::Mutex as StdMutex;

use super::*;
use crate::notify::channel::SendFuture;
use crate::notify::history::{MemoryHistory, Query};
use crate::rules::AlertState;

/// Never completes.
struct Stuck;

impl Channel for Stuck {
    fn kind(&self) -> &'static str {
        "stuck"
    }
    fn send<'a>(&'a self, _: &'a Notification) -> SendFuture<'a> {
        Box::pin(std::future::pending())
    }
}

/// Records group keys and wakes the test.
#[derive(Default)]
struct Recorder {
    got: StdMutex<Vec<String>>,
    notify: tokio::sync::Notify,
}

impl Channel for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            self.got.lock().unwrap().push(n.group_key.clone());
            self.notify.notify_one();
            Ok(())
        })
    }
}

const T0: i64 = 1_795_737_600_000;

#[test]
fn a_stuck_channel_blocks_neither_other_channels_nor_alert_intake() {
    let cfg: NotifyConfig = toml::from_str(
        r#"
[[receivers]]
name = "team"
channels = [{ type = "console" }, { type = "console" }]
[route]
receiver = "team"
group_by = ["alertname"]
"#,
    )
    .unwrap();
    let recorder = Arc::new(Recorder::default());
    let channels = BTreeMap::from([(
        "team".to_string(),
        vec![Arc::new(Stuck) as Arc<dyn Channel>, recorder.clone()],
    )]);
    let health = Health::new();
    let history = Arc::new(MemoryHistory::open(None, 100));
    let n = Notifier::with_channels(&cfg, channels, None, &health, history.clone(), T0).unwrap();
    let alert = Alert {
        labels: BTreeMap::from([("alertname".to_string(), "Down".to_string())]),
        annotations: BTreeMap::new(),
        state: AlertState::Firing,
        value: 0.0,
        active_at_ms: T0,
        fired_at_ms: Some(T0),
        resolved_at_ms: None,
        keep_firing_since_ms: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        n.alerts("g", &[(alert.clone(), "up == 0".into())], T0);
        let ds = n.tick(T0 + 30_000);
        assert_eq!(ds.len(), 2);
        let woken = recorder.notify.notified();
        n.spawn_deliveries(ds);
        // Alert intake does not wait for deliveries.
        n.alerts("g", &[(alert.clone(), "up == 0".into())], T0 + 31_000);
        tokio::time::timeout(std::time::Duration::from_secs(10), woken)
            .await
            .expect("the recorder was not held up by the stuck channel");
    });
    assert_eq!(recorder.got.lock().unwrap().len(), 1);
    // Wait (bounded) for the recorder's outcome to be logged.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let q = Query {
        start_ms: i64::MIN,
        end_ms: i64::MAX,
        alertname: None,
        limit: 10,
    };
    while history
        .query(&q)
        .0
        .iter()
        .all(|e| e.channel.as_deref() != Some("recorder"))
    {
        assert!(std::time::Instant::now() < deadline);
        std::thread::yield_now();
    }
    // Next flush: the recorder already has it, the stuck one is in flight.
    assert!(n.tick(T0 + 30_000 + 300_000).is_empty());
    let names: Vec<String> = health.snapshot().into_iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["channel:team/recorder", "channel:team/stuck", "notifier"]
    );
}
