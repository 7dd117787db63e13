//! The aggregate of the records, the JSON Lines journal, the human report and the exit
//! status. Nothing here runs anything.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::cancel::Reason;
use crate::error::counted;
use crate::error::ExitStatus;
use crate::record::{BatchLine, JobRecord, MemoryReport, Skip, Status};
use crate::walk::OwnFiles;

/// The final record of the journal.
#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize)]
struct FinalRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    v: u32,
    total: u64,
    ok: u64,
    failed: u64,
    timeout: u64,
    invalid_output: u64,
    invalid_input: u64,
    skipped: u64,
    not_started: u64,
    interrupted: u64,
    /// Written only when some file had it, so journals of local runs read as before.
    #[serde(skip_serializing_if = "is_zero")]
    conflict: u64,
    walk_errors: u64,
    wall_ms: u64,
    jobs_per_s: f64,
    exit_code: i32,
    /// Why the run stopped early, if it did.
    stopped_by: Option<&'a str>,
    /// The memory-time bound: Σ peak memory × running time (paused time not counted) of the
    /// jobs ÷ the memory budget, ms. No schedule that keeps every job's peak inside the budget
    /// finishes sooner.
    #[serde(skip_serializing_if = "Option::is_none")]
    mem_time_bound_ms: Option<u64>,
    /// wall_ms ÷ mem_time_bound_ms: how close the run came to that bound (1 is the bound).
    #[serde(skip_serializing_if = "Option::is_none")]
    mem_time_ratio: Option<f64>,
    #[serde(flatten)]
    memory: &'a MemoryReport,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a serde_json::Value>,
    complete: bool,
    /// Every input was discovered (false: the run was stopped while discovery went on, and
    /// inputs it had not reached have no record).
    walk_complete: bool,
}

/// Counts per status and the failed files worth naming, built as records arrive.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    counts: [u64; Status::ALL.len()],
    pub walk_errors: u64,
    /// Jobs that actually ran (for jobs/s).
    pub ran: u64,
    /// Files `--resume` skipped.
    pub resumed: u64,
    /// Σ peak memory × running time of the jobs that ran, byte·ms: a batch's command once,
    /// not once per file.
    mem_time: f64,
    /// The command of the last batch counted in `mem_time` (its files' records share it).
    counted_batch: Option<Arc<Vec<String>>>,
    failures: Vec<(String, Status, String)>,
    /// Batches that failed as a whole (`-X`), each named once with its files.
    batches: Vec<BatchFailure>,
    more_failures: u64,
}

/// A batch that failed as a whole, as the human report names it: which of its files caused it
/// is not known, so they are not named one by one as if each had failed.
#[derive(Debug)]
struct BatchFailure {
    number: u64,
    status: Status,
    /// How its command ended: exit code or signal, and the last line of its stderr.
    how: String,
    files: u64,
    /// Its first few files.
    first: Vec<String>,
}

/// How many files of a failed batch the human report names.
const NAMED_BATCH_FILES: usize = 3;

/// How many failed files the human report names.
const NAMED_FAILURES: usize = 10;

impl Totals {
    pub(crate) fn add(&mut self, record: &JobRecord) {
        self.counts[record.status as usize] += 1;
        if record.attempts > 0 {
            self.ran += 1;
            if let (Some(peak), Some(ms)) = (record.peak_rss_bytes, record.duration_ms) {
                let running = ms.saturating_sub(record.paused_ms.unwrap_or(0));
                if self.first_of_its_command(record) {
                    self.mem_time += peak as f64 * running as f64;
                }
            }
        }
        if record.skip == Some(Skip::Resumed) {
            self.resumed += 1;
        }
        if record.status.is_failure() && record.attributed == Some(false) {
            self.add_to_batch(record);
        } else if record.status.is_failure() && record.status != Status::NotStarted {
            // The first failed files in path order, whatever order they finished in.
            let at = self
                .failures
                .partition_point(|(path, ..)| path.as_str() <= record.path.as_str());
            if at < NAMED_FAILURES {
                let reason = match record.batch_size.filter(|&n| n > 1) {
                    // The batch's command ended so: every file of it is named with that.
                    Some(n) => format!("in a batch of {n}: {}", record.reason()),
                    None => record.reason(),
                };
                self.failures
                    .insert(at, (record.path.clone(), record.status, reason));
                if self.failures.len() > NAMED_FAILURES {
                    self.failures.pop();
                    self.more_failures += 1;
                }
            } else {
                self.more_failures += 1;
            }
        }
    }

    /// Jobs a dry run listed: skipped (listed, not run), as each one's record would say.
    pub(crate) fn add_listed(&mut self, jobs: u64) {
        self.counts[Status::Skipped as usize] += jobs;
    }

    /// Whether `record` is the first seen of the command it ran in (a job's, or a batch's of
    /// several files, whose records share its command and arrive together).
    fn first_of_its_command(&mut self, record: &JobRecord) -> bool {
        let Some(ran) = &record.batch_argv else {
            return true;
        };
        if self
            .counted_batch
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, ran))
        {
            return false;
        }
        self.counted_batch = Some(Arc::clone(ran));
        true
    }

    /// A file of a batch that failed as a whole: counted with its batch's line.
    fn add_to_batch(&mut self, record: &JobRecord) {
        let number = record.batch.unwrap_or(0);
        // A batch's records arrive together: its line is the last one, if it has one.
        if let Some(b) = self.batches.last_mut().filter(|b| b.number == number) {
            b.files += 1;
            if b.first.len() < NAMED_BATCH_FILES {
                b.first.push(record.path.clone());
            }
            return;
        }
        if self.failures.len() + self.batches.len() >= NAMED_FAILURES {
            self.more_failures += 1;
            return;
        }
        let mut how = match (record.signal, record.exit_code) {
            (Some(sig), _) => format!(
                "killed by signal {sig} ({})",
                crate::record::signal_name(sig)
            ),
            (None, Some(code)) => format!("exit {code}"),
            (None, None) => "it did not succeed".to_string(),
        };
        if let Some(tail) = &record.stderr_tail {
            how = format!("{how}: {tail}");
        }
        self.batches.push(BatchFailure {
            number,
            status: record.status,
            how,
            files: 1,
            first: vec![record.path.clone()],
        });
    }

    /// The failed files worth naming, in path order: path, status, reason.
    pub(crate) fn failures(&self) -> &[(String, Status, String)] {
        &self.failures
    }

    pub(crate) fn count(&self, status: Status) -> u64 {
        self.counts[status as usize]
    }

    pub(crate) fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(crate) fn failed(&self) -> u64 {
        Status::ALL
            .iter()
            .filter(|s| s.is_failure())
            .map(|s| self.count(*s))
            .sum()
    }

    /// The exit status: a stop by signal or closed stdout wins, then any failure.
    pub(crate) fn exit_status(&self, stopped: Option<Reason>) -> ExitStatus {
        match stopped {
            Some(Reason::Signal(libc::SIGINT)) => ExitStatus::Interrupted,
            Some(Reason::Signal(libc::SIGTERM)) => ExitStatus::Terminated,
            Some(Reason::ClosedStdout | Reason::ClosedStderr) => ExitStatus::ClosedStdout,
            // Output that could not be written: a failure, whether or not a job's record says
            // so (a dry run's lines are fanout's own output).
            Some(Reason::OutputFailed) => ExitStatus::Failure,
            _ if self.failed() > 0 || self.walk_errors > 0 => ExitStatus::Failure,
            _ => ExitStatus::Success,
        }
    }

    /// The human report for stderr.
    pub(crate) fn report(&self, wall: Duration) -> Report<'_> {
        Report { totals: self, wall }
    }
}

pub(crate) struct Report<'a> {
    totals: &'a Totals,
    wall: Duration,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.totals;
        let secs = self.wall.as_secs_f64();
        let parts: Vec<String> = Status::ALL
            .iter()
            .filter(|s| t.count(**s) > 0 || **s == Status::Ok)
            .map(|s| status_tone(*s, &format!("{} {}", t.count(*s), s.words()), t.count(*s)))
            .collect();
        write!(
            f,
            "fanout: {}: {}",
            counted(t.total(), "file"),
            parts.join(", ")
        )?;
        if t.walk_errors > 0 {
            write!(
                f,
                ", {}",
                crate::error::counted(t.walk_errors, "walk error")
            )?;
        }
        write!(f, " in {secs:.2} s")?;
        if t.ran > 0 && secs > 0.0 {
            write!(f, " ({:.1} jobs/s)", t.ran as f64 / secs)?;
        }
        for (path, status, reason) in &t.failures {
            write!(
                f,
                "\n  {} {}",
                status_tone(*status, &format!("{:<14}", status.words()), 1),
                crate::error::escape(path)
            )?;
            if !reason.is_empty() {
                write!(f, ": {}", crate::error::escape(reason))?;
            }
        }
        for b in &t.batches {
            let more = b.files - b.first.len() as u64;
            let mut names = b
                .first
                .iter()
                .map(|p| crate::error::escape(p))
                .collect::<Vec<_>>()
                .join(", ");
            if more > 0 {
                names.push_str(&format!(" and {more} more"));
            }
            write!(
                f,
                "\n  {} batch {}, {}: {}; which of them caused it is not known: {names}",
                status_tone(b.status, &format!("{:<14}", b.status.words()), 1),
                b.number,
                counted(b.files, "file"),
                crate::error::escape(&b.how),
            )?;
        }
        if t.more_failures > 0 {
            write!(f, "\n  and {} more", t.more_failures)?;
        }
        Ok(())
    }
}

/// `text` (about `count` files of `status`) coloured on a terminal: ok green, a failure red.
fn status_tone(status: Status, text: &str, count: u64) -> String {
    use crate::error::{paint, Tone};
    match status {
        _ if count == 0 => text.to_string(),
        Status::Ok => paint(Tone::Good, text),
        s if s.is_failure() => paint(Tone::Bad, text),
        _ => text.to_string(),
    }
}

/// The `--summary` journal: a record per file, flushed as it is written, then a final record.
pub(crate) struct JournalWriter {
    out: BufWriter<File>,
    /// The path the user gave.
    path: PathBuf,
    /// A regular file, which `finish` syncs (fsync fails with EINVAL on a pipe or /dev/null,
    /// and means nothing there).
    regular: bool,
    /// A record could not be written: the journal lacks it.
    failed: bool,
    /// Discovery stopped early: inputs it had not reached have no record.
    cut_short: bool,
    replace: Option<Replace>,
    /// The last `batch` line written, and the command it holds: the records it holds get a
    /// short line each.
    batch: Option<(BatchLine, Arc<Vec<String>>)>,
}

/// `--resume J --summary J`: the run must not destroy `J`, which holds what it resumes from,
/// before its own journal holds all of that. So `J` stays untouched while the new journal is
/// written beside it, and the new one replaces `J` (a rename) when the run ends with a record
/// for every input. A run killed before that (SIGKILL) leaves `J` whole and its new journal
/// beside it, which the next `--resume J` reads too (`tempname::leftovers`).
struct Replace {
    /// The new journal, beside `target`.
    temp: PathBuf,
    /// `J`, symbolic links resolved.
    target: PathBuf,
    /// Replacements of `J` that earlier runs left behind: read by this run's resume, so
    /// superseded once this journal replaces `J`.
    leftovers: Vec<PathBuf>,
    /// The run stopped before every input had its record (a second Ctrl-C stops the walk):
    /// `J` stays, and this journal stays beside it.
    partial: bool,
}

impl JournalWriter {
    /// Creates (truncates) the journal at `path`.
    pub(crate) fn create(path: &Path) -> io::Result<JournalWriter> {
        // Not through another user's link, nor into their file in a shared directory.
        let file = crate::os::trust::create_own(path)?;
        Ok(JournalWriter::new(file, path, None))
    }

    fn new(file: File, path: &Path, replace: Option<Replace>) -> JournalWriter {
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        JournalWriter {
            // Records are flushed per burst (see the collector), not per 8 KiB.
            out: BufWriter::with_capacity(1 << 18, file),
            path: path.to_path_buf(),
            regular,
            failed: false,
            cut_short: false,
            replace,
            batch: None,
        }
    }

    /// Opens the `--summary` journal of a run that may `--resume` from the same file, and
    /// registers it as one of the run's own files (never an input).
    pub(crate) fn open_for_run(
        summary: Option<&Path>,
        resume: Option<&Path>,
        own: &OwnFiles,
    ) -> anyhow::Result<Option<JournalWriter>> {
        let Some(path) = summary else {
            return Ok(None);
        };
        let context = || format!("cannot write the summary {}", path.display());
        let journal = match resume.filter(|r| same_regular_file(path, r)) {
            Some(_) => JournalWriter::beside(path).with_context(context)?,
            None => JournalWriter::create(path).with_context(context)?,
        };
        if let Ok(md) = journal.out.get_ref().metadata() {
            own.add(&md);
        }
        Ok(Some(journal))
    }

    /// A journal written beside `path`, to replace it when the run ends.
    fn beside(path: &Path) -> io::Result<JournalWriter> {
        crate::os::trust::own_link_or_none(path)?;
        let target = std::fs::canonicalize(path)?;
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(io::Error::other("not a file name"));
        };
        // Only this user's leftovers are taken back (and removed at the end), as `--resume`
        // reads only those.
        let leftovers = crate::tempname::trusted_leftovers(&target)
            .0
            .into_iter()
            .map(|l| l.path)
            .collect();
        // Created new (O_EXCL, mode 0600), then given the journal's permissions.
        let (file, temp) = tempfile::Builder::new()
            .prefix(&crate::tempname::replacement_prefix(name))
            .rand_bytes(8)
            .tempfile_in(dir)?
            .keep()
            .map_err(|e| e.error)?;
        file.set_permissions(std::fs::metadata(&target)?.permissions())?;
        let replace = Replace {
            temp,
            target,
            leftovers,
            partial: false,
        };
        Ok(JournalWriter::new(file, path, Some(replace)))
    }

    /// The run stopped before every input had its record (the walk was cut short).
    pub(crate) fn walk_cut_short(&mut self) {
        self.cut_short = true;
        if let Some(r) = &mut self.replace {
            r.partial = true;
        }
    }

    /// Writes one line of any other kind (a Slurm worker's header).
    pub(crate) fn line(&mut self, value: &serde_json::Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// Writes a file's record. A record of a command of several files (`-X`) gets a short
    /// line, after a `batch` line with what it shares with the other files of that command
    /// (written when the last one written does not hold it: at the command's first record,
    /// or where a record of it was changed alone); any other record a whole line.
    pub(crate) fn record(&mut self, record: &JobRecord) -> io::Result<()> {
        let written = self.write_record(record);
        self.failed |= written.is_err();
        written
    }

    fn write_record(&mut self, record: &JobRecord) -> io::Result<()> {
        let Some(ran) = record.batch_argv.as_ref() else {
            return record.write_line(&mut self.out);
        };
        let held = self
            .batch
            .as_ref()
            .is_some_and(|(line, of)| Arc::ptr_eq(of, ran) && line.holds(record));
        if !held {
            let Some(line) = BatchLine::of(record) else {
                // A field no short line holds: the whole record, with the command that ran.
                let mut whole = record.clone();
                whole.command = ran.to_vec();
                return whole.write_line(&mut self.out);
            };
            serde_json::to_writer(&mut self.out, &line)?;
            self.out.write_all(b"\n")?;
            self.batch = Some((line, Arc::clone(ran)));
        }
        record.write_short_line(&mut self.out)
    }

    /// Adds a record formatted elsewhere (one JSON line, newline included).
    pub(crate) fn record_line(&mut self, line: &[u8]) -> io::Result<()> {
        let written = self.out.write_all(line);
        self.failed |= written.is_err();
        written
    }

    /// Hands what was added to the kernel, so a killed fanout leaves whole records behind.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        let flushed = self.out.flush();
        self.failed |= flushed.is_err();
        flushed
    }

    pub(crate) fn finish(
        &mut self,
        totals: &Totals,
        wall: Duration,
        exit: ExitStatus,
        stopped: Option<Reason>,
        memory: &MemoryReport,
        cluster: Option<&serde_json::Value>,
    ) -> io::Result<()> {
        let stopped_by = stopped.map(|r| match r {
            Reason::Signal(libc::SIGINT) => "SIGINT",
            Reason::Signal(libc::SIGTERM) => "SIGTERM",
            Reason::Signal(libc::SIGHUP) => "SIGHUP",
            Reason::Signal(_) => "signal",
            Reason::ClosedStdout => "closed_stdout",
            Reason::ClosedStderr => "closed_stderr",
            Reason::Halt => "halt",
            Reason::OutputFailed => "output_failed",
            Reason::StoreUnreachable => "store_unreachable",
        });
        let secs = wall.as_secs_f64();
        let c = |s| totals.count(s);
        let bound = (memory.mem_limit_bytes > 0 && totals.mem_time > 0.0)
            .then(|| totals.mem_time / memory.mem_limit_bytes as f64);
        let record = FinalRecord {
            kind: "summary",
            v: crate::record::FORMAT_VERSION,
            total: totals.total(),
            ok: c(Status::Ok),
            failed: c(Status::Failed),
            timeout: c(Status::Timeout),
            invalid_output: c(Status::InvalidOutput),
            invalid_input: c(Status::InvalidInput),
            skipped: c(Status::Skipped),
            not_started: c(Status::NotStarted),
            interrupted: c(Status::Interrupted),
            conflict: c(Status::Conflict),
            walk_errors: totals.walk_errors,
            wall_ms: wall.as_millis() as u64,
            jobs_per_s: if secs > 0.0 {
                (totals.ran as f64 / secs * 10.0).round() / 10.0
            } else {
                0.0
            },
            exit_code: exit.code(),
            stopped_by,
            mem_time_bound_ms: bound.map(|b| b.round() as u64),
            mem_time_ratio: bound
                .filter(|b| *b >= 1.0)
                .map(|b| (wall.as_millis() as f64 / b * 100.0).round() / 100.0),
            memory,
            cluster,
            complete: true,
            walk_complete: !self.cut_short,
        };
        serde_json::to_writer(&mut self.out, &record)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        if self.regular {
            self.out.get_ref().sync_all()?;
        }
        self.replace_resumed()
    }

    /// `--resume J --summary J`: puts the finished journal in place of `J`, or says why `J`
    /// stays.
    fn replace_resumed(&mut self) -> io::Result<()> {
        let Some(r) = self.replace.take() else {
            return Ok(());
        };
        if r.partial || self.failed {
            crate::error::print_notice(&format!(
                "{} is kept as it was: this run stopped before every file had a record; its records are in {}, which --resume {} reads too",
                self.path.display(),
                r.temp.display(),
                self.path.display()
            ));
            return Ok(());
        }
        std::fs::rename(&r.temp, &r.target)?;
        // Make the rename durable where the file system can; either name holds the records.
        if let Some(dir) = r.target.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        for leftover in &r.leftovers {
            let _ = std::fs::remove_file(leftover);
        }
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `a` and `b` name the same regular file (the same device and inode).
fn same_regular_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.is_file() && a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_rules() {
        let mut t = Totals::default();
        t.add(&JobRecord::new(1, Path::new("a"), Status::Ok));
        t.add(&JobRecord::new(2, Path::new("b"), Status::Skipped));
        assert_eq!(t.exit_status(None), ExitStatus::Success);
        t.walk_errors = 1;
        assert_eq!(t.exit_status(None), ExitStatus::Failure);
        t.walk_errors = 0;
        t.add(&JobRecord::new(3, Path::new("c"), Status::Timeout));
        assert_eq!(t.exit_status(None), ExitStatus::Failure);
        assert_eq!(
            t.exit_status(Some(Reason::Signal(libc::SIGTERM))),
            ExitStatus::Terminated
        );
        assert_eq!(t.total(), 3);
    }

    /// The memory-time bound counts a batch's command once (its peak over its duration), not
    /// once per file: 2,048 files of one `wc` are one process's memory, not 2,048 (the bound,
    /// and the ratio of the wall time to it, were off by the batch size).
    #[test]
    fn a_batch_s_memory_time_counts_once() {
        let mut t = Totals::default();
        let ran = Arc::new(vec!["wc".to_string(), "a".into(), "b".into(), "c".into()]);
        let again = Arc::new(ran.to_vec());
        for (job, command) in [(1, &ran), (2, &ran), (3, &ran), (4, &again), (5, &again)] {
            let mut r = JobRecord::new(job, Path::new("f"), Status::Ok);
            r.attempts = 1;
            r.peak_rss_bytes = Some(1000);
            r.duration_ms = Some(10);
            r.batch_argv = Some(Arc::clone(command));
            t.add(&r);
        }
        let mut alone = JobRecord::new(6, Path::new("g"), Status::Ok);
        alone.attempts = 1;
        alone.peak_rss_bytes = Some(500);
        alone.duration_ms = Some(4);
        t.add(&alone);
        // Two commands of 10 ms at 1000 bytes, one of 4 ms at 500.
        assert_eq!(t.mem_time, 22_000.0);
        assert_eq!(t.ran, 6);
    }

    #[test]
    fn report_names_failures_then_counts_the_rest() {
        let mut t = Totals::default();
        for i in 0..13 {
            let mut r = JobRecord::new(i, Path::new(&format!("f{i}")), Status::Failed);
            r.exit_code = Some(3);
            r.attempts = 1;
            r.stderr_tail = Some("boom".into());
            t.add(&r);
        }
        let text = t.report(Duration::from_secs(2)).to_string();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            "fanout: 13 files: 0 ok, 13 failed in 2.00 s (6.5 jobs/s)"
        );
        assert!(
            text.contains("\n  failed         f0: exit 3: boom"),
            "{text}"
        );
        assert!(text.ends_with("and 3 more"), "{text}");
    }

    /// The files of a batch that failed as a whole are one line, with the batch's number, its
    /// file count, how it ended and its first files, not a line each as if each had failed.
    #[test]
    fn report_names_a_failed_batch_once_with_its_files() {
        let mut t = Totals::default();
        let mut alone = JobRecord::new(1, Path::new("lone"), Status::Failed);
        alone.exit_code = Some(2);
        t.add(&alone);
        for i in 0..11 {
            let mut r = JobRecord::new(i + 2, Path::new(&format!("f{i}.gz")), Status::Failed);
            r.exit_code = Some(1);
            r.stderr_tail = Some("gzip: f7.gz: not in gzip format".into());
            r.batch = Some(4);
            r.batch_size = Some(11);
            r.not_attributed(11);
            t.add(&r);
        }
        let text = t.report(Duration::from_secs(1)).to_string();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "  failed         lone: exit 2",
                "  failed         batch 4, 11 files: exit 1: gzip: f7.gz: not in gzip format; \
                 which of them caused it is not known: f0.gz, f1.gz, f2.gz and 8 more",
            ],
            "{text}"
        );
        assert_eq!(t.count(Status::Failed), 12);
    }

    #[test]
    fn the_report_names_failed_files_in_path_order_in_words() {
        let mut t = Totals::default();
        // They finish in an order of their own; the report names the first ten by path.
        let names: Vec<String> = (0..25)
            .map(|i| format!("d/part-{:02}", (i * 7) % 25))
            .collect();
        for (i, name) in names.iter().enumerate() {
            let status = match i % 3 {
                0 => Status::Failed,
                1 => Status::InvalidOutput,
                _ => Status::Timeout,
            };
            let mut r = JobRecord::new(i as u64, Path::new(name), status);
            r.attempts = 1;
            t.add(&r);
        }
        t.add(&JobRecord::new(99, Path::new("z"), Status::NotStarted));
        let text = t.report(Duration::from_secs(1)).to_string();
        let named: Vec<&str> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("d/")))
            .collect();
        let expected: Vec<String> = (0..10).map(|i| format!("d/part-{i:02}")).collect();
        assert_eq!(named, expected, "{text}");
        assert!(text.ends_with("and 15 more"), "{text}");
        let first = text.lines().next().unwrap();
        assert!(
            first.contains("8 invalid output") && first.contains("1 not started"),
            "{first}"
        );
        assert!(!text.contains('_'), "{text}");
        assert!(text.contains("\n  invalid output d/part-"), "{text}");
    }
}
