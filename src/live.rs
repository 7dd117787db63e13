//! What the running jobs are doing now: for each worker slot, the job in it, since when, its
//! latest memory sample and the latest line it wrote to standard error. The local pool fills
//! the board as jobs start, write and end; the collector reads it to draw the job lines under
//! the bar and the `--status-every` lines. A run without either has no board at all, so none
//! of this costs anything then.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most of a stderr line kept (its end: a redrawn progress line ends with the news).
const LINE_BYTES: usize = 1024;

/// The running jobs, one entry per worker slot.
pub(crate) struct Board {
    slots: Vec<Mutex<Option<Running>>>,
    /// Keep each job's latest stderr line (only for job lines on a terminal).
    tails: bool,
}

/// A running job, as the board knows it.
struct Running {
    path: PathBuf,
    started: Instant,
    rss: Option<u64>,
    /// Paused by the memory safety net.
    paused: bool,
    /// The line being written now (after the last `\n` or `\r`).
    partial: Vec<u8>,
    /// The last non-empty line that was ended by `\n` or `\r`.
    latest: Vec<u8>,
}

/// One row of the board: a snapshot of a running job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub slot: usize,
    pub path: PathBuf,
    pub elapsed: Duration,
    pub rss: Option<u64>,
    /// Paused by the memory safety net (SIGSTOP) until there is room for it.
    pub paused: bool,
    /// The latest stderr line, control characters and ANSI sequences removed.
    pub latest: String,
}

impl Board {
    /// A board for `slots` workers; `tails`: keep each job's latest stderr line.
    pub(crate) fn new(slots: usize, tails: bool) -> Board {
        Board {
            slots: (0..slots).map(|_| Mutex::new(None)).collect(),
            tails,
        }
    }

    /// Whether stderr lines are wanted (else `stderr` need not be called).
    pub(crate) fn wants_stderr(&self) -> bool {
        self.tails
    }

    fn slot(&self, slot: usize) -> Option<std::sync::MutexGuard<'_, Option<Running>>> {
        let cell = self.slots.get(slot.checked_sub(1)?)?;
        Some(
            cell.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// A job started in `slot` (1-based).
    pub(crate) fn start(&self, slot: usize, path: &Path) {
        if let Some(mut s) = self.slot(slot) {
            *s = Some(Running {
                path: path.to_path_buf(),
                started: Instant::now(),
                rss: None,
                paused: false,
                partial: Vec::new(),
                latest: Vec::new(),
            });
        }
    }

    /// The job in `slot` ended.
    pub(crate) fn end(&self, slot: usize) {
        if let Some(mut s) = self.slot(slot) {
            *s = None;
        }
    }

    /// The latest memory sample of the job in `slot`.
    pub(crate) fn rss(&self, slot: usize, bytes: u64) {
        if let Some(Some(r)) = self.slot(slot).as_deref_mut() {
            r.rss = Some(bytes);
        }
    }

    /// The job in `slot` was paused by the memory safety net.
    pub(crate) fn paused(&self, slot: usize) {
        if let Some(Some(r)) = self.slot(slot).as_deref_mut() {
            r.paused = true;
        }
    }

    /// The job in `slot` was resumed.
    pub(crate) fn resumed(&self, slot: usize) {
        if let Some(Some(r)) = self.slot(slot).as_deref_mut() {
            r.paused = false;
        }
    }

    /// Bytes the job in `slot` wrote to stderr.
    pub(crate) fn stderr(&self, slot: usize, data: &[u8]) {
        if !self.tails {
            return;
        }
        let Some(mut guard) = self.slot(slot) else {
            return;
        };
        let Some(r) = guard.as_mut() else { return };
        // The first piece continues the line being written; each line break ends it.
        let mut pieces = data.split(|&b| b == b'\n' || b == b'\r');
        if let Some(first) = pieces.next() {
            push_tail(&mut r.partial, first);
        }
        for piece in pieces {
            let line = std::mem::take(&mut r.partial);
            keep_line(&mut r.latest, &line);
            r.partial = line;
            r.partial.clear();
            push_tail(&mut r.partial, piece);
        }
    }

    /// The running jobs, by slot.
    pub(crate) fn rows(&self) -> Vec<Row> {
        let now = Instant::now();
        let mut rows = Vec::new();
        for (i, cell) in self.slots.iter().enumerate() {
            let guard = cell
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(r) = guard.as_ref() {
                let shown = if r.partial.iter().all(u8::is_ascii_whitespace) {
                    &r.latest
                } else {
                    &r.partial
                };
                rows.push(Row {
                    slot: i + 1,
                    path: r.path.clone(),
                    elapsed: now.saturating_duration_since(r.started),
                    rss: r.rss,
                    paused: r.paused,
                    latest: clean(shown),
                });
            }
        }
        rows
    }
}

/// Keeps `line` as the latest line unless it is blank.
fn keep_line(latest: &mut Vec<u8>, line: &[u8]) {
    if !line.iter().all(u8::is_ascii_whitespace) {
        latest.clear();
        latest.extend_from_slice(line);
        trim_front(latest);
    }
}

/// Appends to a line, keeping at most its last `LINE_BYTES`.
fn push_tail(line: &mut Vec<u8>, data: &[u8]) {
    let data = &data[data.len().saturating_sub(LINE_BYTES)..];
    line.extend_from_slice(data);
    trim_front(line);
}

/// Keeps at most the last `LINE_BYTES` of a line.
fn trim_front(line: &mut Vec<u8>) {
    if line.len() > LINE_BYTES {
        line.drain(..line.len() - LINE_BYTES);
    }
}

/// A line fit for one terminal row: lossy UTF-8, ANSI sequences (colours, cursor moves) and
/// other control characters removed, surrounding blanks trimmed.
fn clean(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = console::strip_ansi_codes(&text);
    text.chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latest(chunks: &[&[u8]]) -> String {
        let board = Board::new(1, true);
        board.start(1, Path::new("p"));
        for c in chunks {
            board.stderr(1, c);
        }
        board.rows()[0].latest.clone()
    }

    #[test]
    fn the_latest_line_is_what_the_job_shows_now() {
        assert_eq!(latest(&[b"one\ntwo\n"]), "two");
        assert_eq!(latest(&[b"one\ntw", b"o\nthr"]), "thr");
        // A redrawn progress line: after the last \r, however it is split.
        assert_eq!(latest(&[b"10%\r20%\r", b"30%"]), "30%");
        assert_eq!(latest(&[b"\r10%", b"\r20%", b"\r"]), "20%");
        assert_eq!(latest(&[b"done\r\n"]), "done");
        assert_eq!(latest(&[b"done", b"\r\n"]), "done");
        assert_eq!(latest(&[b"do", b"ne\r", b"\n"]), "done");
        assert_eq!(latest(&[b"a\n\n\n"]), "a");
        assert_eq!(latest(&[b"li", b"ne", b"\n", b"  "]), "line");
        // Colours and cursor codes are dropped; tabs become spaces; bad UTF-8 is replaced.
        assert_eq!(latest(&[b"\x1b[32mok\x1b[0m\tx\x07\n"]), "ok x");
        assert_eq!(latest(&[b"bad \xff\n"]), "bad \u{fffd}");
    }

    #[test]
    fn a_huge_line_keeps_its_end() {
        let long = vec![b'x'; 10 * LINE_BYTES];
        let got = latest(&[&long, b"END"]);
        assert_eq!(got.len(), LINE_BYTES);
        assert!(got.ends_with("xEND"));
    }

    #[test]
    fn rows_follow_starts_and_ends() {
        let board = Board::new(3, false);
        board.start(2, Path::new("b"));
        board.start(3, Path::new("c"));
        board.rss(2, 42);
        board.stderr(2, b"ignored without tails\n");
        board.end(3);
        board.start(9, Path::new("out of range"));
        let rows = board.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].slot, rows[0].rss), (2, Some(42)));
        assert_eq!(rows[0].path, Path::new("b"));
        assert_eq!(rows[0].latest, "");
    }
}
