//! File discovery: walks the roots with the `ignore` crate, reads paths from standard input,
//! applies the filters and hands numbered inputs to the caller's sink, one at a time.
//!
//! The walk is ordered (sorted by file name, depth first), so job numbers (`{#}`) and the
//! order of a dry run are the same from one run to the next; when the file system is slow,
//! directories are read ahead in parallel (`ReadAhead`) without changing that order. A walk error becomes a message for the
//! collector and the walk goes on. This module knows nothing of templates or processes.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use crossbeam_channel::Sender;
use ignore::overrides::{Override, OverrideBuilder};
use ignore::WalkBuilder;

use crate::cancel::Cancel;
use crate::input::{Input, Notice};
use crate::read_ahead::{special_ignore_file, ReadAhead};
use crate::remote::{KeyFilter, Object, RemoteUrl};

/// Where inputs come from, in the order the user gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Root {
    /// A directory, walked recursively. `implicit` is true for the default `.`, whose paths are
    /// given without the `./` prefix.
    Dir { path: PathBuf, implicit: bool },
    /// A file named on the command line: taken as-is.
    File(PathBuf),
    /// `-`: paths read from standard input.
    Stdin,
    /// A URL: the keys under its prefix, or the one object it names.
    Remote(RemoteUrl),
}

/// Where a run's inputs come from.
pub(crate) enum Source {
    /// The walk described by the configuration.
    Walk,
    /// A list made elsewhere (a shard of a Slurm plan), numbered already.
    Given(Vec<Input>),
}

/// The discovery part of the configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct WalkOptions {
    pub roots: Vec<Root>,
    /// Lower-case extensions without a dot; empty means any.
    pub extensions: Vec<String>,
    /// gitignore-style globs (`!` excludes), as given.
    pub globs: Vec<String>,
    pub hidden: bool,
    pub no_ignore: bool,
    pub follow: bool,
    pub max_depth: Option<usize>,
    /// Standard input paths are NUL-separated.
    pub null: bool,
    /// The run's own files, never inputs.
    pub own: OwnFiles,
    /// Files will be rewritten in place: every name of a file gets its own input (a second
    /// one marked `duplicate_of`), and hard links are noticed under a single root too.
    pub in_place: bool,
    /// The directory `-o` targets go under, when the template names one: never walked, so
    /// one run's targets are not the next run's inputs.
    pub target_tree: Option<PathBuf>,
}

/// The run's own files (its `--summary` and `--resume` journals and what belongs to them),
/// which are never inputs, whatever the filters: a job must not read, let alone replace, the
/// journal fanout is writing. They are known by device and inode, so any path to them (a hard
/// link, `./`, a symbolic link followed with -L) is excluded; the Slurm plan directory
/// (`.fanout/`) is skipped as a whole.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnFiles {
    /// Files named in the configuration, identified when the walk starts.
    paths: Vec<PathBuf>,
    /// Files the run opened itself (a journal it created), by device and inode. Shared, so a
    /// file registered before the walk starts is excluded by every copy of the options.
    opened: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl OwnFiles {
    pub(crate) fn new(paths: Vec<PathBuf>) -> OwnFiles {
        OwnFiles {
            paths,
            opened: Arc::default(),
        }
    }

    /// Registers a file the run opened (from `fstat`); it must come before the walk starts.
    pub(crate) fn add(&self, md: &std::fs::Metadata) {
        if let Ok(mut opened) = self.opened.lock() {
            opened.push((md.dev(), md.ino()));
        }
    }

    /// Every own file that exists now, by device and inode.
    fn identities(&self) -> HashSet<(u64, u64)> {
        let mut ids: HashSet<(u64, u64)> = self
            .paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|md| (md.dev(), md.ino()))
            .collect();
        if let Ok(opened) = self.opened.lock() {
            ids.extend(opened.iter().copied());
        }
        ids
    }
}

/// What the walk found, for the final report.
#[derive(Debug, Default)]
pub(crate) struct WalkReport {
    pub errors: u64,
    /// Set when nothing matched but hidden or ignored files would have.
    pub hint: Option<String>,
    /// Discovery stopped before its end (the run was stopped): inputs it had not reached have
    /// no record.
    pub cut_short: bool,
}

/// Standard input that a stop can interrupt: a read waits for input or for the run to stop, so
/// a producer that never closes its end (`tail -f list | fanout -`) cannot keep fanout alive
/// after Ctrl-C. Input already there is still read (the run core decides how long).
struct StopAware<'a> {
    stdin: std::io::StdinLock<'static>,
    cancel: &'a Cancel,
}

impl std::io::Read for StopAware<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::fd::AsFd;
        let mut ready = Vec::new();
        loop {
            let mut fds = vec![self.stdin.as_fd()];
            fds.extend(self.cancel.wake_fd());
            // A poll that fails (it should not) falls back to a plain, blocking read.
            if crate::os::poll_readable(&fds, 100, &mut ready).is_err() || ready[0] {
                return self.stdin.read(buf);
            }
            if self.cancel.no_new_jobs() {
                return Ok(0);
            }
        }
    }
}

/// Builds a glob matcher rooted at `root`; also used by config.rs to validate globs early.
pub(crate) fn build_overrides(root: &Path, globs: &[String]) -> Result<Override> {
    let mut builder = OverrideBuilder::new(root);
    for glob in globs {
        builder.add(glob)?;
    }
    Ok(builder.build()?)
}

struct Walker<'a> {
    opts: &'a WalkOptions,
    /// Where inputs go; `false` back means nobody takes more.
    inputs: &'a mut dyn FnMut(Input) -> bool,
    notices: &'a Sender<Notice>,
    cancel: &'a Cancel,
    found: &'a AtomicU64,
    /// Files sent so far by device and inode, with the path they were sent as (in place only;
    /// otherwise an empty path, which does not allocate).
    seen: Option<HashMap<(u64, u64), PathBuf>>,
    /// Remember every file, not only those with several names.
    remember_all: bool,
    next_job: u64,
    report: WalkReport,
    /// A matcher for explicit and stdin paths, rooted at the current directory.
    cwd_globs: Override,
    /// The run's own files by device and inode, and their inodes alone for a quick first test.
    own: HashSet<(u64, u64)>,
    own_inodes: HashSet<u64>,
    /// What the last `stat` of a named path said, for the input about to be sent.
    seen_now: Option<(u64, i64)>,
    /// Where `{rel}` begins in the path about to be sent.
    rel_now: Option<usize>,
    /// The object about to be sent, when it is one.
    remote_now: Option<std::sync::Arc<Object>>,
}

/// Runs the whole discovery, handing inputs to `inputs` until done or stopped (or it returns
/// false). `found` counts inputs handed on.
pub(crate) fn scan(
    opts: &WalkOptions,
    inputs: &mut dyn FnMut(Input) -> bool,
    notices: &Sender<Notice>,
    cancel: &Cancel,
    found: &AtomicU64,
) -> Result<WalkReport> {
    // Overlapping roots (`fanout d d/sub`) or followed links can reach a file twice: remember
    // what was sent by device and inode. A single root needs no memory per file; standard
    // input alone is taken as given (like xargs), so memory stays flat however long it is.
    // In place, hard links under one root matter too (a file is rewritten once, and its other
    // names must say so): only files with several names are remembered then.
    let remember_all = opts.roots.len() > 1 || opts.follow;
    let own = opts.own.identities();
    let mut walker = Walker {
        opts,
        inputs,
        notices,
        cancel,
        found,
        seen: (remember_all || opts.in_place).then(HashMap::new),
        remember_all,
        next_job: 1,
        report: WalkReport::default(),
        cwd_globs: build_overrides(Path::new("."), &opts.globs)?,
        own_inodes: own.iter().map(|(_, ino)| *ino).collect(),
        seen_now: None,
        rel_now: None,
        remote_now: None,
        own,
    };
    for root in &opts.roots {
        let go_on = !cancel.is_hard()
            && match root {
                Root::Dir { path, implicit } => walker.walk_dir(path, *implicit)?,
                Root::File(path) => walker.explicit(path.clone(), None),
                Root::Stdin => walker.read_stdin(),
                Root::Remote(url) => walker.remote(url),
            };
        if !go_on {
            walker.report.cut_short = true;
            break;
        }
    }
    if walker.next_job == 1 && !cancel.is_hard() {
        walker.report.hint = skipped_hint(opts);
    }
    Ok(walker.report)
}

impl Walker<'_> {
    fn walk_dir(&mut self, root: &Path, implicit: bool) -> Result<bool> {
        if !self.opts.no_ignore {
            // The root's and its parents' ignore files are read before the first entry.
            let absolute = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
            if let Some(bad) = absolute.ancestors().find_map(special_ignore_file) {
                self.report.errors += 1;
                let msg = blocked_dir_message(root, &bad);
                return Ok(self.notices.send(Notice::Error(msg)).is_ok());
            }
        }
        let blocked = std::sync::Arc::new(AtomicU64::new(0));
        let mut builder = self.builder(root, self.opts.hidden, self.opts.no_ignore)?;
        let ahead = ReadAhead::new(&builder, !self.opts.no_ignore);
        let walk = builder.filter_entry(self.entry_filter(&blocked)).build();
        let result = self.walk_entries(walk, root, implicit, ahead);
        self.report.errors += blocked.load(Ordering::Relaxed);
        result
    }

    /// Which directories the walk enters: not a Slurm plan directory (`.fanout/`, fanout's
    /// own records and logs, never inputs, even with -H), and, while ignore files are read,
    /// not a directory whose ignore file is a FIFO or a device: reading it could block the
    /// walk for ever or never end. That directory is a walk error, counted in `blocked`.
    fn entry_filter(
        &self,
        blocked: &std::sync::Arc<AtomicU64>,
    ) -> impl Fn(&ignore::DirEntry) -> bool + Send + Sync + 'static {
        let check = !self.opts.no_ignore;
        let notices = self.notices.clone();
        let blocked = blocked.clone();
        let targets = self
            .opts
            .target_tree
            .as_ref()
            .and_then(|t| std::fs::metadata(t).ok())
            .map(|md| (md.dev(), md.ino()));
        move |e| {
            if e.depth() == 0 || !e.file_type().is_some_and(|t| t.is_dir()) {
                return true;
            }
            if e.file_name() == ".fanout" {
                return false;
            }
            // The -o target tree: the listing's inode rules out almost every directory.
            if let Some((dev, ino)) = targets {
                if (e.path_is_symlink() || e.ino() == Some(ino))
                    && e.metadata()
                        .is_ok_and(|md| (md.dev(), md.ino()) == (dev, ino))
                {
                    return false;
                }
            }
            match special_ignore_file(e.path()).filter(|_| check) {
                None => true,
                Some(bad) => {
                    blocked.fetch_add(1, Ordering::Relaxed);
                    let _ = notices.send(Notice::Error(blocked_dir_message(e.path(), &bad)));
                    false
                }
            }
        }
    }

    fn walk_entries(
        &mut self,
        walk: ignore::Walk,
        root: &Path,
        implicit: bool,
        mut ahead: ReadAhead,
    ) -> Result<bool> {
        let mut walk = walk.into_iter();
        loop {
            let asked = Instant::now();
            let Some(entry) = walk.next() else { break };
            // A directory is read (whole, to sort it) before the walk hands it on.
            if entry
                .as_ref()
                .is_ok_and(|e| e.file_type().is_some_and(|t| t.is_dir()))
            {
                ahead.read_dir(asked.elapsed());
            } else {
                ahead.entries += 1;
            }
            if self.cancel.is_hard() {
                return Ok(false);
            }
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    self.report.errors += 1;
                    if self.notices.send(Notice::Error(walk_error(&err))).is_err() {
                        return Ok(false);
                    }
                    continue;
                }
            };
            if !entry.file_type().is_some_and(|t| t.is_file())
                || !self.ext_matches(entry.path())
                || crate::tempname::temp_owner(entry.file_name().as_bytes()).is_some()
                || self.is_own_entry(&entry)
            {
                continue;
            }
            let md = match self.seen.as_ref().map(|_| entry.metadata()) {
                None => None,
                Some(Ok(md)) => Some(md),
                Some(Err(err)) => {
                    self.report.errors += 1;
                    let _ = self.notices.send(Notice::Error(walk_error(&err)));
                    continue;
                }
            };
            let rel_len = crate::template::below(entry.path(), root);
            let path = if implicit {
                entry
                    .path()
                    .strip_prefix(".")
                    .unwrap_or(entry.path())
                    .to_path_buf()
            } else {
                entry.into_path()
            };
            let path = present(path);
            let rel_at = path.as_os_str().len().saturating_sub(rel_len);
            let duplicate_of = match md.map(|md| self.seen_before(&md, &path)) {
                None | Some(Seen::First) => None,
                Some(Seen::Again) => continue,
                Some(Seen::Other(first)) => Some(first),
            };
            self.rel_now = Some(rel_at);
            if !self.send(path, None, duplicate_of) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn builder(&self, root: &Path, hidden: bool, no_ignore: bool) -> Result<WalkBuilder> {
        let mut b = WalkBuilder::new(root);
        b.hidden(!hidden)
            .ignore(!no_ignore)
            .git_ignore(!no_ignore)
            .git_global(!no_ignore)
            .git_exclude(!no_ignore)
            .parents(!no_ignore)
            .follow_links(self.opts.follow)
            .max_depth(self.opts.max_depth)
            // By name: siblings' paths differ only in their names (and parsing none is faster).
            .sort_by_file_path(|a, b| a.as_os_str().cmp(b.as_os_str()))
            .filter_entry(|e| {
                !(e.depth() > 0
                    && e.file_name() == ".fanout"
                    && e.file_type().is_some_and(|t| t.is_dir()))
            });
        if !self.opts.globs.is_empty() {
            b.overrides(build_overrides(root, &self.opts.globs)?);
        }
        Ok(b)
    }

    /// A file named on the command line or read from stdin: filtered by -e/-g but not walked.
    /// `problem` is set when the caller already knows it cannot run.
    fn explicit(&mut self, path: PathBuf, problem: Option<String>) -> bool {
        if !self.ext_matches(&path) || !self.glob_matches(&path) {
            return true;
        }
        let path = present(path);
        if problem.is_some() {
            return self.send(path, problem, None);
        }
        // stat only: nothing here opens the file, so a FIFO cannot block the walk.
        match std::fs::metadata(&path) {
            Ok(md) if self.own.contains(&(md.dev(), md.ino())) => {
                let _ = self.notices.send(Notice::Info(format!(
                    "{}: not an input: it is this run's journal (--summary or --resume)",
                    path.display()
                )));
                true
            }
            Err(err) => self.send(path, Some(crate::error::io_reason(&err)), None),
            Ok(md) if !md.is_file() => self.send(path, Some("not a regular file".into()), None),
            Ok(md) => match self.seen_before(&md, &path) {
                Seen::First => {
                    self.seen_now = Some((md.len(), md.mtime() * 1_000_000_000 + md.mtime_nsec()));
                    self.send(path, None, None)
                }
                Seen::Again => true,
                Seen::Other(first) => self.send(path, None, Some(first)),
            },
        }
    }

    fn read_stdin(&mut self) -> bool {
        let sep = if self.opts.null { b'\0' } else { b'\n' };
        let stdin = StopAware {
            stdin: std::io::stdin().lock(),
            cancel: self.cancel,
        };
        let mut reader = BufReader::with_capacity(1 << 16, stdin);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(sep, &mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(err) => {
                    self.report.errors += 1;
                    let _ = self.notices.send(Notice::Error(format!(
                        "reading paths from standard input: {err}"
                    )));
                    return true;
                }
            }
            if buf.last() == Some(&sep) {
                buf.pop();
            }
            if !self.opts.null && buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if buf.is_empty() {
                continue;
            }
            let path = PathBuf::from(OsString::from_vec(buf.clone()));
            let go_on = match path.to_str().filter(|p| crate::remote::looks_remote(p)) {
                Some(url) => self.named_object(url),
                None => self.explicit(path, None),
            };
            if !go_on || self.cancel.is_hard() {
                return false;
            }
        }
    }

    /// A root in a store: its keys, handed on as their pages arrive. A listing that fails
    /// is a walk error; what was listed before it moves on.
    fn remote(&mut self, root: &RemoteUrl) -> bool {
        let o = self.opts;
        let listed = KeyFilter::new(&o.extensions, &o.globs, o.hidden, o.max_depth).and_then(|f| {
            crate::remote::list_root(root, &f, &mut |object, rel_at| {
                self.rel_now = Some(rel_at);
                self.send_object(object) && !self.cancel.is_hard()
            })
        });
        listed.unwrap_or_else(|e| {
            self.report.errors += 1;
            self.notices.send(Notice::Error(format!("{e:#}"))).is_ok()
        })
    }

    /// A URL read from standard input: the object it names.
    fn named_object(&mut self, text: &str) -> bool {
        let path = PathBuf::from(text);
        match crate::remote::RemoteUrl::parse(text).and_then(|u| crate::remote::named(&u)) {
            Ok(Some(object)) => self.send_object(object),
            Ok(None) => self.send(path, Some("no such object".into()), None),
            Err(e) => self.send(path, Some(format!("{e:#}")), None),
        }
    }

    fn send_object(&mut self, object: Object) -> bool {
        self.seen_now = Some((object.size, object.mtime_ns));
        let path = PathBuf::from(object.url.to_string());
        self.remote_now = Some(std::sync::Arc::new(object));
        self.send(path, None, None)
    }

    /// Whether a walked file is one of the run's own. The inode from the directory listing
    /// rules out almost every file without a `stat`; a followed link has its target's.
    fn is_own_entry(&self, entry: &ignore::DirEntry) -> bool {
        if self.own.is_empty() {
            return false;
        }
        if !entry.path_is_symlink() {
            if let Some(ino) = entry.ino() {
                if !self.own_inodes.contains(&ino) {
                    return false;
                }
            }
        }
        entry
            .metadata()
            .is_ok_and(|md| self.own.contains(&(md.dev(), md.ino())))
    }

    fn ext_matches(&self, path: &Path) -> bool {
        if self.opts.extensions.is_empty() {
            return true;
        }
        match path.extension() {
            Some(ext) => {
                let ext = ext.as_bytes();
                self.opts
                    .extensions
                    .iter()
                    .any(|e| e.as_bytes().eq_ignore_ascii_case(ext))
            }
            None => false,
        }
    }

    fn glob_matches(&self, path: &Path) -> bool {
        !self.cwd_globs.matched(path, false).is_ignore()
    }

    /// Whether the file `path` names was sent before, and through which other path.
    fn seen_before(&mut self, md: &std::fs::Metadata, path: &Path) -> Seen {
        let in_place = self.opts.in_place;
        let remember = self.remember_all || md.nlink() > 1;
        let Some(seen) = self.seen.as_mut().filter(|_| remember) else {
            return Seen::First;
        };
        match seen.entry((md.dev(), md.ino())) {
            Entry::Vacant(slot) => {
                slot.insert(if in_place {
                    path.to_path_buf()
                } else {
                    PathBuf::new()
                });
                Seen::First
            }
            Entry::Occupied(first) if in_place && first.get() != path => {
                Seen::Other(first.get().clone())
            }
            Entry::Occupied(_) => Seen::Again,
        }
    }

    fn send(
        &mut self,
        path: PathBuf,
        problem: Option<String>,
        duplicate_of: Option<PathBuf>,
    ) -> bool {
        let input = Input {
            job: self.next_job,
            path,
            problem,
            weight: None,
            duplicate_of,
            seen: self.seen_now.take(),
            rel_at: self.rel_now.take(),
            target: None,
            remote: self.remote_now.take(),
        };
        self.next_job += 1;
        self.found.fetch_add(1, Ordering::Relaxed);
        (self.inputs)(input)
    }
}

fn blocked_dir_message(dir: &Path, bad: &Path) -> String {
    format!(
        "{}: not walked: {} is not a regular file (a FIFO or device); remove it or use -I/--no-ignore",
        dir.display(),
        bad.display()
    )
}

/// Whether a file was met before (see `Walker::seen_before`).
enum Seen {
    First,
    /// Through the same path: nothing new to say.
    Again,
    /// Through another path (in place only): it gets its own record.
    Other(PathBuf),
}

/// A relative path that starts with `-` would read as an option: pass it as `./-name`.
fn present(path: PathBuf) -> PathBuf {
    if path.as_os_str().as_bytes().first() == Some(&b'-') {
        Path::new(".").join(path)
    } else {
        path
    }
}

fn walk_error(err: &ignore::Error) -> String {
    // ignore's messages nest the path and cause; keep them on one line.
    err.to_string().replace('\n', " ")
}

/// When nothing matched, counts what the hidden and ignore rules skipped, and names the flag
/// that would include it.
fn skipped_hint(opts: &WalkOptions) -> Option<String> {
    if opts.hidden && opts.no_ignore {
        return None;
    }
    let (mut hidden, mut ignored) = (0u64, 0u64);
    let own = opts.own.identities();
    for root in &opts.roots {
        let Root::Dir { path, .. } = root else {
            continue;
        };
        let relaxed = WalkOptions {
            hidden: true,
            no_ignore: true,
            ..opts.clone()
        };
        let mut inputs = |_: Input| true;
        let (notices, _nrx) = crossbeam_channel::unbounded();
        let cancel = Cancel::default();
        let found = AtomicU64::new(0);
        let probe = Walker {
            opts: &relaxed,
            inputs: &mut inputs,
            notices: &notices,
            cancel: &cancel,
            found: &found,
            seen: None,
            remember_all: false,
            next_job: 1,
            report: WalkReport::default(),
            cwd_globs: build_overrides(Path::new("."), &opts.globs).ok()?,
            own: own.clone(),
            own_inodes: own.iter().map(|(_, ino)| *ino).collect(),
            seen_now: None,
            rel_now: None,
            remote_now: None,
        };
        let walk = probe.builder(path, true, true).ok()?.build();
        for entry in walk.flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file())
                || !probe.ext_matches(entry.path())
                || probe.is_own_entry(&entry)
            {
                continue;
            }
            let rel = entry.path().strip_prefix(path).unwrap_or(entry.path());
            let is_hidden = rel
                .components()
                .any(|c| c.as_os_str().as_bytes().first() == Some(&b'.'));
            if is_hidden && !opts.hidden {
                hidden += 1;
            } else if !opts.no_ignore {
                ignored += 1;
            }
        }
    }
    let mut parts = Vec::new();
    if hidden > 0 {
        parts.push(format!("{hidden} hidden (use -H/--hidden)"));
    }
    if ignored > 0 {
        parts.push(format!(
            "{ignored} ignored by .gitignore/.ignore rules (use -I/--no-ignore)"
        ));
    }
    (!parts.is_empty()).then(|| format!("matching files were skipped: {}", parts.join(", ")))
}
