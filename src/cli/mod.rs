//! CLI subcommands (placeholder while the storage API lands).
