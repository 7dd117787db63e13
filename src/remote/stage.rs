//! Staging: the local copies jobs read (`{}` of an object) and write (`{out}` of a remote
//! target). One private directory per run under `--stage-dir` (mode 0700, removed when the
//! run ends), a directory per job in it (removed when the job ends). A conflict's output is
//! the one thing kept: it moves to `--stage-dir` itself, named in the job's record.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::object::Object;
use super::store::stores;

/// The run's staging directory.
pub(crate) struct Stage {
    dir: tempfile::TempDir,
    parent: PathBuf,
}

impl Stage {
    /// A new private directory under `parent`.
    pub(crate) fn new(parent: &Path) -> Result<Stage> {
        let dir = tempfile::Builder::new()
            .prefix("fanout-stage-")
            .tempdir_in(parent)
            .with_context(|| {
                format!("could not make a staging directory in {}", parent.display())
            })?;
        Ok(Stage {
            dir,
            parent: parent.to_path_buf(),
        })
    }

    /// A directory for job `job`.
    pub(crate) fn job(&self, job: u64) -> Result<JobStage> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("job{job}-"))
            .tempdir_in(self.dir.path())
            .context("could not make the job's staging directory")?;
        Ok(JobStage {
            dir,
            parent: self.parent.clone(),
            job,
        })
    }

    /// Free space where staged files go, in bytes (`None`: unknown).
    #[allow(
        clippy::useless_conversion,
        reason = "statvfs's types differ by platform"
    )]
    pub(crate) fn free_bytes(&self) -> Option<u64> {
        let st = nix::sys::statvfs::statvfs(self.dir.path()).ok()?;
        Some(u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size())))
    }
}

/// One job's staging directory.
pub(crate) struct JobStage {
    dir: tempfile::TempDir,
    parent: PathBuf,
    job: u64,
}

/// A finished transfer: bytes and milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Transfer {
    pub bytes: u64,
    pub ms: u64,
    /// Times it started over after the store failed.
    pub retries: u32,
    /// Requests the store client retried.
    pub store_retries: u32,
}

impl JobStage {
    /// Where the staged copy of an object named `name` goes (its base name and extension kept).
    pub(crate) fn input_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("in").join(safe_name(name))
    }

    /// Where the job writes an output named `name`.
    pub(crate) fn out_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(safe_name(name))
    }

    /// Downloads the listed version of `object` to its staged path (the `nth` of a batch's
    /// objects goes in a directory of its own: two keys may share a base name).
    pub(crate) fn download(
        &self,
        object: &Object,
        nth: Option<usize>,
    ) -> Result<(PathBuf, Transfer)> {
        let name = object.url.file_name();
        let path = match nth {
            Some(n) => self
                .dir
                .path()
                .join("in")
                .join(n.to_string())
                .join(safe_name(name)),
            None => self.input_path(name),
        };
        std::fs::create_dir_all(path.parent().unwrap_or(self.dir.path()))?;
        let mut file = File::create_new(&path)
            .with_context(|| format!("could not create {}", path.display()))?;
        let start = std::time::Instant::now();
        let fetched = stores().download(object, &mut file)?;
        Ok((
            path,
            Transfer {
                bytes: fetched.bytes,
                ms: start.elapsed().as_millis() as u64,
                retries: fetched.restarts,
                store_retries: fetched.store_retries,
            },
        ))
    }

    /// Makes the directory `{out}` goes in.
    pub(crate) fn ready_out(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out.parent().unwrap_or(self.dir.path()))
            .context("could not make the staged output's directory")
    }

    /// Keeps `out` (a conflict's output) beside the stage, and says where.
    pub(crate) fn keep(&self, out: &Path) -> Result<PathBuf> {
        let name = out
            .file_name()
            .map_or("output".into(), |n| n.to_string_lossy().into_owned());
        let kept = tempfile::Builder::new()
            .prefix(&format!("fanout-conflict-job{}-", self.job))
            .tempdir_in(&self.parent)
            .context("could not keep the conflicting output")?
            .keep();
        let to = kept.join(name);
        std::fs::rename(out, &to).context("could not keep the conflicting output")?;
        Ok(to)
    }
}

/// A key's base name as a file name: never empty, `.` or `..`, never an option.
fn safe_name(name: &str) -> String {
    match name {
        "" | "." | ".." => "_".to_string(),
        n if n.starts_with('-') => format!("_{n}"),
        n => n.to_string(),
    }
}
