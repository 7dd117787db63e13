//! The test harness: builds a temporary tree, runs the fanout binary in it and checks what came
//! out (exit code, sorted stdout lines, `--summary` journals, argv dumps written by jobs).
//!
//! Every run has a deadline, so a hung fanout fails its test instead of hanging the suite.

#![allow(dead_code)] // not every test module uses every helper

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The fanout binary under test.
pub const FANOUT: &str = env!("CARGO_BIN_EXE_fanout");

/// How long any single fanout run may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Absolute path of a helper script in fixtures/bin.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/bin/{name}", env!("CARGO_MANIFEST_DIR"));
    assert!(
        Path::new(&path).exists(),
        "fixture script {path} is missing"
    );
    path
}

/// A temporary directory tree that fanout runs in (it is the child's working directory).
pub struct TestEnv {
    dir: TempDir,
}

impl TestEnv {
    /// Builds a tree from directories and `(path, contents)` pairs, both relative to the root.
    /// Parent directories of files are created as needed.
    pub fn new(dirs: &[&str], files: &[(&str, &str)]) -> TestEnv {
        let env = TestEnv {
            dir: tempfile::Builder::new()
                .prefix("fanout-it-")
                .tempdir()
                .expect("create temp dir"),
        };
        for d in dirs {
            env.mkdir(d);
        }
        for (path, contents) in files {
            env.write(path, contents);
        }
        env
    }

    /// The root of the tree (an absolute path).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// An absolute path inside the tree.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root().join(rel)
    }

    pub fn mkdir(&self, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Writes a file whose relative path is given as raw bytes (for non-UTF-8 names).
    pub fn write_bytes_name(&self, rel: &[u8], contents: impl AsRef<[u8]>) -> PathBuf {
        self.write(OsStr::from_bytes(rel), contents)
    }

    /// Writes an executable script.
    pub fn script(&self, rel: impl AsRef<Path>, body: &str) -> PathBuf {
        let p = self.write(rel, body);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    pub fn symlink(&self, target: impl AsRef<Path>, rel_link: impl AsRef<Path>) -> PathBuf {
        let link = self.path(rel_link);
        std::os::unix::fs::symlink(target, &link).unwrap();
        link
    }

    /// A fresh empty directory inside the tree for jobs to write into (e.g. argv dumps).
    /// Keep it outside the walked roots, or filter it out.
    pub fn out_dir(&self, rel: &str) -> String {
        let p = self.mkdir(rel);
        p.to_str().expect("temp path is UTF-8").to_string()
    }

    pub fn exists(&self, rel: impl AsRef<Path>) -> bool {
        self.path(rel).symlink_metadata().is_ok()
    }

    /// A `Command` for fanout with the tree as working directory and stdin null.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(FANOUT);
        cmd.args(args)
            .current_dir(self.root())
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs fanout with these arguments and stdin null.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        run_command(self.command(args), None)
    }

    /// Runs fanout with these arguments and the given bytes on stdin.
    pub fn run_stdin<S: AsRef<OsStr>>(&self, args: &[S], stdin: &[u8]) -> Output {
        run_command(self.command(args), Some(stdin))
    }

    /// Runs `sh -c SCRIPT` in the tree, with `$FANOUT` set to the binary (for pipelines).
    pub fn sh(&self, script: &str) -> Output {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .current_dir(self.root())
            .env("FANOUT", FANOUT)
            .stdin(Stdio::null());
        run_command(cmd, None)
    }

    /// Runs `sh` with a script on its standard input (multi-line quoted words work).
    pub fn sh_stdin(&self, script: &[u8]) -> Output {
        let mut cmd = Command::new("sh");
        cmd.current_dir(self.root());
        run_command(cmd, Some(script))
    }

    /// Starts fanout in the background (stdout and stderr captured).
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Running {
        Running::start(self.command(args))
    }

    /// Every file (not directory) below the root, relative, sorted; used to check that nothing
    /// was written.
    pub fn list_files(&self) -> Vec<PathBuf> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root(), self.root(), &mut out);
        out.sort();
        out
    }
}

/// What a finished process left behind.
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit code, None when killed by a signal.
    pub code: Option<i32>,
    /// Terminating signal, if any.
    pub signal: Option<i32>,
    pub elapsed: Duration,
    pub what: String,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Stdout lines (lossy), without the trailing newline.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_str().lines().map(str::to_string).collect()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr_str().lines().map(str::to_string).collect()
    }

    /// A readable dump of everything, for failure messages.
    pub fn dump(&self) -> String {
        let clip = |s: String| {
            if s.len() > 6000 {
                let mut cut = 6000;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!("{}… [{} bytes in all]", &s[..cut], s.len())
            } else {
                s
            }
        };
        format!(
            "command: {}\nexit code: {:?}, signal: {:?}, elapsed: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.what,
            self.code,
            self.signal,
            self.elapsed,
            clip(self.stdout_str()),
            clip(self.stderr_str())
        )
    }

    /// Asserts the exit code. 130 and 143 mean what a shell reports for them: after its
    /// clean shutdown fanout dies by SIGINT or SIGTERM itself (so callers see a signal death).
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        let (want_code, want_signal) = match code {
            130 => (None, Some(libc::SIGINT)),
            143 => (None, Some(libc::SIGTERM)),
            c => (Some(c), None),
        };
        assert_eq!(
            (self.code, self.signal),
            (want_code, want_signal),
            "expected exit code {code} (as (code, signal)){}",
            self.dump()
        );
        self
    }

    /// Asserts success (exit 0).
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        self.assert_code(0)
    }

    /// Compares stdout lines with `expected` after sorting both.
    #[track_caller]
    pub fn assert_stdout_sorted(&self, expected: &[&str]) -> &Self {
        let mut actual = self.stdout_lines();
        actual.sort();
        let mut want: Vec<String> = expected
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        want.sort();
        if actual != want {
            panic!(
                "stdout lines (sorted) differ\n{}\n{}",
                diff(&want, &actual),
                self.dump()
            );
        }
        self
    }

    /// Compares stdout lines with `expected` in order.
    #[track_caller]
    pub fn assert_stdout_lines(&self, expected: &[&str]) -> &Self {
        let actual = self.stdout_lines();
        let want: Vec<String> = expected
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        if actual != want {
            panic!(
                "stdout lines differ (order matters)\n{}\n{}",
                diff(&want, &actual),
                self.dump()
            );
        }
        self
    }

    #[track_caller]
    pub fn assert_stdout_empty(&self) -> &Self {
        assert!(
            self.stdout.is_empty(),
            "expected empty stdout\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr_str().contains(needle),
            "expected stderr to contain {needle:?}\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stderr_str().contains(needle),
            "expected stderr NOT to contain {needle:?}\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn assert_no_panic(&self) -> &Self {
        self.assert_stderr_lacks("panicked")
            .assert_stderr_lacks("RUST_BACKTRACE")
    }
}

/// A line diff: lines only in `want` are prefixed `-`, only in `actual` `+`, common ` `.
pub fn diff(want: &[String], actual: &[String]) -> String {
    // Small inputs: a plain LCS table is fine.
    let (n, m) = (want.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if want[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::from("--- expected\n+++ actual\n");
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && want[i] == actual[j] {
            out.push_str(&format!("  {:?}\n", want[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {:?}\n", actual[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {:?}\n", want[i]));
            i += 1;
        }
    }
    out
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&format!("{a:?}"));
    }
    s
}

fn reader<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs a command to completion (with the suite's deadline), capturing stdout and stderr.
pub fn run_command(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let what = describe(&cmd);
    let journal = JournalWatch::of(&cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let mut running = Running::from_child(child, what);
    running.journal = journal;
    let out = running.wait();
    if let Some(w) = writer {
        let _ = w.join();
    }
    out
}

/// A process started in the background.
pub struct Running {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    started: Instant,
    what: String,
    /// The `--summary` journal the run writes, checked against the schema when it ends.
    journal: Option<JournalWatch>,
}

impl Running {
    /// Starts `cmd` with stdout and stderr captured.
    pub fn start(mut cmd: Command) -> Running {
        let what = describe(&cmd);
        let journal = JournalWatch::of(&cmd);
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let mut running = Running::from_child(child, what);
        running.journal = journal;
        running
    }

    fn from_child(mut child: Child, what: String) -> Running {
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);
        Running {
            child,
            stdout,
            stderr,
            started: Instant::now(),
            what,
            journal: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`INT`, `TERM`, …) with kill(1); no unsafe code needed.
    pub fn signal(&self, name: &str) {
        let st = Command::new("kill")
            .arg("-s")
            .arg(name)
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -s {name} {} failed", self.pid());
    }

    /// Whether the process has already exited (without reaping its output).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the process, killing it and failing the test after the deadline.
    pub fn wait(&mut self) -> Output {
        let status: ExitStatus = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if self.started.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let out = self.collect(None);
                panic!("process did not finish within {DEADLINE:?}\n{}", out.dump());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if let Some(journal) = self.journal.take() {
            journal.check(&self.what);
        }
        self.collect(Some(status))
    }

    fn collect(&mut self, status: Option<ExitStatus>) -> Output {
        let elapsed = self.started.elapsed();
        Output {
            stdout: self
                .stdout
                .take()
                .map(|h| h.join().unwrap())
                .unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap())
                .unwrap_or_default(),
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            elapsed,
            what: self.what.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// --summary journals

/// The `--summary` journal a fanout command line writes, as it was before the run: every
/// journal the suite's runs write is checked against `docs/journal.schema.json` when the run
/// ends (a journal the run did not touch, e.g. after a usage error, is left alone).
pub struct JournalWatch {
    path: PathBuf,
    before: Option<(u64, std::time::SystemTime)>,
}

impl JournalWatch {
    fn of(cmd: &Command) -> Option<JournalWatch> {
        if cmd.get_program() != OsStr::new(FANOUT) {
            return None;
        }
        let args: Vec<&OsStr> = cmd.get_args().take_while(|a| *a != "--").collect();
        let value = args.iter().enumerate().find_map(|(i, a)| {
            if *a == "--summary" {
                args.get(i + 1).map(|v| v.to_os_string())
            } else {
                a.as_bytes()
                    .strip_prefix(b"--summary=")
                    .map(|v| OsStr::from_bytes(v).to_os_string())
            }
        })?;
        let path = match cmd.get_current_dir() {
            Some(dir) => dir.join(value),
            None => PathBuf::from(value),
        };
        // `/dev/stdout` and the like are the test process's own streams, not a journal.
        if path.starts_with("/dev") || path.starts_with("/proc") {
            return None;
        }
        let before = stamp(&path);
        Some(JournalWatch { path, before })
    }

    fn check(self, what: &str) {
        let now = stamp(&self.path);
        if now.is_none() || now == self.before {
            return;
        }
        if let Err(errors) = validate_journal(&self.path) {
            panic!("the journal of `{what}` does not match docs/journal.schema.json:\n{errors}");
        }
    }
}

/// Size and modification time of a regular file.
fn stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let md = fs::metadata(path).ok().filter(fs::Metadata::is_file)?;
    Some((md.len(), md.modified().ok()?))
}

/// The journal schema, compiled once.
fn journal_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/journal.schema.json");
        let text = fs::read_to_string(path).expect("read docs/journal.schema.json");
        let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
        jsonschema::draft202012::new(&schema).expect("the schema is a valid draft 2020-12 schema")
    })
}

/// Validates every whole line of a journal (a line without its newline, left by a killed
/// run, is not a record yet); `Err` lists what does not match. Returns the lines checked.
pub fn validate_journal(path: &Path) -> Result<usize, String> {
    let bytes = fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let whole = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => &bytes[..=end],
        None => &[][..],
    };
    let mut problems = Vec::new();
    let mut checked = 0;
    for (n, line) in whole.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        checked += 1;
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("line {}: not JSON: {e}", n + 1));
                continue;
            }
        };
        for err in journal_validator().iter_errors(&value) {
            problems.push(format!(
                "line {}: {} at {}: {}",
                n + 1,
                err,
                err.instance_path(),
                String::from_utf8_lossy(line)
            ));
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems.join("\n"))
    }
}

/// Reads a `--summary` JSON Lines file into values (one per non-empty line), as a reader
/// joins them (docs/journal.md): the short `file` line of a file in a batch becomes the whole
/// record its `batch` line and it make. `journal_lines` reads the lines as written.
pub fn read_summary(path: impl AsRef<Path>) -> Vec<Value> {
    join_batches(journal_lines(path))
}

/// The lines of a `--summary` journal as written, one value per non-empty line.
pub fn journal_lines(path: impl AsRef<Path>) -> Vec<Value> {
    let path = path.as_ref();
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("read summary {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("summary line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// The journal's rule for the short line of a file in a batch (a `file` line of format
/// version 2): its record is the last `batch` line with its number, with the file's own
/// fields; its command is the batch's (the argv that ran). Fails on a short line without
/// its batch line before it.
pub fn join_batches(lines: Vec<Value>) -> Vec<Value> {
    let mut batches: std::collections::HashMap<i64, Value> = Default::default();
    lines
        .into_iter()
        .map(|line| {
            if line["type"] == "batch" {
                batches.insert(
                    line["batch"].as_i64().expect("a batch number"),
                    line.clone(),
                );
                return line;
            }
            if line["type"] != "file" || line["v"] != 2 {
                return line;
            }
            let number = line["batch"].as_i64().unwrap_or_else(|| panic!("{line}"));
            let batch = batches
                .get(&number)
                .unwrap_or_else(|| panic!("a short line before its batch line: {line}"));
            let mut whole = batch.as_object().expect("an object").clone();
            for (k, v) in line.as_object().expect("an object") {
                whole.insert(k.clone(), v.clone());
            }
            Value::Object(whole)
        })
        .collect()
}

/// The file records of a journal, read into fanout's own type.
pub fn typed_records(path: impl AsRef<Path>) -> Vec<fanout::record::JobRecord> {
    read_summary(path)
        .into_iter()
        .filter(|r| r["type"] == "file")
        .map(|r| serde_json::from_value(r.clone()).unwrap_or_else(|e| panic!("{e}: {r}")))
        .collect()
}

/// The `type: "file"` records of a journal.
pub fn file_records(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["type"] == "file")
        .cloned()
        .collect()
}

/// The final `type: "summary"` record; fails unless there is exactly one and it is last.
#[track_caller]
pub fn final_record(records: &[Value]) -> Value {
    let finals: Vec<&Value> = records.iter().filter(|r| r["type"] == "summary").collect();
    assert_eq!(finals.len(), 1, "expected one final record in {records:#?}");
    assert_eq!(
        records.last().map(|r| &r["type"]),
        Some(&Value::from("summary")),
        "final record must be last: {records:#?}"
    );
    finals[0].clone()
}

/// The file record whose `path` equals `path`.
#[track_caller]
pub fn record_for(records: &[Value], path: &str) -> Value {
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "file" && r["path"] == path)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one file record for {path:?} in {records:#?}"
    );
    found[0].clone()
}

/// The status counters of the final record, which must add up to its `total`.
pub const STATUS_COUNTERS: [&str; 8] = [
    "ok",
    "failed",
    "timeout",
    "invalid_output",
    "invalid_input",
    "skipped",
    "not_started",
    "interrupted",
];

/// Integer value of a key, failing when missing or not an integer.
#[track_caller]
pub fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key:?} is not an integer in {v}"))
}

/// Checks that the final record's counts add up to `total` and to the number of file records.
#[track_caller]
pub fn assert_counts_add_up(records: &[Value]) {
    let fin = final_record(records);
    let files = file_records(records).len() as i64;
    let sum: i64 = STATUS_COUNTERS.iter().map(|k| int(&fin, k)).sum();
    assert_eq!(int(&fin, "total"), files, "total vs file records: {fin}");
    assert_eq!(sum, files, "status counts must add up to total: {fin}");
    // And each counter matches the file records' statuses.
    for k in STATUS_COUNTERS {
        let n = file_records(records)
            .iter()
            .filter(|r| r["status"] == k)
            .count() as i64;
        assert_eq!(
            int(&fin, k),
            n,
            "counter {k:?} vs file records: {records:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// argv dumps (fixtures/bin/argv-dump.sh OUTDIR ARG... writes OUTDIR/<pid>.argv)

/// One job's arguments, as raw bytes.
pub type Argv = Vec<Vec<u8>>;

/// Reads every `*.argv` file in `dir` (NUL-terminated args); sorted, so runs can be compared.
pub fn read_argv_dumps(dir: impl AsRef<Path>) -> Vec<Argv> {
    let dir = dir.as_ref();
    let mut all = Vec::new();
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.extension() != Some(OsStr::new("argv")) {
            continue;
        }
        let bytes = fs::read(&p).unwrap();
        all.push(split_nul(&bytes));
    }
    all.sort();
    all
}

/// Splits NUL-terminated fields.
pub fn split_nul(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut fields: Vec<Vec<u8>> = bytes.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    // A trailing NUL leaves an empty last piece.
    if fields.last().is_some_and(Vec::is_empty) {
        fields.pop();
    }
    fields
}

/// Removes every dump in `dir`, to reuse it for a second run.
pub fn clear_dir(dir: impl AsRef<Path>) {
    for e in fs::read_dir(dir).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
}

/// Shows argv lists readably in failure messages.
pub fn show_argvs(argvs: &[Argv]) -> String {
    argvs
        .iter()
        .map(|a| {
            a.iter()
                .map(|x| format!("{:?}", OsStr::from_bytes(x)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Bytes of a path-like string.
pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Sorted set of byte strings.
pub fn set<I: IntoIterator<Item = Vec<u8>>>(items: I) -> BTreeSet<Vec<u8>> {
    items.into_iter().collect()
}

/// An OsString from raw bytes.
pub fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

/// Whether this is a CI run (`CI=true`, as `.ci/run` runs), where every test's tools are
/// installed and a missing one is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether `program` can be found on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Whether a test that needs `program` can run: true when it is installed; outside CI a
/// missing program prints one `skipped:` line and returns false; in CI (or when `required`
/// says so) a missing program fails the test, so CI never passes by skipping.
pub fn tool_or_skip(program: &str, what: &str, required: bool) -> bool {
    if on_path(program) {
        return true;
    }
    assert!(
        !(required || in_ci()),
        "{program} is not installed, and it is required here (CI=true): .ci/run installs it ({what})"
    );
    eprintln!("skipped: {program} is not installed ({what}; .ci/run installs it)");
    false
}
