//! Notifications with Alertmanager semantics, built in: routing, grouping
//! (group_wait / group_interval / repeat_interval), deduplication through
//! a persisted notification log, silences, inhibition, acknowledgement and
//! escalation, and delivery through [`channel::Channel`]s with retries.
//!
//! - [`channel`]: the payload ([`channel::Notification`], Alertmanager
//!   webhook v4) and the [`channel::Channel`] trait.
//! - [`config`]: `[notify]` configuration.
//! - [`route`]: matchers and the routing tree.
//! - [`time`]: RFC 3339 formatting and calendar helpers.
//!
//! Invariants: the core is a synchronous state machine driven with
//! explicit times (`now_ms`); only the production driver reads the clock.

pub mod channel;
pub mod config;
pub mod route;
pub mod time;
