//! The run's ledger: every record goes to the totals and, with `--summary`, to the journal,
//! after the output it stands for is out. A record waits here (pending) until the burst of
//! output it belongs to has been flushed, so a record never says ok for output that was lost.

use std::io;

use crate::error::print_notice;
use crate::progress::Progress;
use crate::record::JobRecord;
use crate::summary::{JournalWriter, Totals};

/// A record whose output was written but may not have been flushed yet, with its journal line
/// when it was formatted before and nothing changed it since.
pub(super) struct Pending {
    pub record: JobRecord,
    pub line: Option<Vec<u8>>,
}

pub(super) struct Ledger<'a> {
    journal: Option<&'a mut JournalWriter>,
    /// The first journal write that failed, as the report says it.
    error: Option<String>,
    totals: Totals,
    pending: Vec<Pending>,
}

/// What the ledger hands to the end of the run.
pub(super) struct Closed<'a> {
    pub journal: Option<&'a mut JournalWriter>,
    pub totals: Totals,
    pub error: Option<String>,
}

impl<'a> Ledger<'a> {
    pub(super) fn new(journal: Option<&'a mut JournalWriter>) -> Ledger<'a> {
        Ledger {
            journal,
            error: None,
            totals: Totals::default(),
            pending: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, record: JobRecord, line: Option<Vec<u8>>) {
        self.pending.push(Pending { record, line });
    }

    /// Counts `jobs` jobs a dry run listed (their lines are out; no journal is written).
    pub(super) fn listed(&mut self, jobs: u64) {
        self.totals.add_listed(jobs);
    }

    /// The records still waiting for their output to be flushed.
    pub(super) fn pending_mut(&mut self) -> &mut [Pending] {
        &mut self.pending
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(super) fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Counts the pending records and writes them to the journal (their output is out).
    pub(super) fn commit(&mut self, progress: &Progress) {
        for Pending { record, line } in std::mem::take(&mut self.pending) {
            if let Some(journal) = self.journal.as_deref_mut() {
                let written = match &line {
                    Some(line) => journal.record_line(line),
                    None => journal.record(&record),
                };
                if let Err(err) = written {
                    self.failed(&err, progress);
                }
            }
            self.totals.add(&record);
        }
        if let Some(journal) = self.journal.as_deref_mut() {
            if let Err(err) = journal.flush() {
                self.failed(&err, progress);
            }
        }
    }

    /// Writes a line that is not a file's record (a submitted Slurm array) and flushes it at
    /// once, so that a run killed right after still names it.
    pub(super) fn line(&mut self, line: &serde_json::Value, progress: &Progress) {
        if let Some(journal) = self.journal.as_deref_mut() {
            if let Err(err) = journal.line(line) {
                self.failed(&err, progress);
            }
        }
    }

    fn failed(&mut self, err: &io::Error, progress: &Progress) {
        if self.error.is_some() {
            return;
        }
        let path = self
            .journal
            .as_deref()
            .map(|j| j.path().display().to_string())
            .unwrap_or_default();
        let msg = format!(
            "cannot write the summary {path}: {}",
            crate::error::io_reason(err)
        );
        progress.suspend(|| print_notice(&msg));
        self.error = Some(msg);
    }

    pub(super) fn close(self) -> Closed<'a> {
        Closed {
            journal: self.journal,
            totals: self.totals,
            error: self.error,
        }
    }
}
