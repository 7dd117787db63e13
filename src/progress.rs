//! A thin wrapper over indicatif so callers never branch on whether a bar is shown.
//! Only the collector updates it; it draws on stderr.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar when `show`, drawn even when stderr is not a terminal (`--progress`).
    pub(crate) fn new(show: bool) -> Progress {
        if !show {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10));
        if bar.is_hidden() {
            // stderr is not a terminal but the user asked for the bar: draw it anyway.
            bar.set_draw_target(ProgressDrawTarget::term_like_with_hz(
                Box::new(console::Term::stderr()),
                4,
            ));
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} eta {eta}",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar) }
    }

    /// Updates counts: finished, discovered so far, running, failed.
    pub(crate) fn update(&self, done: u64, found: u64, running: u64, failed: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(found);
            bar.set_position(done);
            bar.set_message(format!("{running} running, {failed} failed"));
        }
    }

    /// Whether a bar is drawn.
    pub(crate) fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Runs `f` (which writes to the terminal) with the bar out of the way.
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
