//! Captured log lines: `proxy_log` calls and the guest's stdout/stderr.

use std::fmt;

/// proxy-wasm log levels (`proxy_log`, `proxy_get_log_level`); also the
/// values of `replay --log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum LogLevel {
    /// Level 0.
    Trace,
    /// Level 1.
    Debug,
    /// Level 2; Envoy's default.
    Info,
    /// Level 3.
    Warn,
    /// Level 4.
    Error,
    /// Level 5.
    Critical,
}

impl LogLevel {
    /// Parses the ABI value; `None` for anything above `Critical`.
    pub fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }

    /// The ABI value.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// Lower-case name, as printed in logs and the replay output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }
}

/// Where a captured line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// The `proxy_log` hostcall.
    ProxyLog,
    /// WASI `fd_write` to fd 1.
    Stdout,
    /// WASI `fd_write` to fd 2 (Rust panic messages land here).
    Stderr,
}

/// One captured line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Level given by the guest; stdout is `Info`, stderr is `Error`.
    pub level: LogLevel,
    /// The text, lossily decoded as UTF-8.
    pub message: String,
    /// Context that was effective when the line was written.
    pub context_id: u32,
    /// Which channel produced it.
    pub source: LogSource,
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            LogSource::ProxyLog => write!(f, "{}: {}", self.level.name(), self.message),
            LogSource::Stdout => write!(f, "stdout: {}", self.message),
            LogSource::Stderr => write!(f, "stderr: {}", self.message),
        }
    }
}

/// Collects log lines and reassembles stdout/stderr writes into lines.
#[derive(Debug, Default)]
pub(crate) struct LogSink {
    pub entries: Vec<LogEntry>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LogSink {
    /// Records a `proxy_log` line.
    pub fn log(&mut self, level: LogLevel, message: &[u8], context_id: u32) {
        self.entries.push(LogEntry {
            level,
            message: String::from_utf8_lossy(message).into_owned(),
            context_id,
            source: LogSource::ProxyLog,
        });
    }

    /// Appends a WASI write; complete lines become entries.
    pub fn write_fd(&mut self, source: LogSource, data: &[u8], context_id: u32) {
        let buffer = match source {
            LogSource::Stderr => &mut self.stderr,
            _ => &mut self.stdout,
        };
        buffer.extend_from_slice(data);
        let mut lines = Vec::new();
        while let Some(newline) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=newline).collect();
            lines.push(line);
        }
        for line in lines {
            self.push_line(source, &line[..line.len() - 1], context_id);
        }
    }

    /// Turns unterminated stdout/stderr output into entries (after a trap the
    /// last panic line may lack its newline).
    pub fn flush(&mut self, context_id: u32) {
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let buffer = match source {
                LogSource::Stderr => std::mem::take(&mut self.stderr),
                _ => std::mem::take(&mut self.stdout),
            };
            if !buffer.is_empty() {
                self.push_line(source, &buffer, context_id);
            }
        }
    }

    fn push_line(&mut self, source: LogSource, line: &[u8], context_id: u32) {
        let level = match source {
            LogSource::Stderr => LogLevel::Error,
            _ => LogLevel::Info,
        };
        self.entries.push(LogEntry {
            level,
            message: String::from_utf8_lossy(line).into_owned(),
            context_id,
            source,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_writes_are_split_into_lines() {
        let mut sink = LogSink::default();
        sink.write_fd(LogSource::Stderr, b"panicked at x", 3);
        assert!(sink.entries.is_empty());
        sink.write_fd(LogSource::Stderr, b"\nnext", 3);
        assert_eq!(sink.entries.len(), 1);
        assert_eq!(sink.entries[0].to_string(), "stderr: panicked at x");
        sink.flush(3);
        assert_eq!(sink.entries[1].message, "next");
    }

    #[test]
    fn levels_parse() {
        assert_eq!(LogLevel::from_u32(3), Some(LogLevel::Warn));
        assert_eq!(LogLevel::from_u32(6), None);
    }
}
