//! Where job output goes: fanout's stdout and stderr (or a Slurm task's files). Each job's
//! output is written in one piece, so the output of two jobs never interleaves. A job whose
//! output could not be delivered is never ok: a reader that went away (a closed pipe) stops the
//! run quietly, as SIGPIPE would; any other failed write (a full disk) stops it loudly. Both
//! streams behave alike.

use std::io::{self, Write};
use std::os::fd::AsFd;

use super::ledger::Pending;
use crate::cancel::{Cancel, Level, Reason};
use crate::config::Config;
use crate::error::print_notice;
use crate::executor::Done;
use crate::output::Spool;
use crate::progress::Progress;
use crate::record::{JobRecord, Status};

/// One of fanout's two streams that job output goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "standard output",
            Stream::Stderr => "standard error",
        }
    }

    /// fanout's own stream of this kind is a pipe whose reader has gone.
    fn reader_gone(self) -> bool {
        match self {
            Stream::Stdout => crate::os::peer_closed(io::stdout().as_fd()),
            Stream::Stderr => crate::os::peer_closed(io::stderr().as_fd()),
        }
    }
}

/// The state of both streams, and the writers behind them.
pub(super) struct Outlet<'a> {
    cancel: &'a Cancel,
    stdout: Box<dyn Write + Send>,
    stderr: Box<dyn Write + Send>,
    /// Output goes to files (a Slurm array task), not to fanout's own streams.
    files: bool,
    /// Job output is captured (not streamed straight through with `-j 1`).
    capture: bool,
    /// `--tag`: every line starts with the job's path.
    tag: bool,
    /// Per stream: its reader has gone (a closed pipe).
    gone: [bool; 2],
    /// Per stream: job output could not be written (a full disk behind `>`).
    failed: [bool; 2],
}

impl<'a> Outlet<'a> {
    pub(super) fn new(
        config: &Config,
        cancel: &'a Cancel,
        stdout: Box<dyn Write + Send>,
        stderr: Box<dyn Write + Send>,
        files: bool,
    ) -> Outlet<'a> {
        Outlet {
            cancel,
            stdout,
            stderr,
            files,
            capture: config.capture,
            tag: config.tag,
            gone: [false; 2],
            failed: [false; 2],
        }
    }

    /// Writes one job's output; `now` flushes stdout at once (a bar is on screen). Records
    /// already pending may be changed too (a failed flush loses their output). Returns whether
    /// the job's record changed (its output was lost).
    pub(super) fn write(
        &mut self,
        done: &mut Done,
        progress: &Progress,
        pending: &mut [Pending],
    ) -> bool {
        let tag = self
            .tag
            .then(|| crate::output::tag_prefix(&done.record.path_bytes()));
        let tag = tag.as_deref();
        let mut changed = false;
        let printed = done.stdout.as_ref().is_some_and(|o| o.len() > 0);
        if let Some(out) = done.stdout.as_mut().filter(|o| o.len() > 0) {
            let now = progress.is_visible();
            match self.deliver(&mut done.record, Stream::Stdout, out, tag, now, progress) {
                Ok(lost) => changed |= lost,
                Err(err) => {
                    changed = true;
                    // The failed write may have been the buffer's flush: the output of the
                    // records pending went with it.
                    self.lose_pending(pending, &err, progress);
                }
            }
        }
        if let Some(err) = done.stderr.as_mut().filter(|e| e.len() > 0) {
            // Job errors and fanout's own notices share stderr: keep them in order.
            let now = true;
            changed |= self
                .deliver(&mut done.record, Stream::Stderr, err, tag, now, progress)
                .unwrap_or(true);
        }
        if !self.capture && !self.files && !printed {
            // Output goes straight through with -j 1: notice a stream whose reader has gone
            // all the same.
            for stream in [Stream::Stdout, Stream::Stderr] {
                if !self.gone[stream as usize] && stream.reader_gone() {
                    self.reader_gone(stream);
                }
            }
        }
        changed
    }

    /// Writes the lines of many jobs a dry run listed, in one piece, and flushes them. A reader
    /// that went away stops the run quietly; any other failure stops it loudly: a dry run that
    /// cannot say its plan fails.
    pub(super) fn list(&mut self, text: &[u8], progress: &Progress) {
        let out = Stream::Stdout as usize;
        if self.gone[out] || self.failed[out] {
            return;
        }
        let sink = &mut self.stdout;
        let Err(err) = progress.suspend(|| sink.write_all(text).and_then(|()| sink.flush())) else {
            return;
        };
        if err.kind() == io::ErrorKind::BrokenPipe && !self.files {
            return self.reader_gone(Stream::Stdout);
        }
        self.failed[out] = true;
        let place = if self.files { "the task's" } else { "fanout's" };
        let why = crate::error::io_reason(&err);
        progress.suspend(|| {
            print_notice(&format!(
                "error: the dry run's lines could not be written to {place} standard output: {why}; stopping"
            ));
        });
        self.cancel.raise(Level::Stop, Reason::OutputFailed);
    }

    /// Flushes buffered stdout at the end of a burst; on failure every pending record with
    /// output says its output was lost (which of their bytes got out cannot be told).
    pub(super) fn flush(&mut self, progress: &Progress, pending: &mut [Pending]) {
        if self.gone[Stream::Stdout as usize] || self.failed[Stream::Stdout as usize] {
            return;
        }
        if let Err(err) = self.stdout.flush() {
            self.lose_pending(pending, &err, progress);
        }
    }

    /// Writing buffered stdout failed: each pending record with output lost it.
    fn lose_pending(&mut self, pending: &mut [Pending], err: &io::Error, progress: &Progress) {
        for p in pending
            .iter_mut()
            .filter(|p| p.record.stdout_bytes > Some(0))
        {
            self.stream_failed(&mut p.record, Stream::Stdout, err, progress);
            p.line = None;
        }
    }

    /// Writes one stream of a job's output, or says in its record why it was not delivered.
    /// `Ok(true)`: the output was lost to an earlier failure; `Err`: this write failed (the
    /// record says so already).
    fn deliver(
        &mut self,
        record: &mut JobRecord,
        stream: Stream,
        spool: &mut Spool,
        tag: Option<&[u8]>,
        now: bool,
        progress: &Progress,
    ) -> io::Result<bool> {
        if self.failed[stream as usize] {
            self.output_lost(record, stream, None, progress);
            return Ok(true);
        }
        if self.gone[stream as usize] {
            not_delivered(record, stream);
            return Ok(true);
        }
        let sink = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let result = progress.suspend(|| {
            spool.write_tagged(sink, tag)?;
            if now {
                sink.flush()?;
            }
            Ok(())
        });
        if let Err(err) = &result {
            self.stream_failed(record, stream, err, progress);
        }
        result.map(|()| false)
    }

    /// A write to a stream failed: a reader that went away stops the run quietly; anything
    /// else (a full disk) stops it loudly. Either way the job's output was lost.
    fn stream_failed(
        &mut self,
        record: &mut JobRecord,
        stream: Stream,
        err: &io::Error,
        progress: &Progress,
    ) {
        if err.kind() == io::ErrorKind::BrokenPipe && !self.files {
            self.reader_gone(stream);
            not_delivered(record, stream);
        } else {
            self.output_lost(record, stream, Some(err), progress);
        }
    }

    /// A job's output could not be written: its record says so, and the run stops (loudly,
    /// unlike a reader that went away), as later output would be lost the same way.
    fn output_lost(
        &mut self,
        record: &mut JobRecord,
        stream: Stream,
        err: Option<&io::Error>,
        progress: &Progress,
    ) {
        let why = lost_reason(self.files, stream, err);
        mark_lost(record, why.clone());
        if !self.failed[stream as usize] {
            self.failed[stream as usize] = true;
            progress.suspend(|| {
                print_notice(&format!(
                    "error: job output lost: {why}; stopping (the jobs concerned are recorded as failed)"
                ));
            });
            self.cancel.raise(Level::Stop, Reason::OutputFailed);
        }
    }

    /// The reader of one of fanout's streams has gone: the run stops quietly, as for a
    /// process killed by SIGPIPE.
    fn reader_gone(&mut self, stream: Stream) {
        self.gone[stream as usize] = true;
        let reason = match stream {
            Stream::Stdout => Reason::ClosedStdout,
            Stream::Stderr => Reason::ClosedStderr,
        };
        self.cancel.raise(Level::Stop, reason);
    }
}

/// Why a job's output was lost to a failed write (or to a stream that failed before).
fn lost_reason(files: bool, stream: Stream, err: Option<&io::Error>) -> String {
    let place = if files { "the task's" } else { "fanout's" };
    let stream = stream.name();
    match err {
        Some(err) => format!(
            "its output could not be written to {place} {stream}: {}",
            crate::error::io_reason(err)
        ),
        None => format!("its output was not written: {place} {stream} failed before"),
    }
}

/// The record of a job whose output went to a stream whose reader has gone.
fn not_delivered(record: &mut JobRecord, stream: Stream) {
    let why = format!(
        "its output was not delivered: the reader of fanout's {} has gone",
        stream.name()
    );
    mark_lost(record, why);
}

/// A job whose output was lost is never ok: it failed, and its reason says why.
fn mark_lost(record: &mut JobRecord, why: String) {
    if matches!(record.status, Status::Ok | Status::Skipped) {
        record.status = Status::Failed;
    }
    record.reason = Some(match record.reason.take() {
        Some(r) => format!("{r}; {why}"),
        None => why,
    });
}
