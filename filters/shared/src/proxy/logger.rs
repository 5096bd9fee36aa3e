//! The `log` facade, to the host's log.

use super::abi;

struct HostLog;

/// The levels the filters log at; the host filters further by its own setting.
const MAX_LEVEL: log::LevelFilter = log::LevelFilter::Info;

impl log::Log for HostLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= MAX_LEVEL
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // The ABI's levels: trace 0 up to error 4.
        let level = match record.level() {
            log::Level::Trace => 0,
            log::Level::Debug => 1,
            log::Level::Info => 2,
            log::Level::Warn => 3,
            log::Level::Error => 4,
        };
        abi::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

pub fn install() {
    static LOGGER: HostLog = HostLog;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(MAX_LEVEL);
    }
}
