//! sockstrace's own diagnostics, through the `log` crate: above all the eBPF programs' messages
//! (aya-log, forwarded by `kernel::logs`), written to stderr as
//! `sockstrace: kernel: <level>: <message>`.
//!
//! Warnings and errors by default; `SOCKSTRACE_LOG=debug` (or `error`, `info`, `trace`, `off`)
//! changes the level. The level is also what the eBPF programs are loaded with (see
//! `kernel::object::load`): a message below it is never even produced in the kernel. Libraries
//! (aya's loader, ...) say no more than warnings whatever the level: their debug output is about
//! themselves, pages of it.

use log::{LevelFilter, Log, Metadata, Record};

/// The environment variable naming the level.
pub const ENV: &str = "SOCKSTRACE_LOG";

/// Installs the stderr logger at the level [`ENV`] asks for (warn if unset or not understood).
/// Call once, first thing: aya-log takes the global logger when the programs are loaded.
pub fn init() {
    let level = std::env::var(ENV).ok().and_then(|value| parse_level(&value)).unwrap_or(LevelFilter::Warn);
    static LOGGER: StderrLogger = StderrLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// `debug`, `warn`, ... (any case); `None` for anything else.
fn parse_level(value: &str) -> Option<LevelFilter> {
    value.trim().parse().ok()
}

/// One line per record on stderr, in one write (see `report_writer::human::write_line`).
struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            crate::report_writer::human::write_line(&line(record));
        }
    }

    fn flush(&self) {}
}

/// Ours (and the eBPF programs') up to the `log` crate's level, others' up to warnings.
fn enabled(metadata: &Metadata<'_>) -> bool {
    enabled_at(metadata, log::max_level())
}

fn enabled_at(metadata: &Metadata<'_>, level: LevelFilter) -> bool {
    let ours = metadata.target().starts_with("sockstrace");
    metadata.level() <= if ours { level } else { level.min(LevelFilter::Warn) }
}

/// The eBPF programs' crate: aya-log gives their records its module path as target.
const KERNEL_TARGET: &str = "sockstrace_ebpf";

/// `sockstrace: kernel: warn: ...` for the eBPF programs' records, `sockstrace: warn: ...` for
/// ours.
pub fn line(record: &Record<'_>) -> String {
    let level = record.level().as_str().to_ascii_lowercase();
    let target = record.target();
    let from_kernel = target == KERNEL_TARGET || target.starts_with("sockstrace_ebpf::");
    let source = if from_kernel { "kernel: " } else { "" };
    format!("sockstrace: {source}{level}: {}", record.args())
}

#[cfg(test)]
pub mod capture {
    //! A test logger keeping every line (as [`super::line`] writes it), for tests that check
    //! what the kernel said. One per test binary, at debug level.

    use std::sync::{Mutex, OnceLock};

    use log::{Log, Metadata, Record};

    struct Capture(Mutex<Vec<String>>);

    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();

    impl Log for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            super::enabled(metadata)
        }

        fn log(&self, record: &Record<'_>) {
            if self.enabled(record.metadata()) {
                if let Ok(mut lines) = self.0.lock() {
                    lines.push(super::line(record));
                }
            }
        }

        fn flush(&self) {}
    }

    /// Installs the capturing logger (once; later calls do nothing). Fails if another logger
    /// got there first.
    pub fn install() {
        CAPTURE.get_or_init(|| {
            let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::default())));
            log::set_logger(capture).expect("no other logger in the test binary");
            log::set_max_level(log::LevelFilter::Debug);
            capture
        });
    }

    /// Every line logged so far that contains `needle`.
    pub fn lines_with(needle: &str) -> Vec<String> {
        let Some(capture) = CAPTURE.get() else {
            return Vec::new();
        };
        capture
            .0
            .lock()
            .map(|lines| lines.iter().filter(|l| l.contains(needle)).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use log::Level;

    use super::*;

    fn format(target: &str, level: Level, message: &str) -> String {
        line(&Record::builder().target(target).level(level).args(format_args!("{message}")).build())
    }

    #[test]
    fn kernel_records_say_so() {
        assert_eq!(
            format("sockstrace_ebpf", Level::Warn, "ring buffer full"),
            "sockstrace: kernel: warn: ring buffer full"
        );
        assert_eq!(format("sockstrace::kernel::events", Level::Debug, "x"), "sockstrace: debug: x");
    }

    #[test]
    fn libraries_say_warnings_only() {
        let at = |target: &str, level: Level| {
            enabled_at(&Metadata::builder().target(target).level(level).build(), LevelFilter::Debug)
        };
        assert!(at("sockstrace_ebpf", Level::Debug) && at("sockstrace::kernel::logs", Level::Debug));
        assert!(!at("aya::bpf", Level::Debug) && !at("aya::bpf", Level::Info) && at("aya::bpf", Level::Warn));
    }

    #[test]
    fn levels_come_from_the_environment_form() {
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("WARN"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("off"), Some(LevelFilter::Off));
        assert_eq!(parse_level("loud"), None);
    }
}
