//! Safe in-place rewrites: the job writes to a fresh hidden file next to its input (`{out}`);
//! only when the job succeeded and the output passed verification is that file made durable,
//! given the input's permissions and renamed over the input. In every other case the original
//! is left byte-identical and the temporary file is removed.
//!
//! A per-file advisory lock (flock on the input itself: no extra file in the dataset) keeps two
//! fanout runs from rewriting the same file at once. Temporary files carry the run's process id,
//! so a later run can tell and remove the leftovers of runs that were killed.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::parquet::{self, Footer, Verify};
use crate::resume::{identity, Identity};

/// The in-place part of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct InPlaceOptions {
    /// The verify mode given with `--verify`; `None`: by the input's extension.
    pub verify: Option<Verify>,
    /// Rewrite read-only inputs too.
    pub force: bool,
}

/// How often an input's lock is tried (5 ms apart) before the file counts as taken.
const LOCK_TRIES: u32 = 20;

/// The marker in every temporary file name: `.NAME.fanout-PID-JOB[.EXT]`.
const MARKER: &[u8] = b".fanout-";

/// The process id in a temporary file's name, if `name` is one of ours.
pub(crate) fn temp_owner(name: &[u8]) -> Option<u32> {
    if name.first() != Some(&b'.') {
        return None;
    }
    let at = name.windows(MARKER.len()).rposition(|w| w == MARKER)?;
    let rest = &name[at + MARKER.len()..];
    let pid_len = rest.iter().position(|b| !b.is_ascii_digit())?;
    let after = &rest[pid_len..];
    let job_len = after
        .get(1..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if after[0] != b'-' || job_len == 0 {
        return None;
    }
    std::str::from_utf8(&rest[..pid_len]).ok()?.parse().ok()
}

/// The name of the input a temporary file was made for: `.STEM.fanout-PID-JOB[-N][.EXT]` →
/// `STEM[.EXT]`.
fn temp_input(name: &[u8]) -> Option<Vec<u8>> {
    temp_owner(name)?;
    let at = name.windows(MARKER.len()).rposition(|w| w == MARKER)?;
    let mut input = name[1..at].to_vec();
    let rest = &name[at + MARKER.len()..];
    if let Some(dot) = rest.iter().position(|b| *b == b'.') {
        input.extend_from_slice(&rest[dot..]);
    }
    Some(input)
}

/// Whether some fanout run (on any machine that shares the file system's locks) holds the
/// input that temporary file `name` in `dir` belongs to.
fn input_busy(dir: &Path, name: &[u8]) -> bool {
    let Some(input) = temp_input(name) else {
        return false;
    };
    let Ok(file) = File::open(dir.join(OsString::from_vec(input))) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

/// Removes the temporary files in `dir` left by fanout runs that are gone: not a live fanout
/// here, and their input not locked by anyone (a run on another node of a cluster holds its
/// input's lock, whatever its process id means here). Returns what was removed.
pub(crate) fn sweep_dead(dir: &Path, own_pid: u32) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = temp_owner(name.as_bytes()) else {
            continue;
        };
        if pid == own_pid || run_alive(pid) || input_busy(dir, name.as_bytes()) {
            continue;
        }
        if remove_temp(&entry.path()) {
            removed.push(entry.path());
        }
    }
    removed
}

/// A job whose input is ready to be rewritten.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The file that will be replaced (a symlinked input's target).
    pub target: PathBuf,
    /// Where the job writes: `{out}`.
    pub out: PathBuf,
    pub verify: Verify,
    input_footer: Option<Footer>,
    before: Identity,
    /// Held while the job runs: the lock that keeps other fanout runs off this file.
    _lock: File,
}

/// Why an input is not run.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Read-only without `--force`: skipped.
    ReadOnly(String),
    /// The input itself does not pass the verify mode's checks.
    InvalidInput(String),
    /// Another fanout run holds the file.
    Locked(String),
    /// Anything else (the file vanished, permissions...).
    Failed(String),
}

/// The end of an in-place job.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub replaced: bool,
    /// Why the original was kept, when the job itself succeeded.
    pub problem: Option<Problem>,
    pub input_bytes: Option<u64>,
    pub output_bytes: Option<u64>,
    pub rows_in: Option<i64>,
    pub rows_out: Option<i64>,
}

/// What went wrong after a successful command.
#[derive(Debug)]
pub(crate) enum Problem {
    /// The output failed verification (`invalid_output`).
    Invalid(String),
    /// Anything else that kept the original (`failed`).
    Failed(String),
}

pub(crate) struct InPlace {
    opts: InPlaceOptions,
    pid: u32,
    swept: Mutex<HashSet<PathBuf>>,
}

impl InPlace {
    pub(crate) fn new(opts: InPlaceOptions) -> InPlace {
        InPlace {
            opts,
            pid: std::process::id(),
            swept: Mutex::new(HashSet::new()),
        }
    }

    /// The verify mode for `path`: as given, else `parquet` for `.parquet` files, else `exists`.
    pub(crate) fn verify_for(&self, path: &Path) -> Verify {
        self.opts
            .verify
            .unwrap_or(if parquet::is_parquet_name(path) {
                Verify::Parquet
            } else {
                Verify::Exists
            })
    }

    /// The file an in-place job replaces: a symlink's final target, so the link stays a link.
    pub(crate) fn target(input: &Path) -> std::io::Result<PathBuf> {
        if fs::symlink_metadata(input)?.file_type().is_symlink() {
            fs::canonicalize(input)
        } else {
            Ok(input.to_path_buf())
        }
    }

    /// `{out}` for job `job` of input `target`: hidden, in the same directory (same file system,
    /// so the rename is atomic), unique to this run and job, with the input's extension.
    pub(crate) fn out_path(&self, target: &Path, job: u64) -> PathBuf {
        let dir = target.parent().unwrap_or(Path::new(""));
        let stem = target.file_stem().unwrap_or_default().as_bytes();
        let ext = target.extension().map(|e| e.as_bytes());
        let mut n = 0;
        loop {
            let mut name = b".".to_vec();
            name.extend_from_slice(stem);
            name.extend_from_slice(MARKER);
            name.extend_from_slice(format!("{}-{job}", self.pid).as_bytes());
            if n > 0 {
                name.extend_from_slice(format!("-{n}").as_bytes());
            }
            if let Some(ext) = ext {
                name.push(b'.');
                name.extend_from_slice(ext);
            }
            let path = dir.join(OsString::from_vec(name));
            if fs::symlink_metadata(&path).is_err() {
                return path;
            }
            n += 1;
        }
    }

    /// Checks and locks an input before its job runs. Returns the stale temporary files it
    /// removed from the input's directory (the first time that directory is seen).
    pub(crate) fn prepare(
        &self,
        input: &Path,
        job: u64,
    ) -> (Result<Prepared, Refusal>, Vec<PathBuf>) {
        let target = match InPlace::target(input) {
            Ok(t) => t,
            Err(e) => {
                return (
                    Err(Refusal::Failed(crate::error::io_reason(&e))),
                    Vec::new(),
                )
            }
        };
        let swept = self.sweep(target.parent().unwrap_or(Path::new(".")));
        (self.prepare_target(target, job), swept)
    }

    fn prepare_target(&self, target: PathBuf, job: u64) -> Result<Prepared, Refusal> {
        let io = |e: std::io::Error| Refusal::Failed(crate::error::io_reason(&e));
        let md = fs::metadata(&target).map_err(io)?;
        if md.permissions().mode() & 0o200 == 0 && !self.opts.force {
            return Err(Refusal::ReadOnly(
                "read-only file (no owner write permission): not rewritten; use --force to rewrite it anyway"
                    .into(),
            ));
        }
        let lock = File::open(&target).map_err(io)?;
        // A sweep elsewhere may hold the lock for an instant to see whether the file is busy.
        let mut tries = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < LOCK_TRIES => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Refusal::Locked(
                        "another fanout run is rewriting this file; not started".into(),
                    ))
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        let verify = self.verify_for(&target);
        let input_footer = if verify.reads_parquet() {
            Some(
                parquet::read_footer(&target)
                    .map_err(|e| Refusal::InvalidInput(format!("input: {e}")))?,
            )
        } else {
            None
        };
        let before =
            identity(&target).ok_or_else(|| Refusal::Failed("the input vanished".into()))?;
        let out = self.out_path(&target, job);
        Ok(Prepared {
            target,
            out,
            verify,
            input_footer,
            before,
            _lock: lock,
        })
    }

    /// Removes temporary files of fanout runs that are no longer alive from `dir`, once per
    /// directory per run.
    fn sweep(&self, dir: &Path) -> Vec<PathBuf> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if !self
            .swept
            .lock()
            .expect("sweep set")
            .insert(dir.to_path_buf())
        {
            return Vec::new();
        }
        sweep_dead(dir, self.pid)
    }

    /// Removes `{out}` before a retry or after a failure.
    pub(crate) fn discard(p: &Prepared) {
        remove_temp(&p.out);
    }

    /// Ends an in-place job: verify and replace when `succeeded`, else keep the original.
    pub(crate) fn finish(&self, p: Prepared, succeeded: bool) -> Outcome {
        let mut outcome = Outcome {
            input_bytes: Some(p.before.size),
            output_bytes: fs::symlink_metadata(&p.out)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
            rows_in: p.input_footer.as_ref().map(|f| f.rows),
            ..Outcome::default()
        };
        if !succeeded {
            InPlace::discard(&p);
            return outcome;
        }
        if let Err(problem) = self.check(&p, &mut outcome) {
            InPlace::discard(&p);
            outcome.problem = Some(problem);
            return outcome;
        }
        match commit(&p) {
            Ok(()) => outcome.replaced = true,
            Err(e) => {
                InPlace::discard(&p);
                outcome.problem = Some(Problem::Failed(e));
            }
        }
        outcome
    }

    fn check(&self, p: &Prepared, outcome: &mut Outcome) -> Result<(), Problem> {
        if fs::symlink_metadata(&p.out).is_ok_and(|m| !m.is_file()) {
            return Err(Problem::Invalid(
                "the command wrote {out} as a directory or other non-file; only a single file can replace the input".into(),
            ));
        }
        let Some(size) = outcome.output_bytes else {
            return Err(Problem::Invalid(format!(
                "the command exited 0 but did not write {{out}} ({})",
                p.out.display()
            )));
        };
        if p.verify == Verify::Exists && size == 0 {
            return Err(Problem::Invalid("the output is empty".into()));
        }
        if let Some(input) = &p.input_footer {
            let output = parquet::read_footer(&p.out)
                .map_err(|e| Problem::Invalid(format!("output: {e}")))?;
            outcome.rows_out = Some(output.rows);
            parquet::compare(p.verify, input, &output).map_err(Problem::Invalid)?;
        }
        if identity(&p.target) != Some(p.before) {
            return Err(Problem::Failed(
                "the input changed while the job ran; not replaced".into(),
            ));
        }
        Ok(())
    }
}

/// Makes the output durable, gives it the input's permissions (and owner, as root), renames
/// it over the input and makes the rename durable.
fn commit(p: &Prepared) -> Result<(), String> {
    let step = |what: &str, e: std::io::Error| format!("{what}: {}", crate::error::io_reason(&e));
    let md = fs::metadata(&p.target).map_err(|e| step("reading the input's permissions", e))?;
    let out = OpenOptions::new()
        .read(true)
        .open(&p.out)
        .map_err(|e| step("opening the output", e))?;
    out.sync_all().map_err(|e| step("syncing the output", e))?;
    fs::set_permissions(
        &p.out,
        fs::Permissions::from_mode(md.permissions().mode() & 0o7777),
    )
    .map_err(|e| step("setting the output's permissions", e))?;
    if crate::os::is_root() {
        std::os::unix::fs::chown(&p.out, Some(md.uid()), Some(md.gid()))
            .map_err(|e| step("setting the output's owner", e))?;
    }
    fs::rename(&p.out, &p.target).map_err(|e| step("renaming the output over the input", e))?;
    let dir = p
        .target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| step("syncing the directory", e))?;
    Ok(())
}

/// Removes a temporary output of ours, whatever the command made of it: a file, a link, or
/// a directory (tools that write partitioned output do). Links are removed, never followed.
fn remove_temp(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path).is_ok(),
        Ok(_) => fs::remove_file(path).is_ok(),
        Err(_) => false,
    }
}

/// Whether process `pid` is a running fanout.
fn run_alive(pid: u32) -> bool {
    crate::os::process_name(pid).is_some_and(|name| name == b"fanout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_lead_back_to_their_input() {
        assert_eq!(
            temp_input(b".part-0.fanout-1234-7.parquet").unwrap(),
            b"part-0.parquet"
        );
        assert_eq!(temp_input(b".a.tar.fanout-9-1-2.gz").unwrap(), b"a.tar.gz");
        assert_eq!(temp_input(b".noext.fanout-5-3").unwrap(), b"noext");
        assert_eq!(temp_input(b"..hidden.fanout-5-3").unwrap(), b".hidden");
        assert!(temp_input(b"plain.parquet").is_none());
    }

    #[test]
    fn a_locked_input_keeps_its_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x").unwrap();
        let temp = dir.path().join(".a.fanout-4194304-1.csv");
        std::fs::write(&temp, "partial").unwrap();
        let held = File::open(dir.path().join("a.csv")).unwrap();
        // Another open file description: like a run on another node.
        held.try_lock().unwrap();
        assert!(sweep_dead(dir.path(), 1).is_empty());
        assert!(temp.exists());
        drop(held);
        assert_eq!(sweep_dead(dir.path(), 1), vec![temp.clone()]);
        assert!(!temp.exists());
    }

    #[test]
    fn temp_names_are_recognised() {
        assert_eq!(temp_owner(b".part-0.fanout-1234-7.parquet"), Some(1234));
        assert_eq!(temp_owner(b".a.fanout-99-1-2.csv"), Some(99));
        assert_eq!(temp_owner(b".noext.fanout-5-3"), Some(5));
        assert_eq!(temp_owner(b"part-0.fanout-1234-7.parquet"), None);
        assert_eq!(temp_owner(b".part.fanout-x-7.parquet"), None);
        assert_eq!(temp_owner(b".part.fanout-12.parquet"), None);
    }

    #[test]
    fn out_path_is_hidden_beside_the_input_with_its_extension() {
        let ip = InPlace::new(InPlaceOptions {
            verify: None,
            force: false,
        });
        let out = ip.out_path(Path::new("d/year=2024/part-0.parquet"), 3);
        let name = out.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(out.parent().unwrap(), Path::new("d/year=2024"));
        assert_eq!(
            name,
            format!(".part-0.fanout-{}-3.parquet", std::process::id())
        );
        assert_eq!(temp_owner(name.as_bytes()), Some(std::process::id()));
    }

    #[test]
    fn stale_files_of_dead_runs_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        // pid 4194304 is above Linux's pid_max limit: never alive.
        let stale = dir.path().join(".a.fanout-4194304-1.csv");
        let ours = dir
            .path()
            .join(format!(".a.fanout-{}-1.csv", std::process::id()));
        let other = dir.path().join(".a.csv");
        for p in [&stale, &ours, &other] {
            fs::write(p, "x").unwrap();
        }
        let ip = InPlace::new(InPlaceOptions {
            verify: None,
            force: false,
        });
        assert_eq!(ip.sweep(dir.path()), vec![stale.clone()]);
        assert!(!stale.exists() && ours.exists() && other.exists());
        assert!(ip.sweep(dir.path()).is_empty(), "a directory is swept once");
    }
}
