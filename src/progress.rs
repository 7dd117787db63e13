//! A thin wrapper over indicatif so callers never branch on whether a bar is shown.
//! Only the collector updates it; it draws on stderr: the bar, and under it (on a terminal) a
//! line per running job.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::live::Row;

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    /// With job lines: the bar and the lines under it, drawn together.
    multi: Option<MultiProgress>,
    /// One line per running job, in slot order.
    lines: Vec<ProgressBar>,
}

impl Progress {
    /// A bar when `show`, drawn even when stderr is not a terminal (`--progress`); with
    /// `job_lines`, room under it for a line per running job.
    pub(crate) fn new(show: bool, job_lines: bool) -> Progress {
        if !show {
            return Progress {
                bar: None,
                multi: None,
                lines: Vec::new(),
            };
        }
        let target = ProgressDrawTarget::stderr_with_hz(10);
        let hidden = target.is_hidden();
        let multi = job_lines.then(|| MultiProgress::with_draw_target(target));
        let bar = match &multi {
            Some(multi) => multi.add(ProgressBar::new(0)),
            None => {
                let bar =
                    ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10));
                if hidden {
                    // stderr is not a terminal but the user asked for the bar: draw it anyway.
                    bar.set_draw_target(ProgressDrawTarget::term_like_with_hz(
                        Box::new(console::Term::stderr()),
                        4,
                    ));
                }
                bar
            }
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} eta {eta}",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar: Some(bar),
            multi,
            lines: Vec::new(),
        }
    }

    /// Updates counts: finished, discovered so far, running, failed.
    pub(crate) fn update(&self, done: u64, found: u64, running: u64, failed: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(found);
            bar.set_position(done);
            bar.set_message(format!("{running} running, {failed} failed"));
        }
    }

    /// Whether job lines are drawn.
    pub(crate) fn has_job_lines(&self) -> bool {
        self.multi.is_some()
    }

    /// Redraws the job lines: one per running job, as many as the terminal has room for.
    pub(crate) fn show_jobs(&mut self, rows: &[Row]) {
        let Some(multi) = &self.multi else { return };
        let (height, width) = console::Term::stderr().size();
        let (height, width) = (usize::from(height), usize::from(width));
        // Leave the bar and a line to type in; a last line says how many more there are.
        let room = height.saturating_sub(3).max(1);
        let mut texts: Vec<String> = rows.iter().take(room).map(|r| job_line(r, width)).collect();
        if rows.len() > room {
            texts.pop();
            texts.push(format!("  … and {} more running", rows.len() - texts.len()));
        }
        while self.lines.len() > texts.len() {
            let line = self.lines.pop().expect("a line");
            line.finish_and_clear();
            multi.remove(&line);
        }
        while self.lines.len() < texts.len() {
            let line = multi.add(ProgressBar::new(0));
            line.set_style(ProgressStyle::with_template("{msg}").expect("valid template"));
            self.lines.push(line);
        }
        for (line, text) in self.lines.iter().zip(texts) {
            line.set_message(text);
        }
    }

    /// Whether a bar is drawn.
    pub(crate) fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Runs `f` (which writes to the terminal) with the bar out of the way.
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match (&self.multi, &self.bar) {
            (Some(multi), _) => multi.suspend(f),
            (None, Some(bar)) => bar.suspend(f),
            (None, None) => f(),
        }
    }

    pub(crate) fn finish(&mut self) {
        for line in self.lines.drain(..) {
            line.finish_and_clear();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

/// One job's line, at most `width` columns: `[3] 1m05s  812 MiB  data/…/part-7.parquet  latest`.
/// The path is shortened in its middle to leave room for the latest stderr line.
fn job_line(row: &Row, width: usize) -> String {
    let head = format!(
        "  [{}] {:>7} {:>9}  {}",
        row.slot,
        elapsed(row.elapsed),
        row.rss.map_or(String::new(), crate::units::human),
        if row.paused { "paused  " } else { "" }
    );
    let width = width.saturating_sub(1).max(20);
    let left = width.saturating_sub(console::measure_text_width(&head));
    let path = row.path.to_string_lossy();
    let path = crate::error::escape(&path);
    // The path gets up to half of what is left when there is a latest line, else all of it.
    let path_room = if row.latest.is_empty() {
        left
    } else {
        left.min(left / 2).max(left.min(16))
    };
    let path = shorten_middle(&path, path_room);
    let rest = left.saturating_sub(console::measure_text_width(&path) + 2);
    // Too narrow for a useful piece of the latest line: the path alone.
    let latest = if rest < 8 {
        Default::default()
    } else {
        console::truncate_str(&row.latest, rest, "…")
    };
    if latest.is_empty() {
        format!("{head}{path}")
    } else {
        format!("{head}{path}  {latest}")
    }
}

/// `1h02m`, `3m05s`, `12.3s`.
fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Keeps the start and the end of `text` (the root and the file name), with `…` between,
/// within `room` columns.
fn shorten_middle(text: &str, room: usize) -> String {
    if console::measure_text_width(text) <= room {
        return text.to_string();
    }
    if room <= 1 {
        return "…".chars().take(room).collect();
    }
    let chars: Vec<char> = text.chars().collect();
    let keep = room - 1;
    let tail = keep - keep / 3;
    let head = keep - tail;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    let mut end: String = chars[chars.len() - tail..].iter().collect();
    // Wide characters may still overflow: drop from the front of the end part.
    while console::measure_text_width(&out) + console::measure_text_width(&end) > room {
        end.remove(0);
    }
    out.push_str(&end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn row(path: &str, latest: &str) -> Row {
        Row {
            slot: 3,
            path: PathBuf::from(path),
            elapsed: Duration::from_secs(65),
            rss: Some(812 << 20),
            paused: false,
            latest: latest.to_string(),
        }
    }

    #[test]
    fn a_job_line_fits_the_width_and_keeps_the_file_name() {
        let long = format!("data/{}/part-7.parquet", "year=2024/".repeat(20));
        for width in [40, 80, 200] {
            let line = job_line(&row(&long, "writing row group 3 of 9"), width);
            assert!(
                console::measure_text_width(&line) < width,
                "{width}: {line:?}"
            );
            assert!(line.contains("[3]") && line.contains("1m05s"), "{line}");
            assert!(line.contains("parquet"), "{width}: {line}");
        }
        let line = job_line(&row("a.csv", "50% done"), 80);
        assert!(line.ends_with("a.csv  50% done"), "{line}");
        let line = job_line(&row("a\nb.csv", ""), 80);
        assert!(!line.contains('\n'), "{line:?}");
    }

    #[test]
    fn shortening_keeps_both_ends() {
        assert_eq!(shorten_middle("abcdef", 10), "abcdef");
        let s = shorten_middle("root/middle/part/file.txt", 12);
        assert_eq!(console::measure_text_width(&s), 12);
        assert!(s.starts_with("roo") && s.ends_with("file.txt"), "{s}");
    }

    #[test]
    fn elapsed_reads_well() {
        assert_eq!(elapsed(Duration::from_millis(1234)), "1.2s");
        assert_eq!(elapsed(Duration::from_secs(65)), "1m05s");
        assert_eq!(elapsed(Duration::from_secs(3720)), "1h02m");
    }
}
