//! The run core in-process, with a fake executor (as hyperfine tests its benchmark loop with a
//! `MockExecutor`): halting, keep-order, triage, requeues as the core sees them, lost output
//! and the end of the run, in milliseconds, without a process.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde_json::Value;

use super::run;
use crate::cancel::{Cancel, Level, Reason};
use crate::config::Config;
use crate::error::ExitStatus;
use crate::executor::{Done, Executor, Extra, Queue};
use crate::input::{Input, Notice};
use crate::output::{Io, Spool};
use crate::record::{JobRecord, Status};
use crate::walk::Source;

/// What the fake executor does with one input.
#[derive(Clone, Copy)]
struct Fate {
    status: Status,
    stdout: &'static str,
    stderr: &'static str,
    /// Stopped by the memory safety net and run again once (the core sees a notice, one
    /// record, and the count in the memory report).
    requeued: bool,
}

const OK: Fate = Fate {
    status: Status::Ok,
    stdout: "",
    stderr: "",
    requeued: false,
};

/// Turns each input into a record as its file name's fate says, one job at a time, starting
/// nothing once the run stops. With `reverse`, records are handed back in the reverse order of
/// the inputs (the last input finishes first).
#[derive(Default)]
struct Fake {
    fates: HashMap<&'static str, Fate>,
    reverse: bool,
    /// The file names of the inputs it ran, in order.
    ran: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn with(fates: &[(&'static str, Fate)]) -> Fake {
        Fake {
            fates: fates.iter().copied().collect(),
            ..Fake::default()
        }
    }

    fn ran(&self) -> Vec<String> {
        self.ran.lock().unwrap().clone()
    }
}

impl Executor for Fake {
    fn execute(&mut self, queue: &Queue<'_>) -> Result<Extra> {
        let mut extra = Extra::default();
        let mut finished = Vec::new();
        for input in queue.inputs() {
            if queue.ctx.cancel.no_new_jobs() {
                queue.hand_back(Done::bare(queue.ctx.not_started(input.job, &input.path)));
                continue;
            }
            let name = name_of(&input.path);
            self.ran.lock().unwrap().push(name.clone());
            let fate = self.fates.get(name.as_str()).copied().unwrap_or(OK);
            if fate.requeued {
                extra.memory.mem_requeues += 1;
                let msg = format!("{name}: requeued");
                let _ = queue.ctx.notices.send(Notice::Info(msg));
            }
            let done = finished_job(&input, fate);
            if self.reverse {
                finished.push(done);
            } else {
                queue.hand_back(done);
            }
        }
        for done in finished.into_iter().rev() {
            queue.hand_back(done);
        }
        Ok(extra)
    }
}

fn finished_job(input: &Input, fate: Fate) -> Done {
    let mut record = JobRecord::new(input.job, &input.path, fate.status);
    record.attempts = 1;
    // What --resume compares, as a real executor records it.
    if let Ok(md) = std::fs::metadata(&input.path) {
        use std::os::unix::fs::MetadataExt;
        record.file_size = Some(md.len());
        record.file_mtime_ns = Some(md.mtime() * 1_000_000_000 + md.mtime_nsec());
    }
    record.exit_code = Some(if fate.status == Status::Ok { 0 } else { 1 });
    let spool = |text: &str| {
        let mut s = Spool::default();
        s.push(text.as_bytes());
        s
    };
    record.stdout_bytes = Some(fate.stdout.len() as u64);
    record.stderr_bytes = Some(fate.stderr.len() as u64);
    Done {
        record,
        stdout: Some(spool(fate.stdout)),
        stderr: Some(spool(fate.stderr)),
        line: None,
    }
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// A stream a test reads back.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A pipe whose reader has gone.
struct Gone;

impl Write for Gone {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A directory of input files, and runs of the core over them.
struct Bench {
    dir: tempfile::TempDir,
    stdout: Buffer,
    stderr: Buffer,
}

/// What a run left: its exit status, its file records by name, its final record.
struct Ran {
    exit: ExitStatus,
    records: HashMap<String, JobRecord>,
    last: Value,
}

impl Ran {
    fn status(&self, name: &str) -> Status {
        self.records[name].status
    }
}

impl Bench {
    fn new(files: &[&str]) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), f.as_bytes()).unwrap();
        }
        Bench {
            dir,
            stdout: Buffer::default(),
            stderr: Buffer::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `fanout ARGS DIR -- true`, with a journal.
    fn config(&self, args: &[&str]) -> Config {
        self.config_for(args, &["true"])
    }

    /// `fanout ARGS DIR -- COMMAND`, with a journal.
    fn config_for(&self, args: &[&str], command: &[&str]) -> Config {
        let mut argv: Vec<OsString> = vec!["fanout".into(), "-q".into()];
        argv.extend(args.iter().map(OsString::from));
        argv.push("--summary".into());
        argv.push(self.path("run.jsonl").into());
        argv.extend([self.dir.path().into(), "--".into()]);
        argv.extend(command.iter().map(OsString::from));
        Config::from_cli(crate::cli::Cli::parse_args(argv).unwrap()).unwrap()
    }

    fn io(&self) -> Io {
        Io {
            stdout: Box::new(self.stdout.clone()),
            stderr: Box::new(self.stderr.clone()),
            header: None,
            started: None,
            files: false,
        }
    }

    /// Runs the core over `names`, in that order.
    fn run(&self, args: &[&str], names: &[&str], fake: &mut Fake) -> Ran {
        self.run_config(&self.config(args), names, fake)
    }

    fn run_config(&self, config: &Config, names: &[&str], fake: &mut Fake) -> Ran {
        self.run_with(config, names, fake, self.io(), &Cancel::default())
    }

    fn run_with(
        &self,
        config: &Config,
        names: &[&str],
        fake: &mut Fake,
        io: Io,
        cancel: &Cancel,
    ) -> Ran {
        let inputs = self.inputs(names);
        let exit = run(config, fake, Source::Given(inputs), io, cancel).unwrap();
        let lines = std::fs::read_to_string(self.path("run.jsonl")).unwrap_or_default();
        let values: Vec<Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let records = values
            .iter()
            .filter(|v| v["type"] == "file")
            .map(|v| serde_json::from_value::<JobRecord>(v.clone()).unwrap())
            .map(|r| (name_of(Path::new(&r.path)), r))
            .collect();
        let last = values.last().cloned().unwrap_or(Value::Null);
        Ran {
            exit,
            records,
            last,
        }
    }

    /// Runs the core over inputs made by the test; returns the exit status.
    fn run_inputs(&self, config: &Config, inputs: Vec<Input>, fake: &mut Fake) -> ExitStatus {
        run(
            config,
            fake,
            Source::Given(inputs),
            self.io(),
            &Cancel::default(),
        )
        .unwrap()
    }

    fn inputs(&self, names: &[&str]) -> Vec<Input> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Input::new(i as u64 + 1, self.path(n)))
            .collect()
    }
}

fn failing() -> Fate {
    Fate {
        status: Status::Failed,
        ..OK
    }
}

#[test]
fn without_halt_every_input_runs_after_a_failure() {
    let bench = Bench::new(&["a", "b", "c"]);
    let mut fake = Fake::with(&[("a", failing())]);
    let ran = bench.run(&["-j", "2"], &["a", "b", "c"], &mut fake);
    assert_eq!(fake.ran(), ["a", "b", "c"]);
    assert_eq!(ran.exit, ExitStatus::Failure);
    assert_eq!(ran.last["stopped_by"], Value::Null);
    assert_eq!(
        (ran.last["ok"].as_u64(), ran.last["failed"].as_u64()),
        (Some(2), Some(1))
    );
}

#[test]
fn halt_soon_starts_nothing_after_the_first_failure() {
    for halt in ["soon", "now"] {
        let bench = Bench::new(&["a", "b", "c", "d"]);
        let mut fake = Fake::with(&[("b", failing())]);
        let ran = bench.run(
            &["-j", "2", "--halt", halt],
            &["a", "b", "c", "d"],
            &mut fake,
        );
        assert_eq!(fake.ran(), ["a", "b"], "--halt {halt}");
        assert_eq!(ran.status("a"), Status::Ok);
        assert_eq!(ran.status("b"), Status::Failed);
        for later in ["c", "d"] {
            let r = &ran.records[later];
            assert_eq!(r.status, Status::NotStarted, "--halt {halt}");
            assert_eq!(
                r.reason.as_deref(),
                Some("not started: --halt after a failure")
            );
        }
        assert_eq!(ran.exit, ExitStatus::Failure);
        assert_eq!(ran.last["stopped_by"], "halt");
        assert_eq!(ran.last["total"], 4);
    }
}

#[test]
fn a_record_triage_makes_halts_the_run_too() {
    // An input the walk could not use fails in triage, before any executor: --halt applies.
    let bench = Bench::new(&["a", "b"]);
    let config = bench.config(&["-j", "2", "--halt", "soon"]);
    let mut inputs = bench.inputs(&["a", "b"]);
    inputs[0].problem = Some("no such file".into());
    let mut fake = Fake::default();
    let exit = bench.run_inputs(&config, inputs, &mut fake);
    assert!(fake.ran().is_empty(), "{:?}", fake.ran());
    assert_eq!(exit, ExitStatus::Failure);
}

#[test]
fn keep_order_prints_in_input_order_whatever_order_jobs_end_in() {
    let out = |s| Fate { stdout: s, ..OK };
    let fates = [("a", out("a\n")), ("b", out("b\n")), ("c", out("c\n"))];
    // Without -k, output comes as jobs end.
    let cases: [(&[&str], &str); 3] = [
        (&["-j", "2", "-k"], "a\nb\nc\n"),
        (&["-j", "2", "--keep-order"], "a\nb\nc\n"),
        (&["-j", "2"], "c\nb\na\n"),
    ];
    for (args, want) in cases {
        let bench = Bench::new(&["a", "b", "c"]);
        let mut fake = Fake::with(&fates);
        fake.reverse = true;
        let ran = bench.run(args, &["a", "b", "c"], &mut fake);
        assert_eq!(bench.stdout.text(), want, "{args:?}");
        assert_eq!(ran.exit, ExitStatus::Success);
        assert_eq!(ran.records.len(), 3);
    }
}

#[test]
fn keep_order_does_not_hold_back_the_record_of_a_job_without_output() {
    // c (no output) ends first: its record is in the journal before a's and b's.
    let out = |s| Fate { stdout: s, ..OK };
    let bench = Bench::new(&["a", "b", "c"]);
    let mut fake = Fake::with(&[("a", out("a\n")), ("b", out("b\n"))]);
    fake.reverse = true;
    bench.run(&["-j", "2", "-k"], &["a", "b", "c"], &mut fake);
    let journal = std::fs::read_to_string(bench.path("run.jsonl")).unwrap();
    let order: Vec<u64> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).unwrap()["job"].as_u64())
        .collect();
    assert_eq!(order, [3, 1, 2]);
    assert_eq!(bench.stdout.text(), "a\nb\n");
}

#[test]
fn triage_settles_problems_duplicates_and_stops_without_the_executor() {
    let bench = Bench::new(&["a", "b", "c"]);
    let config = bench.config(&["-j", "2"]);
    let mut inputs = bench.inputs(&["a", "b", "c"]);
    inputs[0].problem = Some("not a regular file".into());
    inputs[1].duplicate_of = Some(bench.path("c"));
    let mut fake = Fake::default();
    let exit = bench.run_inputs(&config, inputs, &mut fake);
    assert_eq!(fake.ran(), ["c"]);
    assert_eq!(exit, ExitStatus::Failure);
    // A run stopped before it starts: every input gets its not_started record from triage.
    let cancel = Cancel::default();
    cancel.raise(Level::Drain, Reason::Signal(libc::SIGHUP));
    let mut fake = Fake::default();
    let ran = bench.run_with(&config, &["a", "b", "c"], &mut fake, bench.io(), &cancel);
    assert!(fake.ran().is_empty());
    assert!(ran.records.values().all(|r| r.status == Status::NotStarted));
    assert_eq!(ran.last["stopped_by"], "SIGHUP");
}

#[test]
fn resume_skips_what_the_last_run_finished_unchanged() {
    let bench = Bench::new(&["a", "b", "c"]);
    let mut fake = Fake::with(&[("b", failing())]);
    bench.run(&["-j", "2"], &["a", "b", "c"], &mut fake);
    std::fs::rename(bench.path("run.jsonl"), bench.path("first.jsonl")).unwrap();
    let first = bench.path("first.jsonl");
    let args = ["-j", "2", "--resume", first.to_str().unwrap()];
    let mut fake = Fake::default();
    let ran = bench.run(&args, &["a", "b", "c"], &mut fake);
    assert_eq!(fake.ran(), ["b"], "only the failed file runs again");
    assert_eq!(ran.status("a"), Status::Skipped);
    assert_eq!(ran.status("b"), Status::Ok);
    assert_eq!(ran.last["skipped"], 2);
    assert_eq!(ran.exit, ExitStatus::Success);
}

#[test]
fn update_skips_inputs_whose_target_is_newer() {
    let bench = Bench::new(&["a", "b"]);
    std::fs::create_dir(bench.path("out")).unwrap();
    // b's target is written after b (a clock tick later: equal times count as stale): up to
    // date; a has none.
    std::fs::write(bench.path("out/b"), "old").unwrap();
    let earlier = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let input = std::fs::File::options()
        .write(true)
        .open(bench.path("b"))
        .unwrap();
    input.set_modified(earlier).unwrap();
    let template = format!("{}/out/{{/}}", bench.dir.path().display());
    let config = bench.config_for(&["-j", "2", "-o", &template, "-u"], &["cp", "{}", "{out}"]);
    let mut fake = Fake::default();
    let ran = bench.run_config(&config, &["a", "b"], &mut fake);
    assert_eq!(fake.ran(), ["a"]);
    let b = &ran.records["b"];
    assert_eq!(b.status, Status::Skipped);
    assert_eq!(b.reason.as_deref(), Some("up to date"));
    assert_eq!(
        b.output.as_deref(),
        Some(bench.path("out/b").to_str().unwrap())
    );
}

#[test]
fn a_requeued_job_has_one_record_and_the_count_reaches_the_final_record() {
    let bench = Bench::new(&["a", "big"]);
    let requeued = Fate {
        requeued: true,
        ..OK
    };
    let mut fake = Fake::with(&[("big", requeued)]);
    let ran = bench.run(&["-j", "2"], &["a", "big"], &mut fake);
    assert_eq!(ran.records.len(), 2);
    assert_eq!(ran.status("big"), Status::Ok);
    assert_eq!(ran.last["mem_requeues"], 1);
    assert_eq!(ran.last["total"], 2);
}

#[test]
fn output_to_a_stream_whose_reader_has_gone_is_never_ok() {
    let bench = Bench::new(&["a", "b"]);
    let config = bench.config(&["-j", "2"]);
    let err = |s| Fate { stderr: s, ..OK };
    let mut fake = Fake::with(&[("a", err("a\n")), ("b", err("b\n"))]);
    let mut io = bench.io();
    io.stderr = Box::new(Gone);
    let ran = bench.run_with(&config, &["a", "b"], &mut fake, io, &Cancel::default());
    assert_eq!(ran.exit, ExitStatus::ClosedStdout, "141, as SIGPIPE");
    assert_eq!(ran.status("a"), Status::Failed);
    let reason = ran.records["a"].reason.clone().unwrap();
    assert!(reason.contains("not delivered"), "{reason}");
    assert_eq!(ran.last["stopped_by"], "closed_stderr");
    assert!(ran.records.values().all(|r| r.status != Status::Ok));
}

#[test]
fn the_final_record_adds_up_and_the_exit_status_follows_the_records() {
    let bench = Bench::new(&["a", "b", "c"]);
    let mut fake = Fake::default();
    let ran = bench.run(&["-j", "2"], &["a", "b", "c"], &mut fake);
    assert_eq!(ran.exit, ExitStatus::Success);
    assert_eq!(ran.last["type"], "summary");
    assert_eq!(
        (ran.last["total"].as_u64(), ran.last["ok"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(ran.last["complete"], true);
    assert_eq!(ran.last["exit_code"], 0);
}

#[test]
fn a_dry_run_writes_no_journal_and_fails_nothing() {
    let bench = Bench::new(&["a", "b"]);
    let config = bench.config(&["-n"]);
    let mut fake = Fake::with(&[("a", failing())]);
    let ran = bench.run_config(&config, &["a", "b"], &mut fake);
    assert_eq!(ran.exit, ExitStatus::Success);
    assert!(!bench.path("run.jsonl").exists());
}
