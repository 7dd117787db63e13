//! Leftovers: the `{out}` files of fanout runs that are gone, removed once per directory, and
//! only what fanout provably made.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::AtFlags;

use super::node::{euid, open_dir, open_in, Node};
use super::prepare::InPlace;
use crate::tempname::{direct_input, made_for, made_for_output, parse_temp, NAME_MAX};

impl InPlace {
    /// Removes temporary files of fanout runs that are no longer alive from `dir`, once per
    /// directory per run. Other jobs wait until it is done: one of them locking an input
    /// here meanwhile would make its leftover look busy, and it would stay.
    pub(super) fn sweep(&self, dir: &Path) -> Vec<PathBuf> {
        let mut swept = self.swept.lock().expect("sweep set");
        if !swept.insert(dir.to_path_buf()) {
            return Vec::new();
        }
        sweep_dead(dir, self.pid)
    }
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

/// Whether process `pid` is a running fanout.
fn run_alive(pid: u32) -> bool {
    crate::os::process_name(pid).is_some_and(|name| name == b"fanout")
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};

    use super::*;
    use crate::config::InPlaceOptions;
    use crate::tempname::temp_name;

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
