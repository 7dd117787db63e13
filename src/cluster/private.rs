//! The plan directory is private to the submitting user: whoever could change a plan would run
//! commands as that user. Directories are created 0700 and files 0600 whatever the umask, an
//! existing directory is used only when this user owns it and nobody else can write it, and
//! the plan's files are sealed with SHA-256 digests that the batch script carries (Slurm keeps
//! its own copy of the script from submit time), so a worker runs only what was submitted.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// The SHA-256 of `bytes`, in lowercase hex.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Sixteen hex digits from the system's random source: a plan directory's name must not be
/// guessable from the time and the process id.
pub(crate) fn random_suffix() -> Result<String> {
    let mut b = [0u8; 8];
    let mut f = fs::File::open("/dev/urandom").context("cannot read /dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut b).context("cannot read /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Refuses a directory that is a symbolic link, not a directory, owned by another user or
/// writable by anyone else: `what` names it in the one-line refusal.
pub(crate) fn check_owned(dir: &Path, what: &str) -> Result<()> {
    let md = fs::symlink_metadata(dir)
        .with_context(|| format!("{what} {}: cannot read it", dir.display()))?;
    if md.file_type().is_symlink() || !md.is_dir() {
        bail!(
            "{what} {} is not a directory (a symbolic link is not followed): fanout keeps its plans in a directory of its own",
            dir.display()
        );
    }
    if md.uid() != euid() {
        bail!(
            "{what} {} belongs to another user (uid {}), who could change the plan and run commands as you: remove it or choose another --plan-dir",
            dir.display(),
            md.uid()
        );
    }
    if md.mode() & 0o022 != 0 {
        bail!(
            "{what} {} can be written by others (mode {:o}), who could change the plan and run commands as you: run chmod go-w on it or choose another --plan-dir",
            dir.display(),
            md.mode() & 0o7777
        );
    }
    Ok(())
}

/// Creates `dir` (it must not exist) with mode 0700 exactly.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))
}

/// Uses `dir` if it is there and this user's alone, else creates it (0700).
pub(crate) fn ensure_dir(dir: &Path, what: &str) -> Result<()> {
    match create_dir(dir) {
        Ok(()) => Ok(()),
        Err(_) if fs::symlink_metadata(dir).is_ok() => check_owned(dir, what),
        Err(e) => Err(e),
    }
}

/// Writes a new file (never an existing one, never through a symbolic link) with mode 0600.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// Opens a file the array's workers write (records, output, logs) for reading, only if it is
/// this user's and not a symbolic link: a plan directory swapped for another user's never
/// feeds this run records or output.
pub(crate) fn open_own(path: &Path) -> Option<fs::File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let md = f.metadata().ok()?;
    (md.uid() == euid() && md.is_file()).then_some(f)
}

/// Reads a file of the plan and checks it against the digest the batch script carries.
pub(crate) fn read_sealed(path: &Path, digest: &str) -> Result<Vec<u8>> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if sha256(&bytes) != digest {
        bail!(
            "{} changed since it was submitted (its SHA-256 is not the one in the batch script): refusing to run this plan",
            path.display()
        );
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("p");
        create_dir(&d).unwrap();
        write_file(&d.join("f"), b"x").unwrap();
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("f")), 0o600);
        assert!(write_file(&d.join("f"), b"y").is_err(), "never overwrites");
        check_owned(&d, "the plan directory").unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o770)).unwrap();
        let err = check_owned(&d, "the plan directory").unwrap_err();
        assert!(
            err.to_string().contains("can be written by others"),
            "{err}"
        );
        std::os::unix::fs::symlink(&d, dir.path().join("l")).unwrap();
        let err = check_owned(&dir.path().join("l"), "x").unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn a_sealed_file_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plan.json");
        fs::write(&p, b"{}").unwrap();
        assert_eq!(read_sealed(&p, &sha256(b"{}")).unwrap(), b"{}");
        let err = read_sealed(&p, &sha256(b"{ }")).unwrap_err();
        assert!(err.to_string().contains("changed since it was submitted"));
        assert_eq!(sha256(b"").len(), 64);
    }
}
