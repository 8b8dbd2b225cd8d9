//! The file channel: each notification appended as one JSON line (the
//! webhook payload) to `path`; before a line would grow the file past
//! `max_bytes`, `path` becomes `path.1`, older files shift up, and at most
//! `keep` rotated files are kept.
//!
//! Invariants: writes and rotation run on the blocking pool under one
//! mutex per channel (notifications of one channel are serialized, other
//! channels are unaffected); a line is written whole with one `write_all`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::notify::channel::{Channel, ChannelError, Notification, SendFuture};
use crate::notify::config::FileChannelConfig;

/// Appends JSON lines to a file.
#[derive(Debug)]
pub struct FileChannel {
    cfg: FileChannelConfig,
    lock: Arc<Mutex<()>>,
}

impl FileChannel {
    pub fn new(cfg: &FileChannelConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            lock: Arc::new(Mutex::new(())),
        }
    }
}

fn rotated(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// Appends `line` to `cfg.path`, rotating first if needed.
pub fn append_line(cfg: &FileChannelConfig, line: &[u8]) -> std::io::Result<()> {
    let size = std::fs::metadata(&cfg.path).map_or(0, |m| m.len());
    if size > 0 && size + line.len() as u64 > cfg.max_bytes {
        if cfg.keep == 0 {
            std::fs::remove_file(&cfg.path)?;
        } else {
            let _ = std::fs::remove_file(rotated(&cfg.path, cfg.keep));
            for i in (1..cfg.keep).rev() {
                let from = rotated(&cfg.path, i);
                if from.exists() {
                    std::fs::rename(&from, rotated(&cfg.path, i + 1))?;
                }
            }
            std::fs::rename(&cfg.path, rotated(&cfg.path, 1))?;
        }
    }
    if let Some(dir) = cfg.path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cfg.path)?
        .write_all(line)
}

impl Channel for FileChannel {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let mut line = serde_json::to_vec(n)
                .map_err(|e| ChannelError::Permanent(format!("encoding payload: {e}")))?;
            line.push(b'\n');
            let cfg = self.cfg.clone();
            let lock = self.lock.clone();
            tokio::task::spawn_blocking(move || {
                let _g = lock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                append_line(&cfg, &line).map_err(|e| {
                    ChannelError::Retryable(format!("writing {}: {e}", cfg.path.display()))
                })
            })
            .await
            .map_err(|e| ChannelError::Retryable(format!("file channel task failed: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FileChannelConfig {
            path: dir.path().join("sub/alerts.jsonl"),
            max_bytes: 25,
            keep: 2,
        };
        for i in 0..5 {
            append_line(&cfg, format!("{{\"line\":{i:04}}}\n").as_bytes()).unwrap();
        }
        // 14-byte lines, at most one per 25-byte file.
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(cfg.path.clone()), "{\"line\":0004}\n");
        assert_eq!(read(rotated(&cfg.path, 1)), "{\"line\":0003}\n");
        assert_eq!(read(rotated(&cfg.path, 2)), "{\"line\":0002}\n");
        assert!(!rotated(&cfg.path, 3).exists());
    }
}
