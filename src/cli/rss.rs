//! Process memory figures from `/proc/self/status` (Linux).
//!
//! Owns only reading and parsing that file; callers decide what the numbers
//! mean. On other systems, or when the file is unreadable, every figure is
//! `None` rather than a made-up zero.

/// Resident set size figures of this process, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStatus {
    /// Current resident set size (`VmRSS`).
    pub rss_bytes: Option<u64>,
    /// Peak resident set size since the process started (`VmHWM`).
    pub peak_rss_bytes: Option<u64>,
}

/// Reads the current figures; all `None` when `/proc/self/status` is missing.
pub fn mem_status() -> MemStatus {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| parse_status(&s))
        .unwrap_or_default()
}

/// Parses the `VmRSS:` and `VmHWM:` lines (values in kB) of a status file.
pub fn parse_status(status: &str) -> MemStatus {
    let mut out = MemStatus::default();
    for line in status.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let field = match key {
            "VmRSS" => &mut out.rss_bytes,
            "VmHWM" => &mut out.peak_rss_bytes,
            _ => continue,
        };
        let mut parts = rest.split_whitespace();
        let value = parts.next().and_then(|v| v.parse::<u64>().ok());
        let scale = match parts.next() {
            Some("kB") | None => 1024,
            Some(_) => continue,
        };
        *field = value.map(|v| v * scale);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kb_lines() {
        let s = "Name:\ttidemark\nVmHWM:\t   20480 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(
            parse_status(s),
            MemStatus {
                rss_bytes: Some(1 << 20),
                peak_rss_bytes: Some(20 << 20),
            }
        );
        assert_eq!(parse_status("Name: x\n"), MemStatus::default());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_own_status() {
        let m = mem_status();
        let (rss, hwm) = (m.rss_bytes.unwrap(), m.peak_rss_bytes.unwrap());
        assert!(rss > 0 && hwm >= rss, "rss {rss} hwm {hwm}");
    }
}
