//! The resource collector: what the process and its disk use, read from
//! `/proc/self`, the cgroup v2 hierarchy and `statvfs(2)` of the data
//! directory, once per collect interval.
//!
//! Series written (no labels besides `instance`, the listen address):
//!
//! | series | meaning |
//! | --- | --- |
//! | `process_cpu_seconds_total` | user + system CPU time of the process |
//! | `process_resident_memory_bytes` | RSS (`VmRSS`) |
//! | `process_open_fds` | entries of `/proc/self/fd` |
//! | `tidemark_data_dir_bytes` | sum of file sizes under the data directory |
//! | `tidemark_filesystem_size_bytes` | size of the data directory's filesystem |
//! | `tidemark_filesystem_free_bytes` | bytes available to the process there |
//! | `tidemark_filesystem_used_bytes` | bytes in use there |
//! | `tidemark_disk_used_ratio` | used / (used + available), 0..1, like `df` |
//! | `tidemark_memory_limit_bytes` | configured limit, else cgroup v2 `memory.max`, else `MemTotal` |
//!
//! Invariants:
//! - A figure that cannot be read (no `/proc`, not Linux) is left out of
//!   the snapshot rather than written as 0, so rules never see a fake value.
//! - Parsers take the file text as an argument (tested on fixed inputs);
//!   only [`collect`] touches the filesystem. No `unsafe`: `statvfs` comes
//!   from `rustix`.

use std::path::Path;

/// One reading of every resource figure; `None` where unreadable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    pub cpu_seconds: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub data_dir_bytes: Option<u64>,
    pub fs_size_bytes: Option<u64>,
    pub fs_free_bytes: Option<u64>,
    pub fs_used_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

impl Resources {
    /// `used / (used + available)`: the share of the filesystem the
    /// process could fill that is already full (what `df` prints).
    pub fn disk_used_ratio(&self) -> Option<f64> {
        let (used, free) = (self.fs_used_bytes?, self.fs_free_bytes?);
        let total = used + free;
        (total > 0).then(|| used as f64 / total as f64)
    }

    /// (series name, value) of every readable figure.
    pub fn samples(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::with_capacity(9);
        let mut put = |name, v: Option<f64>| {
            if let Some(v) = v {
                out.push((name, v));
            }
        };
        let f = |v: Option<u64>| v.map(|v| v as f64);
        put("process_cpu_seconds_total", self.cpu_seconds);
        put("process_resident_memory_bytes", f(self.rss_bytes));
        put("process_open_fds", f(self.open_fds));
        put("tidemark_data_dir_bytes", f(self.data_dir_bytes));
        put("tidemark_filesystem_size_bytes", f(self.fs_size_bytes));
        put("tidemark_filesystem_free_bytes", f(self.fs_free_bytes));
        put("tidemark_filesystem_used_bytes", f(self.fs_used_bytes));
        put("tidemark_disk_used_ratio", self.disk_used_ratio());
        put("tidemark_memory_limit_bytes", f(self.memory_limit_bytes));
        out
    }
}

/// Reads every figure now. `memory_limit` (bytes, 0 = detect) overrides
/// the detected limit.
pub fn collect(data_dir: &Path, memory_limit: u64) -> Resources {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cpu_seconds = read("/proc/self/stat").and_then(|s| {
        let ticks = rustix::param::clock_ticks_per_second();
        parse_cpu_seconds(&s, ticks)
    });
    let rss_bytes = read("/proc/self/status").and_then(|s| parse_kb_field(&s, "VmRSS:"));
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    let (fs_size_bytes, fs_free_bytes, fs_used_bytes) = match rustix::fs::statvfs(data_dir) {
        Ok(v) => {
            let unit = if v.f_frsize > 0 {
                v.f_frsize
            } else {
                v.f_bsize
            };
            (
                Some(v.f_blocks.saturating_mul(unit)),
                Some(v.f_bavail.saturating_mul(unit)),
                Some(v.f_blocks.saturating_sub(v.f_bfree).saturating_mul(unit)),
            )
        }
        Err(_) => (None, None, None),
    };
    let memory_limit_bytes = if memory_limit > 0 {
        Some(memory_limit)
    } else {
        cgroup_memory_max()
            .or_else(|| read("/proc/meminfo").and_then(|s| parse_kb_field(&s, "MemTotal:")))
    };
    Resources {
        cpu_seconds,
        rss_bytes,
        open_fds,
        data_dir_bytes: Some(dir_bytes(data_dir)),
        fs_size_bytes,
        fs_free_bytes,
        fs_used_bytes,
        memory_limit_bytes,
    }
}

/// The cgroup v2 `memory.max` of this process, if one is set.
fn cgroup_memory_max() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = parse_cgroup_v2_path(&cgroup)?;
    let file = Path::new("/sys/fs/cgroup")
        .join(path.trim_start_matches('/'))
        .join("memory.max");
    parse_memory_max(&std::fs::read_to_string(file).ok()?)
}

/// Utime + stime (fields 14 and 15 of `/proc/self/stat`) in seconds. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted after its last `)`.
pub fn parse_cpu_seconds(stat: &str, ticks_per_second: u64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state): utime is field 14, the 12th here.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    (ticks_per_second > 0).then(|| (utime + stime) as f64 / ticks_per_second as f64)
}

/// A `Name:   123 kB` line of `/proc/self/status` or `/proc/meminfo`, in bytes.
pub fn parse_kb_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let mut parts = line[name.len()..].split_ascii_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// The unified (v2) hierarchy's path from `/proc/self/cgroup` (`0::/path`).
pub fn parse_cgroup_v2_path(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// `memory.max`: a byte count, or `max` (no limit: `None`).
pub fn parse_memory_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Sum of the sizes of regular files under `dir` (symlinks not followed;
/// entries that vanish while walking are skipped).
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsers() {
        let stat = "4242 (tide mark) (x) S 1 4242 4242 0 -1 4194560 1391 0 0 0 250 130 0 0 20 0 9 0 123 1000 200 18446744073709551615";
        assert_eq!(parse_cpu_seconds(stat, 100), Some(3.8));
        assert_eq!(parse_cpu_seconds("garbage", 100), None);
        let status = "Name:\ttidemark\nVmPeak:\t  9000 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(parse_kb_field(status, "VmRSS:"), Some(2048 * 1024));
        assert_eq!(parse_kb_field(status, "VmSwap:"), None);
        let meminfo = "MemTotal:        8000000 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_kb_field(meminfo, "MemTotal:"), Some(8_192_000_000));
        assert_eq!(
            parse_cgroup_v2_path("12:cpu:/x\n0::/system.slice/t.service\n"),
            Some("/system.slice/t.service")
        );
        assert_eq!(parse_cgroup_v2_path("1:name=systemd:/\n"), None);
        assert_eq!(parse_memory_max("536870912\n"), Some(536_870_912));
        assert_eq!(parse_memory_max("max\n"), None);
    }

    #[test]
    fn ratio_and_samples_leave_out_what_is_unknown() {
        let r = Resources {
            fs_used_bytes: Some(30),
            fs_free_bytes: Some(10),
            rss_bytes: Some(5),
            ..Resources::default()
        };
        assert_eq!(r.disk_used_ratio(), Some(0.75));
        assert_eq!(
            r.samples(),
            vec![
                ("process_resident_memory_bytes", 5.0),
                ("tidemark_filesystem_free_bytes", 10.0),
                ("tidemark_filesystem_used_bytes", 30.0),
                ("tidemark_disk_used_ratio", 0.75),
            ]
        );
        assert_eq!(Resources::default().samples(), vec![]);
    }

    #[test]
    fn collect_reads_this_process_and_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("sub").join("b"), [0u8; 234]).unwrap();
        let r = collect(dir.path(), 0);
        assert_eq!(r.data_dir_bytes, Some(1234));
        let size = r.fs_size_bytes.unwrap();
        assert!(size > 0 && r.fs_used_bytes.unwrap() <= size);
        let ratio = r.disk_used_ratio().unwrap();
        assert!((0.0..=1.0).contains(&ratio), "{ratio}");
        if cfg!(target_os = "linux") {
            assert!(r.rss_bytes.unwrap() > 1 << 20);
            assert!(r.open_fds.unwrap() >= 3);
            assert!(r.cpu_seconds.is_some());
            assert!(r.memory_limit_bytes.unwrap() >= r.rss_bytes.unwrap());
        }
        assert_eq!(collect(dir.path(), 12345).memory_limit_bytes, Some(12345));
    }
}
