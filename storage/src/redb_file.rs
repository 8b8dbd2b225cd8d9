//! Opening redb files so that a crash can never leave a half-created one.
//!
//! redb is crash-safe once a file exists, but a process killed inside
//! `Database::create` of a new file leaves bytes that are not yet a redb
//! database ("magic number mismatch"), and the directory would then refuse
//! to open. New files are therefore created under `<name>.tmp`, fsynced,
//! and renamed into place: a file with the final name is always complete,
//! and a leftover `.tmp` holds nothing that was ever committed.

use std::path::Path;

use crate::error::Error;

/// Opens `path`, creating it atomically first when it does not exist.
pub(crate) fn open_or_create(path: &Path, cache_bytes: usize) -> Result<redb::Database, Error> {
    if !path.exists() {
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&tmp, e)),
            _ => {}
        }
        drop(redb::Database::create(&tmp).map_err(|e| Error::redb(&tmp, e))?);
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        if let Some(dir) = path.parent() {
            crate::partition::sync_dir(dir)?;
        }
    }
    redb::Database::builder()
        .set_cache_size(cache_bytes)
        .open(path)
        .map_err(|e| Error::redb(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_tmp_is_replaced_and_existing_files_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        // A half-created file from a crash: garbage under the temp name.
        std::fs::write(dir.path().join("x.redb.tmp"), b"not a database").unwrap();
        drop(open_or_create(&path, 1 << 20).unwrap());
        assert!(!dir.path().join("x.redb.tmp").exists());
        drop(open_or_create(&path, 1 << 20).unwrap());
    }
}
