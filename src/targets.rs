//! `-o` targets: every input's target, computed before any job runs and checked as a whole
//! (two inputs that would write one target, a target that is itself an input, a target that
//! would leave its template's directory), and make's freshness rule for `-u`.
//!
//! Targets are compared as absolute paths made lexically (the current directory joined, `.`
//! dropped, `..` taken back), by a 64-bit hash first and byte for byte on a hit, so a million
//! inputs cost two small tables beside the inputs themselves. Nothing here runs or writes.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use crate::input::Input;
use crate::template::{JobValues, TargetTemplate};

/// Collisions named in the error, at most.
const SHOWN: usize = 3;

/// Sets the target of every input that is to run, or says why the run cannot start.
pub(crate) fn assign(
    template: &TargetTemplate,
    threads: usize,
    inputs: &mut [Input],
    shared_dirs: bool,
) -> anyhow::Result<()> {
    let mut bad = Vec::new();
    for input in inputs.iter_mut().filter(|i| runs(i)) {
        match template.expand(&JobValues::of(
            &input.path,
            input.job,
            input.rel_at,
            threads,
        )) {
            Ok(target) => input.target = Some(target),
            Err(why) => bad.push(format!("{}: {why}", quoted(&input.path))),
        }
    }
    if !bad.is_empty() {
        anyhow::bail!("-o/--output: {} (nothing was run)", listed(&bad, "target"));
    }
    check_collisions(inputs)?;
    if shared_dirs {
        return Ok(());
    }
    trusted_dirs(inputs)
}

/// Collisions of one kind: how many, and the first few in words.
#[derive(Default)]
struct Hits {
    n: u64,
    shown: Vec<String>,
}

impl Hits {
    fn note(&mut self, say: impl FnOnce() -> String) {
        self.n += 1;
        if self.shown.len() < SHOWN {
            self.shown.push(say());
        }
    }
}

/// Refuses a run where two inputs share a target or a target is an input.
fn check_collisions(inputs: &[Input]) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut buf = Vec::new();
    let mut scratch = Vec::new();
    // Every input's path, to find targets that are inputs.
    let mut paths: HashMap<u64, u32> = HashMap::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        paths.insert(key(&input.path, &cwd, &mut buf), i as u32);
    }
    let mut targets: HashMap<u64, u32> = HashMap::with_capacity(inputs.len());
    let (mut shared, mut inputs_hit) = (Hits::default(), Hits::default());
    for (i, input) in inputs.iter().enumerate() {
        let Some(target) = &input.target else {
            continue;
        };
        let k = key(target, &cwd, &mut buf);
        let same = |other: &Path, scratch: &mut Vec<u8>| {
            normal(other, &cwd, scratch);
            *scratch == buf
        };
        if let Some(&j) = paths.get(&k) {
            if same(&inputs[j as usize].path, &mut scratch) {
                inputs_hit.note(|| {
                    format!(
                        "{} (the target of {}) is an input",
                        quoted(target),
                        quoted(&input.path)
                    )
                });
            }
        }
        let Some(&j) = targets.get(&k) else {
            targets.insert(k, i as u32);
            continue;
        };
        let first = &inputs[j as usize];
        if same(
            first.target.as_deref().unwrap_or(Path::new("")),
            &mut scratch,
        ) {
            shared.note(|| {
                format!(
                    "{} and {} both write {}",
                    quoted(&first.path),
                    quoted(&input.path),
                    quoted(target)
                )
            });
        }
    }
    collision_error(&shared, &inputs_hit)
}

/// The error that names the collisions found, if any.
fn collision_error(shared: &Hits, inputs_hit: &Hits) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if shared.n > 0 {
        problems.push(format!(
            "{} the target of an earlier input: {}",
            counted(shared.n, "input has", "inputs have"),
            shared.shown.join("; ")
        ));
    }
    if inputs_hit.n > 0 {
        problems.push(format!(
            "{} also inputs: {}",
            counted(inputs_hit.n, "target is", "targets are"),
            inputs_hit.shown.join("; ")
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "-o/--output: {} (nothing was run); give each input a target of its own, e.g. with {{rel}} or {{rel.}}, in a directory apart from the inputs",
        problems.join("; ")
    ))
}

/// Every directory a target is written in (its nearest existing one: fanout makes the rest)
/// must be one that no other user can change, or a job's write to `{out}` could be
/// redirected (README "Security"). Each directory is checked once.
fn trusted_dirs(inputs: &[Input]) -> anyhow::Result<()> {
    let mut parents = std::collections::HashSet::new();
    let mut checked = std::collections::HashSet::new();
    // Targets in a store are written with conditional uploads, not into directories.
    let local = |t: &&Path| !t.to_str().is_some_and(crate::remote::looks_remote);
    for target in inputs
        .iter()
        .filter_map(|i| i.target.as_deref())
        .filter(local)
    {
        let parent = target.parent().unwrap_or(Path::new(""));
        if !parents.insert(parent) {
            continue;
        }
        let dir = crate::os::trust::existing_dir(parent);
        if !checked.insert(dir.clone()) {
            continue;
        }
        if let Err(u) = crate::os::trust::check_dir(&dir) {
            return Err(anyhow::anyhow!(
                "-o/--output: {u}: another user could redirect a job's write to {} there; nothing was run (--allow-shared-dirs allows it)",
                quoted(target)
            ));
        }
    }
    Ok(())
}

/// Whether the target of `input` is up to date: it is a regular file (links followed, as
/// make does) modified strictly later than the input. Anything else at the target's name (a
/// directory, a FIFO) is not up to date: its job runs and gets the record it gets without
/// `-u`. Equal times count as stale: a file system stamps times from a clock that ticks in
/// milliseconds or seconds, so an input edited in the same tick as its target's commit has
/// the target's very time, and rerunning costs a job where trusting it would keep a stale
/// target.
///
/// With provenance (a target in a store, or a local target of an object), the target is up
/// to date only when it says it was made from this very version of the input by this very
/// command (`command_hash`); times decide only for a target without provenance.
pub(crate) fn up_to_date(input: &Input, target: &Path, command_hash: &str) -> bool {
    use crate::remote::provenance::{of_local_target, Provenance};
    let source = || match &input.remote {
        Some(object) => Some(Provenance::of_object(object, command_hash)),
        None => std::fs::metadata(&input.path)
            .ok()
            .map(|md| Provenance::of_file(&input.path, &md, command_hash)),
    };
    if let Some(url) = target.to_str().filter(|t| crate::remote::looks_remote(t)) {
        let head =
            crate::remote::RemoteUrl::parse(url).and_then(|u| crate::remote::stores().head(&u));
        let Ok(Some(head)) = head else {
            return false;
        };
        return match source().and_then(|p| p.matches(&head.metadata)) {
            Some(fresh) => fresh,
            None => input.seen.is_some_and(|(_, ns)| head.object.mtime_ns > ns),
        };
    }
    let Ok(t) = std::fs::metadata(target) else {
        return false;
    };
    if !t.is_file() {
        return false;
    }
    if input.remote.is_some() {
        let stamp = of_local_target(target);
        if let Some(fresh) = source().and_then(|p| p.matches(&stamp)) {
            return fresh;
        }
    }
    let input_ns = match input.seen {
        Some((_, ns)) => ns,
        None => match std::fs::metadata(&input.path) {
            Ok(md) => md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            Err(_) => return false,
        },
    };
    t.mtime() * 1_000_000_000 + t.mtime_nsec() > input_ns
}

/// `--resume`, for a file its journal does not say is done: whether its output was written
/// in full all the same (fanout was stopped between the write and its journal line), as the
/// output's provenance proves. In place on an object: the object says it was made from
/// itself by this command; with a target (in a store, or local from an object): the target
/// says it was made from this very version of the input by this command.
pub(crate) fn proven_done(input: &Input, in_place: bool, command_hash: &str) -> bool {
    use crate::remote::provenance::{of_local_target, Provenance, COMMAND, SOURCE};
    let head = |url: &str| {
        crate::remote::RemoteUrl::parse(url)
            .and_then(|u| crate::remote::stores().head(&u))
            .ok()
            .flatten()
    };
    match (&input.target, &input.remote) {
        (None, Some(object)) if in_place => {
            let Some(head) = head(&object.url.to_string()) else {
                return false;
            };
            let own = Provenance::of_object(object, command_hash);
            let get = |k: &str| {
                head.metadata
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.as_str())
            };
            get(SOURCE) == Some(own.source.as_str()) && get(COMMAND) == Some(command_hash)
        }
        (Some(target), _) => {
            let source = match &input.remote {
                Some(object) => Provenance::of_object(object, command_hash),
                None => match std::fs::metadata(&input.path) {
                    Ok(md) => Provenance::of_file(&input.path, &md, command_hash),
                    Err(_) => return false,
                },
            };
            let stamp = match target.to_str().filter(|t| crate::remote::looks_remote(t)) {
                Some(url) => head(url).map(|h| h.metadata).unwrap_or_default(),
                None if input.remote.is_some() => of_local_target(target),
                None => return false,
            };
            source.matches(&stamp) == Some(true)
        }
        _ => false,
    }
}

/// An input that gets a job (the others get their record from triage).
fn runs(input: &Input) -> bool {
    input.problem.is_none() && input.duplicate_of.is_none()
}

/// The hash of `path` made absolute and lexical; the bytes stay in `buf`.
fn key(path: &Path, cwd: &Path, buf: &mut Vec<u8>) -> u64 {
    normal(path, cwd, buf);
    let mut h = DefaultHasher::new();
    h.write(buf);
    h.finish()
}

/// `path` joined to `cwd` when relative, without `.` components and with `..` taken back.
fn normal(path: &Path, cwd: &Path, buf: &mut Vec<u8>) {
    buf.clear();
    let base = if path.is_absolute() { None } else { Some(cwd) };
    for c in base
        .into_iter()
        .flat_map(Path::components)
        .chain(path.components())
    {
        match c {
            Component::RootDir | Component::Prefix(_) => buf.clear(),
            Component::CurDir => {}
            Component::ParentDir => {
                let cut = buf.iter().rposition(|b| *b == b'/').unwrap_or(0);
                buf.truncate(cut);
            }
            Component::Normal(name) => {
                buf.push(b'/');
                buf.extend_from_slice(name.as_bytes());
            }
        }
    }
}

fn quoted(path: &Path) -> String {
    format!("'{}'", path.display())
}

fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn listed(items: &[String], what: &str) -> String {
    let more = items.len().saturating_sub(SHOWN);
    let mut text = items[..items.len().min(SHOWN)].join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more {what}s like these"));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn input(job: u64, path: &str, rel_at: Option<usize>) -> Input {
        Input {
            rel_at,
            ..Input::new(job, PathBuf::from(path))
        }
    }

    fn run(template: &str, inputs: &mut [Input]) -> Result<(), String> {
        let t = TargetTemplate::parse(std::ffi::OsStr::new(template)).unwrap();
        assign(&t, 1, inputs, true).map_err(|e| e.to_string())
    }

    #[test]
    fn mirrored_targets_do_not_collide() {
        let mut inputs = [
            input(1, "raw/y=1/part-0.csv", Some(4)),
            input(2, "raw/y=2/part-0.csv", Some(4)),
        ];
        run("clean/{rel.}.parquet", &mut inputs).unwrap();
        assert_eq!(
            inputs[1].target.as_deref(),
            Some(Path::new("clean/y=2/part-0.parquet"))
        );
    }

    #[test]
    fn flat_targets_collide_and_are_named() {
        let mut inputs = [
            input(1, "raw/y=1/part-0.csv", Some(4)),
            input(2, "raw/y=2/part-0.csv", Some(4)),
            input(3, "raw/y=3/part-1.csv", Some(4)),
        ];
        let err = run("flat/{/}", &mut inputs).unwrap_err();
        assert!(
            err.contains("1 input has the target of an earlier input: 'raw/y=1/part-0.csv' and 'raw/y=2/part-0.csv' both write 'flat/part-0.csv'"),
            "{err}"
        );
    }

    #[test]
    fn spellings_of_one_path_collide() {
        let mut inputs = [input(1, "a/x.csv", None), input(2, "b/x.csv", None)];
        let err = run("out/./{/.}.p", &mut inputs).unwrap_err();
        assert!(err.contains("both write"), "{err}");
        let mut inputs = [input(1, "x.csv", None), input(2, "x.p", None)];
        let err = run("{.}.p", &mut inputs).unwrap_err();
        assert!(
            err.contains("'x.p' (the target of 'x.csv') is an input"),
            "{err}"
        );
    }

    #[test]
    fn escaping_targets_stop_the_run() {
        let mut inputs = [input(1, "../x.csv", None)];
        let err = run("clean/{}.p", &mut inputs).unwrap_err();
        assert!(err.contains("`..`") && err.contains("'../x.csv'"), "{err}");
    }

    #[test]
    fn normal_paths() {
        let mut buf = Vec::new();
        normal(Path::new("a/./b/../c"), Path::new("/w"), &mut buf);
        assert_eq!(buf, b"/w/a/c");
        normal(Path::new("/x//y/"), Path::new("/w"), &mut buf);
        assert_eq!(buf, b"/x/y");
    }
}
