//! What discovery hands on: an input (a numbered file, with what the walk already knows of
//! it) and a notice (something to tell that is not an input). Plain data: the walk makes
//! them, triage and the executors take them.

use std::path::PathBuf;
use std::sync::Arc;

use crate::remote::Object;

/// One input file, numbered in input order.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    /// 1-based job number, in input order.
    pub job: u64,
    pub path: PathBuf,
    /// Why this input cannot be run (a stdin path that does not exist, ...), if so.
    pub problem: Option<String>,
    /// Its memory weight, once known (`--order largest-first` computes it up front).
    pub weight: Option<u64>,
    /// In place: the path through which this same file (device and inode) was already sent.
    pub duplicate_of: Option<PathBuf>,
    /// Size and modification time (ns) when the walk looked, if it did (a named or stdin
    /// path): triage need not look again.
    pub seen: Option<(u64, i64)>,
    /// Where the path below its walked root begins (`{rel}`); `None` for a named path.
    pub rel_at: Option<usize>,
    /// `-o`: the target, once the run has checked them all.
    pub target: Option<PathBuf>,
    /// An object in a store (its `path` is then its URL): what the listing saw of it.
    pub remote: Option<Arc<Object>>,
}

impl Input {
    /// Input number `job` at `path`, with nothing known of it yet.
    pub(crate) fn new(job: u64, path: PathBuf) -> Input {
        Input {
            job,
            path,
            problem: None,
            weight: None,
            duplicate_of: None,
            seen: None,
            rel_at: None,
            target: None,
            remote: None,
        }
    }
}

/// Something the walk has to say that is not an input.
#[derive(Debug, Clone)]
pub(crate) enum Notice {
    /// A walk step failed (unreadable directory, symlink loop); the walk went on.
    Error(String),
    /// Something worth telling that is not an error (stale temporary files removed).
    Info(String),
    /// A line for the journal that is not a file's record (a submitted Slurm job array),
    /// written and flushed at once.
    Journal(serde_json::Value),
}
