//! Captured job output: one stream of a job, in memory up to a limit, then in an unnamed
//! temporary file, with the end of it kept for the summary's `stderr_tail`. Executors fill
//! spools; the collector writes them out whole. Nothing here knows where output comes from.

use std::fs::File;
use std::io::{self, Seek, Write};

/// Output kept in memory per stream before it moves to a temporary file.
const SPOOL_MEMORY: usize = 1 << 20;
/// How much of the end of stderr is kept for the summary.
const TAIL_BYTES: usize = 2048;

/// A stream of captured output: in memory up to a limit, then in an unnamed temporary file.
#[derive(Debug, Default)]
pub(crate) struct Spool {
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
    tail: Vec<u8>,
    /// Set when the output could not be kept in full (e.g. the disk is full).
    pub error: Option<String>,
}

impl Spool {
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        self.tail.extend_from_slice(data);
        if self.tail.len() > 2 * TAIL_BYTES {
            self.tail.drain(..self.tail.len() - TAIL_BYTES);
        }
        if self.error.is_some() {
            return;
        }
        if self.file.is_none() && self.memory.len() + data.len() <= SPOOL_MEMORY {
            self.memory.extend_from_slice(data);
            return;
        }
        let result = (|| -> io::Result<()> {
            if self.file.is_none() {
                let mut file = tempfile::tempfile()?;
                file.write_all(&self.memory)?;
                self.memory = Vec::new();
                self.file = Some(file);
            }
            self.file.as_mut().expect("spool file").write_all(data)
        })();
        if let Err(err) = result {
            self.error = Some(format!("could not keep the job's output: {err}"));
        }
    }

    /// Bytes the job wrote to this stream.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The last meaningful line (`meaningful_line`), at most a few hundred bytes, lossy UTF-8.
    pub(crate) fn last_line(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.tail);
        let line = meaningful_line(&text)?;
        let mut start = line.len().saturating_sub(400);
        while !line.is_char_boundary(start) {
            start += 1;
        }
        Some(line[start..].to_string())
    }

    /// Writes the whole stream to `w`, each line after `tag` when there is one.
    pub(crate) fn write_tagged(&mut self, w: &mut dyn Write, tag: Option<&[u8]>) -> io::Result<()> {
        match tag {
            None => self.write_to(w),
            Some(prefix) => {
                let mut tagged = Tagged::new(w, prefix);
                self.write_to(&mut tagged)?;
                tagged.finish()
            }
        }
    }

    /// Writes the whole stream to `w`.
    pub(crate) fn write_to(&mut self, w: &mut dyn Write) -> io::Result<()> {
        match &mut self.file {
            None => w.write_all(&self.memory),
            Some(file) => {
                file.flush()?;
                file.rewind()?;
                io::copy(file, w).map(|_| ())
            }
        }
    }
}

/// A writer that puts `prefix` before every line (`--tag`). A last line without a newline
/// gets one from [`Tagged::finish`], so the next job's output starts a line of its own.
pub(crate) struct Tagged<'a> {
    inner: &'a mut dyn Write,
    prefix: &'a [u8],
    at_line_start: bool,
}

impl<'a> Tagged<'a> {
    pub(crate) fn new(inner: &'a mut dyn Write, prefix: &'a [u8]) -> Tagged<'a> {
        Tagged {
            inner,
            prefix,
            at_line_start: true,
        }
    }

    /// Ends an unterminated last line.
    pub(crate) fn finish(self) -> io::Result<()> {
        if self.at_line_start {
            Ok(())
        } else {
            self.inner.write_all(b"\n")
        }
    }
}

impl Write for Tagged<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.at_line_start {
                self.inner.write_all(self.prefix)?;
                self.at_line_start = false;
            }
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            self.inner.write_all(&rest[..end])?;
            self.at_line_start = rest[end - 1] == b'\n';
            rest = &rest[end..];
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The `--tag` prefix of a path: its bytes and a tab. A path with a control character (a
/// newline, a tab) is written as a shell `$'…'` word instead, so that every tagged line is
/// one line whose first tab ends the path.
pub(crate) fn tag_prefix(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + 1);
    if path.iter().any(|&b| b < 0x20 || b == 0x7f) {
        out.extend_from_slice(b"$'");
        for &b in path {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\'' => out.extend_from_slice(b"\\'"),
                b if b < 0x20 || b == 0x7f => {
                    out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                }
                b => out.push(b),
            }
        }
        out.push(b'\'');
    } else {
        out.extend_from_slice(path);
    }
    out.push(b'\t');
    out
}

/// Writing into a spool keeps the bytes (output read back from elsewhere: a spill file, a
/// Slurm task's output file).
impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a run's job output and journal header go: fanout's own stdout and stderr, or (a Slurm
/// array task) files the submitter relays.
pub(crate) struct Io {
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
    /// A first journal line (a Slurm worker's header).
    pub header: Option<serde_json::Value>,
    /// Each job's number is appended here when it starts.
    pub started: Option<File>,
    /// Output is relayed later: a closed or failing stream is not fanout's own.
    pub files: bool,
}

impl Io {
    /// fanout's own standard output and error.
    pub(crate) fn terminal() -> Io {
        // Buffered: the collector flushes after each burst of records (and per job while a
        // progress bar is drawn), so many small outputs cost few writes.
        Io {
            stdout: Box::new(std::io::BufWriter::with_capacity(
                1 << 16,
                std::io::stdout(),
            )),
            stderr: Box::new(std::io::BufWriter::with_capacity(
                1 << 16,
                std::io::stderr(),
            )),
            header: None,
            started: None,
            files: false,
        }
    }
}

/// The line of a stream's end that says what went wrong: the last meaningful line, colour
/// codes stripped and ends trimmed. A line is meaningful when it has a letter or a digit; a
/// line of only punctuation (a `^` or `~~~^` marker under a quoted query, a `----` rule, a
/// lone `}`) is not, and a marker line also passes over the line it marks, which quotes the
/// input rather than saying what is wrong (DuckDB's `LINE 1: SELEC …` under its error). A
/// `Try '… --help'` hint or a `Usage:` synopsis is not meaningful either. With no meaningful line, the last non-empty
/// one.
pub(crate) fn meaningful_line(text: &str) -> Option<String> {
    let text = console::strip_ansi_codes(text);
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c.is_control()))
        .filter(|l| !l.is_empty())
        .collect();
    // `Try 'sleep --help' for more information.` (coreutils), `For more information, try
    // '--help'.` (clap): a pointer to help under the error, not the error.
    // A `Usage:` synopsis is not the error either.
    let help_hint = |l: &str| {
        l.contains("--help") && (l.starts_with("Try ") || l.starts_with("For more information"))
            || l.starts_with("Usage:")
            || l.starts_with("usage:")
    };
    let meaningful = |l: &str| l.chars().any(char::is_alphanumeric) && !help_hint(l);
    let marker = |l: &str| l.chars().all(|c| matches!(c, '^' | '~' | ' ' | '\t'));
    let mut i = lines.len();
    while i > 0 {
        i -= 1;
        if marker(lines[i]) {
            // The marked line quotes the input: skip it too.
            i = i.saturating_sub(1);
            continue;
        }
        if meaningful(lines[i]) {
            return Some(lines[i].to_string());
        }
    }
    lines.last().map(|l| (*l).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_the_last_meaningful_line() {
        // DuckDB's parse error: the error, the quoted query, a caret under it.
        let duckdb = "Error: Parser Error: syntax error at or near \"SELEC\"\n\nLINE 1: SELEC * FROM 'a.parquet'\n        ^\n";
        assert_eq!(
            meaningful_line(duckdb).as_deref(),
            Some("Error: Parser Error: syntax error at or near \"SELEC\"")
        );
        // The same in colour, as DuckDB prints on a terminal that it thinks is one.
        let coloured = "\x1b[31mParser Error: syntax error at end of input\x1b[0m\n\x1b[1mLINE 1: SELECT\x1b[0m\n              \x1b[33m^\x1b[0m\n";
        assert_eq!(
            meaningful_line(coloured).as_deref(),
            Some("Parser Error: syntax error at end of input")
        );
        // A Python traceback ends with the exception.
        let py = "Traceback (most recent call last):\n  File \"/w/convert.py\", line 12, in <module>\n    t = pq.read_table(sys.argv[1])\n        ^^^^^^^^^^^^^^^^^^^^^^^^^^\npyarrow.lib.ArrowInvalid: Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file.\n";
        assert_eq!(
            meaningful_line(py).as_deref(),
            Some("pyarrow.lib.ArrowInvalid: Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file.")
        );
        // Python 3.11 marks the failing expression with ~~~^^^ and a syntax error with ^.
        let syntax =
            "  File \"/w/x.py\", line 1\n    prin t\n         ^\nSyntaxError: invalid syntax\n";
        assert_eq!(
            meaningful_line(syntax).as_deref(),
            Some("SyntaxError: invalid syntax")
        );
        let marked = "Traceback (most recent call last):\n  File \"/w/x.py\", line 3, in <module>\n    print(rows[0] / total)\n          ~~~~~~~~^~~~~~~\nZeroDivisionError: division by zero\n\n";
        assert_eq!(
            meaningful_line(marked).as_deref(),
            Some("ZeroDivisionError: division by zero")
        );
        // Rules, brackets and blank lines at the end are passed over.
        let rules = "error: cannot open b.json\n}\n-----\n \t\n";
        assert_eq!(
            meaningful_line(rules).as_deref(),
            Some("error: cannot open b.json")
        );
        // Nothing meaningful: the last non-empty line, rather than nothing.
        assert_eq!(meaningful_line("---\n^\n").as_deref(), Some("^"));
        assert_eq!(meaningful_line(" \n\n"), None);
        let usage =
            "sleep: invalid time interval ‘d/1.txt’\nTry 'sleep --help' for more information.\n";
        assert_eq!(
            meaningful_line(usage).as_deref(),
            Some("sleep: invalid time interval ‘d/1.txt’")
        );
        let clap = "error: unexpected argument '-x' found\n\nUsage: tool [OPTIONS]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            meaningful_line(clap).as_deref(),
            Some("error: unexpected argument '-x' found")
        );
        assert_eq!(
            meaningful_line("ünïcödé fehler\n").as_deref(),
            Some("ünïcödé fehler")
        );
    }

    #[test]
    fn tagged_lines_survive_any_split_of_the_writes() {
        let text = b"ab\nc\n\nlast";
        for cut in 0..=text.len() {
            let mut out = Vec::new();
            let mut tagged = Tagged::new(&mut out, b"p\t");
            tagged.write_all(&text[..cut]).unwrap();
            tagged.write_all(&text[cut..]).unwrap();
            tagged.finish().unwrap();
            assert_eq!(out, b"p\tab\np\tc\np\t\np\tlast\n", "cut at {cut}");
        }
    }

    #[test]
    fn a_spilled_spool_is_tagged_whole() {
        let mut spool = Spool::default();
        let line = [b'x'; 999];
        for _ in 0..2000 {
            spool.push(&line);
            spool.push(b"\n");
        }
        assert!(spool.file.is_some(), "2 MB moves to a file");
        let mut out = Vec::new();
        spool.write_tagged(&mut out, Some(b"f\t")).unwrap();
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 2001);
        assert!(lines[..2000]
            .iter()
            .all(|l| l.len() == 1001 && l.starts_with(b"f\t")));
    }

    #[test]
    fn control_characters_make_the_tag_a_shell_word() {
        assert_eq!(tag_prefix(b"d/a b.txt"), b"d/a b.txt\t");
        assert_eq!(tag_prefix(b"d/bad\xff"), b"d/bad\xff\t");
        assert_eq!(tag_prefix(b"d/n\nt\t'\\"), b"$'d/n\\nt\\t\\'\\\\'\t");
        assert_eq!(tag_prefix(b"d/\x01"), b"$'d/\\x01'\t");
    }
}
