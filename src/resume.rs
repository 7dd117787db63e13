//! `--resume FILE`: which files an earlier run's journal recorded as done, and whether they are
//! still the same files.
//!
//! A file is skipped when the journal's last word on its path is `ok` (or `skipped` by an
//! earlier resume) and its size and modification time still match what was recorded after its
//! job finished. The key is the path, never a job number: the walk order may change between
//! runs. A journal cut short by a crash is fine: an unreadable last line is ignored, wherever
//! the cut fell (even inside a multibyte character).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use serde::Deserialize;

/// The reason of a file `--resume` skips.
pub(crate) const UNCHANGED: &str = "ok in the resumed run and unchanged since";

/// A file's identity between runs: size and modification time in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub size: u64,
    pub mtime_ns: i64,
}

/// Reads the identity of the file at `path` now.
pub(crate) fn identity(path: &Path) -> Option<Identity> {
    let md = std::fs::metadata(path).ok()?;
    Some(Identity {
        size: md.len(),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
    })
}

#[derive(Deserialize)]
struct Line<'a> {
    // Borrowed from the line where JSON allows (no escapes): most lines allocate only the key.
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    path: Cow<'a, str>,
    #[serde(default, borrow)]
    path_b64: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    status: Cow<'a, str>,
    #[serde(default)]
    file_size: Option<u64>,
    #[serde(default)]
    file_mtime_ns: Option<i64>,
    /// A `slurm_array` line: the job array a run submitted, and its plan directory.
    #[serde(default)]
    slurm_job_id: Option<String>,
    #[serde(default)]
    plan_dir: Option<String>,
}

/// A Slurm job array that a resumed run submitted (its journal's `slurm_array` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PastArray {
    pub slurm_job_id: String,
    pub plan_dir: std::path::PathBuf,
    /// The run that submitted it wrote its `summary`: it followed the array to its end.
    pub followed: bool,
}
/// The files an earlier run finished, by path.
#[derive(Debug, Default)]
pub(crate) struct Resume {
    done: HashMap<Vec<u8>, Identity>,
    /// Replacements left by runs that did not end, read after the journal itself.
    unfinished: usize,
    /// Slurm job arrays the journals' runs submitted.
    arrays: Vec<PastArray>,
    /// Files named like replacements that are not trusted (another user's), with why.
    ignored: Vec<(std::path::PathBuf, &'static str)>,
}

impl Resume {
    /// Loads `--resume` for a real run (local or submitted) and says how much it found. A
    /// Slurm job array that an earlier run submitted and did not follow to its end (it was
    /// killed) may still run, or have finished files the journal does not hold: `still_running`
    /// (given a job id) refuses while it runs; then the records its tasks wrote in its plan
    /// directory are taken in, so that no file is transformed twice.
    pub(crate) fn for_run(
        path: Option<&Path>,
        quiet: bool,
        still_running: &dyn Fn(&str) -> Result<()>,
    ) -> Result<Option<Resume>> {
        let mut resume = path.map(Resume::load).transpose()?;
        if let Some(r) = &mut resume {
            // Said even with -q: records someone else may have written were left out.
            for (path, why) in &r.ignored {
                crate::error::print_notice(&format!(
                    "--resume: ignored {} ({why}): only the user fanout runs as can leave records for it",
                    path.display()
                ));
            }
            for a in r.arrays.iter().filter(|a| !a.followed) {
                still_running(&a.slurm_job_id).with_context(|| {
                    format!("--resume {}", path.unwrap_or(Path::new("")).display())
                })?;
            }
            r.take_arrays_records(quiet)?;
        }
        if let (Some(r), false) = (&resume, quiet) {
            let unfinished = match r.unfinished {
                0 => String::new(),
                n => format!(
                    " (with the records of {} that did not end, kept beside the journal)",
                    crate::error::counted(n as u64, "run")
                ),
            };
            crate::error::print_notice(&format!(
                "resuming: {} ok in the earlier run{unfinished}; unchanged ones are skipped",
                crate::error::counted(r.len() as u64, "file")
            ));
        }
        Ok(resume)
    }

    /// Reads the journal `path`, then the replacements of it that runs left behind after it
    /// was last written (older ones were superseded by the journal itself).
    pub(crate) fn load(path: &Path) -> Result<Resume> {
        let mut resume = Resume::default();
        resume.read(path)?;
        let written = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let (trusted, ignored) = crate::tempname::trusted_leftovers(path);
        for leftover in trusted {
            if written.is_none_or(|w| leftover.modified > w) {
                resume.read_from(leftover.file, &leftover.path)?;
                resume.unfinished += 1;
            }
        }
        resume.ignored = ignored;
        Ok(resume)
    }

    /// Reads one journal into `done`, later records overriding earlier ones. The journal is
    /// read as bytes, line by line: a run killed while writing leaves a partial last line (cut
    /// anywhere, even inside a multibyte character), which is ignored.
    fn read(&mut self, path: &Path) -> Result<()> {
        let file =
            File::open(path).with_context(|| format!("cannot read --resume {}", path.display()))?;
        self.read_from(file, path)
    }

    /// Reads the journal open as `file` (named `path`), as [`Resume::read`] does.
    fn read_from(&mut self, file: File, path: &Path) -> Result<()> {
        let context = || format!("cannot read --resume {}", path.display());
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut buf = Vec::new();
        let mut n = 0;
        // A line that is not a record: an error unless it turns out to be the last one.
        let mut bad: Option<anyhow::Error> = None;
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).with_context(context)? == 0 {
                return Ok(());
            }
            n += 1;
            if buf.trim_ascii().is_empty() {
                continue;
            }
            if let Some(err) = bad.take() {
                return Err(err);
            }
            match serde_json::from_slice::<Line>(&buf) {
                Ok(line) => self.take(&line, path, n)?,
                Err(e) => {
                    bad = Some(anyhow::anyhow!(
                        "--resume {}: line {n} is not a fanout summary record: {e}",
                        path.display()
                    ));
                }
            }
        }
    }

    /// The records the tasks of the arrays wrote in their plan directories (every file they
    /// finished, whether or not the submitter lived to relay it).
    fn take_arrays_records(&mut self, quiet: bool) -> Result<()> {
        for a in std::mem::take(&mut self.arrays) {
            let records = a.plan_dir.join("records");
            // Only a plan directory of this user's own that nobody else can change, read by
            // descriptor: never one put in its place, nor records another user forged.
            let opened = crate::os::trust::open_own_dir(None, &a.plan_dir).and_then(|plan| {
                crate::os::trust::open_own_dir(Some(&plan), Path::new("records"))
                    .map_err(|why| format!("{}: {why}", records.display()))
            });
            let dir = match opened {
                Ok(dir) => dir,
                Err(why) => {
                    if !a.followed && !quiet {
                        if a.plan_dir.exists() {
                            crate::error::print_notice(&format!(
                                "the plan directory {} of Slurm job {} is not read ({why}): files that job finished after its run stopped will run again",
                                a.plan_dir.display(),
                                a.slurm_job_id
                            ));
                        } else {
                            crate::error::print_notice(&format!(
                                "the plan directory {} of Slurm job {} is gone: files that job finished after its run stopped will run again",
                                a.plan_dir.display(),
                                a.slurm_job_id
                            ));
                        }
                    }
                    continue;
                }
            };
            let Ok(listing) = rustix::fs::Dir::read_from(&dir) else {
                continue;
            };
            let mut shards: Vec<std::ffi::OsString> = listing
                .filter_map(Result::ok)
                .map(|e| std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
                .filter(|n| {
                    n.to_str()
                        .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".jsonl"))
                })
                .collect();
            shards.sort();
            for name in shards {
                let shard = records.join(&name);
                match crate::os::trust::open_own_file_at(&dir, &name) {
                    Ok(file) => self.read_from(file, &shard)?,
                    Err(why) => {
                        if !quiet {
                            crate::error::print_notice(&format!(
                                "{} is not read ({why}): files its records name as finished will run again",
                                shard.display()
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes record `line` (line number `n` of `path`) into account.
    fn take(&mut self, line: &Line<'_>, path: &Path, n: usize) -> Result<()> {
        match &*line.kind {
            "slurm_array" => {
                if let (Some(job), Some(dir)) = (&line.slurm_job_id, &line.plan_dir) {
                    self.arrays.push(PastArray {
                        slurm_job_id: job.clone(),
                        plan_dir: dir.into(),
                        followed: false,
                    });
                }
                return Ok(());
            }
            "summary" => {
                for a in &mut self.arrays {
                    a.followed |= line.slurm_job_id.as_ref() == Some(&a.slurm_job_id);
                }
                return Ok(());
            }
            "file" => {}
            _ => return Ok(()),
        }
        let decoded;
        let bytes = match &line.path_b64 {
            Some(b64) => {
                decoded = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .with_context(|| {
                        format!("--resume {}: bad path_b64 on line {n}", path.display())
                    })?;
                &decoded[..]
            }
            None => line.path.as_bytes(),
        };
        let key = key(bytes).to_vec();
        match (&*line.status, line.file_size, line.file_mtime_ns) {
            ("ok" | "skipped", Some(size), Some(mtime_ns)) => {
                self.done.insert(key, Identity { size, mtime_ns });
            }
            _ => {
                self.done.remove(&key);
            }
        }
        Ok(())
    }

    /// Why `path` need not run again, if it need not; with its identity now.
    /// Whether `path` is done: recorded ok and unchanged since. `seen` is its size and
    /// modification time if the caller has just read them (else they are read here).
    pub(crate) fn skip(&self, path: &Path, seen: Option<(u64, i64)>) -> Option<(String, Identity)> {
        let recorded = self.done.get(key(path.as_os_str().as_bytes()))?;
        let now = match seen {
            Some((size, mtime_ns)) => Identity { size, mtime_ns },
            None => identity(path)?,
        };
        (now == *recorded).then(|| (UNCHANGED.to_string(), now))
    }

    pub(crate) fn len(&self) -> usize {
        self.done.len()
    }
}

/// Paths are compared without leading `./`, so `fanout .` and `fanout` match.
fn key(mut bytes: &[u8]) -> &[u8] {
    while let Some(rest) = bytes.strip_prefix(b"./") {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn last_word_wins_and_identity_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "x").unwrap();
        std::fs::write(&b, "y").unwrap();
        let ia = identity(&a).unwrap();
        let ib = identity(&b).unwrap();
        let journal = dir.path().join("j.jsonl");
        let mut f = File::create(&journal).unwrap();
        let rec = |p: &Path, status: &str, id: Identity| {
            format!(
                r#"{{"type":"file","path":"{}","status":"{status}","file_size":{},"file_mtime_ns":{}}}"#,
                p.display(),
                id.size,
                id.mtime_ns
            )
        };
        writeln!(f, "{}", rec(&a, "ok", ia)).unwrap();
        writeln!(f, "{}", rec(&b, "ok", ib)).unwrap();
        writeln!(f, "{}", rec(&b, "failed", ib)).unwrap();
        write!(f, "{{\"type\":\"file\",\"pa").unwrap(); // cut short by a crash
        drop(f);
        let r = Resume::load(&journal).unwrap();
        assert_eq!(r.len(), 1);
        assert!(r.skip(&a, None).is_some());
        assert!(r.skip(&b, None).is_none());
        std::fs::write(&a, "changed").unwrap();
        assert!(r.skip(&a, None).is_none());
    }

    #[test]
    fn an_unfollowed_slurm_arrays_records_are_taken_in_once_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "x\n").unwrap();
        let id = identity(&a).unwrap();
        let plan = dir.path().join("plan");
        std::fs::create_dir_all(plan.join("records")).unwrap();
        // The array finished `a` after its submitter was killed: only its task's journal says so.
        std::fs::write(
            plan.join("records/shard-0.jsonl"),
            format!(
                "{{\"type\":\"worker\",\"shard\":0}}\n{{\"type\":\"file\",\"path\":\"{}\",\"status\":\"ok\",\"file_size\":{},\"file_mtime_ns\":{}}}\n",
                a.display(),
                id.size,
                id.mtime_ns
            ),
        )
        .unwrap();
        let journal = dir.path().join("j.jsonl");
        let line = |job: &str| {
            format!(
                "{{\"type\":\"slurm_array\",\"v\":1,\"slurm_job_id\":\"{job}\",\"plan_dir\":\"{}\",\"shards\":1,\"files\":1}}\n",
                plan.display()
            )
        };
        std::fs::write(&journal, line("42")).unwrap();
        let asked = std::cell::RefCell::new(Vec::new());
        let ended = |job: &str| {
            asked.borrow_mut().push(job.to_string());
            Ok(())
        };
        let r = Resume::for_run(Some(&journal), true, &ended)
            .unwrap()
            .unwrap();
        assert_eq!(*asked.borrow(), ["42"]);
        assert!(r.skip(&a, None).is_some(), "the array's ok record counts");
        // While it runs: refused, naming the journal.
        let running = |job: &str| -> Result<()> { anyhow::bail!("job {job} still runs") };
        let err = Resume::for_run(Some(&journal), true, &running).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!("--resume {}: job 42 still runs", journal.display())
        );
        // A run that followed its array to the end is not asked about.
        let summary = "{\"type\":\"summary\",\"slurm_job_id\":\"42\"}\n";
        std::fs::write(&journal, line("42") + summary).unwrap();
        let r = Resume::for_run(Some(&journal), true, &running)
            .unwrap()
            .unwrap();
        assert!(r.skip(&a, None).is_some());
    }

    #[test]
    fn forged_records_in_a_plan_directory_are_not_taken_in() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan");
        std::fs::create_dir_all(plan.join("records")).unwrap();
        let ok = |f: &Path| {
            std::fs::write(f, "x\n").unwrap();
            let id = identity(f).unwrap();
            format!(
                "{{\"type\":\"file\",\"path\":\"{}\",\"status\":\"ok\",\"file_size\":{},\"file_mtime_ns\":{}}}\n",
                f.display(),
                id.size,
                id.mtime_ns
            )
        };
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        // A shard's records that are a symbolic link to forged ones elsewhere.
        let forged = dir.path().join("forged.jsonl");
        std::fs::write(&forged, ok(&a)).unwrap();
        std::os::unix::fs::symlink(&forged, plan.join("records/shard-0.jsonl")).unwrap();
        // A real shard's records, taken in.
        std::fs::write(plan.join("records/shard-1.jsonl"), ok(&b)).unwrap();
        // Records another user wrote (the test runs as root: `nobody` owns them).
        let root = rustix::process::geteuid().is_root();
        if root {
            let theirs = plan.join("records/shard-2.jsonl");
            std::fs::write(&theirs, ok(&c)).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        }
        let journal = dir.path().join("j.jsonl");
        std::fs::write(
            &journal,
            format!(
                "{{\"type\":\"slurm_array\",\"v\":1,\"slurm_job_id\":\"42\",\"plan_dir\":\"{}\",\"shards\":3,\"files\":3}}\n",
                plan.display()
            ),
        )
        .unwrap();
        let ended = |_: &str| Ok(());
        let r = Resume::for_run(Some(&journal), true, &ended)
            .unwrap()
            .unwrap();
        assert!(r.skip(&a, None).is_none(), "a linked shard's records count");
        assert!(r.skip(&b, None).is_some(), "a shard's own records count");
        if root {
            assert!(r.skip(&c, None).is_none(), "another user's records count");
        }
        // A records directory others can write is not read at all.
        std::fs::set_permissions(
            plan.join("records"),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let r = Resume::for_run(Some(&journal), true, &ended)
            .unwrap()
            .unwrap();
        assert!(
            r.skip(&b, None).is_none(),
            "records others could write count"
        );
    }

    #[test]
    fn leftovers_newer_than_the_journal_extend_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "x").unwrap();
        let id = identity(&a).unwrap();
        let rec = |status: &str| {
            format!(
                "{{\"type\":\"file\",\"path\":\"{}\",\"status\":\"{status}\",\"file_size\":{},\"file_mtime_ns\":{}}}\n",
                a.display(),
                id.size,
                id.mtime_ns
            )
        };
        let journal = dir.path().join("j.jsonl");
        let leftover = dir.path().join(".j.jsonl.fanout-journal-x1");
        let set_mtime = |p: &Path, secs: u64| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
        };
        std::fs::write(&journal, rec("failed")).unwrap();
        std::fs::write(&leftover, rec("ok")).unwrap();
        // Written after the journal: its word counts.
        set_mtime(&journal, 1_000);
        set_mtime(&leftover, 2_000);
        assert!(Resume::load(&journal).unwrap().skip(&a, None).is_some());
        // Written before the journal was rewritten: superseded.
        set_mtime(&journal, 3_000);
        assert!(Resume::load(&journal).unwrap().skip(&a, None).is_none());
    }

    #[test]
    fn dot_slash_is_ignored() {
        assert_eq!(key(b"./././a/b"), b"a/b");
        assert_eq!(key(b"a"), b"a");
    }
}
