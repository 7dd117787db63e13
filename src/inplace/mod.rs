//! Safe commits of what a job wrote: in-place rewrites (`-i`) and new files (`-o`). The job
//! writes to a fresh hidden file next to its target (`{out}`); only when the job succeeded and
//! the output passed verification is that file made durable and renamed over the target. In
//! every other case the target is left byte-identical (or absent) and the temporary file is
//! removed. In place, the target is the input itself and the output gets its owner and mode;
//! with `-o` the target is a path of its own, whose missing directories are created.
//!
//! Every step after the job acts on descriptors, never on a path that someone else could swap
//! between a check and a use (#13): the input's directory is opened once, when the job is
//! prepared; the input and `{out}` are opened in it with `O_NOFOLLOW | O_NONBLOCK` (a link is
//! refused, a FIFO cannot block) and checked with `fstat`; owner and mode are set with
//! `fchown` then `fchmod` (in that order: a chown clears set-id bits); the rename goes through
//! the directory's descriptor, and afterwards the input's name must hold the very file that
//! was checked.
//!
//! A per-file advisory lock (flock on the input itself: no extra file in the dataset) keeps two
//! fanout runs from rewriting the same file at once (`-o` takes it shared: a run may read an
//! input another run reads, never one another run rewrites). An `-o` job also holds a shared
//! lock on its target's directory, so a sweep can tell that no run is writing there. Temporary names carry the run's process
//! id, the job number and a checksum of both and of the input's name, so a later run can prove
//! that a leftover is fanout's and that its run is gone before it removes it. It removes
//! nothing else: not a look-alike name, not a directory, not a link.

use std::fs;
use std::path::Path;

mod commit;
mod job;
mod node;
mod prepare;
mod sweep;

pub(crate) use job::{Prepared, Problem, Refusal};
pub(crate) use prepare::InPlace;
pub(crate) use sweep::sweep_dead;

/// Why a second name of a file already met in this run is not rewritten: fanout rewrites a
/// file once, through the first name it met.
pub(crate) fn same_file_reason(path: &Path, first: &Path) -> String {
    let is_link = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    if is_link(path) || is_link(first) {
        format!(
            "same file as {} (through a symbolic link); it is rewritten once, as {}",
            first.display(),
            first.display()
        )
    } else {
        format!(
            "same file as {} (a hard link): rewriting {} gives that name a new file, and this \
             name keeps the old content",
            first.display(),
            first.display()
        )
    }
}
