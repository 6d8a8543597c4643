//! CPU time of a process from `/proc/PID/stat`, shared by the benchmark
//! examples that measure a server's CPU.

/// CPU time (user + system) process `pid` (a number, or `self`) has used so
/// far, in seconds; 0 for a process that is gone.
pub fn cpu_seconds(pid: impl std::fmt::Display) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which may hold spaces and ')':
    // utime and stime (fields 14 and 15) are the 12th and 13th of them.
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}
