//! A job's side of a commit: what a prepared job holds from its start to its end
//! (`Prepared`: the input locked, the directories open, `{out}`'s name), why an input is not
//! run (`Refusal`), and how an in-place or `-o` job ended (`Outcome`, `Problem`).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::AtFlags;

use super::node::Node;
use crate::parquet::{Footer, Verify};

/// A job whose input is ready, and whose target is ready to be written.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The file that will be replaced or created (in place: a symlinked input's target).
    pub target: PathBuf,
    /// Where the job writes: `{out}`.
    pub out: PathBuf,
    pub verify: Verify,
    pub(super) input_footer: Option<Footer>,
    /// The input as it was when locked.
    pub(super) before: Node,
    /// The input's directory, held from here to the rename.
    pub(super) dir: OwnedFd,
    pub(super) dir_node: Node,
    pub(super) target_name: OsString,
    pub(super) out_name: OsString,
    /// The input itself, opened without following links; its lock keeps other fanout runs
    /// off this file while the job runs.
    pub(super) input: File,
    /// `-o`: the input's directory and name (in place they are `dir` and `target_name`); the
    /// target's directory `dir` is locked shared while this is held.
    pub(super) source: Option<(OwnedFd, OsString)>,
    /// In a directory other users can add names to, the empty file fanout made at `{out}`'s
    /// name before the job (device and inode): removed when the job is dropped unused.
    pub(super) taken: std::cell::Cell<Option<(u64, u64)>>,
    /// `-o` from an object: the provenance a new target carries as extended attributes
    /// (name, value), where the file system keeps them.
    pub stamp: Vec<(String, String)>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(id) = self.taken.get() {
            if Node::at(&self.dir, &self.out_name).is_ok_and(|n| (n.dev, n.ino) == id) {
                let _ = rustix::fs::unlinkat(&self.dir, &self.out_name, AtFlags::empty());
            }
        }
    }
}

impl Prepared {
    /// What the verify mode compares, in words: the output alone when the input is not parquet.
    pub(crate) fn verify_name(&self) -> String {
        if self.verify.reads_parquet() && self.input_footer.is_none() {
            format!(
                "{} (output only: the input is not parquet)",
                self.verify.name()
            )
        } else {
            self.verify.name().to_string()
        }
    }

    /// Whether the target is a file of its own (`-o`), not the input.
    pub(crate) fn has_own_target(&self) -> bool {
        self.source.is_some()
    }

    /// The input's directory and its name in it.
    pub(super) fn input_entry(&self) -> (&OwnedFd, &OsStr) {
        match &self.source {
            Some((dir, name)) => (dir, name),
            None => (&self.dir, &self.target_name),
        }
    }
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
    /// The output became the target.
    pub replaced: bool,
    /// ... and there was no target before (`-o`).
    pub created: bool,
    /// Why the original was kept, when the job itself succeeded.
    pub problem: Option<Problem>,
    pub input_bytes: Option<u64>,
    pub output_bytes: Option<u64>,
    pub rows_in: Option<i64>,
    pub rows_out: Option<i64>,
    /// What of the replaced file's metadata the new file did not keep, in words.
    pub note: Option<String>,
}

/// What went wrong after a successful command.
#[derive(Debug)]
pub(crate) enum Problem {
    /// The output failed verification (`invalid_output`).
    Invalid(String),
    /// Anything else that kept the original (`failed`).
    Failed(String),
}

impl Problem {
    /// The same problem, with what could not be cleaned up after it.
    pub(super) fn and(self, more: &str) -> Problem {
        match self {
            Problem::Invalid(why) => Problem::Invalid(format!("{why}; {more}")),
            Problem::Failed(why) => Problem::Failed(format!("{why}; {more}")),
        }
    }
}
