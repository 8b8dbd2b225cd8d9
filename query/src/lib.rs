//! PromQL subset for Tidemark: lexer, parser and evaluator.
//!
//! This crate reads through its own small `SeriesSource` trait and never
//! depends on `tidemark-storage`; `src/` implements that trait over the engine.
//! It is empty until the query issue lands.
#![forbid(unsafe_code)]
