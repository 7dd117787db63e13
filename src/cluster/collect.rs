//! The submitter's intake: what becomes of what the array hands back. Each record goes to the
//! journal and the totals (and the halt rule sees it), each job's output to fanout's stdout or
//! stderr around the progress bar, and at the end come the report and the journal's final
//! record. The one place the Slurm submitter writes the journal, decides halting and prints
//! the report; following the array (`follow`, `watch`) only hands things in.

use std::io::{self, Read, Write};
use std::time::Instant;

use anyhow::Result;

use super::follow::{Intake, Stream};
use super::records::ArrayReport;
use crate::cancel::{Cancel, Level, Reason};
use crate::cli::Halt;
use crate::config::Config;
use crate::error::{print_notice, ExitStatus};
use crate::progress::Progress;
use crate::summary::{JobRecord, Journal, MemoryReport, Status, Totals};

pub(crate) struct Collector<'a> {
    config: &'a Config,
    cancel: &'a Cancel,
    journal: Option<Journal>,
    journal_failed: bool,
    pub totals: Totals,
    progress: Progress,
    /// Files of the run, for the progress bar.
    total_files: u64,
    /// Array tasks running, for the progress bar.
    running: u64,
    stdout_closed: bool,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(config: &'a Config, cancel: &'a Cancel, journal: Option<Journal>) -> Self {
        Collector {
            config,
            cancel,
            journal,
            journal_failed: false,
            totals: Totals::default(),
            progress: Progress::new(config.progress),
            total_files: 0,
            running: 0,
            stdout_closed: false,
        }
    }

    /// `files` more records are to come (those of the array).
    pub(crate) fn expect(&mut self, files: u64) {
        self.total_files = self.totals.total() + files;
    }

    /// One finished file: into the journal and the totals; a failure may halt the run.
    pub(crate) fn record(&mut self, record: JobRecord) {
        if let Some(j) = self.journal.as_mut() {
            if let Err(err) = j.record(&record) {
                if !self.journal_failed {
                    self.journal_failed = true;
                    print_notice(&format!(
                        "cannot write the summary {}: {err}",
                        j.path().display()
                    ));
                }
            }
        }
        let status = record.status;
        self.totals.add(&record);
        if status.is_failure() && !matches!(status, Status::NotStarted | Status::Interrupted) {
            match self.config.halt {
                Some(Halt::Soon) => self.cancel.raise(Level::Drain, Reason::Halt),
                Some(Halt::Now) => self.cancel.raise(Level::Stop, Reason::Halt),
                None => {}
            }
        }
    }

    fn show_progress(&self) {
        self.progress.update(
            self.totals.total(),
            self.total_files,
            self.running,
            self.totals.failed(),
        );
    }

    /// The report, the journal's final record (with the array's, if one was submitted) and
    /// the exit status.
    pub(crate) fn finish(
        mut self,
        start: Instant,
        array: Option<ArrayReport>,
    ) -> Result<ExitStatus> {
        self.progress.finish();
        if self.journal_failed {
            self.totals.walk_errors += 1;
        }
        let wall = start.elapsed();
        let stopped = self.cancel.reason();
        let exit = self.totals.exit_status(stopped);
        let memory_report = MemoryReport {
            fanout_cpu_ms: crate::exec::sys::own_cpu().as_millis() as u64,
            ..array.as_ref().map(ArrayReport::memory).unwrap_or_default()
        };
        if !self.config.quiet && stopped != Some(Reason::ClosedStdout) && self.totals.total() > 0 {
            let _ = writeln!(io::stderr(), "{}", self.totals.report(wall));
            if let Some(a) = &array {
                print_notice(&format!(
                    "Slurm job {}: plan, records and logs in {}",
                    a.slurm_job_id, a.plan_dir
                ));
            }
        }
        let cluster = array.map(|a| serde_json::to_value(a).expect("a report is plain data"));
        if let Some(j) = self.journal.as_mut() {
            if let Err(err) = j.finish(
                &self.totals,
                wall,
                exit,
                stopped,
                &memory_report,
                cluster.as_ref(),
            ) {
                print_notice(&format!(
                    "cannot write the summary {}: {err}",
                    j.path().display()
                ));
                return Ok(if exit == ExitStatus::Success {
                    ExitStatus::Failure
                } else {
                    exit
                });
            }
        }
        Ok(exit)
    }
}

impl Intake for Collector<'_> {
    fn accept(&mut self, record: JobRecord) {
        self.record(record);
        self.show_progress();
    }

    fn output(&mut self, stream: Stream, output: &mut dyn Read) {
        let mut copy = |out: &mut dyn Write| io::copy(output, out).and_then(|_| out.flush());
        match stream {
            // Errors writing to stderr cannot be reported anywhere.
            Stream::Stderr => {
                let _ = self.progress.suspend(|| copy(&mut io::stderr().lock()));
            }
            // Closed: the job's output is passed over.
            Stream::Stdout if self.stdout_closed => {}
            Stream::Stdout => {
                let result = self.progress.suspend(|| copy(&mut io::stdout().lock()));
                if result.is_err_and(|e| e.kind() == io::ErrorKind::BrokenPipe) {
                    self.stdout_closed = true;
                    self.cancel.raise(Level::Stop, Reason::ClosedStdout);
                }
            }
        }
    }

    fn notice(&mut self, message: &str) {
        self.progress.suspend(|| print_notice(message));
    }

    fn running(&mut self, tasks: u64) {
        self.running = tasks;
        self.show_progress();
    }
}
