//! What fanout knows of a file or directory it holds open (`Node`, from `fstat`), and the
//! descriptor calls every step of a commit is made of: opening a directory or an entry of
//! one without following links, making a directory path, taking a name with `O_EXCL`, and
//! who may change a directory's entries.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// A removed `{out}` directory may nest this deep; deeper is left alone.
pub(super) const MAX_TREE_DEPTH: u32 = 64;

/// What `fstat` says about a file, in the units fanout compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Node {
    pub(super) kind: FileType,
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) mode: u32,
    pub(super) nlink: u64,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
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

    pub(super) fn of(fd: impl AsFd) -> Result<Node, Errno> {
        rustix::fs::fstat(fd).map(|st| Node::from_stat(&st))
    }

    /// The entry `name` in directory `dir` itself (a link is not followed).
    pub(super) fn at(dir: impl AsFd, name: impl AsRef<OsStr>) -> Result<Node, Errno> {
        rustix::fs::statat(dir, name.as_ref(), AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| Node::from_stat(&st))
    }

    pub(super) fn is_file(&self) -> bool {
        self.kind == FileType::RegularFile
    }

    pub(super) fn same_file(&self, other: &Node) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// The directory `path` lives in (`.` for a bare name).
pub(super) fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

pub(super) fn open_dir(dir: &Path) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens entry `name` of `dir` for reading without following a link and without blocking on
/// a FIFO or a device.
pub(super) fn open_in(dir: impl AsFd, name: impl AsRef<OsStr>) -> Result<File, Errno> {
    rustix::fs::openat(
        dir,
        name.as_ref(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
}

pub(super) fn reason(e: Errno) -> String {
    crate::error::io_reason(&e.into())
}

/// Opens directory `dir`, creating it and its missing parents first (`mkdir -p`). A
/// directory that exists is opened by its path once (links the user made are followed); one
/// made here is opened through its parent's descriptor without following links, so nobody
/// can slip a link in between.
pub(super) fn open_or_create_dir(dir: &Path, depth: u32) -> Result<OwnedFd, Errno> {
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

pub(super) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether only fanout's user can change the entries of a directory: then a tree found at
/// `{out}`'s name is the job's own and may be removed whole. Elsewhere another user could
/// have moved any tree there.
pub(super) fn private_dir(dir: &Node) -> bool {
    dir.uid == euid()
        && dir.mode & 0o002 == 0
        && (dir.mode & 0o020 == 0 || dir.gid == rustix::process::getegid().as_raw())
}

/// Whether other users can add names to this directory (it may be sticky): there `{out}`'s
/// name is taken before the job runs.
pub(super) fn shared(dir: &Node) -> bool {
    crate::os::trust::others_can_write(crate::os::trust::Owner {
        uid: dir.uid,
        gid: dir.gid,
        mode: dir.mode,
    })
}

/// Makes `name` in `dir` an empty file of fanout's user, only if no entry has that name
/// (`O_EXCL`, no link followed); returns its device and inode.
pub(super) fn take_name(dir: impl AsFd, name: &OsStr) -> Result<(u64, u64), Errno> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    )?;
    let node = Node::of(&fd)?;
    Ok((node.dev, node.ino))
}
