//! Before a job runs: `InPlace` checks that `{out}` may be written where it goes and that
//! the input may be read there, opens and locks the input, opens (or makes) the target's
//! directory, and picks `{out}`'s name; the dry run asks it what `{out}` would be.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, TryLockError};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::io::Errno;

use super::job::{Prepared, Refusal};
use super::node::{dir_of, open_dir, open_in, open_or_create_dir, reason, shared, take_name, Node};
use crate::config::InPlaceOptions;
use crate::parquet::{self, Verify};
use crate::tempname::{output_temp_name, temp_name};

/// How often an input's lock is tried (5 ms apart) before the file counts as taken.
const LOCK_TRIES: u32 = 20;

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

/// In-place rewrites and `-o` outputs of a run: its options, and what it has checked and swept
/// so far.
pub(crate) struct InPlace {
    pub(super) opts: InPlaceOptions,
    pub(super) pid: u32,
    pub(super) swept: Mutex<HashSet<PathBuf>>,
    /// Directories `{out}` is written in, checked once each: why another user could change
    /// one, or nothing when none can (README "Security").
    pub(super) trusted: Mutex<std::collections::HashMap<PathBuf, Option<String>>>,
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
        let target = match resolved(input) {
            Ok(t) => t,
            Err(refusal) => return (Err(refusal), Vec::new()),
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
        let source = match resolved(input) {
            Ok(t) => t,
            Err(refusal) => return (Err(refusal), Vec::new()),
        };
        // What exists of the target's directory is checked before anything is made in it. The
        // job reads `{}` through the links on its path, so the directory of the file they
        // lead to is held to the rule the input's own directory is.
        if let Err(refusal) = self
            .check_trusted(&crate::os::trust::existing_dir(dir_of(target)))
            .and_then(|()| self.check_read_path(input))
            .and_then(|()| {
                if source == input {
                    Ok(())
                } else {
                    self.check_read_path(&source)
                }
            })
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
            stamp: Vec::new(),
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
}

/// The file an input names, its links resolved: what `-i` rewrites and what `-o` reads.
fn resolved(input: &Path) -> Result<PathBuf, Refusal> {
    InPlace::target(input).map_err(|e| Refusal::Failed(crate::error::io_reason(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
