//! Objects in the job loop. Before a job is admitted: the staged copy of the object its
//! command reads (`{}`), pinned to the listed version. After its memory is given back: a
//! remote output (`-i` on an object, `-o` to a store) is checked as a local commit is, then
//! uploaded in one conditional request carrying its provenance. A lost condition is a
//! `conflict`: nothing is overwritten, and the output is kept beside the stage directory.
//! Transfers take a token of `--transfers` each, so they go on beside the jobs, not in their
//! slots.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

use super::unit::{self, Commit, Unit};
use crate::batch::Batch;
use crate::config::Config;
use crate::executor::Done;
use crate::inplace::InPlace;
use crate::input::Input;
use crate::parquet::{self, Footer, Verify};
use crate::record::{Action, JobRecord, Status};
use crate::remote::provenance::Provenance;
use crate::remote::{self, Condition, JobStage, PutError, RemoteUrl, Stage, Transfer};

/// The run's staging directory (made when the first job needs it) and its transfer tokens.
pub(super) struct Stages {
    dir: PathBuf,
    stage: OnceLock<Result<Stage, String>>,
    tokens: Mutex<usize>,
    freed: Condvar,
    /// Staging space not held by a job (bytes), known once the stage is made.
    disk: Mutex<Option<u64>>,
    disk_freed: Condvar,
    /// The staging space there was to plan for at the start.
    whole: OnceLock<u64>,
    /// Whether the stores can still be reached.
    reach: Mutex<Reach>,
}

/// Transfers in a row to one store (none reaching it between them) that could not reach it,
/// after which the run starts nothing new: each already tried for seconds, and a store that
/// has gone would otherwise cost every remaining object its own retries.
const UNREACHABLE_IN_A_ROW: u32 = 3;

/// The run's watch on its stores: per store (its URL's base), transfers in a row that could
/// not reach it and the last one's error; whether the run was told.
#[derive(Default)]
struct Reach {
    stores: std::collections::HashMap<String, (u32, String)>,
    told: bool,
}

/// A transfer's failure, as the watch on the stores sees it.
trait Fault {
    /// The one-line error, when the store could not be reached.
    fn unreachable(&self) -> Option<String>;
}

impl Fault for anyhow::Error {
    fn unreachable(&self) -> Option<String> {
        remote::unreachable(self).then(|| format!("{self:#}"))
    }
}

impl Fault for PutError {
    fn unreachable(&self) -> Option<String> {
        match self {
            PutError::Other(e) => e.unreachable(),
            PutError::Conflict(_) => None,
        }
    }
}

/// Staging space a job holds until its staged files are gone.
struct DiskHold<'s> {
    stages: &'s Stages,
    bytes: u64,
}

impl Drop for DiskHold<'_> {
    fn drop(&mut self) {
        let mut free = self
            .stages
            .disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(free) = free.as_mut() {
            *free += self.bytes;
        }
        self.stages.disk_freed.notify_all();
    }
}

/// Part of the staging directory's free space that is never planned for (others write
/// there too).
const DISK_KEPT_FREE: u64 = 20;

impl Stages {
    pub(super) fn new(config: &Config) -> Stages {
        Stages {
            dir: config.remote.stage_dir.clone(),
            stage: OnceLock::new(),
            tokens: Mutex::new(config.remote.transfers.max(1)),
            freed: Condvar::new(),
            disk: Mutex::new(None),
            disk_freed: Condvar::new(),
            whole: OnceLock::new(),
            reach: Mutex::new(Reach::default()),
        }
    }

    /// Once, when transfers in a row could not reach a store: how to tell it.
    pub(super) fn gone(&self) -> Option<String> {
        lock(&self.reach).gone()
    }

    /// Holds `bytes` of staging space (a job's input and its expected output), waiting while
    /// other jobs hold what it needs; an error when the stage could never hold it.
    fn hold_disk(&self, stage: &Stage, bytes: u64) -> Result<DiskHold<'_>, String> {
        let mut free = self
            .disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if free.is_none() {
            let total = stage.free_bytes().unwrap_or(u64::MAX);
            *free = Some(total - total / DISK_KEPT_FREE);
        }
        let whole = self.whole.get_or_init(|| free.unwrap_or(u64::MAX));
        if bytes > *whole {
            return Err(format!(
                "it needs {} of staging space (its object and an output as large), and {} has {} free: use --stage-dir",
                crate::units::human(bytes),
                self.dir.display(),
                crate::units::human(*whole)
            ));
        }
        while free.is_some_and(|f| f < bytes) {
            free = self
                .disk_freed
                .wait(free)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if let Some(f) = free.as_mut() {
            *f -= bytes;
        }
        Ok(DiskHold {
            stages: self,
            bytes,
        })
    }

    /// A staging directory for job `job`, with `bytes` of staging space held for it.
    fn job(&self, job: u64, bytes: u64) -> Result<(JobStage, Option<DiskHold<'_>>), String> {
        let stage = self
            .stage
            .get_or_init(|| Stage::new(&self.dir).map_err(|e| format!("{e:#}")));
        let stage = stage.as_ref().map_err(Clone::clone)?;
        let hold = (bytes > 0)
            .then(|| self.hold_disk(stage, bytes))
            .transpose()?;
        Ok((stage.job(job).map_err(|e| format!("{e:#}"))?, hold))
    }

    /// Runs a transfer to or from the store at `store` (a URL's base) with one of the
    /// `--transfers` tokens, and counts whether it reached the store.
    fn transfer<T, E: Fault>(&self, store: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let mut free = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
        drop(free);
        let value = f();
        *self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.freed.notify_one();
        lock(&self.reach).saw(store, value.as_ref().err().and_then(Fault::unreachable));
        value
    }
}

impl Reach {
    /// A transfer of `store`'s ended: `unreachable` is its error when it could not reach
    /// the store; any other end (even an error of the object's own) means the store answered.
    fn saw(&mut self, store: &str, unreachable: Option<String>) {
        let seen = self.stores.entry(store.to_string()).or_default();
        match unreachable {
            Some(line) => *seen = (seen.0 + 1, line),
            None => seen.0 = 0,
        }
    }

    /// Once, when a store could not be reached by transfers in a row: how to tell it.
    fn gone(&mut self) -> Option<String> {
        if self.told {
            return None;
        }
        let (n, last) = self
            .stores
            .values()
            .find(|(n, _)| *n >= UNREACHABLE_IN_A_ROW)?
            .clone();
        self.told = true;
        Some(format!(
            "{n} transfers in a row could not reach the store, the last: {last}; starting nothing new (once it is back, --resume runs the rest)"
        ))
    }
}

/// What a job has staged: its directory, the copy of its object, the download.
#[derive(Default)]
pub(super) struct Staging<'s> {
    /// Staging space held until the staged files are gone (dropped after `stage`).
    stage: Option<JobStage>,
    _hold: Option<DiskHold<'s>>,
    /// `{}` of its objects: their staged copies, in input order (empty: nothing staged).
    pub copies: Vec<PathBuf>,
    down: Vec<Transfer>,
}

/// The remote target of `input`'s job, if its output goes to a store.
fn remote_target(input: &Input, commit: Option<&Commit>) -> Option<RemoteUrl> {
    match commit? {
        Commit::Write(target) => target
            .to_str()
            .filter(|t| remote::looks_remote(t))
            .and_then(|t| RemoteUrl::parse(t).ok()),
        Commit::Replace(_) => input.remote.as_ref().map(|o| o.url.clone()),
    }
}

impl<'s> Staging<'s> {
    /// `{}` of a single object: its staged copy.
    pub(super) fn copy(&self) -> Option<&Path> {
        self.copies.first().map(PathBuf::as_path)
    }

    /// Stages what `unit`'s command reads; an error is the records of its inputs.
    pub(super) fn of(
        stages: &'s Stages,
        config: &Config,
        unit: &Unit,
        in_place: Option<&InPlace>,
    ) -> Result<Staging<'s>, Vec<Done>> {
        let input = match unit {
            Unit::One(input) => input,
            Unit::Batch(batch) => return Staging::of_batch(stages, config, batch),
        };
        let commit = unit::commit_of(input, in_place);
        if input.remote.is_none() && remote_target(input, commit.as_ref()).is_none() {
            return Ok(Staging::default());
        }
        // Its object and an output as large, when either is staged here.
        let size = input.remote.as_ref().map_or(0, |o| o.size);
        let staged_in = if config.template.reads_file() {
            size
        } else {
            0
        };
        let staged_out = if remote_target(input, commit.as_ref()).is_some() {
            size
        } else {
            0
        };
        let (stage, hold) = stages
            .job(input.job, staged_in + staged_out)
            .map_err(|e| vec![failed(input, e)])?;
        let mut staging = Staging {
            _hold: hold,
            ..Staging::default()
        };
        if let Some(object) = &input.remote {
            // A local target needs a file to stand for the input (its lock, its identity):
            // the staged copy, or an empty one when the command reads only `{url}`.
            let local_target = matches!(commit, Some(Commit::Write(_)))
                && remote_target(input, commit.as_ref()).is_none();
            if config.template.reads_file() {
                let (path, t) = stages
                    .transfer(&object.url.base, || stage.download(object, None))
                    .map_err(|e| vec![failed(input, format!("download failed: {e:#}"))])?;
                staging.copies.push(path);
                staging.down.push(t);
            } else if local_target {
                let path = stage.input_path(object.url.file_name());
                std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
                    .and_then(|()| std::fs::File::create_new(&path))
                    .map_err(|e| vec![failed(input, format!("staging: {e}"))])?;
                staging.copies.push(path);
            }
        }
        staging.stage = Some(stage);
        Ok(staging)
    }

    /// A batch's objects, each downloaded when the command reads `{}`; local files of the
    /// batch stand as they are.
    fn of_batch(
        stages: &'s Stages,
        config: &Config,
        batch: &Batch,
    ) -> Result<Staging<'s>, Vec<Done>> {
        if !config.template.reads_file() || batch.inputs.iter().all(|i| i.remote.is_none()) {
            return Ok(Staging::default());
        }
        let all_failed = |why: String| -> Vec<Done> {
            batch
                .inputs
                .iter()
                .map(|i| failed(i, why.clone()))
                .collect()
        };
        let bytes = batch
            .inputs
            .iter()
            .filter_map(|i| i.remote.as_ref())
            .map(|o| o.size)
            .sum();
        let (stage, hold) = stages.job(batch.number, bytes).map_err(all_failed)?;
        let mut staging = Staging {
            _hold: hold,
            ..Staging::default()
        };
        for (n, input) in batch.inputs.iter().enumerate() {
            match &input.remote {
                Some(object) => {
                    let (path, t) = stages
                        .transfer(&object.url.base, || stage.download(object, Some(n)))
                        .map_err(|e| all_failed(format!("download failed: {e:#}")))?;
                    staging.copies.push(path);
                    staging.down.push(t);
                }
                None => {
                    staging.copies.push(input.path.clone());
                    staging.down.push(Transfer::default());
                }
            }
        }
        staging.stage = Some(stage);
        Ok(staging)
    }

    /// What the record says of the object and its download.
    pub(super) fn note(&self, nth: usize, input: &Input, record: &mut JobRecord) {
        if let Some(o) = &input.remote {
            record.etag = o.etag.clone();
            record.object_version = o.version.clone();
            record.file_size = Some(o.size);
            record.file_mtime_ns = Some(o.mtime_ns);
        }
        if let Some(t) = self
            .down
            .get(nth)
            .filter(|t| t.bytes > 0 || input.remote.is_some())
        {
            record.down_bytes = Some(t.bytes);
            record.down_ms = Some(t.ms);
            record.down_retries = (t.retries > 0).then_some(t.retries);
            add_store_retries(record, t.store_retries);
        }
    }
}

/// A job whose output goes to a store: where it writes (`{out}`, staged) and how it is sent.
pub(crate) struct Upload {
    pub out: PathBuf,
    to: RemoteUrl,
    condition: Condition,
    provenance: Provenance,
    verify: Verify,
    input_footer: Option<Footer>,
    input_bytes: Option<u64>,
}

/// The upload of `unit`'s output, if it goes to a store; an error is the input's record.
pub(super) fn upload_of(
    config: &Config,
    unit: &Unit,
    in_place: Option<&InPlace>,
    staging: &Staging,
) -> Result<Option<Upload>, Box<Done>> {
    let Unit::One(input) = unit else {
        return Ok(None);
    };
    let commit = unit::commit_of(input, in_place);
    let (Some(to), Some(stage)) = (remote_target(input, commit.as_ref()), &staging.stage) else {
        return Ok(None);
    };
    let condition = match (&commit, &input.remote) {
        (Some(Commit::Replace(_)), Some(object)) => Condition::Unchanged {
            etag: object.etag.clone(),
            version: object.version.clone(),
        },
        // A target: created if absent, else replaced only if it is still what is seen now.
        _ => match remote::stores().head(&to) {
            Ok(None) => Condition::Absent,
            Ok(Some(head)) => Condition::Unchanged {
                etag: head.object.etag,
                version: head.object.version,
            },
            Err(e) => return Err(Box::new(failed(input, format!("{e:#}")))),
        },
    };
    let provenance = match &input.remote {
        Some(object) => Provenance::of_object(object, &config.remote.command_hash),
        None => match std::fs::metadata(&input.path) {
            Ok(md) => Provenance::of_file(&input.path, &md, &config.remote.command_hash),
            Err(e) => return Err(Box::new(failed(input, crate::error::io_reason(&e)))),
        },
    };
    let verify = in_place.map_or(Verify::None, |ip| ip.verify_for(Path::new(to.file_name())));
    let in_place_job = matches!(commit, Some(Commit::Replace(_)));
    let input_is_parquet = parquet::is_parquet_name(Path::new(input_name(input)));
    let input_footer = if verify.reads_parquet() && (in_place_job || input_is_parquet) {
        let footer = match (staging.copy(), &input.remote) {
            (Some(copy), _) if !staging.down.is_empty() => parquet::read_footer(copy),
            (_, Some(object)) => remote::footer(object),
            (_, None) => parquet::read_footer(&input.path),
        };
        match footer {
            Ok(f) => Some(f),
            Err(e) => {
                let mut record = JobRecord::new(input.job, &input.path, Status::InvalidInput);
                record.reason = Some(format!("input: {e}"));
                record.action = Some(Action::Kept);
                return Err(Box::new(Done::bare(record)));
            }
        }
    } else {
        None
    };
    let out = stage.out_path(to.file_name());
    if let Err(e) = stage.ready_out(&out) {
        return Err(Box::new(failed(input, format!("{e:#}"))));
    }
    Ok(Some(Upload {
        out,
        to,
        condition,
        provenance,
        verify,
        input_footer,
        input_bytes: input.remote.as_ref().map(|o| o.size),
    }))
}

fn input_name(input: &Input) -> &str {
    match &input.remote {
        Some(o) => o.url.file_name(),
        None => input
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(""),
    }
}

impl Upload {
    /// Removes what the job wrote (a failed or stopped attempt).
    pub(super) fn discard(&self) {
        let _ = std::fs::remove_file(&self.out);
    }

    /// Checks the job's output, uploads it if its condition holds, and records what happened.
    pub(super) fn conclude(self, stages: &Stages, staging: &Staging, record: &mut JobRecord) {
        let to = self.to.to_string();
        record.input_bytes = self.input_bytes.or(record.input_bytes);
        record.rows_in = self.input_footer.as_ref().map(|f| f.rows);
        record.verify = Some(self.verify.name().to_string());
        record.action = Some(Action::Kept);
        if record.status != Status::Ok {
            self.discard();
            if record.reason.is_none() {
                record.reason = Some(match record.status {
                    Status::Interrupted => format!("interrupted; {to} left as it was"),
                    _ => format!("the command did not succeed; {to} left as it was"),
                });
            }
            return;
        }
        if let Err((status, why)) = self.check(record) {
            self.discard();
            if status == Status::InvalidOutput {
                record.verify = Some(format!("{}: {why}", self.verify.name()));
                record.reason = Some(format!("verification failed, {to} left as it was: {why}"));
            } else {
                record.reason = Some(format!("{to} left as it was: {why}"));
            }
            record.status = status;
            return;
        }
        let start = std::time::Instant::now();
        let (sent, retried) = remote::counted(|| {
            stages.transfer(&self.to.base, || {
                let meta = self.provenance.metadata();
                match remote::stores().upload(&self.out, &self.to, &self.condition, &meta) {
                    Err(PutError::Conflict(why)) => self
                        .landed(record.output_bytes)
                        .ok_or(PutError::Conflict(why)),
                    sent => sent,
                }
            })
        });
        record.up_ms = Some(start.elapsed().as_millis() as u64);
        add_store_retries(record, retried);
        match sent {
            Ok(w) => {
                self.discard();
                record.action = Some(match self.condition {
                    Condition::Absent => Action::Created,
                    Condition::Unchanged { .. } => Action::Replaced,
                });
                record.up_bytes = Some(w.bytes);
                record.output_etag = w.etag;
                record.output_version = w.version;
            }
            Err(PutError::Conflict(why)) => {
                record.status = Status::Conflict;
                let kept = staging.stage.as_ref().map(|s| s.keep(&self.out));
                record.reason = Some(match kept {
                    Some(Ok(kept)) => {
                        record.kept_output = Some(kept.display().to_string());
                        format!(
                            "{why}; nothing was overwritten; the job's output is kept at {}",
                            kept.display()
                        )
                    }
                    Some(Err(e)) => format!(
                        "{why}; nothing was overwritten; the job's output could not be kept: {e:#}"
                    ),
                    None => format!("{why}; nothing was overwritten"),
                });
            }
            Err(PutError::Other(e)) => {
                self.discard();
                record.status = Status::Failed;
                let why = format!("{e:#}");
                let why = why.strip_prefix(&format!("{to}: ")).unwrap_or(&why);
                record.reason = Some(format!("upload failed, {to} left as it was: {why}"));
            }
        }
    }

    /// After a refused write: whether the object is this very upload all the same (a retried
    /// request whose first try landed but whose answer was lost is refused by its own
    /// condition): it carries this job's provenance and has the output's size.
    fn landed(&self, size: Option<u64>) -> Option<remote::Written> {
        let head = remote::stores().head(&self.to).ok()??;
        (self.provenance.matches(&head.metadata) == Some(true) && Some(head.object.size) == size)
            .then_some(remote::Written {
                etag: head.object.etag,
                version: head.object.version,
                bytes: head.object.size,
            })
    }

    /// The output as a commit checks it: a regular file of this user's (no link), not empty
    /// for `exists`, sound parquet comparing with the input for the parquet modes.
    fn check(&self, record: &mut JobRecord) -> Result<(), (Status, String)> {
        let md = match std::fs::symlink_metadata(&self.out) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err((
                    Status::InvalidOutput,
                    format!(
                        "the command exited 0 but did not write {{out}} ({})",
                        self.out.display()
                    ),
                ))
            }
            Err(e) => return Err((Status::Failed, crate::error::io_reason(&e))),
        };
        if !md.is_file() {
            return Err((
                Status::InvalidOutput,
                "{out} is not a regular file; only a file written at {out} is uploaded".into(),
            ));
        }
        record.output_bytes = Some(md.len());
        if self.verify == Verify::Exists && md.len() == 0 {
            return Err((Status::InvalidOutput, "the output is empty".into()));
        }
        if self.verify.reads_parquet() {
            let output = parquet::read_footer(&self.out)
                .map_err(|e| (Status::InvalidOutput, format!("output: {e}")))?;
            record.rows_out = Some(output.rows);
            if let Some(input) = &self.input_footer {
                parquet::compare(self.verify, input, &output)
                    .map_err(|e| (Status::InvalidOutput, e))?;
            }
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts `n` more requests the store client retried for the record's job.
fn add_store_retries(record: &mut JobRecord, n: u32) {
    if n > 0 {
        record.store_retries = Some(record.store_retries.unwrap_or(0) + n);
    }
}

/// The failed record of an input whose staging or upload could not begin.
fn failed(input: &Input, why: String) -> Done {
    let mut record = JobRecord::new(input.job, &input.path, Status::Failed);
    record.reason = Some(why);
    Done::bare(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per store: transfers that reach one store do not hide that another is gone; an
    /// object's own error is an answer; the run is told once.
    #[test]
    fn a_store_is_gone_after_three_transfers_in_a_row_could_not_reach_it() {
        let mut reach = Reach::default();
        let down = || Some("s3://b/k: could not reach the store: Connection refused".to_string());
        for _ in 0..2 {
            reach.saw("s3://b/", down());
            reach.saw("s3://a/", None);
        }
        assert_eq!(reach.gone(), None);
        reach.saw("s3://b/", None);
        reach.saw("s3://b/", down());
        reach.saw("s3://b/", down());
        assert_eq!(
            reach.gone(),
            None,
            "an answer in between starts the count again"
        );
        reach.saw("s3://a/", None);
        reach.saw("s3://b/", down());
        let told = reach.gone().expect("gone after 3 in a row");
        assert!(
            told.starts_with("3 transfers in a row could not reach the store, the last: s3://b/k"),
            "{told}"
        );
        reach.saw("s3://b/", down());
        assert_eq!(reach.gone(), None, "told once");
    }
}
