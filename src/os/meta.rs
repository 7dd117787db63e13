//! What a file carries besides its bytes, owner and mode: extended attributes, POSIX ACLs
//! among them (`system.posix_acl_access` on Linux), carried from a file to the file that
//! replaces it, by descriptors.
//!
//! Kept: every attribute the user fanout runs as can read (`user.*`; `trusted.*` as root;
//! the ACL; `security.selinux`, the label, as `sed -i` keeps it). Not kept, on purpose:
//! `security.capability`, a file's capabilities: a rewritten program must not keep the
//! privileges granted to the one it replaces; `security.ima` and `security.evm`, which vouch
//! for the old content. Anything not kept is named, and an ACL that
//! cannot be set (or one the new file has and the old one had not) is an error: losing or
//! gaining one could widen who can read the file.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

/// Never carried to a rewritten file, with why: file capabilities (privileges granted to the
/// program that was there), and the integrity subsystem's hash or signature of the old
/// content (which the new content would not match).
const NOT_CARRIED: &[(&[u8], &str)] = &[
    (
        b"security.capability",
        "file capabilities are not carried to a rewritten file",
    ),
    (b"security.ima", "it vouches for the old content"),
    (b"security.evm", "it vouches for the old content"),
];

/// Whether an attribute is an access control list, whose loss could widen access.
fn is_acl(name: &[u8]) -> bool {
    name.starts_with(b"system.")
}

fn reason(e: Errno) -> String {
    crate::error::io_reason(&e.into())
}

/// Whether the file has an access ACL (beyond its mode bits).
pub(crate) fn has_acl(fd: impl AsFd) -> bool {
    rustix::fs::fgetxattr_query(fd, "system.posix_acl_access").is_ok()
}

/// The names of `fd`'s extended attributes; none where the file system has none.
fn names(fd: impl AsFd) -> Result<Vec<Vec<u8>>, Errno> {
    for _ in 0..4 {
        let size = match rustix::fs::flistxattr_query(&fd) {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::flistxattr(&fd, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf
                    .split(|b| *b == 0)
                    .filter(|n| !n.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect());
            }
            // It grew in between: ask again.
            Err(Errno::RANGE) => {}
            Err(e) => return Err(e),
        }
    }
    Err(Errno::RANGE)
}

/// The value of attribute `name` of `fd`.
fn value(fd: impl AsFd, name: &[u8]) -> Result<Vec<u8>, Errno> {
    let name = OsStr::from_bytes(name);
    for _ in 0..4 {
        let size = rustix::fs::fgetxattr_query(&fd, name)?;
        let mut buf = vec![0u8; size];
        match rustix::fs::fgetxattr(&fd, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => {}
            Err(e) => return Err(e),
        }
    }
    Err(Errno::RANGE)
}

/// Gives `to` the extended attributes of `from` (see the module's text). Returns what was
/// not kept, in words (empty when everything was), or why the new file must not replace the
/// old one.
pub(crate) fn carry_xattrs(from: impl AsFd, to: impl AsFd) -> Result<Vec<String>, String> {
    let mut not_kept = Vec::new();
    let old = names(&from).map_err(|e| {
        format!(
            "the file's extended attributes cannot be read: {}",
            reason(e)
        )
    })?;
    for name in &old {
        let shown = String::from_utf8_lossy(name);
        if let Some((_, why)) = NOT_CARRIED.iter().find(|(n, _)| n == name) {
            not_kept.push(format!("{shown} ({why})"));
            continue;
        }
        let set = value(&from, name).and_then(|v| {
            rustix::fs::fsetxattr(&to, OsStr::from_bytes(name), &v, XattrFlags::empty())
        });
        match set {
            Ok(()) => {}
            Err(e) if is_acl(name) => {
                return Err(format!(
                    "the file's access control list ({shown}) cannot be given to the new file ({}): without it more users could read it",
                    reason(e)
                ))
            }
            Err(e) => not_kept.push(format!("{shown} ({})", reason(e))),
        }
    }
    // An ACL the new file got from its directory's default ACL, which the old file had not.
    let new = names(&to).unwrap_or_default();
    for name in new.iter().filter(|n| is_acl(n) && !old.contains(n)) {
        rustix::fs::fremovexattr(&to, OsStr::from_bytes(name)).map_err(|e| {
            format!(
                "the new file has an access control list ({}) the old one had not, and it cannot be removed: {}",
                String::from_utf8_lossy(name),
                reason(e)
            )
        })?;
    }
    Ok(not_kept)
}

/// Gives `to` the inode flags of `from` that a new file can take (`chattr`'s `d` no dump,
/// `A` no atime updates, `S` synchronous, `c` compressed, `s` secure deletion, `u`
/// undeletable, `t` no tail merging). Immutable and append-only files cannot be replaced at
/// all (the rename fails). Returns what was not kept, in words.
#[cfg(target_os = "linux")]
pub(crate) fn carry_flags(from: impl AsFd, to: impl AsFd) -> Option<String> {
    use rustix::fs::IFlags;
    let carried = IFlags::NODUMP
        | IFlags::NOATIME
        | IFlags::SYNC
        | IFlags::COMPRESSED
        | IFlags::SECURE_REMOVAL
        | IFlags::UNRM
        | IFlags::NOTAIL;
    // A file system without inode flags has none to keep.
    let wanted = rustix::fs::ioctl_getflags(&from).ok()? & carried;
    if wanted.is_empty() {
        return None;
    }
    let set = rustix::fs::ioctl_getflags(&to)
        .and_then(|has| rustix::fs::ioctl_setflags(&to, has | wanted));
    set.err()
        .map(|e| format!("file flags {wanted:?} ({})", reason(e)))
}

/// macOS keeps its file flags (`chflags`) apart; they are not carried.
#[cfg(not(target_os = "linux"))]
pub(crate) fn carry_flags(_from: impl AsFd, _to: impl AsFd) -> Option<String> {
    None
}
