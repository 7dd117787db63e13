//! The shape of fanout's temporary names. `{out}` is `.STEM.fanout-PID-JOB[-N]-TAG[.EXT]`:
//! made by in-place rewrites and `-o` outputs (their checksums differ), recognised by the walk (never an input) and by the sweep of
//! leftovers (removed only when provably fanout's); the names carry the run's process id, the
//! job number and a checksum of both and of the input's name. A journal's replacement is
//! `.J.fanout-journal-XXXXXXXX`: written by the journal, read back by `--resume`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The longest file name most file systems take (`NAME_MAX`).
pub(crate) const NAME_MAX: usize = 255;

/// The marker in every temporary file name: `.STEM.fanout-PID-JOB[-N]-TAG[.EXT]`.
const MARKER: &[u8] = b".fanout-";

/// Hex digits of the checksum that ends a temporary name's fields.
const TAG_LEN: usize = 8;

/// Bytes of the input's stem kept at least when a long name is shortened with its extension.
const MIN_STEM: usize = 16;

/// The fields of a temporary file's name, as `parse_temp` reads them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TempName<'a> {
    /// The input's stem, possibly shortened.
    pub prefix: &'a [u8],
    pub pid: u32,
    pub job: u64,
    /// Bumped while a name is taken; 0 is not written.
    pub n: u64,
    pub ext: Option<&'a [u8]>,
}

/// Reads a name of the shape fanout gives temporary files. The checksum is not checked here
/// (that needs the input's name: see `made_for`).
pub(crate) fn parse_temp(name: &[u8]) -> Option<TempName<'_>> {
    let at = name.windows(MARKER.len()).rposition(|w| w == MARKER)?;
    if name.first() != Some(&b'.') || at < 2 {
        return None;
    }
    let rest = &name[at + MARKER.len()..];
    let (fields, ext) = match rest.iter().position(|b| *b == b'.') {
        Some(dot) => (&rest[..dot], Some(&rest[dot + 1..])),
        None => (rest, None),
    };
    if ext.is_some_and(<[u8]>::is_empty) {
        return None;
    }
    let parts: Vec<&[u8]> = fields.split(|b| *b == b'-').collect();
    let (pid, job, n, tag) = match parts.as_slice() {
        [pid, job, tag] => (pid, job, None, tag),
        [pid, job, n, tag] => (pid, job, Some(n), tag),
        _ => return None,
    };
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if tag.len() != TAG_LEN || !tag.iter().all(hex) {
        return None;
    }
    let n = match n {
        Some(n) => number(n).filter(|n| *n > 0)?,
        None => 0,
    };
    Some(TempName {
        prefix: &name[1..at],
        pid: u32::try_from(number(pid)?).ok()?,
        job: number(job)?,
        n,
        ext,
    })
}

/// A decimal number as fanout writes it: digits only, no leading zero.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.first() == Some(&b'0') && digits.len() > 1 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The process id in a temporary file's name, if `name` has the shape of one of ours.
pub(crate) fn temp_owner(name: &[u8]) -> Option<u32> {
    parse_temp(name).map(|t| t.pid)
}

/// The checksum in a temporary name: FNV-1a over the input's name, the run and the job. It
/// is stable across versions and machines (std's hasher is not), and makes a person's file
/// that merely looks like ours (`.notes.fanout-7-1.md`) very unlikely to pass for one.
/// An output's temporary name (`-o`) has a checksum of its own (`salt`), so a sweep can tell
/// it from an in-place one by its name alone.
fn tag(salt: &[u8], input: &[u8], pid: u32, job: u64, n: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let fields = format!("\0{pid}\0{job}\0{n}");
    for b in salt.iter().chain(input).chain(fields.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", (h ^ (h >> 32)) as u32)
}

/// The temporary name for input `input` (a file name), run `pid`, job `job`, try `n`:
/// `.STEM.fanout-PID-JOB[-N]-TAG[.EXT]`, hidden and with the input's extension so tools that
/// infer the format keep working. A name that would pass `NAME_MAX` keeps a shorter stem
/// (cut on a UTF-8 boundary), and the extension too unless that leaves too little stem.
pub(crate) fn temp_name(input: &[u8], pid: u32, job: u64, n: u64) -> Vec<u8> {
    salted_name(IN_PLACE, input, pid, job, n)
}

/// The temporary name of `-o` target `target` (a file name): shaped as [`temp_name`], with a
/// checksum that says it is an output's.
pub(crate) fn output_temp_name(target: &[u8], pid: u32, job: u64, n: u64) -> Vec<u8> {
    salted_name(OUTPUT, target, pid, job, n)
}

/// The checksum salts of in-place and of `-o` temporary names.
const IN_PLACE: &[u8] = b"fanout\0";
const OUTPUT: &[u8] = b"fanout-output\0";

fn salted_name(salt: &[u8], input: &[u8], pid: u32, job: u64, n: u64) -> Vec<u8> {
    let path = Path::new(OsStr::from_bytes(input));
    let stem = path.file_stem().map_or(input, OsStrExt::as_bytes);
    let ext = path.extension().map(OsStrExt::as_bytes);
    let mut tail = MARKER.to_vec();
    tail.extend_from_slice(format!("{pid}-{job}").as_bytes());
    if n > 0 {
        tail.extend_from_slice(format!("-{n}").as_bytes());
    }
    tail.push(b'-');
    tail.extend_from_slice(tag(salt, input, pid, job, n).as_bytes());
    let ext_len = ext.map_or(0, |e| e.len() + 1);
    let keep_ext = 1 + stem.len() + tail.len() + ext_len <= NAME_MAX
        || 1 + MIN_STEM + tail.len() + ext_len <= NAME_MAX;
    let room = NAME_MAX - 1 - tail.len() - if keep_ext { ext_len } else { 0 };
    let mut cut = stem.len().min(room);
    while cut > 1 && cut < stem.len() && stem[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    let mut name = b".".to_vec();
    name.extend_from_slice(&stem[..cut]);
    name.extend_from_slice(&tail);
    if let (true, Some(ext)) = (keep_ext, ext) {
        name.push(b'.');
        name.extend_from_slice(ext);
    }
    name
}

/// Whether `name` is exactly the temporary name fanout makes for input `input`.
pub(crate) fn made_for(name: &[u8], input: &[u8]) -> bool {
    parse_temp(name).is_some_and(|t| temp_name(input, t.pid, t.job, t.n) == name)
}

/// Whether `name` is exactly the temporary name fanout makes for `-o` target `target`.
pub(crate) fn made_for_output(name: &[u8], target: &[u8]) -> bool {
    parse_temp(name).is_some_and(|t| output_temp_name(target, t.pid, t.job, t.n) == name)
}

/// The input name a temporary name leads back to when it was not shortened.
pub(crate) fn direct_input(t: &TempName<'_>) -> Vec<u8> {
    let mut input = t.prefix.to_vec();
    if let Some(ext) = t.ext {
        input.push(b'.');
        input.extend_from_slice(ext);
    }
    input
}
/// How the name of a journal's replacement begins: `.J.fanout-journal-` beside `J`. A
/// `--resume J --summary J` run writes its journal there and renames it over `J` when it ends
/// (see `summary::JournalWriter`); one left behind by a run that did not end (SIGKILL) holds records
/// newer than `J`'s, so `--resume J` reads it too.
pub(crate) fn replacement_prefix(journal_name: &OsStr) -> OsString {
    let name = journal_name.as_bytes();
    // Room for the rest of the name within the usual 255-byte limit.
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(&name[..name.len().min(200)]);
    prefix.extend_from_slice(b".fanout-journal-");
    OsString::from_vec(prefix)
}

/// A replacement of a journal that a run of this user left behind, opened.
#[derive(Debug)]
pub(crate) struct Leftover {
    pub path: PathBuf,
    pub file: std::fs::File,
    pub modified: SystemTime,
}

/// The replacements of `journal` that `--resume` may read, oldest first, opened without
/// following links in the journal's own directory, and those it must not, with why. Only a
/// regular file that the user fanout runs as owns, and that no other user can write (group
/// write only for the user's own group), holds records of this user's runs: anyone else's,
/// however named, could carry forged `ok` records.
pub(crate) fn trusted_leftovers(journal: &Path) -> (Vec<Leftover>, Vec<(PathBuf, &'static str)>) {
    use rustix::fs::{Mode, OFlags};
    let (mut trusted, mut ignored) = (Vec::new(), Vec::new());
    let Ok(target) = std::fs::canonicalize(journal) else {
        return (trusted, ignored);
    };
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return (trusted, ignored);
    };
    let prefix = replacement_prefix(name);
    let Ok(dirfd) = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return (trusted, ignored);
    };
    let Ok(listing) = rustix::fs::Dir::read_from(&dirfd) else {
        return (trusted, ignored);
    };
    let me = rustix::process::geteuid().as_raw();
    let my_group = rustix::process::getegid().as_raw();
    for entry in listing.flatten() {
        let entry_name = OsStr::from_bytes(entry.file_name().to_bytes());
        if !entry_name.as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        let path = dir.join(entry_name);
        let Ok(fd) = rustix::fs::openat(
            &dirfd,
            entry_name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let file = std::fs::File::from(fd);
        let Ok(meta) = file.metadata() else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        if !meta.is_file() {
            continue;
        }
        let why = if meta.uid() != me {
            Some("owned by another user")
        } else if meta.mode() & 0o002 != 0 || (meta.mode() & 0o020 != 0 && meta.gid() != my_group) {
            Some("other users can write it")
        } else {
            None
        };
        match (why, meta.modified()) {
            (Some(why), _) => ignored.push((path, why)),
            (None, Ok(modified)) => trusted.push(Leftover {
                path,
                file,
                modified,
            }),
            (None, Err(_)) => {}
        }
    }
    trusted.sort_by_key(|l| l.modified);
    (trusted, ignored)
}

/// The replacements of `journal` that runs left behind, oldest first, with their modification
/// times: regular files beside the journal (symbolic links resolved) named as
/// [`replacement_prefix`] says.
pub(crate) fn leftovers(journal: &Path) -> Vec<(PathBuf, SystemTime)> {
    let Ok(target) = std::fs::canonicalize(journal) else {
        return Vec::new();
    };
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Vec::new();
    };
    let prefix = replacement_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, SystemTime)> = entries
        .flatten()
        .filter(|e| e.file_name().as_bytes().starts_with(prefix.as_bytes()))
        .filter_map(|e| {
            let md = std::fs::symlink_metadata(e.path()).ok()?;
            md.is_file().then_some((e.path(), md.modified().ok()?))
        })
        .collect();
    found.sort_by_key(|(_, t)| *t);
    found
}
