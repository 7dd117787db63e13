//! The single place that prints diagnostics, and the exit-code enum.

use std::io::Write;

/// How fanout exits. See "Exit status" in docs/reference.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// Every job succeeded (or nothing matched).
    Success,
    /// A file ended in a status other than ok or skipped, or a walk step failed.
    Failure,
    /// Usage, configuration or preflight error: nothing ran.
    Usage,
    /// Stopped by SIGINT.
    Interrupted,
    /// Stopped by SIGTERM.
    Terminated,
    /// fanout's own standard output was closed by its reader.
    ClosedStdout,
}

impl ExitStatus {
    /// Ends the process. After a stop by SIGINT or SIGTERM fanout dies by that signal (the
    /// default action, re-raised), so a calling shell loop or make sees a signal death, as with
    /// fd; a shell still reports 130 or 143.
    pub(crate) fn exit(self) -> ! {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let signal = match self {
            ExitStatus::Interrupted => Some(libc::SIGINT),
            ExitStatus::Terminated => Some(libc::SIGTERM),
            _ => None,
        };
        if let Some(sig) = signal {
            let _ = signal_hook::low_level::emulate_default_handler(sig);
        }
        std::process::exit(self.code())
    }

    pub(crate) fn code(self) -> i32 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Interrupted => 130,
            ExitStatus::ClosedStdout => 141,
            ExitStatus::Terminated => 143,
        }
    }
}

impl ExitStatus {
    /// The more serious of two statuses (a stop by signal outranks a failure).
    pub(crate) fn max_with(self, other: ExitStatus) -> ExitStatus {
        if other.code() > self.code() {
            other
        } else {
            self
        }
    }
}

/// `1 file`, `3 files`: a count with its noun, plural unless the count is one.
pub(crate) fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Prints `fanout: error: …` with the context chain, on one line.
pub(crate) fn print_error(err: &anyhow::Error) {
    let chain: Vec<String> = err.chain().map(std::string::ToString::to_string).collect();
    let _ = writeln!(
        std::io::stderr(),
        "fanout: error: {}",
        escape(&chain.join(": "))
    );
}

/// Prints a non-fatal message, `fanout: …`.
pub(crate) fn print_notice(msg: &str) {
    let _ = writeln!(std::io::stderr(), "fanout: {}", escape(msg));
}

/// Escapes control characters (a newline in a file name must not forge a line).
pub(crate) fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// An I/O error as a short lowercase reason, without Rust's "(os error N)".
pub(crate) fn io_reason(err: &std::io::Error) -> String {
    let s = err.to_string();
    let s = match s.find(" (os error") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_newlines() {
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn io_reason_is_short() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_reason(&e), "no such file or directory");
    }
}
