//! The single place that prints diagnostics, and the exit-code enum.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Whether fanout's messages on stderr are coloured: decided once, from `--color`, before
/// anything is printed. Until then (and in unit tests) nothing is.
static COLOR: AtomicBool = AtomicBool::new(false);

/// Decides whether stderr gets colour: `--color always` or `never` as given; `auto` colours
/// when `NO_COLOR` is unset or empty and either `CLICOLOR_FORCE` is set (not `0`) or standard
/// error is a terminal that is not `TERM=dumb`. Returns the decision, for clap's messages.
pub(crate) fn decide_color(choice: clap::ColorChoice) -> bool {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let on = match choice {
        clap::ColorChoice::Always => true,
        clap::ColorChoice::Never => false,
        clap::ColorChoice::Auto => {
            env("NO_COLOR").is_none()
                && (env("CLICOLOR_FORCE").is_some_and(|v| v != "0")
                    || (std::io::stderr().is_terminal()
                        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")))
        }
    };
    COLOR.store(on, Ordering::Relaxed);
    on
}

/// What a piece of fanout's stderr is, for its colour on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    /// `error:`: red, bold.
    Error,
    /// `warning:`: yellow.
    Warning,
    /// Something failed (a failed status, its count): red.
    Bad,
    /// Something went well (`ok`): green.
    Good,
}

/// `text` in the colour of `tone` when stderr is coloured, else as it is.
pub(crate) fn paint(tone: Tone, text: &str) -> String {
    use clap::builder::styling::{AnsiColor, Style};
    if !COLOR.load(Ordering::Relaxed) {
        return text.to_string();
    }
    let style = match tone {
        Tone::Error => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
        Tone::Warning => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        Tone::Bad => Style::new().fg_color(Some(AnsiColor::Red.into())),
        Tone::Good => Style::new().fg_color(Some(AnsiColor::Green.into())),
    };
    format!("{style}{text}{style:#}")
}

/// Prints `fanout: error: …` with the context chain, on one line.
pub(crate) fn print_error(err: &anyhow::Error) {
    let chain: Vec<String> = err.chain().map(std::string::ToString::to_string).collect();
    let _ = writeln!(
        std::io::stderr(),
        "fanout: {} {}",
        paint(Tone::Error, "error:"),
        escape(&chain.join(": "))
    );
}

/// Prints a non-fatal message, `fanout: …`; a message that begins `error:` or `warning:` has
/// that word coloured as an error's or a warning's.
pub(crate) fn print_notice(msg: &str) {
    let msg = escape(msg);
    let (tone, word) = if msg.starts_with("error:") {
        (Some(Tone::Error), "error:")
    } else if msg.starts_with("warning:") {
        (Some(Tone::Warning), "warning:")
    } else {
        (None, "")
    };
    let line = match tone {
        Some(tone) => format!("{}{}", paint(tone, word), &msg[word.len()..]),
        None => msg,
    };
    let _ = writeln!(std::io::stderr(), "fanout: {line}");
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
