//! The one piece of global mutable state: whether, and how hard, the run is being stopped.
//!
//! Signals, `--halt` and a closed standard output or error all end up here. Workers poll the read end of
//! a pipe that is written once when a stop begins, so a blocked `poll` wakes at once; the pipe is
//! never read, which keeps it readable for every worker (a level-triggered broadcast).

use std::io::{PipeReader, PipeWriter, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// How far a stop has gone. Each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Run everything.
    Run = 0,
    /// Start nothing new; running jobs finish (SIGHUP, `--halt soon`).
    Drain = 1,
    /// Start nothing new and stop running jobs, with a grace period.
    Stop = 2,
    /// As Stop, without the grace period, and stop walking (a second SIGINT).
    Hard = 3,
}

/// Why the run stops, which decides the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Signal(i32),
    ClosedStdout,
    /// The reader of fanout's stderr has gone.
    ClosedStderr,
    Halt,
    /// Job output could not be written (a full disk behind fanout's stdout).
    OutputFailed,
    /// Transfers in a row could not reach a store.
    StoreUnreachable,
}

#[derive(Default)]
pub(crate) struct Cancel {
    level: AtomicU8,
    /// 0: none; > 0: a signal number; -1: closed stdout; -2: halt; -3: output failed; -4:
    /// closed stderr; -5: a store could not be reached.
    reason: AtomicI32,
    wake: Option<(PipeReader, Mutex<PipeWriter>)>,
}

impl Cancel {
    /// A cancel state with a wake-up pipe.
    pub(crate) fn new() -> std::io::Result<Cancel> {
        let (r, w) = std::io::pipe()?;
        Ok(Cancel {
            wake: Some((r, Mutex::new(w))),
            ..Cancel::default()
        })
    }

    /// Raises the level to at least `level`, remembering the first reason.
    pub(crate) fn raise(&self, level: Level, reason: Reason) {
        let code = match reason {
            Reason::Signal(s) => s,
            Reason::ClosedStdout => -1,
            Reason::Halt => -2,
            Reason::OutputFailed => -3,
            Reason::ClosedStderr => -4,
            Reason::StoreUnreachable => -5,
        };
        let _ = self
            .reason
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
        let before = self.level.fetch_max(level as u8, Ordering::SeqCst);
        if before < Level::Stop as u8 && level >= Level::Stop {
            if let Some((_, w)) = &self.wake {
                let _ = w.lock().map(|mut w| w.write_all(b"x"));
            }
        }
    }

    pub(crate) fn level(&self) -> Level {
        match self.level.load(Ordering::SeqCst) {
            0 => Level::Run,
            1 => Level::Drain,
            2 => Level::Stop,
            _ => Level::Hard,
        }
    }

    /// No new job may start.
    pub(crate) fn no_new_jobs(&self) -> bool {
        self.level() >= Level::Drain
    }

    /// Running jobs must be stopped.
    pub(crate) fn stopping(&self) -> bool {
        self.level() >= Level::Stop
    }

    pub(crate) fn is_hard(&self) -> bool {
        self.level() == Level::Hard
    }

    pub(crate) fn reason(&self) -> Option<Reason> {
        match self.reason.load(Ordering::SeqCst) {
            0 => None,
            -1 => Some(Reason::ClosedStdout),
            -2 => Some(Reason::Halt),
            -3 => Some(Reason::OutputFailed),
            -4 => Some(Reason::ClosedStderr),
            -5 => Some(Reason::StoreUnreachable),
            s => Some(Reason::Signal(s)),
        }
    }

    /// The fd that becomes readable when a stop begins.
    pub(crate) fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        self.wake.as_ref().map(|(r, _)| r.as_fd())
    }
}

/// Routes SIGINT, SIGTERM and SIGHUP into `cancel` from a small background thread.
/// A second SIGINT (or SIGTERM) skips the grace period.
pub(crate) fn watch_signals(cancel: Arc<Cancel>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let level = match sig {
                    SIGHUP => Level::Drain,
                    _ if cancel.stopping() => Level::Hard,
                    _ => Level::Stop,
                };
                cancel.raise(level, Reason::Signal(sig));
            }
        })?;
    Ok(())
}
