//! Tidemark: an embedded time-series engine and local monitor.
//!
//! This crate joins the storage engine (`tidemark-storage`) and the query
//! layer (`tidemark-query`) to the outside world: ingest formats, the CLI
//! commands and (later) the HTTP API, monitor and alerting. Only this crate
//! reads the environment, opens sockets or installs a tracing subscriber.

#![forbid(unsafe_code)]

mod calendar;
pub mod cli;
pub mod config;
pub mod forward;
pub mod health;
pub mod http_client;
pub mod ingest;
pub mod monitor;
pub mod notify;
pub mod rules;
pub mod server;
pub mod source;
pub mod tsdb_status;

/// The README's Rust examples, compiled and run as doc tests so the
/// embedding quickstart cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
