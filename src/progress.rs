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
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}{eta_once}",
            )
            .expect("valid template")
            .with_key("eta_once", eta_once),
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

/// ` eta 3m` once a job has ended: before that there is no rate to go by, and an estimate
/// would be made up.
fn eta_once(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = w.write_str(&eta_text(state.pos(), state.eta()));
}

fn eta_text(done: u64, eta: Duration) -> String {
    if done == 0 {
        String::new()
    } else {
        format!(" eta {:#}", indicatif::HumanDuration(eta))
    }
}

/// One job's line, at most `width` columns: `[3] 1m05s  812 MiB  data/…/part-7.parquet  latest`.
/// The path is shortened from its root side (`shorten_path`) to leave room for the latest
/// stderr line.
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
    let path = shorten_path(&path, path_room);
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

/// Fits a path in `room` columns, keeping what tells jobs apart: the file name and the
/// directories nearest to it (a hive partition such as `month=01`). Directories go from the
/// root side first (`…/month=01/part-0.parquet`); the file name itself is cut, in its middle
/// and keeping its extension, only when it alone does not fit.
fn shorten_path(text: &str, room: usize) -> String {
    let width = console::measure_text_width;
    if width(text) <= room {
        return text.to_string();
    }
    let (dirs, name) = match text.rsplit_once('/') {
        Some((dirs, name)) if !name.is_empty() => (dirs, name),
        _ => ("", text),
    };
    if width(name) + 2 <= room {
        let mut kept = name.to_string();
        for dir in dirs.rsplit('/') {
            if width(&kept) + width(dir) + 3 > room {
                break;
            }
            kept = format!("{dir}/{kept}");
        }
        return format!("…/{kept}");
    }
    shorten_name(name, room)
}

/// Cuts a file name in its middle to `room` columns, keeping its extension whole when there
/// is room for it.
fn shorten_name(name: &str, room: usize) -> String {
    let width = console::measure_text_width;
    if width(name) <= room {
        return name.to_string();
    }
    if room <= 1 {
        return "…".chars().take(room).collect();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && width(&name[i..]) + 4 <= room => name.split_at(i),
        _ => (name, ""),
    };
    let left = room - 1 - width(ext);
    let head_room = left - left / 2;
    let mut head = String::new();
    for c in stem.chars() {
        if width(&head) + width(c.encode_utf8(&mut [0; 4])) > head_room {
            break;
        }
        head.push(c);
    }
    let tail_room = left - width(&head);
    let mut tail: Vec<char> = Vec::new();
    for c in stem.chars().rev() {
        let next: String = std::iter::once(c)
            .chain(tail.iter().rev().copied())
            .collect();
        if width(&next) > tail_room {
            break;
        }
        tail.push(c);
    }
    let tail: String = tail.iter().rev().collect();
    format!("{head}…{tail}{ext}")
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
    fn shortening_drops_directories_from_the_root_side() {
        let p = "data/year=2024/month=01/part-0.parquet";
        assert_eq!(shorten_path(p, 100), p);
        assert_eq!(shorten_path(p, p.len()), p);
        assert_eq!(shorten_path(p, 30), "…/month=01/part-0.parquet");
        assert_eq!(shorten_path(p, 36), "…/year=2024/month=01/part-0.parquet");
        // Room for the file name but not for its directory.
        assert_eq!(shorten_path(p, 20), "…/part-0.parquet");
        // The name alone does not fit: cut in its middle, the extension kept.
        let s = shorten_path(p, 12);
        assert_eq!(s, "pa…0.parquet");
        for room in 0..p.len() + 2 {
            let s = shorten_path(p, room);
            assert!(console::measure_text_width(&s) <= room, "{room}: {s}");
        }
    }

    #[test]
    fn shortening_measures_wide_characters() {
        let p = "données/année=2024/région=東京/パーティション-0.parquet";
        for room in 0..80 {
            let s = shorten_path(p, room);
            assert!(console::measure_text_width(&s) <= room, "{room}: {s}");
        }
        assert_eq!(
            shorten_path(p, 45),
            "…/région=東京/パーティション-0.parquet"
        );
        let s = shorten_path(p, 20);
        assert!(s.ends_with(".parquet") && s.contains('…'), "{s}");
        assert_eq!(s, "パーテ…ン-0.parquet");
        // A name without directories or extension is cut in its middle.
        let s = shorten_path("abcdefghijklmnopqrstuvwxyz", 9);
        assert_eq!(s, "abcd…wxyz");
    }

    #[test]
    fn no_eta_before_a_job_ended() {
        assert_eq!(eta_text(0, Duration::ZERO), "");
        assert_eq!(eta_text(0, Duration::from_secs(99_999)), "");
        assert_eq!(eta_text(3, Duration::from_secs(125)), " eta 2m");
    }

    #[test]
    fn elapsed_reads_well() {
        assert_eq!(elapsed(Duration::from_millis(1234)), "1.2s");
        assert_eq!(elapsed(Duration::from_secs(65)), "1m05s");
        assert_eq!(elapsed(Duration::from_secs(3720)), "1h02m");
    }
}
