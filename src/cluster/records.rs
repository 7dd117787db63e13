//! What the Slurm executor writes to journals, as types. The lines of a worker's journal
//! (`records/shard-K.jsonl`), one type for the worker that writes them and the submitter that
//! reads them back: a header when the worker starts, a `JobRecord` per file as each finishes
//! (exactly a local run's), and the local run's final record, of which the submitter keeps the
//! numbers it reports per array task. And the submitter's account of the array in its own
//! final record.

use serde::{Deserialize, Serialize};

use super::state::State;
use crate::record::{JobRecord, MemoryReport};

/// The first line a worker writes: which shard it runs, where, with how much memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WorkerHeader {
    /// The journal's format version.
    #[serde(default)]
    pub v: u32,
    pub shard: usize,
    pub pid: u32,
    pub host: String,
    /// `SLURM_JOB_ID` of the array task, as Slurm set it.
    pub slurm_job_id: Option<String>,
    /// Files in the shard.
    pub files: usize,
    /// The jobs' memory budget in the task.
    pub mem_limit_bytes: u64,
    /// When the task started, ms since the Unix epoch by its node's clock: the submitter
    /// moves the task's start times onto its own run's clock with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix_ms: Option<u64>,
}

/// Now, in ms since the Unix epoch.
pub(crate) fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl WorkerHeader {
    /// The header as a journal line: its fields and `"type": "worker"`.
    pub(crate) fn to_line(&self) -> serde_json::Value {
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Line<'a> {
            Worker(&'a WorkerHeader),
        }
        serde_json::to_value(Line::Worker(self)).expect("a header is plain data")
    }
}

/// What the submitter reads of a worker's final record (a local run's `"type": "summary"`
/// line, written by `summary::JournalWriter::finish`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub(crate) struct WorkerSummary {
    /// The worker's memory budget for its jobs.
    pub mem_limit_bytes: u64,
    /// The most jobs that ran at once in the task.
    pub max_running: u64,
    /// The highest sampled total memory of those jobs.
    pub max_memory_bytes: u64,
    pub wall_ms: u64,
}

/// One line of a worker's journal.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum WorkerLine {
    /// The worker started: when (the header's other fields are for whoever reads the plan
    /// directory).
    Worker(WorkerHeader),
    File(Box<JobRecord>),
    Summary(WorkerSummary),
    /// A kind of line this fanout does not know: passed over.
    #[serde(other)]
    Other,
}

impl WorkerLine {
    /// `None` for what is not a journal line (blank, cut short, not JSON).
    pub(crate) fn parse(line: &[u8]) -> Option<WorkerLine> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        serde_json::from_slice(line).ok()
    }
}

/// The array in the submitter's final record: `executor`, `slurm_job_id`, `plan_dir` and a
/// report per task.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ArrayReport {
    pub executor: &'static str,
    pub slurm_job_id: String,
    /// Lossy UTF-8.
    pub plan_dir: String,
    pub shards: Vec<TaskReport>,
}

/// One array task in the submitter's final record.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TaskReport {
    pub shard: usize,
    /// Files dealt to it.
    pub files: usize,
    /// Records it wrote.
    pub records: usize,
    /// Its last state as Slurm said.
    pub state: Option<State>,
    pub node: Option<String>,
    /// The worker wrote its final record.
    pub finished: bool,
    pub max_running: u64,
    pub max_memory_bytes: u64,
    pub wall_ms: u64,
    /// The worker's budget (in the run's memory report, not per task).
    #[serde(skip)]
    pub mem_limit_bytes: u64,
}

impl ArrayReport {
    /// The run's memory report from the tasks': the largest budget and peak, the sum of
    /// the jobs at once.
    pub(crate) fn memory(&self) -> MemoryReport {
        let mut m = MemoryReport::default();
        for t in &self.shards {
            m.mem_limit_bytes = m.mem_limit_bytes.max(t.mem_limit_bytes);
            m.max_running += t.max_running as usize;
            m.max_memory_bytes = m.max_memory_bytes.max(t.max_memory_bytes);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::error::ExitStatus;
    use crate::record::{MemoryReport, Status};
    use crate::summary::{JournalWriter, Totals};

    #[test]
    fn the_header_reads_back_as_written() {
        let h = WorkerHeader {
            v: crate::record::FORMAT_VERSION,
            shard: 3,
            pid: 4242,
            host: "n17".into(),
            slurm_job_id: Some("88".into()),
            files: 12,
            mem_limit_bytes: 1 << 30,
            started_unix_ms: Some(1_700_000_000_000),
        };
        let line = h.to_line();
        assert_eq!(line["type"], "worker");
        assert_eq!(line["shard"], 3);
        assert_eq!(line["slurm_job_id"], "88");
        let bytes = serde_json::to_vec(&line).unwrap();
        match WorkerLine::parse(&bytes) {
            Some(WorkerLine::Worker(back)) => assert_eq!(back, h),
            other => panic!("{other:?}"),
        }
    }

    /// The records and the final line as a worker's local run writes them (the journal of
    /// `summary`), read back by the submitter's types.
    #[test]
    fn a_workers_journal_reads_back_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard-0.jsonl");
        let mut journal = JournalWriter::create(&path).unwrap();
        let mut record = JobRecord::new(7, Path::new("d/a b.txt"), Status::Ok);
        record.stdout_bytes = Some(12);
        record.action = Some(crate::record::Action::Replaced);
        journal.record(&record).unwrap();
        let mut totals = Totals::default();
        totals.add(&record);
        let memory = MemoryReport {
            mem_limit_bytes: 5 << 20,
            max_running: 2,
            max_memory_bytes: 3 << 20,
            ..MemoryReport::default()
        };
        journal
            .finish(
                &totals,
                Duration::from_millis(1500),
                ExitStatus::Success,
                None,
                &memory,
                None,
            )
            .unwrap();
        drop(journal);
        let text = std::fs::read(&path).unwrap();
        let lines: Vec<Option<WorkerLine>> =
            text.split(|b| *b == b'\n').map(WorkerLine::parse).collect();
        assert_eq!(lines.len(), 3, "two lines and the empty rest");
        match &lines[0] {
            Some(WorkerLine::File(r)) => {
                assert_eq!(r.job, 7);
                assert_eq!(r.path, "d/a b.txt");
                assert_eq!(r.status, Status::Ok);
                assert_eq!(r.stdout_bytes, Some(12));
                assert_eq!(r.action, Some(crate::record::Action::Replaced));
            }
            other => panic!("{other:?}"),
        }
        match &lines[1] {
            Some(WorkerLine::Summary(s)) => assert_eq!(
                *s,
                WorkerSummary {
                    mem_limit_bytes: 5 << 20,
                    max_running: 2,
                    max_memory_bytes: 3 << 20,
                    wall_ms: 1500,
                }
            ),
            other => panic!("{other:?}"),
        }
        assert!(lines[2].is_none());
    }

    #[test]
    fn other_lines_are_passed_over() {
        assert!(matches!(
            WorkerLine::parse(br#"{"type":"something_new","x":1}"#),
            Some(WorkerLine::Other)
        ));
        assert!(WorkerLine::parse(b"  ").is_none());
        assert!(WorkerLine::parse(br#"{"type":"file","job":"#).is_none());
        assert!(WorkerLine::parse(br#"{"job":1}"#).is_none());
    }

    #[test]
    fn the_array_in_the_final_record() {
        let task = |shard, state: Option<State>, summary: Option<(u64, u64, u64)>| {
            let (limit, running, peak) = summary.unwrap_or_default();
            TaskReport {
                shard,
                files: 3,
                records: 2,
                state,
                node: None,
                finished: summary.is_some(),
                max_running: running,
                max_memory_bytes: peak,
                wall_ms: 9,
                mem_limit_bytes: limit,
            }
        };
        let report = ArrayReport {
            executor: "slurm",
            slurm_job_id: "41".into(),
            plan_dir: "/p".into(),
            shards: vec![
                task(0, Some(State::Completed), Some((100, 2, 70))),
                task(1, Some(State::OutOfMemory), Some((200, 1, 50))),
                task(2, None, None),
            ],
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["executor"], "slurm");
        assert_eq!(v["slurm_job_id"], "41");
        assert_eq!(v["shards"][1]["state"], "OUT_OF_MEMORY");
        assert_eq!(v["shards"][2]["state"], serde_json::Value::Null);
        assert_eq!(v["shards"][0]["node"], serde_json::Value::Null);
        assert_eq!(v["shards"][2]["finished"], false);
        assert!(v["shards"][0].get("mem_limit_bytes").is_none());
        let m = report.memory();
        assert_eq!(m.mem_limit_bytes, 200);
        assert_eq!(m.max_running, 3);
        assert_eq!(m.max_memory_bytes, 70);
    }
}
