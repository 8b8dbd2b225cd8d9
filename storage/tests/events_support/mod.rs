//! Helpers shared by the event-log tests (`events.rs`, `events_damage.rs`):
//! event builders, a paging reader, the ordering model, file listings.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use tidemark_storage::{Cursor, Event, EventLog, EventQuery, Labels};

pub const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z: all test data lives in the days after it.
pub const T0: i64 = 1_767_225_600_000;

pub fn ev(ts_ms: i64, kind: &str, component: &str, n: usize) -> Event {
    Event {
        ts_ms,
        kind: kind.to_string(),
        labels: Labels::from_pairs([("component", component)]),
        fields: format!(r#"{{"n":{n}}}"#),
    }
}

pub fn all(start_ms: i64, end_ms: i64, limit: usize) -> EventQuery {
    EventQuery {
        start_ms,
        end_ms,
        kinds: Vec::new(),
        matchers: Vec::new(),
        limit,
        before: None,
    }
}

/// Every page of `q`, following `next`; checks each page's size.
pub fn pages(log: &EventLog, q: &EventQuery) -> Vec<Event> {
    let mut q = q.clone();
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = log.query(&q).unwrap();
        assert!(page.events.len() <= q.limit);
        out.extend(page.events.iter().cloned());
        match page.next {
            Some(c) => {
                assert_eq!(
                    page.events.len(),
                    q.limit,
                    "a page with a next cursor is full"
                );
                // The cursor survives a string round trip.
                q.before = Some(c.to_string().parse::<Cursor>().unwrap());
            }
            None => return out,
        }
    }
    panic!("pagination did not end");
}

/// The model: events in append order; expected = filter, then newest first
/// with later appends first among equal times.
pub fn expected(appended: &[Event], keep: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut v: Vec<(usize, &Event)> = appended
        .iter()
        .enumerate()
        .filter(|(_, e)| keep(e))
        .collect();
    v.sort_by_key(|(i, e)| std::cmp::Reverse((e.ts_ms, *i)));
    v.into_iter().map(|(_, e)| e.clone()).collect()
}

pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}
