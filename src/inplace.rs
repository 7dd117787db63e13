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

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, TryLockError};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::config::InPlaceOptions;
use crate::parquet::{self, Footer, Verify};
use crate::tempname::{
    direct_input, made_for, made_for_output, output_temp_name, parse_temp, temp_name, NAME_MAX,
};

/// How often an input's lock is tried (5 ms apart) before the file counts as taken.
const LOCK_TRIES: u32 = 20;

/// A removed `{out}` directory may nest this deep; deeper is left alone.
const MAX_TREE_DEPTH: u32 = 64;

/// What `fstat` says about a file, in the units fanout compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    kind: FileType,
    dev: u64,
    ino: u64,
    mode: u32,
    nlink: u64,
    uid: u32,
    gid: u32,
    size: u64,
    mtime_ns: i64,
}

impl Node {
    // The field types of `stat` differ between architectures.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn from_stat(st: &rustix::fs::Stat) -> Node {
        Node {
            kind: FileType::from_raw_mode(st.st_mode as _),
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mode: u32::from(st.st_mode),
            nlink: u64::from(st.st_nlink),
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64,
        }
    }

    fn of(fd: impl AsFd) -> Result<Node, Errno> {
        rustix::fs::fstat(fd).map(|st| Node::from_stat(&st))
    }

    /// The entry `name` in directory `dir` itself (a link is not followed).
    fn at(dir: impl AsFd, name: impl AsRef<OsStr>) -> Result<Node, Errno> {
        rustix::fs::statat(dir, name.as_ref(), AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| Node::from_stat(&st))
    }

    fn is_file(&self) -> bool {
        self.kind == FileType::RegularFile
    }

    fn same_file(&self, other: &Node) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// The directory `path` lives in (`.` for a bare name).
fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn open_dir(dir: &Path) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens entry `name` of `dir` for reading without following a link and without blocking on
/// a FIFO or a device.
fn open_in(dir: impl AsFd, name: impl AsRef<OsStr>) -> Result<File, Errno> {
    rustix::fs::openat(
        dir,
        name.as_ref(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
}

fn reason(e: Errno) -> String {
    crate::error::io_reason(&e.into())
}

/// What a job's output becomes.
enum Goal {
    /// The input's new content.
    InPlace,
    /// A file of its own at `target`, whose directory is open as `dir`.
    Output { target: PathBuf, dir: OwnedFd },
}

/// Locks the input for the job: exclusively to rewrite it, shared to read it (`-o`).
fn lock_input(file: &File, in_place: bool) -> Result<(), Refusal> {
    // A sweep elsewhere may hold the lock for an instant to see whether the file is busy.
    let mut tries = 0;
    loop {
        let tried = if in_place {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if tries < LOCK_TRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Refusal::Locked(
                    "another fanout run is rewriting this file or making a new file from it (-o); not started".into(),
                ))
            }
            Err(TryLockError::Error(e)) => {
                return Err(Refusal::Failed(crate::error::io_reason(&e)))
            }
        }
    }
}

/// Opens directory `dir`, creating it and its missing parents first (`mkdir -p`). A
/// directory that exists is opened by its path once (links the user made are followed); one
/// made here is opened through its parent's descriptor without following links, so nobody
/// can slip a link in between.
fn open_or_create_dir(dir: &Path, depth: u32) -> Result<OwnedFd, Errno> {
    match open_dir(dir) {
        Err(Errno::NOENT) if depth < MAX_TREE_DEPTH => {}
        other => return other,
    }
    let Some(name) = dir.file_name() else {
        return Err(Errno::NOENT);
    };
    let parent = open_or_create_dir(dir_of(dir), depth + 1)?;
    match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o777)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    rustix::fs::openat(
        &parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether only fanout's user can change the entries of a directory: then a tree found at
/// `{out}`'s name is the job's own and may be removed whole. Elsewhere another user could
/// have moved any tree there.
fn private_dir(dir: &Node) -> bool {
    dir.uid == euid()
        && dir.mode & 0o002 == 0
        && (dir.mode & 0o020 == 0 || dir.gid == rustix::process::getegid().as_raw())
}

/// Whether other users can add names to this directory (it may be sticky): there `{out}`'s
/// name is taken before the job runs.
fn shared(dir: &Node) -> bool {
    crate::os::trust::others_can_write(crate::os::trust::Owner {
        uid: dir.uid,
        gid: dir.gid,
        mode: dir.mode,
    })
}

/// Makes `name` in `dir` an empty file of fanout's user, only if no entry has that name
/// (`O_EXCL`, no link followed); returns its device and inode.
fn take_name(dir: impl AsFd, name: &OsStr) -> Result<(u64, u64), Errno> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    )?;
    let node = Node::of(&fd)?;
    Ok((node.dev, node.ino))
}

/// Removes the temporary files in `dir` left by fanout runs that are gone. Only what fanout
/// provably made goes: a name of exactly the shape fanout gives its input's name, a regular
/// file with one name, owned by this user; its run not a live fanout here, and its input a
/// regular file that no run holds locked (a run on another node of a cluster holds its
/// input's lock, whatever its process id means here). Nothing is opened but regular files,
/// so a FIFO or device cannot block the sweep. Returns what was removed.
pub(crate) fn sweep_dead(dir: &Path, own_pid: u32) -> Vec<PathBuf> {
    let Ok(dirfd) = open_dir(dir) else {
        return Vec::new();
    };
    let Ok(listing) = rustix::fs::Dir::read_from(&dirfd) else {
        return Vec::new();
    };
    let me = euid();
    let mut removed = Vec::new();
    // Shortened names do not say their input's full name: look for it in a second pass.
    let mut shortened = Vec::new();
    // Leftovers of `-o` jobs, whose target may not exist: see below.
    let mut outputs = Vec::new();
    for entry in listing.flatten() {
        let name = entry.file_name().to_bytes();
        let Some(t) = parse_temp(name) else {
            continue;
        };
        if t.pid == own_pid || run_alive(t.pid) {
            continue;
        }
        let ours = Node::at(&dirfd, OsStr::from_bytes(name))
            .is_ok_and(|n| n.is_file() && n.nlink == 1 && n.uid == me);
        if !ours {
            continue;
        }
        let input = direct_input(&t);
        if made_for(name, &input) {
            if input_idle(&dirfd, &input) && unlink_file(&dirfd, name) {
                removed.push(dir.join(OsStr::from_bytes(name)));
            }
        } else if made_for_output(name, &input) {
            outputs.push(name.to_vec());
        } else if name.len() + 3 >= NAME_MAX {
            shortened.push(name.to_vec());
        }
    }
    // An `-o` job holds a shared lock on its target's directory while it runs, on any node:
    // when this run gets the directory exclusively, no run is writing an output there.
    if !outputs.is_empty()
        && rustix::fs::flock(&dirfd, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
    {
        for name in outputs {
            if unlink_file(&dirfd, &name) {
                removed.push(dir.join(OsStr::from_bytes(&name)));
            }
        }
        let _ = rustix::fs::flock(&dirfd, rustix::fs::FlockOperation::Unlock);
    }
    if !shortened.is_empty() {
        let Ok(listing) = rustix::fs::Dir::read_from(&dirfd) else {
            return removed;
        };
        for entry in listing.flatten() {
            let input = entry.file_name().to_bytes();
            let Some(i) = shortened.iter().position(|name| made_for(name, input)) else {
                continue;
            };
            let name = shortened.swap_remove(i);
            if input_idle(&dirfd, input) && unlink_file(&dirfd, &name) {
                removed.push(dir.join(OsStr::from_bytes(&name)));
            }
        }
    }
    removed
}

/// Whether input `input` of `dir` is a regular file that no fanout run holds: only then can
/// a temporary file made for it be called stale.
fn input_idle(dir: impl AsFd, input: &[u8]) -> bool {
    let Ok(file) = open_in(dir, OsStr::from_bytes(input)) else {
        return false;
    };
    if !Node::of(&file).is_ok_and(|n| n.is_file()) {
        return false;
    }
    // Another open file description: like a run on another node, the lock tells.
    file.try_lock().is_ok()
}

/// Removes a name that is not a directory (`unlinkat` without `AT_REMOVEDIR` fails on one).
fn unlink_file(dir: impl AsFd, name: &[u8]) -> bool {
    rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::empty()).is_ok()
}

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

/// A job whose input is ready, and whose target is ready to be written.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The file that will be replaced or created (in place: a symlinked input's target).
    pub target: PathBuf,
    /// Where the job writes: `{out}`.
    pub out: PathBuf,
    pub verify: Verify,
    input_footer: Option<Footer>,
    /// The input as it was when locked.
    before: Node,
    /// The input's directory, held from here to the rename.
    dir: OwnedFd,
    dir_node: Node,
    target_name: OsString,
    out_name: OsString,
    /// The input itself, opened without following links; its lock keeps other fanout runs
    /// off this file while the job runs.
    input: File,
    /// `-o`: the input's directory and name (in place they are `dir` and `target_name`); the
    /// target's directory `dir` is locked shared while this is held.
    source: Option<(OwnedFd, OsString)>,
    /// In a directory other users can add names to, the empty file fanout made at `{out}`'s
    /// name before the job (device and inode): removed when the job is dropped unused.
    taken: std::cell::Cell<Option<(u64, u64)>>,
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
    fn input_entry(&self) -> (&OwnedFd, &OsStr) {
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

pub(crate) struct InPlace {
    opts: InPlaceOptions,
    pid: u32,
    swept: Mutex<HashSet<PathBuf>>,
    /// Directories `{out}` is written in, checked once each: why another user could change
    /// one, or nothing when none can (README "Security").
    trusted: Mutex<std::collections::HashMap<PathBuf, Option<String>>>,
}

impl InPlace {
    pub(crate) fn new(opts: InPlaceOptions) -> InPlace {
        InPlace {
            opts,
            pid: std::process::id(),
            swept: Mutex::new(HashSet::new()),
            trusted: Mutex::new(std::collections::HashMap::new()),
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

    /// `{out}` for job `job` of input `target`, as the dry run shows it: hidden, in the same
    /// directory (same file system, so the rename is atomic), unique to this run and job,
    /// with the input's extension.
    pub(crate) fn out_path(&self, target: &Path, job: u64, in_place: bool) -> PathBuf {
        let dir = target.parent().unwrap_or(Path::new(""));
        let input = target.file_name().unwrap_or_default().as_bytes();
        let name = |n| {
            if in_place {
                temp_name(input, self.pid, job, n)
            } else {
                output_temp_name(input, self.pid, job, n)
            }
        };
        (0..)
            .map(|n| dir.join(OsStr::from_bytes(&name(n))))
            .find(|path| fs::symlink_metadata(path).is_err())
            .expect("some name is free")
    }

    /// A read-only file is skipped, unless `--force`.
    fn read_only(&self, mode: u32) -> Option<Refusal> {
        (mode & 0o200 == 0 && !self.opts.force).then(|| {
            Refusal::ReadOnly(
                "read-only file (no owner write permission): not rewritten; use --force to rewrite it anyway"
                    .into(),
            )
        })
    }

    /// What the dry run can tell without locking: the input is read-only and would be skipped
    /// (a real run decides again, on the file it opened).
    pub(crate) fn would_skip(&self, input: &Path) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(InPlace::target(input).ok()?).ok()?;
        match self.read_only(meta.permissions().mode()) {
            Some(Refusal::ReadOnly(reason)) if meta.is_file() => Some(reason),
            _ => None,
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
        if let Err(refusal) = self
            .check_trusted(dir_of(&target))
            .and_then(|()| self.check_read_path(input))
        {
            return (Err(refusal), Vec::new());
        }
        let swept = self.sweep(dir_of(&target));
        let prepared = self.prepare_target(target, Goal::InPlace, job);
        (
            prepared.and_then(|p| self.links_allowed(input, &p, true).map(|()| p)),
            swept,
        )
    }

    /// Checks and locks an input before its `-o` job runs, and opens (creating what is
    /// missing) its target's directory. Returns the stale temporary files it removed from that
    /// directory (the first time it is seen).
    pub(crate) fn prepare_output(
        &self,
        input: &Path,
        target: &Path,
        job: u64,
    ) -> (Result<Prepared, Refusal>, Vec<PathBuf>) {
        let source = match InPlace::target(input) {
            Ok(t) => t,
            Err(e) => {
                return (
                    Err(Refusal::Failed(crate::error::io_reason(&e))),
                    Vec::new(),
                )
            }
        };
        // What exists of the target's directory is checked before anything is made in it.
        if let Err(refusal) = self
            .check_trusted(&crate::os::trust::existing_dir(dir_of(target)))
            .and_then(|()| self.check_read_path(input))
        {
            return (Err(refusal), Vec::new());
        }
        let dir = match open_or_create_dir(dir_of(target), 0) {
            Ok(dir) => dir,
            Err(e) => {
                return (
                    Err(Refusal::Failed(format!(
                        "the target's directory {}: {}",
                        dir_of(target).display(),
                        reason(e)
                    ))),
                    Vec::new(),
                )
            }
        };
        if let Err(refusal) = self.check_trusted(dir_of(target)) {
            return (Err(refusal), Vec::new());
        }
        let swept = self.sweep(dir_of(target));
        let goal = Goal::Output {
            target: target.to_path_buf(),
            dir,
        };
        let prepared = self.prepare_target(source, goal, job);
        (
            prepared.and_then(|p| self.links_allowed(input, &p, false).map(|()| p)),
            swept,
        )
    }

    /// As root, every symbolic link followed to reach the input must be root's or belong to a
    /// user who could write the input (in place; read it, with `-o`): otherwise that user
    /// could make root rewrite, or copy out, a file they have no right to (the kernel's
    /// protected_symlinks rule, for every link on the path). The links are resolved again
    /// here, and must lead to the very file that `p` holds open. `--allow-foreign-links`
    /// lifts the rule.
    fn links_allowed(&self, input: &Path, p: &Prepared, write: bool) -> Result<(), Refusal> {
        if self.opts.relax.foreign_links || !crate::os::is_root() {
            return Ok(());
        }
        let (links, id) =
            crate::os::trust::links_on_path(input).map_err(|e| Refusal::Failed(reason(e)))?;
        if links.is_empty() {
            return Ok(());
        }
        if id != (p.before.dev, p.before.ino) {
            return Err(Refusal::Failed(
                "the symbolic links leading to the input changed while they were checked; not run"
                    .into(),
            ));
        }
        let file = crate::os::trust::Owner {
            uid: p.before.uid,
            gid: p.before.gid,
            mode: p.before.mode,
        };
        for (link, uid) in links {
            if uid != 0 && !crate::os::trust::user_could(uid, file, write) {
                return Err(Refusal::Failed(format!(
                    "{} is a symbolic link of user id {uid}, who cannot {} the file it leads to; as root fanout does not follow it (--allow-foreign-links allows it)",
                    link.display(),
                    if write { "write" } else { "read" },
                )));
            }
        }
        Ok(())
    }

    /// Opens, checks and locks `input`, and readies `{out}` for the goal.
    fn prepare_target(&self, input: PathBuf, goal: Goal, job: u64) -> Result<Prepared, Refusal> {
        let failed = |e: Errno| Refusal::Failed(reason(e));
        let Some(input_name) = input.file_name().map(OsStr::to_os_string) else {
            return Err(Refusal::Failed("not a file name".into()));
        };
        let input_dir = open_dir(dir_of(&input)).map_err(failed)?;
        let file = match open_in(&input_dir, &input_name) {
            Ok(file) => file,
            Err(Errno::LOOP) => {
                return Err(Refusal::Failed(
                    "the input became a symbolic link after it was found; not run".into(),
                ))
            }
            Err(e) => return Err(failed(e)),
        };
        let node = Node::of(&file).map_err(failed)?;
        if !node.is_file() {
            return Err(Refusal::Failed("not a regular file".into()));
        }
        let in_place = matches!(goal, Goal::InPlace);
        if in_place {
            if let Some(refusal) = self.read_only(node.mode) {
                return Err(refusal);
            }
        }
        lock_input(&file, in_place)?;
        let input_is_parquet = parquet::is_parquet_name(&input);
        let (target, dir, target_name, source) = match goal {
            Goal::InPlace => (input, input_dir, input_name, None),
            Goal::Output { target, dir } => {
                let Some(name) = target.file_name().map(OsStr::to_os_string) else {
                    return Err(Refusal::Failed("the target is not a file name".into()));
                };
                // Held until the job ends: a sweep in this directory leaves `{out}` alone. A
                // file system that cannot lock directories (some NFS setups) cannot lock them
                // for a sweep either, which then leaves `-o` leftovers there alone: the job
                // goes on without it.
                let _ = rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockShared);
                (target, dir, name, Some((input_dir, input_name)))
            }
        };
        let dir_node = Node::of(&dir).map_err(failed)?;
        let verify = self.verify_for(&target);
        // With -o, a parquet mode compares with the input only when the input is parquet.
        let compare = verify.reads_parquet() && (in_place || input_is_parquet);
        let input_footer = if compare {
            Some(
                parquet::read_footer_of(&file)
                    .map_err(|e| Refusal::InvalidInput(format!("input: {e}")))?,
            )
        } else {
            None
        };
        let before = Node::of(&file).map_err(failed)?;
        let (out_name, taken) =
            self.free_name(&dir, &dir_node, target_name.as_bytes(), job, in_place)?;
        Ok(Prepared {
            taken: std::cell::Cell::new(taken),
            out: dir_of(&target).join(&out_name),
            target,
            verify,
            input_footer,
            before,
            dir,
            dir_node,
            target_name,
            out_name,
            input: file,
            source,
        })
    }

    /// Whether `{out}` may be written in directory `dir`: no other user can change it or a
    /// directory or link on the way to it (`--allow-shared-dirs` lifts the rule).
    fn check_trusted(&self, dir: &Path) -> Result<(), Refusal> {
        if self.opts.relax.shared_dirs {
            return Ok(());
        }
        let mut trusted = self.trusted.lock().expect("trusted set");
        let problem = trusted.entry(dir.to_path_buf()).or_insert_with(|| {
            crate::os::trust::check_dir(dir)
                .err()
                .map(|u| u.to_string())
        });
        match problem {
            None => Ok(()),
            Some(u) => Err(Refusal::Failed(format!(
                "{u}: another user could redirect the job's write to {{out}} there; not run (--allow-shared-dirs allows it)"
            ))),
        }
    }

    /// As root: the job reads `{}` by its path, so no other user may be able to change what
    /// that path leads to while it runs (swap a file or a link for one to a file only root can
    /// read, and back, and root's job would copy it into the output): the input's directory
    /// must pass the rule `{out}`'s does, and a link at its name must be root's.
    /// `--allow-shared-dirs` lifts it.
    fn check_read_path(&self, input: &Path) -> Result<(), Refusal> {
        if self.opts.relax.shared_dirs || !crate::os::is_root() {
            return Ok(());
        }
        self.check_trusted(dir_of(input)).map_err(|r| match r {
            Refusal::Failed(why) => Refusal::Failed(why.replace(
                "redirect the job's write to {out} there",
                "change what the job reads as {} there",
            )),
            other => other,
        })?;
        match crate::os::trust::own_link_or_none(input) {
            Err(e) if e.kind() == std::io::ErrorKind::Other => Err(Refusal::Failed(format!(
                "{}: {e}: that user could point it elsewhere while the job reads it (--allow-shared-dirs allows it)",
                input.display()
            ))),
            _ => Ok(()),
        }
    }

    /// The first temporary name for `input` (in place) or target `input` (`-o`) and `job`
    /// that is not taken in `dir`. Where other users can add names to `dir` (a sticky shared
    /// directory), the name is taken at once, as an empty file of fanout's user made with
    /// `O_EXCL`: nobody can plant a link at it before the job writes, nor move ours away.
    fn free_name(
        &self,
        dir: &OwnedFd,
        dir_node: &Node,
        input: &[u8],
        job: u64,
        in_place: bool,
    ) -> Result<(OsString, Option<(u64, u64)>), Refusal> {
        let take = shared(dir_node);
        for n in 0.. {
            let name = OsString::from_vec(if in_place {
                temp_name(input, self.pid, job, n)
            } else {
                output_temp_name(input, self.pid, job, n)
            });
            if take {
                match take_name(dir, &name) {
                    Ok(id) => return Ok((name, Some(id))),
                    Err(Errno::EXIST) => continue,
                    Err(e) => return Err(Refusal::Failed(reason(e))),
                }
            }
            match Node::at(dir, &name) {
                Err(Errno::NOENT) => return Ok((name, None)),
                Err(e) => return Err(Refusal::Failed(reason(e))),
                Ok(_) => {}
            }
        }
        unreachable!("an endless range")
    }

    /// Removes temporary files of fanout runs that are no longer alive from `dir`, once per
    /// directory per run. Other jobs wait until it is done: one of them locking an input
    /// here meanwhile would make its leftover look busy, and it would stay.
    fn sweep(&self, dir: &Path) -> Vec<PathBuf> {
        let mut swept = self.swept.lock().expect("sweep set");
        if !swept.insert(dir.to_path_buf()) {
            return Vec::new();
        }
        sweep_dead(dir, self.pid)
    }

    /// Removes `{out}` before a retry or after a failure; in a directory other users can add
    /// names to, takes the name again at once for the next attempt.
    pub(crate) fn discard(p: &Prepared) {
        let _ = remove_out(p);
        if p.taken.get().is_some() {
            p.taken.set(take_name(&p.dir, &p.out_name).ok());
        }
    }

    /// Ends an in-place job: verify and replace when `succeeded`, else keep the original.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "finishing consumes the job's preparation: its lock is released when it ends"
    )]
    pub(crate) fn finish(p: Prepared, succeeded: bool) -> Outcome {
        let mut outcome = Outcome {
            input_bytes: Some(p.before.size),
            output_bytes: Node::at(&p.dir, &p.out_name)
                .ok()
                .filter(Node::is_file)
                .map(|n| n.size),
            rows_in: p.input_footer.as_ref().map(|f| f.rows),
            ..Outcome::default()
        };
        if !succeeded {
            let _ = remove_out(&p);
            return outcome;
        }
        let out = match Self::check(&p, &mut outcome) {
            Ok(out) => out,
            Err(problem) => {
                outcome.problem = Some(match remove_out(&p) {
                    Ok(()) => problem,
                    Err(left) => problem.and(&left),
                });
                return outcome;
            }
        };
        match commit(&p, &out) {
            Ok((created, not_kept)) => {
                outcome.replaced = true;
                outcome.created = created;
                if !not_kept.is_empty() {
                    outcome.note = Some(format!("not kept: {}", not_kept.join(", ")));
                }
            }
            Err(Step::Before(e)) => {
                let _ = remove_out(&p);
                outcome.problem = Some(Problem::Failed(e));
            }
            // The name `{out}` is gone: nothing of fanout's is left to remove.
            Err(Step::After(e)) => outcome.problem = Some(Problem::Failed(e)),
        }
        outcome
    }

    /// Opens `{out}` and checks it and the input; returns the output to commit.
    fn check(p: &Prepared, outcome: &mut Outcome) -> Result<File, Problem> {
        let out = match open_in(&p.dir, &p.out_name) {
            Ok(file) => file,
            Err(Errno::NOENT) => {
                return Err(Problem::Invalid(format!(
                    "the command exited 0 but did not write {{out}} ({})",
                    p.out.display()
                )))
            }
            Err(Errno::LOOP) => {
                return Err(Problem::Invalid(
                    "{out} is a symbolic link, not a file; only a file written at {out} can replace the input".into(),
                ))
            }
            Err(e) => return Err(Problem::Failed(format!("opening {{out}}: {}", reason(e)))),
        };
        let node = Node::of(&out).map_err(|e| Problem::Failed(reason(e)))?;
        if !node.is_file() {
            return Err(Problem::Invalid(
                "the command wrote {out} as a directory or other non-file; only a single file can replace the input".into(),
            ));
        }
        if node.nlink != 1 {
            return Err(Problem::Invalid(format!(
                "{{out}} is a hard link ({} names of one file), not a new file; only a new file can replace the input",
                node.nlink
            )));
        }
        // Only a file made by fanout's own user: anyone else's could carry their content into
        // a file that fanout is about to give the input's owner and mode.
        if node.uid != euid() {
            return Err(Problem::Failed(format!(
                "{{out}} belongs to user id {}, not to the user fanout runs as; not trusted to replace the input",
                node.uid
            )));
        }
        if node.dev != p.dir_node.dev {
            return Err(Problem::Failed(
                "{out} is on another file system than the input".into(),
            ));
        }
        outcome.output_bytes = Some(node.size);
        if p.verify == Verify::Exists && node.size == 0 {
            return Err(Problem::Invalid("the output is empty".into()));
        }
        if let Some(input) = &p.input_footer {
            let output = parquet::read_footer_of(&out)
                .map_err(|e| Problem::Invalid(format!("output: {e}")))?;
            outcome.rows_out = Some(output.rows);
            parquet::compare(p.verify, input, &output).map_err(Problem::Invalid)?;
        } else if p.verify.reads_parquet() {
            // Nothing to compare with: the output alone must be sound parquet, with rows
            // when its input had any bytes (a mode that lets the row count change excepted).
            let output = parquet::read_footer_of(&out)
                .map_err(|e| Problem::Invalid(format!("output: {e}")))?;
            outcome.rows_out = Some(output.rows);
            if output.rows == 0 && p.before.size > 0 && p.verify != Verify::ParquetReadable {
                return Err(Problem::Invalid(format!(
                    "the output has no rows, but its input is not empty ({} bytes)",
                    p.before.size
                )));
            }
        }
        let now = Node::of(&p.input).map_err(|e| Problem::Failed(reason(e)))?;
        if (now.size, now.mtime_ns) != (p.before.size, p.before.mtime_ns) {
            return Err(Problem::Failed(
                "the input changed while the job ran; not replaced".into(),
            ));
        }
        let (input_dir, input_name) = p.input_entry();
        if !Node::at(input_dir, input_name).is_ok_and(|n| n.same_file(&p.before)) {
            return Err(Problem::Failed(
                "the input was replaced or moved while the job ran; not replaced".into(),
            ));
        }
        Ok(out)
    }
}

impl Problem {
    /// The same problem, with what could not be cleaned up after it.
    fn and(self, more: &str) -> Problem {
        match self {
            Problem::Invalid(why) => Problem::Invalid(format!("{why}; {more}")),
            Problem::Failed(why) => Problem::Failed(format!("{why}; {more}")),
        }
    }
}

/// Where a commit failed: before the rename (`{out}` is still there) or after it.
enum Step {
    Before(String),
    After(String),
}

/// Makes the output durable, in place gives it the input's owner (as root), extended
/// attributes and ACL, and then its mode, renames it over the target through the directory's
/// descriptor, checks that the target's name now holds that very file and makes the rename
/// durable. Returns whether the target is new (there was none before) and what of the
/// replaced file's metadata was not kept.
fn commit(p: &Prepared, out: &File) -> Result<(bool, Vec<String>), Step> {
    let before =
        |what: &'static str| move |e: Errno| Step::Before(format!("{what}: {}", reason(e)));
    let input = Node::of(&p.input).map_err(before("reading the input's permissions"))?;
    if p.source.is_some() {
        // A new file keeps the mode the command gave it; one that replaces a target keeps
        // the target's extended attributes and ACL.
        let not_kept = match open_in(&p.dir, &p.target_name) {
            Ok(old) => match Node::of(&old) {
                Ok(was) if was.is_file() => {
                    let made = Node::of(out).map_err(before("reading the output"))?;
                    let mut not_kept =
                        crate::os::meta::carry_xattrs(&old, out).map_err(Step::Before)?;
                    not_kept.extend(crate::os::meta::carry_flags(&old, out));
                    // No more permissions than the target it replaces had: a target made
                    // private stays private (one with an ACL has the ACL's, carried above).
                    if !crate::os::meta::has_acl(&old) {
                        let mode = made.mode & was.mode & 0o7777;
                        rustix::fs::fchmod(out, Mode::from_raw_mode(mode as rustix::fs::RawMode))
                            .map_err(before("setting the output's permissions"))?;
                    }
                    not_kept
                }
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        let node = Node::of(out).map_err(before("reading the output"))?;
        rustix::fs::fsync(out).map_err(before("syncing the output"))?;
        let created = matches!(Node::at(&p.dir, &p.target_name), Err(Errno::NOENT));
        rename_into_place(p, &node)?;
        return Ok((created, not_kept));
    }
    // Owner first: chown clears the set-user-id and set-group-id bits, which fchmod then sets.
    let mut not_kept = Vec::new();
    if crate::os::is_root() {
        rustix::fs::fchown(
            out,
            Some(rustix::fs::Uid::from_raw(input.uid)),
            Some(rustix::fs::Gid::from_raw(input.gid)),
        )
        .map_err(before("setting the output's owner"))?;
    } else {
        not_kept.extend(keep_group(&input, out)?);
        if input.uid != euid() {
            not_kept.push(format!(
                "owner {} (the new file belongs to the user fanout runs as)",
                input.uid
            ));
        }
    }
    // Then the attributes: setting an ACL sets the mode's group bits to its mask, which the
    // input's mode, set last, holds too.
    not_kept.extend(crate::os::meta::carry_xattrs(&p.input, out).map_err(Step::Before)?);
    not_kept.extend(crate::os::meta::carry_flags(&p.input, out));
    rustix::fs::fchmod(
        out,
        Mode::from_raw_mode((input.mode & 0o7777) as rustix::fs::RawMode),
    )
    .map_err(before("setting the output's permissions"))?;
    let node = Node::of(out).map_err(before("reading the output"))?;
    rustix::fs::fsync(out).map_err(before("syncing the output"))?;
    rename_into_place(p, &node)?;
    Ok((false, not_kept))
}

/// Not as root: gives the output the input's group, which its user may give to any group
/// it is a member of. When it cannot and the mode gives the group any permission, the new
/// file must not replace the input: that permission would go to another group (the user's
/// own, which may be a shared one). Returns what was not kept.
fn keep_group(input: &Node, out: &File) -> Result<Option<String>, Step> {
    let now =
        Node::of(out).map_err(|e| Step::Before(format!("reading the output: {}", reason(e))))?;
    if now.gid == input.gid {
        return Ok(None);
    }
    match rustix::fs::fchown(out, None, Some(rustix::fs::Gid::from_raw(input.gid))) {
        Ok(()) => Ok(None),
        Err(e) if input.mode & 0o070 != 0 => Err(Step::Before(format!(
            "the file's group {} cannot be given to the new file ({}): its group permissions would go to group {}",
            input.gid,
            reason(e),
            now.gid
        ))),
        Err(e) => Ok(Some(format!("group {} ({})", input.gid, reason(e)))),
    }
}

/// Renames `{out}` (the file `node`) onto the target, checks that the target's name holds
/// that very file, and makes the rename durable.
fn rename_into_place(p: &Prepared, node: &Node) -> Result<(), Step> {
    rustix::fs::renameat(&p.dir, &p.out_name, &p.dir, &p.target_name).map_err(|e| {
        Step::Before(format!(
            "renaming the output onto the target: {}",
            reason(e)
        ))
    })?;
    if !Node::at(&p.dir, &p.target_name).is_ok_and(|n| n.same_file(node)) {
        return Err(Step::After(
            "another file took {out}'s name during the rename (someone else can write the target's directory): the target's name now holds a file fanout did not check".into(),
        ));
    }
    rustix::fs::fsync(&p.dir)
        .map_err(|e| Step::After(format!("syncing the directory: {}", reason(e))))?;
    Ok(())
}

/// Removes `{out}`, whatever the command made of it: a file or link (never followed), or a
/// directory (tools that write partitioned output do) when only fanout's user can write the
/// input's directory. Says what it could not remove.
fn remove_out(p: &Prepared) -> Result<(), String> {
    match Node::at(&p.dir, &p.out_name) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(format!("{{out}} could not be removed: {}", reason(e))),
        Ok(n) if n.kind == FileType::Directory => {
            if !private_dir(&p.dir_node) {
                return Err(format!(
                    "the directory {} was left in place: other users can write {}, so it may not be the command's",
                    p.out.display(),
                    dir_of(&p.target).display()
                ));
            }
            remove_tree(&p.dir, &p.out_name, 0)
                .map_err(|e| format!("{{out}} could not be removed: {}", reason(e)))
        }
        Ok(_) => rustix::fs::unlinkat(&p.dir, &p.out_name, AtFlags::empty())
            .map_err(|e| format!("{{out}} could not be removed: {}", reason(e))),
    }
}

/// Removes directory `name` of `dir` and everything in it, by descriptors: a link inside is
/// removed, never followed.
fn remove_tree(dir: &OwnedFd, name: &OsStr, depth: u32) -> Result<(), Errno> {
    if depth > MAX_TREE_DEPTH {
        return Err(Errno::NAMETOOLONG);
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let names: Vec<OsString> = rustix::fs::Dir::read_from(&sub)?
        .flatten()
        .map(|e| OsString::from_vec(e.file_name().to_bytes().to_vec()))
        .filter(|n| n != "." && n != "..")
        .collect();
    for entry in names {
        match Node::at(&sub, &entry) {
            Ok(n) if n.kind == FileType::Directory => remove_tree(&sub, &entry, depth + 1)?,
            _ => rustix::fs::unlinkat(&sub, &entry, AtFlags::empty())?,
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// Whether process `pid` is a running fanout.
fn run_alive(pid: u32) -> bool {
    crate::os::process_name(pid).is_some_and(|name| name == b"fanout")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(pid: u32, input: &str) -> String {
        String::from_utf8(temp_name(input.as_bytes(), pid, 7, 0)).unwrap()
    }

    #[test]
    fn temp_names_lead_back_to_their_input() {
        for input in [
            "part-0.parquet",
            "a.tar.gz",
            "noext",
            ".hidden",
            "..double",
            "a.b-c",
        ] {
            let name = temp_name(input.as_bytes(), 1234, 7, 0);
            let t = parse_temp(&name).unwrap();
            assert_eq!((t.pid, t.job, t.n), (1234, 7, 0), "{input}");
            assert_eq!(direct_input(&t), input.as_bytes(), "{input}");
            assert!(made_for(&name, input.as_bytes()), "{input}");
            assert!(!made_for(&name, b"other.parquet"), "{input}");
        }
        let retry = temp_name(b"a.csv", 99, 1, 2);
        assert_eq!(parse_temp(&retry).unwrap().n, 2);
        assert!(made_for(&retry, b"a.csv"));
    }

    #[test]
    fn look_alike_names_are_not_ours() {
        for name in [
            &b".fanout-1-1"[..],
            b"..fanout-1-1",
            b".notes.fanout-7-1.md",
            b".cache.fanout-2024-06",
            b".a.fanout-12-1-xyzxyzxy.csv",
            b".a.fanout-012-1-0123abcd.csv",
            b"a.fanout-12-1-0123abcd.csv",
            b".a.fanout-12-1-0123abcd.",
            b".a.fanout--1-0123abcd",
            b".a.fanout-1-2-3-4-0123abcd",
        ] {
            assert!(
                parse_temp(name).is_none()
                    || !made_for(name, &direct_input(&parse_temp(name).unwrap())),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        // The right shape with a wrong checksum: not ours either.
        let mut forged = temp_name(b"notes.md", 7, 1, 0);
        let dash = forged.iter().rposition(|b| *b == b'-').unwrap();
        forged[dash + 1] = if forged[dash + 1] == b'0' { b'1' } else { b'0' };
        assert!(parse_temp(&forged).is_some());
        assert!(!made_for(&forged, b"notes.md"));
    }

    #[test]
    fn long_names_are_shortened_and_stay_recognisable() {
        let input = format!("{}.csv", "é".repeat(123));
        assert_eq!(input.len(), 250);
        let name = temp_name(input.as_bytes(), 4_194_303, 18_446_744_073_709_551_615, 3);
        assert!(name.len() <= NAME_MAX, "{}", name.len());
        assert!(name.ends_with(b".csv"));
        assert!(std::str::from_utf8(&name).is_ok(), "cut inside a character");
        assert!(made_for(&name, input.as_bytes()));
        // An extension too long to keep is dropped rather than the whole stem.
        let input = format!("a.{}", "x".repeat(250));
        let name = temp_name(input.as_bytes(), 1, 1, 0);
        assert!(name.len() <= NAME_MAX && made_for(&name, input.as_bytes()));
    }

    #[test]
    fn a_locked_input_keeps_its_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x").unwrap();
        // pid 4194304 is above Linux's pid_max limit: never alive.
        let temp = dir
            .path()
            .join(OsStr::from_bytes(&temp_name(b"a.csv", 4_194_304, 1, 0)));
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
    fn out_path_is_hidden_beside_the_input_with_its_extension() {
        let ip = InPlace::new(InPlaceOptions {
            verify: None,
            force: false,
            relax: Default::default(),
        });
        let out = ip.out_path(Path::new("d/year=2024/part-0.parquet"), 3, true);
        let name = out.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(out.parent().unwrap(), Path::new("d/year=2024"));
        let prefix = format!(".part-0.fanout-{}-3-", std::process::id());
        assert!(
            name.starts_with(&prefix) && name.ends_with(".parquet"),
            "{name}"
        );
        assert_eq!(
            crate::tempname::temp_owner(name.as_bytes()),
            Some(std::process::id())
        );
    }

    #[test]
    fn stale_files_of_dead_runs_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.csv"), "x").unwrap();
        let stale = dir.path().join(names(4_194_304, "a.csv"));
        let ours = dir.path().join(names(std::process::id(), "a.csv"));
        let other = dir.path().join(".a.csv");
        // A leftover whose input is gone: whose it was cannot be established.
        let orphan = dir.path().join(names(4_194_304, "gone.csv"));
        for p in [&stale, &ours, &other, &orphan] {
            fs::write(p, "x").unwrap();
        }
        let ip = InPlace::new(InPlaceOptions {
            verify: None,
            force: false,
            relax: Default::default(),
        });
        assert_eq!(ip.sweep(dir.path()), vec![stale.clone()]);
        assert!(!stale.exists() && ours.exists() && other.exists() && orphan.exists());
        assert!(ip.sweep(dir.path()).is_empty(), "a directory is swept once");
    }

    #[test]
    fn output_leftovers_wait_for_the_directory_lock() {
        let dir = tempfile::tempdir().unwrap();
        // pid 4194304 is above Linux's pid_max limit: never alive. The target need not exist.
        let name = crate::tempname::output_temp_name(b"part-0.parquet", 4_194_304, 3, 0);
        let temp = dir.path().join(OsStr::from_bytes(&name));
        fs::write(&temp, "partial").unwrap();
        // An in-place leftover of the same name's shape is not taken for an output's.
        assert!(!made_for(&name, b"part-0.parquet"));
        // A run writing an output here holds the directory shared: the leftover stays.
        let held = open_dir(dir.path()).unwrap();
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockShared).unwrap();
        assert!(sweep_dead(dir.path(), 1).is_empty());
        assert!(temp.exists());
        drop(held);
        assert_eq!(sweep_dead(dir.path(), 1), vec![temp.clone()]);
        assert!(!temp.exists());
    }
}
