//! Following one array task's files as its worker writes them: its journal
//! (`records/shard-K.jsonl`), its jobs' output (`output/shard-K.stdout`, `.stderr`) and its log.
//! Each file's record is handed on once, with its job's whole output, once all of it can be
//! read, so that the output of jobs of different tasks never interleaves. What is done with
//! them is the `Intake`'s (the run core's collector); what Slurm says of the task is `watch`'s.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::plan::{Layout, PlannedFile};
use super::records::{WorkerLine, WorkerSummary};
use crate::executor::Done;
use crate::output::Spool;
use crate::record::{JobRecord, Status};

/// Lines of a task's log kept to explain its end.
const LOG_LINES: usize = 20;

/// Where what the array produces goes: the run core, which writes the journal, keeps the
/// totals, owns fanout's stdout and stderr and the progress bar.
pub(crate) trait Intake {
    /// One file's record with its job's whole output, once per file.
    fn accept(&mut self, done: Done);
    /// A message for the user.
    fn notice(&mut self, message: &str);
    /// How many array tasks are running now.
    fn running(&mut self, tasks: u64);
}

/// A file that another process appends to, read as it grows.
struct Tail {
    path: PathBuf,
    file: Option<File>,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            file: None,
            partial: Vec::new(),
        }
    }

    fn open(&mut self) -> Option<&mut File> {
        if self.file.is_none() {
            self.file = super::private::open_own(&self.path);
        }
        self.file.as_mut()
    }

    /// Complete new lines.
    fn lines(&mut self) -> Vec<Vec<u8>> {
        let mut buf = std::mem::take(&mut self.partial);
        if let Some(f) = self.open() {
            let _ = f.read_to_end(&mut buf);
        }
        let mut lines: Vec<Vec<u8>> = buf.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        self.partial = lines.pop().unwrap_or_default();
        lines
    }

    /// Bytes written but not yet read.
    fn available(&mut self) -> u64 {
        let Some(f) = self.open() else { return 0 };
        let pos = f.stream_position().unwrap_or(0);
        f.metadata().map_or(0, |m| m.len().saturating_sub(pos))
    }

    /// Reads the next `n` bytes (one job's output). Whatever happens, reading goes on after
    /// those `n` bytes, so the next job's output stays aligned with its record.
    fn take(&mut self, n: u64) -> Option<Spool> {
        if n == 0 {
            return None;
        }
        let mut spool = Spool::default();
        let Some(f) = self.open() else {
            spool.error = Some("its output file could not be read".into());
            return Some(spool);
        };
        let Ok(start) = f.stream_position() else {
            return Some(spool);
        };
        if let Err(err) = std::io::copy(&mut Read::by_ref(f).take(n), &mut spool) {
            spool.error = Some(format!("its output could not be read: {err}"));
        }
        let _ = f.seek(SeekFrom::Start(start + n));
        Some(spool)
    }
}

/// What the submitter reads of one array task.
pub(crate) struct Shard {
    pub index: usize,
    /// Its files, in job order.
    pub files: Vec<PlannedFile>,
    /// The jobs it has a record of.
    pub recorded: HashSet<u64>,
    /// The worker wrote its journal: it started.
    pub started: bool,
    /// The worker's final record: it finished.
    pub summary: Option<WorkerSummary>,
    /// The last lines of its log.
    pub log_lines: VecDeque<String>,
    /// fanout is stopping the array: a worker's SIGTERM came from fanout.
    stopping: bool,
    /// When the submitter's run started, ms since the Unix epoch.
    run_start_unix_ms: u64,
    /// How much later than the submitter's run the task started (its header says when), so
    /// that its records' `started_ms` count from the run's start like a local run's.
    offset_ms: Option<i64>,
    records: Tail,
    /// Records read whose output is not all readable yet (a shared file system may show the
    /// bytes later than the record), in the order the worker wrote them.
    pending: VecDeque<JobRecord>,
    stdout: Tail,
    stderr: Tail,
    log: Tail,
    started_log: PathBuf,
}

impl Shard {
    pub(crate) fn new(
        layout: &Layout,
        index: usize,
        files: Vec<PlannedFile>,
        run_start_unix_ms: u64,
    ) -> Shard {
        Shard {
            index,
            run_start_unix_ms,
            offset_ms: None,
            files,
            recorded: HashSet::new(),
            started: false,
            summary: None,
            log_lines: VecDeque::new(),
            stopping: false,
            records: Tail::new(layout.records(index)),
            pending: VecDeque::new(),
            stdout: Tail::new(layout.stdout(index)),
            stderr: Tail::new(layout.stderr(index)),
            log: Tail::new(layout.log(index)),
            started_log: layout.started(index),
        }
    }

    /// Reads what the task wrote since the last look: new records go to `intake` (each
    /// after its job's output, when that can be read whole), new log lines are kept and,
    /// unless `quiet`, shown.
    pub(crate) fn pump(&mut self, intake: &mut dyn Intake, quiet: bool) {
        for line in self.records.lines() {
            match WorkerLine::parse(&line) {
                Some(WorkerLine::Worker(header)) => {
                    self.started = true;
                    self.offset_ms = header
                        .started_unix_ms
                        .map(|t| t as i64 - self.run_start_unix_ms as i64);
                }
                Some(WorkerLine::Summary(s)) => self.summary = Some(s),
                Some(WorkerLine::File(record)) => {
                    self.started = true;
                    if !self.recorded.insert(record.job) {
                        continue;
                    }
                    self.pending.push_back(*record);
                }
                Some(WorkerLine::Other) | None => {}
            }
        }
        self.relay(intake, false);
        for line in self.log.lines() {
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if text.is_empty() {
                continue;
            }
            if !quiet {
                let shown = text.strip_prefix("fanout: ").unwrap_or(&text);
                intake.notice(&format!("shard {}: {shown}", self.index));
            }
            if self.log_lines.len() == LOG_LINES {
                self.log_lines.pop_front();
            }
            self.log_lines.push_back(text);
        }
    }

    /// Hands on the records read, each with its job's output, once all of that can be read
    /// (unless `all`, at the very end).
    pub(crate) fn relay(&mut self, intake: &mut dyn Intake, all: bool) {
        while let Some(record) = self.pending.front() {
            let out = record.stdout_bytes.unwrap_or(0);
            let err = record.stderr_bytes.unwrap_or(0);
            if !all && (self.stdout.available() < out || self.stderr.available() < err) {
                break;
            }
            let mut record = self.pending.pop_front().expect("a pending record");
            record.shard = Some(self.index as u32);
            if !self.stopping {
                from_outside(&mut record);
            }
            if let (Some(offset), Some(started)) = (self.offset_ms, record.started_ms) {
                record.started_ms = Some((started as i64 + offset).max(0) as u64);
            }
            intake.accept(Done {
                record,
                stdout: self.stdout.take(out),
                stderr: self.stderr.take(err),
                line: None,
            });
        }
    }

    /// Whether fanout itself is stopping the array (its own SIGTERM to the workers).
    pub(crate) fn set_stopping(&mut self, stopping: bool) {
        self.stopping = stopping;
    }

    /// Its files without a record, in job order.
    pub(crate) fn unrecorded(&self) -> impl Iterator<Item = &PlannedFile> {
        self.files
            .iter()
            .filter(|f| !self.recorded.contains(&f.job))
    }

    /// The job numbers the worker started (whether or not they finished).
    pub(crate) fn started_jobs(&self) -> HashSet<u64> {
        std::fs::read_to_string(&self.started_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Records may still be on their way: the worker did not finish, files lack a record,
    /// and Slurm (slurmstepd) has not said in the log that it killed the task.
    pub(crate) fn may_have_more_records(&self) -> bool {
        self.summary.is_none()
            && self.recorded.len() < self.files.len()
            && self.log_lines.iter().all(|l| !l.contains("slurmstepd"))
    }
}

/// What a worker calls "terminated (SIGTERM)" while fanout was not stopping anything came
/// from outside: Slurm stopped the task (scancel, its time limit, preemption). The record says so.
fn from_outside(record: &mut JobRecord) {
    const TERM: &str = "not started: terminated (SIGTERM)";
    const OUTSIDE: &str = "its Slurm array task was stopped from outside fanout (SIGTERM: scancel, its time limit or preemption)";
    match record.status {
        Status::NotStarted => {
            if let Some(r) = record.reason.as_mut().filter(|r| r.starts_with(TERM)) {
                *r = format!("not started: {OUTSIDE}{}", &r[TERM.len()..]);
            }
        }
        Status::Interrupted => {
            record.reason = Some(match record.reason.take() {
                Some(r) => format!(
                    "interrupted: {OUTSIDE}; {}",
                    r.trim_start_matches("interrupted; ")
                ),
                None => format!("interrupted: {OUTSIDE}"),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::*;
    use crate::cluster::records::WorkerHeader;
    use crate::record::Status;

    /// Keeps what it is handed, in order.
    #[derive(Default)]
    struct Taken {
        events: Vec<String>,
        records: Vec<JobRecord>,
    }

    impl Intake for Taken {
        fn accept(&mut self, mut done: Done) {
            let text = |spool: Option<Spool>| {
                let mut bytes = Vec::new();
                if let Some(mut s) = spool {
                    s.write_to(&mut bytes).unwrap();
                }
                String::from_utf8(bytes).unwrap()
            };
            let (out, err) = (text(done.stdout.take()), text(done.stderr.take()));
            self.events
                .push(format!("record {} [{out}] [{err}]", done.record.job));
            self.records.push(done.record);
        }
        fn notice(&mut self, message: &str) {
            self.events.push(format!("notice {message}"));
        }
        fn running(&mut self, tasks: u64) {
            self.events.push(format!("running {tasks}"));
        }
    }

    fn append(path: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    /// A new plan directory (kept while the first value lives).
    fn plan_dir() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout {
            dir: dir.path().to_path_buf(),
        };
        layout.create().unwrap();
        (dir, layout)
    }

    fn record_line(job: u64, stdout: u64, stderr: u64) -> Vec<u8> {
        let mut r = JobRecord::new(job, Path::new(&format!("f{job}")), Status::Ok);
        r.stdout_bytes = Some(stdout);
        r.stderr_bytes = Some(stderr);
        let mut line = serde_json::to_vec(&r).unwrap();
        line.push(b'\n');
        line
    }

    #[test]
    fn records_and_whole_outputs_are_handed_on_once_each() {
        let (_dir, layout) = plan_dir();
        let files = (1..=3).map(|j| PlannedFile::new(j, Path::new(&format!("f{j}")), 1, None));
        let mut shard = Shard::new(&layout, 0, files.collect(), 0);
        let mut taken = Taken::default();
        shard.pump(&mut taken, false);
        assert!(taken.events.is_empty() && !shard.started);

        let header = WorkerHeader {
            v: 1,
            shard: 0,
            pid: 1,
            host: "n1".into(),
            slurm_job_id: None,
            files: 3,
            mem_limit_bytes: 1 << 20,
            started_unix_ms: None,
        };
        append(
            &layout.records(0),
            format!("{}\n", header.to_line()).as_bytes(),
        );
        // Job 1's output is all there; job 2's stdout only in part; job 3's record is cut short.
        append(&layout.stdout(0), b"one\ntw");
        append(&layout.stderr(0), b"e1\n");
        append(&layout.records(0), &record_line(1, 4, 3));
        append(&layout.records(0), &record_line(2, 4, 0));
        let third = record_line(3, 0, 0);
        append(&layout.records(0), &third[..10]);
        append(&layout.log(0), b"fanout: something to say\n");
        shard.pump(&mut taken, false);
        assert!(shard.started);
        assert_eq!(
            taken.events,
            [
                "record 1 [one\n] [e1\n]",
                "notice shard 0: something to say",
            ]
        );
        taken.events.clear();

        // The rest of job 2's output, the rest of job 3's record, and job 1's record again.
        append(&layout.stdout(0), b"o\n");
        append(&layout.records(0), &third[10..]);
        append(&layout.records(0), &record_line(1, 4, 3));
        shard.pump(&mut taken, true);
        assert_eq!(taken.events, ["record 2 [two\n] []", "record 3 [] []"]);
        assert_eq!(shard.recorded.len(), 3);
        assert_eq!(shard.unrecorded().count(), 0);
        assert!(!shard.may_have_more_records());
        assert_eq!(shard.log_lines, ["fanout: something to say"]);
    }

    #[test]
    fn at_the_end_output_short_of_its_size_goes_out_as_it_is() {
        let (_dir, layout) = plan_dir();
        let mut shard = Shard::new(
            &layout,
            2,
            vec![PlannedFile::new(5, Path::new("f5"), 1, None)],
            0,
        );
        append(&layout.stdout(2), b"par");
        append(&layout.records(2), &record_line(5, 10, 0));
        let mut taken = Taken::default();
        shard.pump(&mut taken, true);
        assert!(taken.events.is_empty(), "the record waits for its output");
        shard.relay(&mut taken, true);
        assert_eq!(taken.events, ["record 5 [par] []"]);
        taken.events.clear();
        shard.relay(&mut taken, true);
        assert!(taken.events.is_empty(), "owed once");
    }

    #[test]
    fn a_task_killed_by_slurm_sends_no_more_records() {
        let (_dir, layout) = plan_dir();
        let mut shard = Shard::new(
            &layout,
            0,
            vec![PlannedFile::new(1, Path::new("f1"), 1, None)],
            0,
        );
        assert!(shard.may_have_more_records());
        append(&layout.started(0), b"1\n");
        append(
            &layout.log(0),
            b"slurmstepd-n1: error: StepId=16.batch exceeded memory limit\n",
        );
        shard.pump(&mut Taken::default(), true);
        assert!(!shard.may_have_more_records());
        assert_eq!(shard.started_jobs(), HashSet::from([1]));
        assert_eq!(shard.unrecorded().map(|f| f.job).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn start_times_move_onto_the_submitters_clock() {
        let (_dir, layout) = plan_dir();
        let files = vec![PlannedFile::new(1, Path::new("f1"), 1, None)];
        let mut shard = Shard::new(&layout, 1, files, 1_000_000);
        let header = WorkerHeader {
            v: 1,
            shard: 1,
            pid: 1,
            host: "n1".into(),
            slurm_job_id: None,
            files: 1,
            mem_limit_bytes: 1 << 20,
            started_unix_ms: Some(1_004_500),
        };
        append(
            &layout.records(1),
            format!("{}\n", header.to_line()).as_bytes(),
        );
        let mut r = JobRecord::new(1, Path::new("f1"), Status::Ok);
        r.started_ms = Some(20);
        r.slot = Some(2);
        append(
            &layout.records(1),
            format!("{}\n", serde_json::to_string(&r).unwrap()).as_bytes(),
        );
        let mut taken = Taken::default();
        shard.pump(&mut taken, true);
        let got = &taken.records[0];
        assert_eq!(
            (got.started_ms, got.shard, got.slot),
            (Some(4520), Some(1), Some(2))
        );
    }
}
