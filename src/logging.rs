//! A small stderr logger for the daemon: UTC timestamp, level, message.
//!
//! Log lines go to stderr so systemd's journal (or a container runtime) picks
//! them up; no file handling of our own. Under systemd (which says so with
//! `JOURNAL_STREAM`) a line is `<N>message` instead: the journal takes the
//! priority `N` from the prefix (sd-daemon(3)) and keeps its own timestamp.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

struct StderrLogger {
    journald: bool,
}

/// The syslog priority the journal reads from a `<N>` prefix.
fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        // The global maximum, so a reload's `log::set_max_level` takes effect.
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = if self.journald {
            format!("<{}>{}\n", priority(r.level()), r.args())
        } else {
            format!("{} {:<5} {}\n", utc_now(), r.level(), r.args())
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger; later calls are ignored. Lines take the journal's
/// form when stderr is connected to it (`JOURNAL_STREAM` is set).
pub fn init(level: LevelFilter) {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    if log::set_boxed_logger(Box::new(StderrLogger { journald })).is_ok() {
        log::set_max_level(level);
    }
}

/// `2026-11-22T03:04:05.678Z`
fn utc_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}
