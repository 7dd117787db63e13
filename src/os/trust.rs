//! Who may steer a write: the trust rules of `-i` and `-o`, checked on descriptors.
//!
//! A job writes `{out}` by its path, so every directory the kernel passes through to reach it
//! must be one that no other user can change: owned by root or by the user fanout runs as, and
//! writable by no one else (group write only for that user's own group), unless sticky, where
//! others may add names but cannot rename or remove ours (sshd's StrictModes rule, with the
//! sticky bit as the kernel's protected_symlinks sees it). A symbolic link on the way must be
//! root's or that user's. The path is walked as the kernel walks it, one component at a time
//! with `O_NOFOLLOW`, each directory checked with `fstat` on the descriptor just opened; the
//! directories above the starting point are checked through `..`.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Symbolic links followed on one path at most, as the kernel's `MAXSYMLINKS`.
const MAX_LINKS: u32 = 40;

/// Why a directory is not trusted, naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Untrusted {
    /// The directory or link, as reached from the path given.
    pub place: PathBuf,
    pub why: String,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.place.display(), self.why)
    }
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn egid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// What `fstat` says, in the few fields the rules read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Owner {
    // The field types of `stat` differ between architectures.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn from_stat(st: &rustix::fs::Stat) -> Owner {
        Owner {
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            mode: u32::from(st.st_mode),
        }
    }

    pub(crate) fn of(fd: impl AsFd) -> Result<Owner, Errno> {
        rustix::fs::fstat(fd).map(|st| Owner::from_stat(&st))
    }
}

/// Whether a user other than root and fanout's own could add, rename or remove entries of
/// this directory (sticky or not).
pub(crate) fn others_can_write(dir: Owner) -> bool {
    dir.mode & 0o002 != 0 || (dir.mode & 0o020 != 0 && dir.gid != egid())
}

/// Why directory `dir` would let another user replace an entry fanout relies on; `None` when
/// it is trusted.
pub(crate) fn dir_problem(dir: Owner) -> Option<String> {
    let me = euid();
    if dir.uid != 0 && dir.uid != me {
        return Some(format!(
            "belongs to user id {}, not to root or the user fanout runs as",
            dir.uid
        ));
    }
    if others_can_write(dir) && dir.mode & 0o1000 == 0 {
        return Some(format!(
            "can be written by other users (mode {:o}, not sticky)",
            dir.mode & 0o7777
        ));
    }
    None
}

/// Checks the directories above `start` (the directory open as `start`, named `shown`) up to
/// the root, through `..`.
fn check_above(start: &OwnedFd, shown: &Path) -> Result<(), Untrusted> {
    let io = |e: Errno| Untrusted {
        place: shown.to_path_buf(),
        why: format!("cannot be checked: {}", crate::error::io_reason(&e.into())),
    };
    let mut here = rustix::fs::openat(start, ".", dir_flags(), Mode::empty()).map_err(io)?;
    // The names of the directories above, as far as the path given tells them.
    let absolute = std::fs::canonicalize(shown).ok();
    let mut names = absolute.as_deref().map(Path::ancestors);
    let mut name = names.as_mut().and_then(Iterator::next);
    loop {
        let st = rustix::fs::fstat(&here).map_err(io)?;
        if let Some(why) = dir_problem(Owner::from_stat(&st)) {
            return Err(Untrusted {
                place: name.unwrap_or(shown).to_path_buf(),
                why,
            });
        }
        let up = rustix::fs::openat(&here, "..", dir_flags(), Mode::empty()).map_err(io)?;
        let ust = rustix::fs::fstat(&up).map_err(io)?;
        if (ust.st_dev, ust.st_ino) == (st.st_dev, st.st_ino) {
            return Ok(());
        }
        here = up;
        name = names.as_mut().and_then(Iterator::next);
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// Checks that directory `path` can be reached, as a job's path would reach it, through
/// directories and links no other user can change, and that it is such a directory itself.
/// Returns the directory, open, when it is trusted.
pub(crate) fn check_dir(path: &Path) -> Result<OwnedFd, Untrusted> {
    let fail = |place: &Path, e: Errno| Untrusted {
        place: place.to_path_buf(),
        why: format!("cannot be checked: {}", crate::error::io_reason(&e.into())),
    };
    let (start, mut shown) = if path.is_absolute() {
        (PathBuf::from("/"), PathBuf::from("/"))
    } else {
        (PathBuf::from("."), PathBuf::new())
    };
    let mut cur =
        rustix::fs::open(&start, dir_flags(), Mode::empty()).map_err(|e| fail(&start, e))?;
    check_above(&cur, &start)?;
    let mut todo: Vec<OsString> = components(path);
    todo.reverse();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == "/" {
            cur = rustix::fs::open("/", dir_flags(), Mode::empty()).map_err(|e| fail(&shown, e))?;
            check_above(&cur, Path::new("/"))?;
            shown = PathBuf::from("/");
            continue;
        }
        let place = if shown.as_os_str().is_empty() {
            PathBuf::from(&c)
        } else {
            shown.join(&c)
        };
        if c == ".." {
            // The parent of a checked directory was checked with it (or is above the start).
            cur = rustix::fs::openat(&cur, "..", dir_flags(), Mode::empty())
                .map_err(|e| fail(&place, e))?;
            shown = place;
            continue;
        }
        match rustix::fs::openat(&cur, &c, dir_flags() | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(next) => {
                let owner = Owner::of(&next).map_err(|e| fail(&place, e))?;
                if let Some(why) = dir_problem(owner) {
                    return Err(Untrusted { place, why });
                }
                cur = next;
                shown = place;
            }
            Err(Errno::LOOP | Errno::NOTDIR) => {
                let st = rustix::fs::statat(&cur, &c, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| fail(&place, e))?;
                if FileType::from_raw_mode(st.st_mode as _) != FileType::Symlink {
                    return Err(fail(&place, Errno::NOTDIR));
                }
                let owner = Owner::from_stat(&st);
                if owner.uid != 0 && owner.uid != euid() {
                    return Err(Untrusted {
                        place,
                        why: format!(
                            "is a symbolic link of user id {}, who could point it elsewhere",
                            owner.uid
                        ),
                    });
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(fail(&place, Errno::LOOP));
                }
                let target =
                    rustix::fs::readlinkat(&cur, &c, Vec::new()).map_err(|e| fail(&place, e))?;
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                let mut more = components(&target);
                more.reverse();
                // What the link leads to is named from the link's directory on.
                todo.extend(more);
            }
            Err(e) => return Err(fail(&place, e)),
        }
    }
    Ok(cur)
}

/// A symbolic link met on a path, and its owner's user id.
pub(crate) type Link = (PathBuf, u32);

/// The symbolic links the kernel follows to resolve `path` (each with its owner's user id),
/// and the device and inode of what it leads to, resolved one component at a time without
/// following anything unseen.
pub(crate) fn links_on_path(path: &Path) -> Result<(Vec<Link>, (u64, u64)), Errno> {
    let mut cur = rustix::fs::open(
        if path.is_absolute() { "/" } else { "." },
        dir_flags(),
        Mode::empty(),
    )?;
    let mut todo = components(path);
    todo.reverse();
    let mut shown = PathBuf::new();
    let mut links = Vec::new();
    while let Some(c) = todo.pop() {
        if c == "/" {
            cur = rustix::fs::open("/", dir_flags(), Mode::empty())?;
            shown = PathBuf::from("/");
            continue;
        }
        let place = shown.join(&c);
        let st = rustix::fs::statat(&cur, &c, AtFlags::SYMLINK_NOFOLLOW)?;
        #[allow(clippy::unnecessary_cast)]
        match FileType::from_raw_mode(st.st_mode as _) {
            FileType::Symlink => {
                if links.len() as u32 >= MAX_LINKS {
                    return Err(Errno::LOOP);
                }
                links.push((place, Owner::from_stat(&st).uid));
                let target = rustix::fs::readlinkat(&cur, &c, Vec::new())?;
                let mut more = components(Path::new(OsStr::from_bytes(target.as_bytes())));
                more.reverse();
                todo.extend(more);
            }
            FileType::Directory => {
                cur = rustix::fs::openat(&cur, &c, dir_flags() | OFlags::NOFOLLOW, Mode::empty())?;
                shown = place;
            }
            _ if todo.is_empty() => {
                #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
                return Ok((links, (st.st_dev as u64, st.st_ino as u64)));
            }
            _ => return Err(Errno::NOTDIR),
        }
    }
    let st = rustix::fs::fstat(&cur)?;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok((links, (st.st_dev as u64, st.st_ino as u64)))
}

/// Whether user `uid` could write (`write`) or read a file of this owner and mode by its
/// permission bits: as its owner, through its group (the user's own or as a listed member),
/// or as anyone. ACLs are not consulted: a user they alone let in counts as not allowed.
pub(crate) fn user_could(uid: u32, file: Owner, write: bool) -> bool {
    let bit = if write { 0o2 } else { 0o4 };
    if uid == 0 {
        return true;
    }
    // As the kernel: the owner's bits for the owner, the group's for a member, else others'.
    if file.uid == uid {
        return file.mode & (bit << 6) != 0;
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten();
    let in_group = user.is_some_and(|u| {
        u.gid.as_raw() == file.gid
            || nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(file.gid))
                .ok()
                .flatten()
                .is_some_and(|g| g.mem.contains(&u.name))
    });
    if in_group {
        return file.mode & (bit << 3) != 0;
    }
    file.mode & bit != 0
}

/// Refuses a symbolic link at `path` that belongs to a user other than root and fanout's, or
/// that lies in a directory another user can change (they could swap it for theirs): fanout
/// does not follow such a link to replace what it leads to.
pub(crate) fn own_link_or_none(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.uid() != 0 && meta.uid() != euid() {
        return Err(std::io::Error::other(format!(
            "it is a symbolic link of user id {}, which fanout does not follow to write",
            meta.uid()
        )));
    }
    // A link of one's own is followed only where no other user can swap it for theirs.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = rustix::fs::open(dir, dir_flags(), Mode::empty())?;
    match dir_problem(Owner::of(&dir)?) {
        Some(why) => Err(std::io::Error::other(format!(
            "it is a symbolic link in a directory that {why}: another user could swap it, so fanout does not follow it to write"
        ))),
        None => Ok(()),
    }
}

/// Opens `path` to write a file of fanout's own (the `--summary` journal), created or
/// truncated, as `File::create` does, except that no other user can turn it elsewhere: a
/// symbolic link at `path` is followed only when it is root's or fanout's user's (the kernel's
/// protected_symlinks idea) and the directory holding it is one no other user can change (in
/// such a directory they could swap the link between the look and the open); and an existing
/// entry of another user (a file, a FIFO, a socket) is not written in a directory others can
/// write (protected_regular and protected_fifos: they may have planted it to read what fanout
/// writes). It is looked at before it is opened, so another user's FIFO is never opened (an
/// open for writing would wait for a reader). A character device (`/dev/stdout`, `/dev/null`)
/// is opened as it is.
pub(crate) fn create_own(path: &Path) -> std::io::Result<std::fs::File> {
    let dir_path = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let dir = rustix::fs::open(dir_path, dir_flags(), Mode::empty())?;
    let dir_owner = Owner::of(&dir)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOCTTY;
    let seen = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Some(st),
        Err(Errno::NOENT) => None,
        Err(e) => return Err(e.into()),
    };
    let follow = match &seen {
        #[allow(clippy::unnecessary_cast)]
        Some(st) if FileType::from_raw_mode(st.st_mode as _) == FileType::Symlink => {
            let link = Owner::from_stat(st);
            if link.uid != 0 && link.uid != euid() {
                return Err(std::io::Error::other(format!(
                    "it is a symbolic link of user id {}, which fanout does not follow to write",
                    link.uid
                )));
            }
            if let Some(why) = dir_problem(dir_owner) {
                return Err(std::io::Error::other(format!(
                    "it is a symbolic link in a directory that {why}: another user could swap it, so fanout does not follow it to write"
                )));
            }
            true
        }
        Some(st) => {
            refuse_foreign(&Owner::from_stat(st), st, dir_owner)?;
            false
        }
        None => false,
    };
    let flags = match (follow, &seen) {
        (true, _) => flags,
        // Absent when looked at: made new, so nothing planted meanwhile is opened.
        (false, None) => flags | OFlags::NOFOLLOW | OFlags::EXCL,
        (false, Some(_)) => flags | OFlags::NOFOLLOW,
    };
    let fd = rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(0o666))?;
    let st = rustix::fs::fstat(&fd)?;
    // What was opened is checked again: it may not be what was looked at.
    refuse_foreign(&Owner::from_stat(&st), &st, dir_owner)?;
    #[allow(clippy::unnecessary_cast)]
    if FileType::from_raw_mode(st.st_mode as _) == FileType::RegularFile {
        rustix::fs::ftruncate(&fd, 0)?;
    }
    Ok(std::fs::File::from(fd))
}

/// Refuses an entry of another user (anything but a character device) in a directory other
/// users can write: they may have planted it to read what fanout writes.
fn refuse_foreign(file: &Owner, st: &rustix::fs::Stat, dir: Owner) -> std::io::Result<()> {
    #[allow(clippy::unnecessary_cast)]
    let kind = FileType::from_raw_mode(st.st_mode as _);
    if kind == FileType::CharacterDevice || kind == FileType::Symlink {
        return Ok(());
    }
    if file.uid != 0 && file.uid != euid() && others_can_write(dir) {
        let what = match kind {
            FileType::RegularFile => "a file",
            FileType::Fifo => "a FIFO",
            FileType::Socket => "a socket",
            _ => "an entry",
        };
        return Err(std::io::Error::other(format!(
            "it is {what} of user id {} in a directory other users can write: not written",
            file.uid
        )));
    }
    Ok(())
}

/// The components of `path` as the kernel takes them: `/` for the root, then names, `.` and
/// `..`.
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::RootDir => Some(OsString::from("/")),
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// The nearest directory at or above `dir` that exists (a `-o` target's directory may be made
/// later, by fanout, below it).
pub(crate) fn existing_dir(dir: &Path) -> PathBuf {
    let mut d = dir;
    loop {
        if d.as_os_str().is_empty() {
            return PathBuf::from(".");
        }
        if std::fs::symlink_metadata(d).is_ok() {
            return d.to_path_buf();
        }
        match d.parent() {
            Some(p) => d = p,
            None => return PathBuf::from("."),
        }
    }
}

/// Opens directory `name` (of `dir`, or by its path when `dir` is `None`) only if it is
/// itself a directory, not a symbolic link, of fanout's user, and no other user can write
/// it: what is read from it afterwards, by descriptor, is this user's to have written.
/// Returns why not otherwise.
pub(crate) fn open_own_dir(dir: Option<&OwnedFd>, name: &Path) -> Result<OwnedFd, String> {
    let flags = dir_flags() | OFlags::NOFOLLOW;
    let fd = match dir {
        Some(dir) => rustix::fs::openat(dir, name, flags, Mode::empty()),
        None => rustix::fs::open(name, flags, Mode::empty()),
    }
    .map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => {
            "it is not a directory (a symbolic link is not followed)".into()
        }
        e => crate::error::io_reason(&e.into()),
    })?;
    let owner = Owner::of(&fd).map_err(|e| crate::error::io_reason(&e.into()))?;
    if owner.uid != euid() {
        return Err(format!("it belongs to user id {}", owner.uid));
    }
    if owner.mode & 0o022 != 0 {
        return Err(format!(
            "others can write it (mode {:o})",
            owner.mode & 0o7777
        ));
    }
    Ok(fd)
}

/// Opens file `name` of directory `dir` to read, only if it is a regular file of fanout's
/// user and not a symbolic link. Returns why not otherwise.
pub(crate) fn open_own_file_at(dir: &OwnedFd, name: &OsStr) -> Result<std::fs::File, String> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::LOOP => "it is a symbolic link, which is not followed".into(),
        e => crate::error::io_reason(&e.into()),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| crate::error::io_reason(&e.into()))?;
    #[allow(clippy::unnecessary_cast)]
    if FileType::from_raw_mode(st.st_mode as _) != FileType::RegularFile {
        return Err("it is not a regular file".into());
    }
    let owner = Owner::from_stat(&st);
    if owner.uid != euid() {
        return Err(format!("it belongs to user id {}", owner.uid));
    }
    Ok(std::fs::File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_tree_is_trusted_and_a_shared_one_is_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        assert!(check_dir(&root.join("a/b")).is_ok());
        std::fs::set_permissions(root.join("a"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_dir(&root.join("a/b")).unwrap_err();
        assert_eq!(err.place, root.join("a"));
        assert!(err.why.contains("not sticky"), "{err}");
        std::fs::set_permissions(root.join("a"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(check_dir(&root.join("a/b")).is_ok());
        // A link of our own is followed, and what it leads to is checked.
        std::os::unix::fs::symlink(root.join("a"), root.join("l")).unwrap();
        assert!(check_dir(&root.join("l/b")).is_ok());
        std::fs::set_permissions(root.join("a/b"), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            check_dir(&root.join("l/b")).unwrap_err().place,
            root.join("a/b")
        );
        // As the kernel: the owner's bits for the owner, even when others' allow more.
        let f = |uid, gid, mode| Owner { uid, gid, mode };
        assert!(!user_could(65534, f(65534, 0, 0o0066), true));
        assert!(user_could(65534, f(65534, 0, 0o0200), true));
        assert!(user_could(65534, f(0, 0, 0o0602), true));
        assert!(!user_could(65534, f(0, 0, 0o0644), true));
        assert!(user_could(65534, f(0, 0, 0o0644), false));
        assert!(user_could(0, f(5, 5, 0), true));
        assert_eq!(
            existing_dir(&root.join("a/x/y")),
            root.join("a"),
            "the nearest existing directory"
        );
    }
}
