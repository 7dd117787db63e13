//! The record of one input file: its status and what is known about how it ran. Every stage
//! that decides a file's fate builds one; the collector writes them to the journal. Nothing here
//! runs, prints or writes anything.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The version of the journal's format, written into every line as `"v"`: the version of
/// that line's shape. It changes when a field changes meaning or goes away; new optional
/// fields keep it (docs/journal.md). Lines whose shape is version 1's carry 1.
pub const FORMAT_VERSION: u32 = 1;

/// The version of the shapes version 2 brought: the `batch` line, which holds the facts of a
/// batch's command once, and the short `file` line of a file that ran in it.
pub const BATCH_FORMAT_VERSION: u32 = 2;

/// The newest line version this fanout reads.
pub const NEWEST_FORMAT_VERSION: u32 = BATCH_FORMAT_VERSION;

/// How one input file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
    Timeout,
    InvalidOutput,
    InvalidInput,
    Skipped,
    NotStarted,
    Interrupted,
    /// An object's (or remote target's) conditional write lost: someone else changed it
    /// while the job ran. Nothing was overwritten; the output is kept (`kept_output`).
    Conflict,
}

impl Status {
    pub(crate) const ALL: [Status; 9] = [
        Status::Ok,
        Status::Failed,
        Status::Timeout,
        Status::InvalidOutput,
        Status::InvalidInput,
        Status::Skipped,
        Status::NotStarted,
        Status::Interrupted,
        Status::Conflict,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Timeout => "timeout",
            Status::InvalidOutput => "invalid_output",
            Status::InvalidInput => "invalid_input",
            Status::Skipped => "skipped",
            Status::NotStarted => "not_started",
            Status::Interrupted => "interrupted",
            Status::Conflict => "conflict",
        }
    }

    /// The status in words, for people (the end report): `not started`, not `not_started`.
    pub fn words(self) -> &'static str {
        match self {
            Status::InvalidOutput => "invalid output",
            Status::InvalidInput => "invalid input",
            Status::NotStarted => "not started",
            other => other.name(),
        }
    }

    /// Whether this status makes the run fail (exit status 1).
    pub fn is_failure(self) -> bool {
        !matches!(self, Status::Ok | Status::Skipped)
    }
}

/// What `-i` or `-o` did with a file's target (`"action"` in the journal). An unknown value in
/// a journal read back is an error, not a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A new target.
    Created,
    /// The target (or the input, in place) was replaced.
    Replaced,
    /// The original was kept (the `reason` says why).
    Kept,
    /// `-u`: the target was newer than its input.
    UpToDate,
}

/// Why fanout skipped a file without running it, when fanout decided that itself. The record's
/// `reason` says it in words; this is for counting, and is not written to the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// `--resume`: ok in the resumed run and unchanged since.
    Resumed,
    /// `-u`: the target is up to date.
    UpToDate,
    /// Another name of a file already met.
    SameFile,
}

/// The record of one input file, as written to the `--summary` journal (and read back from a
/// Slurm worker's journal).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    #[serde(rename = "type", skip_deserializing, default = "file_kind")]
    pub kind: Name,
    /// The journal's format version ([`FORMAT_VERSION`]); 0 when read from a journal written
    /// before records carried it.
    #[serde(rename = "v", default)]
    pub version: u32,
    pub job: u64,
    /// The path, lossy UTF-8.
    pub path: String,
    /// The exact bytes of the path, base64, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path_b64: Option<String>,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub attempts: u32,
    pub duration_ms: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub stdout_bytes: Option<u64>,
    pub stderr_bytes: Option<u64>,
    pub stderr_tail: Option<String>,
    pub command: Vec<String>,
    /// Why the file ended this way, in words, when fanout knows more than an exit code
    /// (a failure's cause, why it was skipped).
    pub reason: Option<String>,
    /// The file's size after the job (its identity for `--resume`); `None` if it did not run.
    pub file_size: Option<u64>,
    /// The file's modification time after the job, nanoseconds since the epoch.
    pub file_mtime_ns: Option<i64>,
    /// When the job's last attempt started (the only one without `--retries`), ms after the run
    /// started (in a Slurm task's own journal: after the task started; the submitter moves it
    /// onto its own clock).
    pub started_ms: Option<u64>,
    /// The worker slot that ran the job (`{%}`), for jobs that ran.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub slot: Option<u32>,
    /// On Slurm: the array task (shard) that ran the job.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shard: Option<u32>,
    /// The input's memory weight: parquet decoded-size estimate, else the file size.
    pub weight_bytes: Option<u64>,
    /// The memory reserved for the job (`{mem}`).
    pub mem_reserved_bytes: Option<u64>,
    /// `-o` runs: the target (lossy UTF-8).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output: Option<String>,
    /// The exact bytes of the target, base64, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_b64: Option<String>,
    /// With `-X`: the number of the batch (the command) this file ran in, `{#}`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch: Option<u64>,
    /// With `-X`: how many files that batch's command was given.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch_size: Option<u64>,
    /// In journals of format version 1, with `-X`, on the first record of a command of more
    /// than one file: that command's argv as it ran (`command` was this file's part of it).
    /// Read back, never written: a `batch` line holds the command now.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch_command: Option<Vec<String>>,
    /// With `-X`, on every record of a command of more than one file: that command's argv as
    /// it ran (lossy UTF-8), one copy for all of them; the journal writes it in the batch's
    /// line. Such a record's own `command` stays empty.
    #[serde(skip)]
    pub batch_argv: Option<std::sync::Arc<Vec<String>>>,
    /// With `-X`: `false` when the file's batch failed as a whole and which of its files caused
    /// it is not known (the status is the batch's; the `reason` says so).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attributed: Option<bool>,
    /// With `--split-failed`: the file's batch failed, and this record is from running the
    /// file again in a smaller command (alone, or with part of the batch).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub split: Option<bool>,
    /// The learned model's prediction of the job's peak memory, before margin (`auto`, once
    /// a job has been measured).
    #[serde(default)]
    pub predicted_peak_bytes: Option<u64>,
    /// How long the memory safety net kept the job paused, ms.
    #[serde(default)]
    pub paused_ms: Option<u64>,
    /// In-place and `-o` runs: `created`, `replaced`, `kept` or `up_to_date`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub action: Option<Action>,
    /// Why fanout skipped the file itself, if it did (not in the journal: `reason` says it).
    #[serde(skip)]
    pub skip: Option<Skip>,
    /// In-place runs: the input's size before the job.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub input_bytes: Option<u64>,
    /// In-place runs: the size of what the job wrote to `{out}`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_bytes: Option<u64>,
    /// In-place parquet runs: rows in the input's and the output's footers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rows_in: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rows_out: Option<i64>,
    /// In-place runs: the verify mode and, when it failed, what failed, in words.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verify: Option<String>,
    /// An object input: its ETag and version as listed (the size is `file_size`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_version: Option<String>,
    /// A remote output as written: its ETag and version.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_version: Option<String>,
    /// Bytes and milliseconds of the download of an object input (its staged copy).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub down_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub down_ms: Option<u64>,
    /// Times the download started over after the store failed (absent: none).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub down_retries: Option<u32>,
    /// Bytes and milliseconds of the upload of a remote output.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub up_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub up_ms: Option<u64>,
    /// Requests of the job's transfers that the store client retried (throttling, server
    /// errors, dropped connections; absent: none).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub store_retries: Option<u32>,
    /// `conflict`: where the job's output was kept.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kept_output: Option<String>,
}

/// A fixed word (`file`). An alias, so serde does not try to borrow it
/// from the input when a record is read back.
type Name = &'static str;

fn file_kind() -> Name {
    "file"
}

fn batch_kind() -> Name {
    "batch"
}

/// The facts one command of a batch (`-X`) gives all its files, written once as a `batch`
/// line before the short `file` lines of its files ([`FileInBatch`]). A file's whole record
/// is this line's fields with the file's own (`record`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchLine {
    #[serde(rename = "type", skip_deserializing, default = "batch_kind")]
    pub kind: Name,
    #[serde(rename = "v", default)]
    pub version: u32,
    pub batch: u64,
    /// How many files the command was given.
    pub batch_size: u64,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub attempts: u32,
    pub duration_ms: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub stdout_bytes: Option<u64>,
    pub stderr_bytes: Option<u64>,
    pub stderr_tail: Option<String>,
    /// The argv that ran (lossy UTF-8): the record's `batch_command`.
    pub command: Vec<String>,
    pub reason: Option<String>,
    pub started_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub slot: Option<u32>,
    pub mem_reserved_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attributed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub split: Option<bool>,
    #[serde(default)]
    pub predicted_peak_bytes: Option<u64>,
    #[serde(default)]
    pub paused_ms: Option<u64>,
}

/// The short `file` line of a file whose record is its batch's facts ([`BatchLine`], the last
/// `batch` line with its number before it) with its own job number, path, weight and identity,
/// and the batch's status (so that which files succeeded needs no join).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInBatch {
    #[serde(rename = "type", skip_deserializing, default = "file_kind")]
    pub kind: Name,
    #[serde(rename = "v")]
    pub version: u32,
    pub job: u64,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path_b64: Option<String>,
    /// The batch's status, here too: whether a file succeeded needs no join.
    pub status: Status,
    /// `false` when the batch failed as a whole (as in its batch line).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attributed: Option<bool>,
    /// The batch's reason, here too when its status is not `ok`: why a file failed needs no
    /// join either.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub batch: u64,
    pub weight_bytes: Option<u64>,
    pub file_size: Option<u64>,
    pub file_mtime_ns: Option<i64>,
    /// An object input's facts, its own (its identity for `--resume` and its download).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub down_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub down_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub down_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub store_retries: Option<u32>,
}

/// Whether a record has no field that neither a batch line nor a short line holds: what no
/// batched record has (in place, `-o`, Slurm, a version 1 `batch_command`), which only a
/// whole line says.
fn only_batch_fields(r: &JobRecord) -> bool {
    r.shard.is_none()
        && r.action.is_none()
        && r.output.is_none()
        && r.input_bytes.is_none()
        && r.output_bytes.is_none()
        && r.rows_in.is_none()
        && r.rows_out.is_none()
        && r.verify.is_none()
        && r.batch_command.is_none()
        && r.output_etag.is_none()
        && r.output_version.is_none()
        && r.up_bytes.is_none()
        && r.up_ms.is_none()
        && r.kept_output.is_none()
}

/// [`FileInBatch`] as it is written, borrowed from the record.
#[derive(Serialize)]
struct FileInBatchRef<'a> {
    #[serde(rename = "type")]
    kind: Name,
    v: u32,
    job: u64,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_b64: Option<&'a str>,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    batch: u64,
    weight_bytes: Option<u64>,
    file_size: Option<u64>,
    file_mtime_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    down_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    down_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    down_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_retries: Option<u32>,
}

impl BatchLine {
    /// The batch line of a record of a command of several files (one with its `batch_argv`);
    /// `None` for any other record.
    pub(crate) fn of(r: &JobRecord) -> Option<BatchLine> {
        let (Some(batch), Some(size), Some(command)) = (r.batch, r.batch_size, &r.batch_argv)
        else {
            return None;
        };
        if !only_batch_fields(r) {
            return None;
        }
        Some(BatchLine {
            kind: "batch",
            version: BATCH_FORMAT_VERSION,
            batch,
            batch_size: size,
            status: r.status,
            exit_code: r.exit_code,
            signal: r.signal,
            attempts: r.attempts,
            duration_ms: r.duration_ms,
            peak_rss_bytes: r.peak_rss_bytes,
            stdout_bytes: r.stdout_bytes,
            stderr_bytes: r.stderr_bytes,
            stderr_tail: r.stderr_tail.clone(),
            command: command.to_vec(),
            reason: r.reason.clone(),
            started_ms: r.started_ms,
            slot: r.slot,
            mem_reserved_bytes: r.mem_reserved_bytes,
            attributed: r.attributed,
            split: r.split,
            predicted_peak_bytes: r.predicted_peak_bytes,
            paused_ms: r.paused_ms,
        })
    }

    /// Whether `r` is this batch's facts with a file's own (its command aside, which the
    /// caller compares): a short line says all of it.
    pub(crate) fn holds(&self, r: &JobRecord) -> bool {
        r.batch == Some(self.batch)
            && r.batch_size == Some(self.batch_size)
            && r.status == self.status
            && r.exit_code == self.exit_code
            && r.signal == self.signal
            && r.attempts == self.attempts
            && r.duration_ms == self.duration_ms
            && r.peak_rss_bytes == self.peak_rss_bytes
            && r.stdout_bytes == self.stdout_bytes
            && r.stderr_bytes == self.stderr_bytes
            && r.stderr_tail == self.stderr_tail
            && r.reason == self.reason
            && r.started_ms == self.started_ms
            && r.slot == self.slot
            && r.mem_reserved_bytes == self.mem_reserved_bytes
            && r.attributed == self.attributed
            && r.split == self.split
            && r.predicted_peak_bytes == self.predicted_peak_bytes
            && r.paused_ms == self.paused_ms
            && only_batch_fields(r)
    }

    /// The whole record of the file of short line `f`. Its `command` stays empty: the argv that
    /// ran is this line's (one copy, not one per file).
    pub fn record(&self, f: FileInBatch) -> JobRecord {
        JobRecord {
            kind: "file",
            version: f.version,
            job: f.job,
            path: f.path,
            path_b64: f.path_b64,
            status: f.status,
            exit_code: self.exit_code,
            signal: self.signal,
            attempts: self.attempts,
            duration_ms: self.duration_ms,
            peak_rss_bytes: self.peak_rss_bytes,
            stdout_bytes: self.stdout_bytes,
            stderr_bytes: self.stderr_bytes,
            stderr_tail: self.stderr_tail.clone(),
            command: Vec::new(),
            reason: f.reason.or_else(|| self.reason.clone()),
            file_size: f.file_size,
            file_mtime_ns: f.file_mtime_ns,
            started_ms: self.started_ms,
            slot: self.slot,
            weight_bytes: f.weight_bytes,
            mem_reserved_bytes: self.mem_reserved_bytes,
            batch: Some(self.batch),
            batch_size: Some(self.batch_size),
            attributed: f.attributed,
            split: self.split,
            predicted_peak_bytes: self.predicted_peak_bytes,
            paused_ms: self.paused_ms,
            etag: f.etag,
            object_version: f.object_version,
            down_bytes: f.down_bytes,
            down_ms: f.down_ms,
            down_retries: f.down_retries,
            store_retries: f.store_retries,
            ..JobRecord::new(0, Path::new(""), f.status)
        }
    }
}

impl JobRecord {
    /// A record for a file that has not run (yet): `not_started`, no command.
    /// The path's exact bytes (from `path_b64` when it is not valid UTF-8).
    pub fn path_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        use base64::Engine;
        self.path_b64
            .as_deref()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map_or(
                std::borrow::Cow::Borrowed(self.path.as_bytes()),
                std::borrow::Cow::Owned,
            )
    }

    pub(crate) fn new(job: u64, path: &Path, status: Status) -> JobRecord {
        let bytes = path.as_os_str().as_bytes();
        let (path, path_b64) = match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_string(), None),
            Err(_) => (
                String::from_utf8_lossy(bytes).into_owned(),
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
        };
        JobRecord {
            kind: "file",
            version: FORMAT_VERSION,
            job,
            path,
            path_b64,
            status,
            exit_code: None,
            signal: None,
            attempts: 0,
            duration_ms: None,
            peak_rss_bytes: None,
            stdout_bytes: None,
            stderr_bytes: None,
            stderr_tail: None,
            command: Vec::new(),
            reason: None,
            file_size: None,
            file_mtime_ns: None,
            started_ms: None,
            slot: None,
            shard: None,
            weight_bytes: None,
            mem_reserved_bytes: None,
            output: None,
            output_b64: None,
            batch: None,
            batch_size: None,
            batch_command: None,
            batch_argv: None,
            attributed: None,
            split: None,
            predicted_peak_bytes: None,
            paused_ms: None,
            action: None,
            skip: None,
            input_bytes: None,
            output_bytes: None,
            rows_in: None,
            rows_out: None,
            verify: None,
            etag: None,
            object_version: None,
            output_etag: None,
            output_version: None,
            down_bytes: None,
            down_ms: None,
            down_retries: None,
            up_bytes: None,
            up_ms: None,
            store_retries: None,
            kept_output: None,
        }
    }

    /// Records `-o`'s target.
    pub(crate) fn set_output(&mut self, target: &Path) {
        let bytes = target.as_os_str().as_bytes();
        match std::str::from_utf8(bytes) {
            Ok(s) => self.output = Some(s.to_string()),
            Err(_) => {
                self.output = Some(String::from_utf8_lossy(bytes).into_owned());
                self.output_b64 = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
        }
    }

    /// The same record for another input (a file of the same batch).
    pub(crate) fn for_input(&self, job: u64, path: &Path) -> JobRecord {
        let fresh = JobRecord::new(job, path, self.status);
        JobRecord {
            job,
            path: fresh.path,
            path_b64: fresh.path_b64,
            ..self.clone()
        }
    }

    pub(crate) fn set_command(&mut self, argv: &[OsString]) {
        self.command = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
    }

    pub(crate) fn set_duration(&mut self, d: Duration) {
        self.duration_ms = Some(d.as_millis() as u64);
    }

    /// Writes the record as one journal line (JSON and a newline): the one place a record
    /// becomes JSON, wherever it is formatted (the journal, triage, a batch's executor).
    pub(crate) fn write_line(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, self).map_err(std::io::Error::from)?;
        out.write_all(b"\n")
    }

    /// Writes the short line of a record its batch's line holds ([`BatchLine::holds`]).
    pub(crate) fn write_short_line(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let short = FileInBatchRef {
            kind: "file",
            v: BATCH_FORMAT_VERSION,
            job: self.job,
            path: &self.path,
            path_b64: self.path_b64.as_deref(),
            status: self.status,
            attributed: self.attributed,
            reason: self.reason.as_deref().filter(|_| self.status != Status::Ok),
            batch: self.batch.unwrap_or(0),
            weight_bytes: self.weight_bytes,
            file_size: self.file_size,
            file_mtime_ns: self.file_mtime_ns,
            etag: self.etag.as_deref(),
            object_version: self.object_version.as_deref(),
            down_bytes: self.down_bytes,
            down_ms: self.down_ms,
            down_retries: self.down_retries,
            store_retries: self.store_retries,
        };
        serde_json::to_writer(&mut *out, &short).map_err(std::io::Error::from)?;
        out.write_all(b"\n")
    }

    /// The record as one journal line, formatted ahead of the journal (where a core is free).
    pub(crate) fn journal_line(&self) -> Option<Vec<u8>> {
        let mut line = Vec::with_capacity(512);
        self.write_line(&mut line).ok().map(|()| line)
    }

    /// How its command ended when it did not succeed, in a few words: fanout's reason, else the
    /// signal or the exit code.
    pub(crate) fn how_it_ended(&self) -> String {
        if let Some(r) = &self.reason {
            return r.clone();
        }
        match (self.signal, self.exit_code) {
            (Some(sig), _) => format!("killed by signal {sig} ({})", signal_name(sig)),
            (None, Some(code)) => format!("exit {code}"),
            (None, None) => self.status.name().to_string(),
        }
    }

    /// Marks the record of one file of a batch of `size` that failed as a whole: its status
    /// is the batch's, which of the batch's files caused it is not known.
    pub(crate) fn not_attributed(&mut self, size: u64) {
        self.reason = Some(format!(
            "its batch of {size} failed ({}); which of its files caused it is not known",
            self.how_it_ended()
        ));
        self.attributed = Some(false);
    }

    /// Marks the record of a file of a failed batch whose files `--split-failed` ran again
    /// by halves without a failure: the batch's failure needs them together, or did not repeat.
    pub(crate) fn not_repeated(&mut self) {
        let said = self.reason.take().unwrap_or_default();
        self.reason = Some(format!(
            "{said}; run again by halves (--split-failed), none of them failed"
        ));
    }

    /// A short reason for the human report: exit code or signal, and the last stderr line.
    pub(crate) fn reason(&self) -> String {
        let mut parts = Vec::new();
        if let Some(sig) = self.signal {
            parts.push(format!("killed by signal {sig} ({})", signal_name(sig)));
        } else if let Some(code) = self.exit_code.filter(|c| *c != 0) {
            parts.push(format!("exit {code}"));
        }
        if let Some(e) = &self.reason {
            parts.push(e.clone());
        }
        if let Some(t) = &self.stderr_tail {
            parts.push(t.clone());
        }
        parts.join(": ")
    }
}

pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}

/// What the memory-aware scheduler saw, for the final record.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct MemoryReport {
    /// The budget for jobs running at once.
    pub mem_limit_bytes: u64,
    /// Memory available when the run started: min(MemAvailable, cgroup limit − usage).
    pub mem_available_bytes: u64,
    /// The tightest memory limit of fanout's cgroups, if any.
    pub cgroup_limit_bytes: Option<u64>,
    /// The most jobs that ran at once.
    pub max_running: usize,
    /// The highest sampled total memory of the jobs running at once.
    pub max_memory_bytes: u64,
    /// Memory admission and the safety net keep free below the real limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_reserve_bytes: Option<u64>,
    /// The margin added to predictions at the end of the run, learned from their errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_margin: Option<f64>,
    /// Times the safety net paused a job, and stopped one to run it again from scratch.
    pub mem_pauses: u64,
    pub mem_requeues: u64,
    /// Memory kept an input waiting while fewer than `-j` jobs ran (for the end report only).
    #[serde(skip)]
    pub held_by_memory: bool,
    /// The learned model (`auto`), peak = base + k × weight.
    pub model: Option<crate::memory::Fit>,
    /// Samples of [ms since start, running jobs, their total memory].
    pub timeline: Vec<[u64; 3]>,
    /// CPU time fanout itself used (user + system, its jobs not included).
    pub fanout_cpu_ms: u64,
    /// `fanout_cpu_ms` per job that ran.
    pub fanout_cpu_ms_per_job: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn non_utf8_path_keeps_its_bytes() {
        let raw = OsStr::from_bytes(b"a\xffb.txt");
        let r = JobRecord::new(3, Path::new(raw), Status::Ok);
        assert_eq!(r.path, "a\u{fffd}b.txt");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(r.path_b64.as_deref().unwrap())
            .unwrap();
        assert_eq!(bytes, b"a\xffb.txt");
        let utf8 = JobRecord::new(1, Path::new("ok.txt"), Status::Ok);
        assert!(utf8.path_b64.is_none());
        assert!(!serde_json::to_string(&utf8).unwrap().contains("path_b64"));
    }

    #[test]
    fn record_has_every_contract_key() {
        let r = JobRecord::new(1, Path::new("x"), Status::NotStarted);
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        for key in [
            "type",
            "job",
            "path",
            "status",
            "exit_code",
            "signal",
            "attempts",
            "duration_ms",
            "peak_rss_bytes",
            "stdout_bytes",
            "stderr_bytes",
            "stderr_tail",
            "command",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["status"], "not_started");
    }

    #[test]
    fn an_action_reads_back_as_written_and_an_unknown_one_is_an_error() {
        let mut record = JobRecord::new(1, Path::new("a"), Status::Ok);
        for action in [
            Action::Created,
            Action::Replaced,
            Action::Kept,
            Action::UpToDate,
        ] {
            record.action = Some(action);
            let line = record.journal_line().unwrap();
            let back: JobRecord = serde_json::from_slice(&line).unwrap();
            assert_eq!(back.action, Some(action));
        }
        let line = String::from_utf8(record.journal_line().unwrap()).unwrap();
        let forged = line.replace("\"up_to_date\"", "\"deleted\"");
        assert!(
            serde_json::from_str::<JobRecord>(&forged).is_err(),
            "{forged}"
        );
    }
}
