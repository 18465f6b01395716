//! The guest's own usage figures for METRICS (GuestMetrics in PROTOCOL.md), from /proc.

use serde_json::{json, Value};

/// A field of /proc/meminfo in bytes (the file says kB).
fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb.saturating_mul(1024))
    })
}

/// `load1 load5 load15 running/total lastpid`.
fn loadavg(text: &str) -> Option<(f64, f64, f64, u64, u64)> {
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() < 4 {
        return None;
    }
    let (running, total) = f[3].split_once('/')?;
    Some((f[0].parse().ok()?, f[1].parse().ok()?, f[2].parse().ok()?, running.parse().ok()?, total.parse().ok()?))
}

/// `uptime idle`, in seconds.
fn uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// GuestMetrics from the three files' text; a figure that cannot be read is 0.
pub fn from_proc(meminfo: &str, loadavg_text: &str, uptime_text: &str) -> Value {
    let (l1, l5, l15, running, total) = loadavg(loadavg_text).unwrap_or((0.0, 0.0, 0.0, 0, 0));
    json!({
        "memoryTotalBytes": meminfo_bytes(meminfo, "MemTotal").unwrap_or(0),
        "memoryAvailableBytes": meminfo_bytes(meminfo, "MemAvailable").unwrap_or(0),
        "memoryFreeBytes": meminfo_bytes(meminfo, "MemFree").unwrap_or(0),
        "load1": l1,
        "load5": l5,
        "load15": l15,
        "processes": total,
        "runningProcesses": running,
        "uptimeSeconds": uptime(uptime_text).unwrap_or(0.0),
    })
}

/// Read /proc now (each file is small; bounded all the same).
pub fn read() -> Value {
    let read = |p: &str| crate::plan::read_bounded(p, 64 << 10).unwrap_or_default();
    from_proc(&read("/proc/meminfo"), &read("/proc/loadavg"), &read("/proc/uptime"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:        2014180 kB\nMemFree:          120400 kB\nMemAvailable:    1507332 kB\nBuffers:  1 kB\n";

    #[test]
    fn parses_proc_text() {
        let m = from_proc(MEMINFO, "0.52 0.31 0.05 2/87 4242\n", "1234.56 2000.10\n");
        assert_eq!(m["memoryTotalBytes"], 2014180u64 * 1024);
        assert_eq!(m["memoryFreeBytes"], 120400u64 * 1024);
        assert_eq!(m["memoryAvailableBytes"], 1507332u64 * 1024);
        assert_eq!((m["load1"].as_f64(), m["load5"].as_f64(), m["load15"].as_f64()), (Some(0.52), Some(0.31), Some(0.05)));
        assert_eq!((m["runningProcesses"].as_u64(), m["processes"].as_u64()), (Some(2), Some(87)));
        assert_eq!(m["uptimeSeconds"].as_f64(), Some(1234.56));
    }

    #[test]
    fn unreadable_figures_are_zero() {
        let m = from_proc("MemTotalish: 5 kB\nMemFree: lots kB\n", "0.1 0.2", "");
        assert_eq!((m["memoryTotalBytes"].as_u64(), m["memoryFreeBytes"].as_u64()), (Some(0), Some(0)));
        assert_eq!((m["load1"].as_f64(), m["processes"].as_u64(), m["uptimeSeconds"].as_f64()), (Some(0.0), Some(0), Some(0.0)));
    }

    #[test]
    fn this_machine_has_plausible_figures() {
        let m = read();
        assert!(m["memoryTotalBytes"].as_u64().unwrap() > 0);
        assert!(m["processes"].as_u64().unwrap() > 0);
    }
}
