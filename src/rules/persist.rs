//! The alert state file, `<data_dir>/rules/state.json`: every group's
//! [`GroupState`] keyed by rule file and group name, so a restart keeps
//! `activeAt` and does not reset `for`.
//!
//! Invariants:
//! - Written whole through a temporary file, fsync and rename: a crash
//!   leaves the old or the new file, never half of one.
//! - Rewritten only when [`persisted_shape`] changes (which alerts exist,
//!   their states and times); values and annotations are recomputed each
//!   round and not worth a write.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::GroupState;
use super::scheduler::RulesError;

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    groups: Vec<SavedGroup>,
}

/// One group's saved state.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedGroup {
    pub(crate) file: String,
    pub(crate) group: String,
    pub(crate) state: GroupState,
}

/// A hash of what of a group's state must survive a restart: every
/// alert's key, state and times (not its value or annotations, which are
/// recomputed each round).
pub(crate) fn persisted_shape(state: &GroupState) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    // Compared within one process only: a fast fixed-seed hash will do.
    let mut h = foldhash::fast::FixedState::with_seed(0).build_hasher();
    for (rule, alerts) in &state.rules {
        rule.hash(&mut h);
        for (key, a) in &alerts.alerts {
            key.hash(&mut h);
            (a.state as u8).hash(&mut h);
            a.active_at_ms.hash(&mut h);
            a.fired_at_ms.hash(&mut h);
            a.resolved_at_ms.hash(&mut h);
            a.keep_firing_since_ms.hash(&mut h);
        }
    }
    h.finish()
}

/// Saved states by (rule file, group name).
pub(crate) type SavedStates = BTreeMap<(String, String), GroupState>;

/// Reads the state file; a missing file is an empty state.
pub(crate) fn load(path: &Path) -> Result<SavedStates, RulesError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(RulesError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let file: StateFile =
        serde_json::from_slice(&bytes).map_err(|source| RulesError::StateFormat {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(file
        .groups
        .into_iter()
        .map(|g| ((g.file, g.group), g.state))
        .collect())
}

/// Writes `groups` to `path` (temporary file, fsync, rename).
pub(crate) fn save(path: &Path, groups: Vec<SavedGroup>) -> Result<(), RulesError> {
    let file = StateFile { version: 1, groups };
    let json = serde_json::to_vec(&file).map_err(|source| RulesError::StateFormat {
        path: path.to_path_buf(),
        source,
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RulesError::Io { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&json).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}
