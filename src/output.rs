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

    /// The last non-empty line, at most a few hundred bytes, lossy UTF-8.
    pub(crate) fn last_line(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.tail);
        let line = text
            .lines()
            .rev()
            .map(str::trim_end)
            .find(|l| !l.is_empty())?;
        let mut start = line.len().saturating_sub(400);
        while !line.is_char_boundary(start) {
            start += 1;
        }
        Some(line[start..].to_string())
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
