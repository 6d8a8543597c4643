//! Defaults that follow the machine: the memory the process may use.

/// Share of the usable memory that connections' queues may hold together
/// by default (`max_total_outbound_bytes`): a quarter, leaving the rest to
/// topics, history, the kernel's socket buffers and everything else.
const OUTBOUND_SHARE: u64 = 4;

/// Bounds on that default: below 256 MiB a few slow consumers would trip
/// it; above 16 GiB no one link needs it.
const OUTBOUND_MIN: u64 = 256 << 20;
const OUTBOUND_MAX: u64 = 16 << 30;

/// Used when the machine's memory cannot be read.
const OUTBOUND_FALLBACK: u64 = 1 << 30;

/// The default `max_total_outbound_bytes`: a quarter of the memory this
/// process may use (physical memory, or the cgroup's limit when lower),
/// between 256 MiB and 16 GiB; 1 GiB when neither can be read. Read from
/// the system once per process: every `Config::default()` asks.
pub fn default_total_outbound() -> usize {
    static SHARE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SHARE.get_or_init(|| {
        let usable = [physical_memory(), cgroup_limit()]
            .into_iter()
            .flatten()
            .min();
        outbound_share(usable) as usize
    })
}

fn outbound_share(usable: Option<u64>) -> u64 {
    usable.map_or(OUTBOUND_FALLBACK, |m| {
        (m / OUTBOUND_SHARE).clamp(OUTBOUND_MIN, OUTBOUND_MAX)
    })
}

/// `MemTotal` from /proc/meminfo, in bytes.
fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory limit of the process's cgroup (v2 `memory.max`, or v1's
/// `memory.limit_in_bytes`), when one is set.
fn cgroup_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    // "max" (v2) or a huge number (v1) mean no limit.
    .filter_map(|s| s.trim().parse::<u64>().ok())
    .find(|&n| n < 1 << 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbound_budget_is_a_quarter_of_memory_within_bounds() {
        assert_eq!(outbound_share(Some(24 << 30)), 6 << 30);
        assert_eq!(outbound_share(Some(512 << 20)), OUTBOUND_MIN);
        assert_eq!(outbound_share(Some(1 << 40)), OUTBOUND_MAX);
        assert_eq!(outbound_share(None), OUTBOUND_FALLBACK);
        let here = default_total_outbound() as u64;
        assert!((OUTBOUND_MIN..=OUTBOUND_MAX).contains(&here));
        if let Some(m) = physical_memory() {
            assert!(here <= (m / OUTBOUND_SHARE).max(OUTBOUND_MIN));
        }
    }
}
