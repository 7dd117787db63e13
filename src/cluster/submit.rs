//! `--executor slurm`: walk and plan here, submit one job array, watch it, and report.
//!
//! The submitter walks exactly as a local run does, skips what `--resume` says is done, weighs
//! the inputs (parquet footers) and deals them into shards, heaviest first onto the lightest
//! shard. It writes the plan, submits `sbatch --array=0-(N-1)` and then follows the shards'
//! journals as they grow, relaying each job's output and record as it arrives. squeue tells
//! when tasks end; a task that ended without a record for some of its files (killed for
//! memory, time limit, node failure, cancelled) has those files reported with Slurm's reason.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::unbounded;

use super::plan::{Layout, Plan, PlannedFile};
use super::slurm::{Slurm, Stop, TaskState};
use super::WORKER_MEM;
use crate::cancel::{self, Cancel, Level, Reason};
use crate::cli::Halt;
use crate::config::Config;
use crate::error::{print_notice, ExitStatus};
use crate::memory::{self, human};
use crate::progress::Progress;
use crate::resume::Resume;
use crate::summary::{counted, JobRecord, Journal, MemoryReport, Status, Totals};
use crate::template::{display_argv, shell_quote, JobValues};
use crate::walk::{self, Input, Notice, WalkReport};

/// Array tasks when `--shards` is not given: min(files, this).
const DEFAULT_SHARDS: usize = 32;
/// How often the shards' files are read.
const READ_EVERY: Duration = Duration::from_millis(200);
/// How often squeue is asked (it goes to the controller: not too often).
const ASK_EVERY: Duration = Duration::from_secs(1);
/// How long to wait for an ended task's last records to show up (shared file systems cache).
const SETTLE: Duration = Duration::from_secs(5);
/// After a second Ctrl-C: how long to wait for Slurm to kill the tasks.
const HARD_WAIT: Duration = Duration::from_secs(20);
/// Lines of a task's log kept to explain its end.
const LOG_LINES: usize = 20;

/// The inputs, triaged and dealt into shards.
struct Dealt {
    /// Records decided before submitting (skipped by --resume, bad inputs).
    early: Vec<JobRecord>,
    shards: Vec<Vec<PlannedFile>>,
    /// `--mem` of each task.
    task_mem: u64,
    walk: WalkReport,
}

pub(crate) fn run(config: &Config) -> Result<ExitStatus> {
    let slurm = Slurm::find()?;
    let cancel = Arc::new(Cancel::new().context("cannot create a pipe")?);
    cancel::watch_signals(Arc::clone(&cancel)).context("cannot install signal handlers")?;
    let start = Instant::now();
    let resume = Resume::for_run(config.resume.as_deref(), config.quiet)?;
    let mut journal = match &config.summary {
        Some(path) => Some(
            Journal::create(path)
                .with_context(|| format!("cannot write the summary {}", path.display()))?,
        ),
        None => None,
    };
    let dealt = deal(config, &cancel, resume.as_ref())?;
    let mut watch = Watch::new(config, &cancel, journal.as_mut());
    for record in &dealt.early {
        watch.accept(record.clone());
    }
    watch.totals.walk_errors += dealt.walk.errors;
    let files: usize = dealt.shards.iter().map(Vec::len).sum();
    if files == 0 || cancel.no_new_jobs() {
        for f in dealt.shards.iter().flatten() {
            let mut r = JobRecord::new(f.job, &f.path()?, Status::NotStarted);
            r.reason = Some("not started: interrupted before the job array was submitted".into());
            watch.accept(r);
        }
        if watch.totals.total() == 0 && !config.quiet {
            print_notice(&crate::exec::nothing_matched(dealt.walk.hint.as_deref()));
        }
        return watch.finish(start, None);
    }

    let layout = Layout {
        dir: plan_dir(config)?,
    };
    // A plan directory holds one run: old records would be taken for this run's.
    let existed = layout.dir.exists();
    if existed
        && std::fs::read_dir(&layout.dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        anyhow::bail!(
            "--plan-dir {} is not empty: give a new or empty directory",
            layout.dir.display()
        );
    }
    let plan = Plan::new(config, dealt.shards.len(), files as u64, dealt.task_mem)?;
    let args = sbatch_args(config, &plan, &layout)?;
    write_plan(&layout, &plan, &dealt.shards, &args)?;
    let mut argv = args.clone();
    argv.push(layout.script().into());
    let job = match slurm.submit(&argv) {
        Ok(job) => job,
        Err(err) => {
            // Nothing was submitted: take back what this run wrote (the directory was new or
            // empty).
            let _ = std::fs::remove_dir_all(&layout.dir);
            if existed {
                let _ = std::fs::create_dir(&layout.dir);
            }
            // The default parent, `.fanout/`, goes too if nothing else is in it.
            if let Some(parent) = layout.dir.parent().filter(|p| p.ends_with(".fanout")) {
                let _ = std::fs::remove_dir(parent);
            }
            return Err(err);
        }
    };
    if !config.quiet {
        print_notice(&format!(
            "submitted Slurm job {job}: {} in {} ({} and {} each); plan, records and logs in {}",
            counted(files as u64, "file"),
            counted(plan.shards as u64, "array task"),
            human(plan.task_mem_bytes),
            counted((plan.jobs * plan.cpus_per_job) as u64, "CPU"),
            layout.dir.display()
        ));
    }
    watch.follow(&slurm, &job, &layout, dealt.shards)?;
    watch.finish(start, Some((&job, &layout)))
}

/// `--dry-run --executor slurm`: the sbatch command, the script and the shard plan (each
/// shard's commands, one shell-quoted line each, as the workers will run them) on stdout;
/// nothing is written and nothing submitted.
pub(crate) fn dry_run(config: &Config) -> Result<ExitStatus> {
    let cancel = Cancel::default();
    let resume = config.resume.as_deref().map(Resume::load).transpose()?;
    let dealt = deal(config, &cancel, resume.as_ref())?;
    let files: usize = dealt.shards.iter().map(Vec::len).sum();
    if files == 0 {
        print_notice(&crate::exec::nothing_matched(dealt.walk.hint.as_deref()));
        return Ok(if dealt.walk.errors > 0 {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        });
    }
    let layout = Layout {
        dir: plan_dir(config)?,
    };
    let plan = Plan::new(config, dealt.shards.len(), files as u64, dealt.task_mem)?;
    let args = sbatch_args(config, &plan, &layout)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut sbatch = b"sbatch --parsable".to_vec();
    for a in args.iter().chain(std::iter::once(&layout.script().into())) {
        sbatch.push(b' ');
        sbatch.extend_from_slice(&shell_quote(a.as_encoded_bytes()));
    }
    let result = (|| -> io::Result<()> {
        out.write_all(b"# fanout --executor slurm, dry run: nothing is written or submitted\n# ")?;
        out.write_all(&sbatch)?;
        out.write_all(b"\n# ")?;
        out.write_all(layout.script().as_os_str().as_encoded_bytes())?;
        out.write_all(b":\n")?;
        out.write_all(&script(&plan, &layout, &sbatch))?;
        for (k, shard) in dealt.shards.iter().enumerate() {
            let weight: u64 = shard.iter().map(|f| f.weight_bytes).sum();
            writeln!(
                out,
                "# shard {k}: {}, weight {}",
                counted(shard.len() as u64, "file"),
                human(weight)
            )?;
            for f in shard {
                let path = f.path().map_err(io::Error::other)?;
                let argv = config.template.expand(&JobValues {
                    path: &path,
                    job: f.job,
                    slot: 1,
                    threads: config.threads,
                    out: config.in_place.as_ref().map(|_| Path::new("{out}")),
                    mem_mib: config.mem_per_job.unwrap_or(memory::prior(f.weight_bytes)) >> 20,
                });
                out.write_all(&display_argv(&argv))?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    })();
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitStatus::ClosedStdout),
        other => other.context("cannot write to standard output")?,
    }
    print_notice(&format!(
        "dry run: {files} files in {} array tasks of {} jobs at once, --mem={} and --cpus-per-task={} each; {} skipped, {} not runnable",
        plan.shards,
        plan.jobs,
        human(plan.task_mem_bytes),
        plan.jobs * plan.cpus_per_job,
        dealt.early.iter().filter(|r| r.status == Status::Skipped).count(),
        dealt.early.iter().filter(|r| r.status != Status::Skipped).count(),
    ));
    Ok(
        if dealt.walk.errors > 0 || dealt.early.iter().any(|r| r.status.is_failure()) {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        },
    )
}

/// Walks, triages and deals the inputs into shards.
fn deal(config: &Config, cancel: &Cancel, resume: Option<&Resume>) -> Result<Dealt> {
    let (inputs, walk) = discover(config, cancel)?;
    let mut early = Vec::new();
    let mut todo = Vec::new();
    for input in inputs {
        if let Some(problem) = &input.problem {
            let mut r = JobRecord::new(input.job, &input.path, Status::Failed);
            r.reason = Some(problem.clone());
            early.push(r);
        } else if let Some((reason, id)) = resume.and_then(|r| r.skip(&input.path)) {
            let mut r = JobRecord::new(input.job, &input.path, Status::Skipped);
            r.reason = Some(reason);
            r.file_size = Some(id.size);
            r.file_mtime_ns = Some(id.mtime_ns);
            early.push(r);
        } else {
            todo.push(input);
        }
    }
    {
        use rayon::prelude::*;
        todo.par_iter_mut()
            .for_each(|i| i.weight = Some(crate::parquet::weight(&i.path)));
    }
    let count = config
        .slurm
        .as_ref()
        .and_then(|s| s.shards)
        .unwrap_or(DEFAULT_SHARDS)
        .min(todo.len())
        .max(1);
    let heaviest = todo.iter().filter_map(|i| i.weight).max().unwrap_or(0);
    let per_job = config.mem_per_job.unwrap_or(memory::prior(heaviest));
    let budget = match config.mem_limit {
        Some(memory::Amount::Bytes(b)) => b,
        _ => per_job.saturating_mul(config.jobs as u64),
    };
    let task_mem = (budget + WORKER_MEM).div_ceil(1 << 20) << 20;
    Ok(Dealt {
        early,
        shards: assign(todo, count),
        task_mem,
        walk,
    })
}

/// Runs the walk to the end and returns every input.
fn discover(config: &Config, cancel: &Cancel) -> Result<(Vec<Input>, WalkReport)> {
    let (tx, rx) = unbounded();
    let (ntx, nrx) = unbounded();
    let found = AtomicU64::new(0);
    let report = std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let r = walk::scan(&config.walk, &tx, &ntx, cancel, &found);
            drop(tx);
            drop(ntx);
            r
        });
        let mut inputs = Vec::new();
        for input in rx.iter() {
            inputs.push(input);
            for n in nrx.try_iter() {
                let (Notice::Error(m) | Notice::Info(m)) = n;
                print_notice(&m);
            }
        }
        for n in nrx.iter() {
            let (Notice::Error(m) | Notice::Info(m)) = n;
            print_notice(&m);
        }
        walker
            .join()
            .expect("walker thread")
            .map(|report| (inputs, report))
    })?;
    Ok(report)
}

/// Deals inputs into `count` shards: heaviest first, each to the lightest shard so far. Each
/// shard keeps its files in job order.
fn assign(mut todo: Vec<Input>, count: usize) -> Vec<Vec<PlannedFile>> {
    todo.sort_by_key(|i| (std::cmp::Reverse(i.weight.unwrap_or(0)), i.job));
    let mut shards: Vec<(u64, Vec<PlannedFile>)> = vec![(0, Vec::new()); count];
    for input in todo {
        let w = input.weight.unwrap_or(0);
        let lightest = (0..count)
            .min_by_key(|&k| (shards[k].0, shards[k].1.len(), k))
            .expect("at least one shard");
        shards[lightest].0 += w.max(1);
        shards[lightest]
            .1
            .push(PlannedFile::new(input.job, &input.path, w));
    }
    shards
        .into_iter()
        .map(|(_, mut files)| {
            files.sort_by_key(|f| f.job);
            files
        })
        .filter(|files| !files.is_empty())
        .collect()
}

fn plan_dir(config: &Config) -> Result<PathBuf> {
    let given = config.slurm.as_ref().and_then(|s| s.plan_dir.clone());
    let dir = given.unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!(".fanout/slurm-{stamp}-{}", std::process::id()))
    });
    let dir =
        std::path::absolute(&dir).with_context(|| format!("bad --plan-dir {}", dir.display()))?;
    if dir.as_os_str().as_encoded_bytes().contains(&b'\\') {
        anyhow::bail!(
            "the plan directory {} has a backslash, which turns off Slurm's %a in log names: choose another --plan-dir",
            dir.display()
        );
    }
    Ok(dir)
}

/// sbatch's options (the script comes last).
fn sbatch_args(config: &Config, plan: &Plan, layout: &Layout) -> Result<Vec<OsString>> {
    let mut args: Vec<OsString> = vec![
        "--job-name=fanout".into(),
        format!("--array=0-{}", plan.shards - 1).into(),
        format!("--cpus-per-task={}", plan.jobs * plan.cpus_per_job).into(),
    ];
    // sbatch refuses --mem together with --mem-per-cpu or --mem-per-gpu: the user's wins.
    let user_mem = config
        .slurm
        .as_ref()
        .is_some_and(|s| s.args.iter().any(|a| a.starts_with("--mem")));
    if !user_mem {
        args.push(format!("--mem={}M", plan.task_mem_bytes >> 20).into());
    }
    // A requeued task would start its journal again from the top.
    args.push("--no-requeue".into());
    for flag in ["--output=", "--error="] {
        let mut a = OsString::from(flag);
        a.push(layout.log_pattern());
        args.push(a);
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut chdir = OsString::from("--chdir=");
    chdir.push(&cwd);
    args.push(chdir);
    if let Some(s) = &config.slurm {
        args.extend(s.args.iter().map(OsString::from));
    }
    Ok(args)
}

/// The batch script: every task runs `fanout worker` on its shard.
fn script(plan: &Plan, layout: &Layout, sbatch: &[u8]) -> Vec<u8> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("fanout"));
    let mut s = b"#!/bin/sh\n".to_vec();
    s.extend_from_slice(
        format!(
            "# fanout: {} in {}; submitted with:\n#   ",
            counted(plan.files, "file"),
            counted(plan.shards as u64, "array task")
        )
        .as_bytes(),
    );
    // A comment line: a newline in a path must not end it.
    s.extend(
        sbatch
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b'?' } else { b }),
    );
    s.extend_from_slice(b"\nexec ");
    s.extend_from_slice(&shell_quote(exe.as_os_str().as_encoded_bytes()));
    s.extend_from_slice(b" worker --plan ");
    s.extend_from_slice(&shell_quote(layout.dir.as_os_str().as_encoded_bytes()));
    s.extend_from_slice(b" --shard \"$SLURM_ARRAY_TASK_ID\"\n");
    s
}

fn write_plan(
    layout: &Layout,
    plan: &Plan,
    shards: &[Vec<PlannedFile>],
    args: &[OsString],
) -> Result<()> {
    layout.create()?;
    plan.save(&layout.dir)?;
    for (k, files) in shards.iter().enumerate() {
        layout.write_inputs(k, files)?;
    }
    let mut sbatch = b"sbatch --parsable".to_vec();
    for a in args.iter().chain(std::iter::once(&layout.script().into())) {
        sbatch.push(b' ');
        sbatch.extend_from_slice(&shell_quote(a.as_encoded_bytes()));
    }
    let path = layout.script();
    std::fs::write(&path, script(plan, layout, &sbatch))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A file that another process appends to, read as it grows.
struct Tail {
    path: PathBuf,
    file: Option<File>,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            file: None,
            partial: Vec::new(),
        }
    }

    fn open(&mut self) -> Option<&mut File> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        self.file.as_mut()
    }

    /// Complete new lines.
    fn lines(&mut self) -> Vec<Vec<u8>> {
        let mut buf = std::mem::take(&mut self.partial);
        if let Some(f) = self.open() {
            let _ = f.read_to_end(&mut buf);
        }
        let mut lines: Vec<Vec<u8>> = buf.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        self.partial = lines.pop().unwrap_or_default();
        lines
    }

    /// Bytes written but not yet read.
    fn available(&mut self) -> u64 {
        let Some(f) = self.open() else { return 0 };
        let pos = f.stream_position().unwrap_or(0);
        f.metadata().map_or(0, |m| m.len().saturating_sub(pos))
    }

    /// Copies the next `n` bytes (one job's output) to `out`. Whatever happens, reading goes on
    /// after those `n` bytes, so the next job's output stays aligned with its record.
    fn relay(&mut self, n: u64, out: &mut dyn Write) -> io::Result<()> {
        let Some(f) = self.open() else { return Ok(()) };
        let start = f.stream_position()?;
        let copied = io::copy(&mut Read::by_ref(f).take(n), out).and_then(|_| out.flush());
        f.seek(SeekFrom::Start(start + n))?;
        copied
    }
}

/// What the submitter knows of one array task.
struct Shard {
    index: usize,
    files: Vec<PlannedFile>,
    recorded: HashSet<u64>,
    records: Tail,
    stdout: Tail,
    stderr: Tail,
    log: Tail,
    started_log: PathBuf,
    /// Output sizes of recorded jobs not yet relayed, per job, stdout and stderr (a shared
    /// file system may show the bytes later than the record).
    owed: [VecDeque<u64>; 2],
    log_lines: VecDeque<String>,
    started: bool,
    summary: Option<serde_json::Value>,
    state: Option<TaskState>,
    signalled: bool,
}

impl Shard {
    fn ended(&self) -> bool {
        self.state.as_ref().is_some_and(TaskState::ended)
    }
}

/// Follows the array and turns what arrives into the usual records, output and report.
struct Watch<'a> {
    config: &'a Config,
    cancel: &'a Cancel,
    journal: Option<&'a mut Journal>,
    journal_failed: bool,
    totals: Totals,
    progress: Progress,
    total_files: u64,
    stdout_closed: bool,
    shards: Vec<Shard>,
    /// How far the stop has gone: what has been asked of Slurm.
    stop_sent: Level,
    /// Set once fanout itself cancelled tasks.
    cancelled: bool,
}

impl<'a> Watch<'a> {
    fn new(config: &'a Config, cancel: &'a Cancel, journal: Option<&'a mut Journal>) -> Watch<'a> {
        Watch {
            config,
            cancel,
            journal,
            journal_failed: false,
            totals: Totals::default(),
            progress: Progress::new(config.progress),
            total_files: 0,
            stdout_closed: false,
            shards: Vec::new(),
            stop_sent: Level::Run,
            cancelled: false,
        }
    }

    /// One finished file: into the journal and the totals.
    fn accept(&mut self, record: JobRecord) {
        if let Some(j) = self.journal.as_deref_mut() {
            if let Err(err) = j.record(&record) {
                if !self.journal_failed {
                    self.journal_failed = true;
                    print_notice(&format!(
                        "cannot write the summary {}: {err}",
                        j.path().display()
                    ));
                }
            }
        }
        let status = record.status;
        self.totals.add(&record);
        if status.is_failure() && !matches!(status, Status::NotStarted | Status::Interrupted) {
            match self.config.halt {
                Some(Halt::Soon) => self.cancel.raise(Level::Drain, Reason::Halt),
                Some(Halt::Now) => self.cancel.raise(Level::Stop, Reason::Halt),
                None => {}
            }
        }
    }

    fn follow(
        &mut self,
        slurm: &Slurm,
        job: &str,
        layout: &Layout,
        shards: Vec<Vec<PlannedFile>>,
    ) -> Result<()> {
        self.total_files = self.totals.total() + shards.iter().map(|s| s.len() as u64).sum::<u64>();
        self.shards = shards
            .into_iter()
            .enumerate()
            .map(|(k, files)| Shard {
                index: k,
                files,
                recorded: HashSet::new(),
                records: Tail::new(layout.records(k)),
                stdout: Tail::new(layout.stdout(k)),
                stderr: Tail::new(layout.stderr(k)),
                log: Tail::new(layout.log(k)),
                started_log: layout.started(k),
                owed: [VecDeque::new(), VecDeque::new()],
                log_lines: VecDeque::new(),
                started: false,
                summary: None,
                state: None,
                signalled: false,
            })
            .collect();
        let mut asked: Option<Instant> = None;
        let mut squeue_errors = 0;
        // Whether squeue has ever listed the job: "unknown" only means "ended" after that.
        let mut seen = false;
        let mut hard_since: Option<Instant> = None;
        loop {
            for k in 0..self.shards.len() {
                self.pump(k);
            }
            self.stop_if_asked(slurm, job);
            if self.cancel.is_hard() && hard_since.is_none() {
                hard_since = Some(Instant::now());
            }
            if asked.is_none_or(|t| t.elapsed() >= ASK_EVERY) {
                asked = Some(Instant::now());
                match slurm.tasks(job) {
                    Ok(Some(tasks)) => {
                        squeue_errors = 0;
                        seen = true;
                        let mut listed = vec![false; self.shards.len()];
                        let mut rest = None;
                        for t in tasks {
                            if t.task == usize::MAX {
                                rest = Some(t);
                            } else if let Some(s) = self.shards.get_mut(t.task) {
                                listed[t.task] = true;
                                s.state = Some(t);
                            }
                        }
                        // The array's own line speaks for the tasks without one of their own.
                        if let Some(rest) = rest {
                            for (s, listed) in self.shards.iter_mut().zip(listed) {
                                if !listed {
                                    s.state = Some(TaskState {
                                        task: s.index,
                                        ..rest.clone()
                                    });
                                }
                            }
                        }
                    }
                    Ok(None) if !seen => {
                        // Not known yet (a controller that is slow to answer for a new job):
                        // ask again; it counts as an error if it goes on.
                        squeue_errors += 1;
                        if squeue_errors % 30 == 0 {
                            self.progress.suspend(|| {
                                print_notice(&format!(
                                    "squeue does not know job {job} (yet); asking again"
                                ))
                            });
                        }
                    }
                    Ok(None) => {
                        // Slurm forgot the job (it ended long enough ago): nothing will change.
                        for s in &mut self.shards {
                            if !s.ended() {
                                s.state = Some(TaskState {
                                    task: s.index,
                                    state: "ENDED".into(),
                                    reason: "no longer known to Slurm".into(),
                                    node: String::new(),
                                });
                            }
                        }
                    }
                    Err(err) => {
                        squeue_errors += 1;
                        if squeue_errors == 1 || squeue_errors % 30 == 0 {
                            self.progress.suspend(|| {
                                print_notice(&format!("{err:#} (asking again)"));
                            });
                        }
                    }
                }
                self.keep_stopping(slurm, job);
                self.show_progress();
            }
            if self.shards.iter().all(Shard::ended) {
                break;
            }
            if hard_since.is_some_and(|t| t.elapsed() >= HARD_WAIT) {
                self.progress.suspend(|| {
                    print_notice(&format!(
                        "stopped waiting for Slurm job {job}; check it with squeue"
                    ))
                });
                break;
            }
            std::thread::sleep(READ_EVERY);
        }
        // Records written just before a task ended may take a moment to show up.
        let settle = Instant::now();
        loop {
            for k in 0..self.shards.len() {
                self.pump(k);
            }
            let waiting = self.shards.iter().any(|s| {
                s.summary.is_none()
                    && s.recorded.len() < s.files.len()
                    && s.state
                        .as_ref()
                        .is_some_and(|t| matches!(t.state.as_str(), "COMPLETED" | "FAILED"))
                    && s.log_lines.iter().all(|l| !l.contains("slurmstepd"))
            });
            if !waiting || settle.elapsed() >= SETTLE || self.cancel.is_hard() {
                break;
            }
            std::thread::sleep(READ_EVERY);
        }
        for k in 0..self.shards.len() {
            self.relay(k, true);
        }
        self.progress.finish();
        self.account_for_the_rest(slurm, job);
        Ok(())
    }

    /// Reads what shard `k` wrote since the last look.
    fn pump(&mut self, k: usize) {
        let lines = self.shards[k].records.lines();
        for line in lines {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line) else {
                continue;
            };
            match value.get("type").and_then(|t| t.as_str()) {
                Some("worker") => self.shards[k].started = true,
                Some("summary") => self.shards[k].summary = Some(value),
                Some("file") => {
                    let Ok(record) = serde_json::from_value::<JobRecord>(value) else {
                        continue;
                    };
                    let shard = &mut self.shards[k];
                    shard.started = true;
                    if !shard.recorded.insert(record.job) {
                        continue;
                    }
                    shard.owed[0].push_back(record.stdout_bytes.unwrap_or(0));
                    shard.owed[1].push_back(record.stderr_bytes.unwrap_or(0));
                    self.relay(k, false);
                    self.accept(record);
                    self.show_progress();
                }
                _ => {}
            }
        }
        self.relay(k, false);
        let log = self.shards[k].log.lines();
        for line in log {
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if text.is_empty() {
                continue;
            }
            if !self.config.quiet {
                let shown = text.strip_prefix("fanout: ").unwrap_or(&text);
                self.progress
                    .suspend(|| print_notice(&format!("shard {k}: {shown}")));
            }
            let lines = &mut self.shards[k].log_lines;
            if lines.len() == LOG_LINES {
                lines.pop_front();
            }
            lines.push_back(text);
        }
    }

    /// Relays the output owed for shard `k`'s recorded jobs, a whole job at a time: a job's
    /// output goes out only once all of it can be read (unless `all`, at the very end).
    fn relay(&mut self, k: usize, all: bool) {
        let shard = &mut self.shards[k];
        for stream in [1, 0] {
            while let Some(&n) = shard.owed[stream].front() {
                let tail = if stream == 0 {
                    &mut shard.stdout
                } else {
                    &mut shard.stderr
                };
                if n > 0 && tail.available() < n && !all {
                    break;
                }
                shard.owed[stream].pop_front();
                if n == 0 {
                    continue;
                }
                let result = if stream == 1 {
                    self.progress
                        .suspend(|| tail.relay(n, &mut io::stderr().lock()))
                } else if self.stdout_closed {
                    tail.relay(n, &mut io::sink())
                } else {
                    self.progress
                        .suspend(|| tail.relay(n, &mut io::stdout().lock()))
                };
                if let Err(e) = result {
                    if stream == 0 && e.kind() == io::ErrorKind::BrokenPipe && !self.stdout_closed {
                        self.stdout_closed = true;
                        self.cancel.raise(Level::Stop, Reason::ClosedStdout);
                    }
                }
            }
        }
    }

    fn show_progress(&self) {
        let running = self
            .shards
            .iter()
            .filter(|s| s.state.as_ref().is_some_and(|t| t.state == "RUNNING"))
            .count();
        self.progress.update(
            self.totals.total(),
            self.total_files,
            running as u64,
            self.totals.failed(),
        );
    }

    /// Passes a stop on to Slurm when the level rose: pending tasks are cancelled; running
    /// workers get SIGHUP (drain: their running jobs finish) or SIGTERM (their jobs are stopped,
    /// records written); a second Ctrl-C has Slurm kill everything.
    fn stop_if_asked(&mut self, slurm: &Slurm, job: &str) {
        let level = self.cancel.level();
        if level <= self.stop_sent {
            return;
        }
        self.stop_sent = level;
        self.cancelled = true;
        if !self.config.quiet {
            let what = match level {
                Level::Drain => "cancelling its pending tasks; running tasks finish their running jobs",
                Level::Stop => "cancelling its pending tasks; running tasks stop their jobs and write their records (Ctrl-C again to kill them at once)",
                _ => "killing every task",
            };
            self.progress
                .suspend(|| print_notice(&format!("stopping Slurm job {job}: {what}")));
        }
        for s in &mut self.shards {
            s.signalled = false;
        }
        self.keep_stopping(slurm, job);
    }

    /// Once stopping, every poll: tasks that were pending a moment ago may have started since.
    fn keep_stopping(&mut self, slurm: &Slurm, job: &str) {
        let level = self.stop_sent;
        if level == Level::Run {
            return;
        }
        let report = |r: Result<()>| {
            if let Err(err) = r {
                print_notice(&format!("{err:#}"));
            }
        };
        if level == Level::Hard {
            if !self.shards.iter().all(|s| s.signalled) {
                report(slurm.stop(job, Stop::All));
                for s in &mut self.shards {
                    s.signalled = true;
                }
            }
            return;
        }
        let pending = self
            .shards
            .iter()
            .any(|s| s.state.as_ref().is_none_or(|t| t.state == "PENDING"));
        if pending {
            report(slurm.stop(job, Stop::Pending));
        }
        let signal = if level == Level::Drain { "HUP" } else { "TERM" };
        for s in &mut self.shards {
            let running = s
                .state
                .as_ref()
                .is_some_and(|t| !t.ended() && t.state != "PENDING");
            if running && !s.signalled {
                // Marked only once Slurm took it: a failed scancel is tried again next poll.
                let sent = slurm.stop(&format!("{job}_{}", s.index), Stop::Signal(signal));
                s.signalled = sent.is_ok();
                report(sent);
            }
        }
    }

    /// Every planned file without a record gets one, with what Slurm says happened.
    fn account_for_the_rest(&mut self, slurm: &Slurm, job: &str) {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut missing: Vec<JobRecord> = Vec::new();
        for s in &self.shards {
            let rest: Vec<&PlannedFile> = s
                .files
                .iter()
                .filter(|f| !s.recorded.contains(&f.job))
                .collect();
            if rest.is_empty() {
                continue;
            }
            let state = s.state.clone().unwrap_or(TaskState {
                task: s.index,
                state: "UNKNOWN".into(),
                reason: String::new(),
                node: String::new(),
            });
            let started = s.started || !state.node.is_empty();
            let exit = if state.ended() {
                slurm.exit_code(job, s.index)
            } else {
                None
            };
            let why = explain(job, s, &state, exit);
            let running: HashSet<u64> = std::fs::read_to_string(&s.started_log)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            let status = if !started {
                Status::NotStarted
            } else if self.cancelled {
                Status::Interrupted
            } else {
                Status::Failed
            };
            for f in rest {
                let Ok(path) = f.path() else { continue };
                let mut r = JobRecord::new(f.job, &path, status);
                // Which of the task's files was running when it died, and which it never reached.
                let reason = match (status, running.contains(&f.job)) {
                    (Status::NotStarted, _) if self.cancelled => format!(
                        "{} (its Slurm array task was cancelled before it started)",
                        crate::exec::not_started_reason(self.cancel)
                    ),
                    (Status::NotStarted, _) => {
                        format!("not started: {why} before it started")
                    }
                    (Status::Interrupted, _) => format!("interrupted: {why}"),
                    (_, true) => with_evidence(&why, "while this file ran", s),
                    (_, false) => with_evidence(&why, "before this file started", s),
                };
                r.reason = Some(match self.config.in_place {
                    Some(_) => format!("{reason}; original kept"),
                    None => reason,
                });
                r.weight_bytes = Some(f.weight_bytes);
                if self.config.in_place.is_some() {
                    r.action = Some("kept");
                    // {out} lies beside the file rewritten: a symlink's target.
                    let target = crate::inplace::InPlace::target(&path).unwrap_or(path.clone());
                    let dir = target
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(Path::new("."))
                        .to_path_buf();
                    if !dirs.contains(&dir) {
                        dirs.push(dir);
                    }
                }
                missing.push(r);
            }
        }
        missing.sort_by_key(|r| r.job);
        for r in missing {
            self.accept(r);
        }
        // A task killed outright leaves its jobs' {out} files behind: remove them now (their
        // inputs are no longer locked by anyone).
        let removed: Vec<PathBuf> = dirs
            .iter()
            .flat_map(|d| crate::inplace::sweep_dead(d, std::process::id()))
            .collect();
        if !removed.is_empty() && !self.config.quiet {
            print_notice(&format!(
                "removed {} temporary file(s) of array tasks that ended without finishing",
                removed.len()
            ));
        }
    }

    fn finish(mut self, start: Instant, submitted: Option<(&str, &Layout)>) -> Result<ExitStatus> {
        if self.journal_failed {
            self.totals.walk_errors += 1;
        }
        let wall = start.elapsed();
        let stopped = self.cancel.reason();
        let exit = self.totals.exit_status(stopped);
        let mut memory_report = MemoryReport {
            fanout_cpu_ms: crate::os::own_cpu().as_millis() as u64,
            ..MemoryReport::default()
        };
        let mut shards = Vec::new();
        for s in &self.shards {
            let worker = s.summary.as_ref();
            let num = |k: &str| {
                worker
                    .and_then(|w| w.get(k))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0)
            };
            memory_report.mem_limit_bytes =
                memory_report.mem_limit_bytes.max(num("mem_limit_bytes"));
            memory_report.max_running += num("max_running") as usize;
            memory_report.max_memory_bytes =
                memory_report.max_memory_bytes.max(num("max_memory_bytes"));
            let state = s.state.as_ref();
            shards.push(serde_json::json!({
                "shard": s.index,
                "files": s.files.len(),
                "records": s.recorded.len(),
                "state": state.map(|t| t.state.clone()),
                "node": state.map(|t| t.node.clone()).filter(|n| !n.is_empty()),
                "finished": worker.is_some(),
                "max_running": num("max_running"),
                "max_memory_bytes": num("max_memory_bytes"),
                "wall_ms": num("wall_ms"),
            }));
        }
        let cluster = submitted.map(|(job, layout)| {
            serde_json::json!({
                "executor": "slurm",
                "slurm_job_id": job,
                "plan_dir": layout.dir.to_string_lossy(),
                "shards": shards,
            })
        });
        if !self.config.quiet && stopped != Some(Reason::ClosedStdout) && self.totals.total() > 0 {
            let _ = writeln!(io::stderr(), "{}", self.totals.report(wall));
            if let Some((job, layout)) = submitted {
                print_notice(&format!(
                    "Slurm job {job}: plan, records and logs in {}",
                    layout.dir.display()
                ));
            }
        }
        if let Some(j) = self.journal.as_deref_mut() {
            if let Err(err) = j.finish(
                &self.totals,
                wall,
                exit,
                stopped,
                &memory_report,
                cluster.as_ref(),
            ) {
                print_notice(&format!(
                    "cannot write the summary {}: {err}",
                    j.path().display()
                ));
                return Ok(if exit == ExitStatus::Success {
                    ExitStatus::Failure
                } else {
                    exit
                });
            }
        }
        Ok(exit)
    }
}

/// How a task ended, from Slurm's state and its exit code.
fn explain(job: &str, s: &Shard, state: &TaskState, exit: Option<(i32, i32)>) -> String {
    let mut why = format!("Slurm array task {job}_{}", s.index);
    if !state.node.is_empty() {
        why.push_str(&format!(" on {}", state.node));
    }
    why.push_str(&format!(" ended {}", state.state));
    match exit {
        Some((_, sig)) if sig > 0 => why.push_str(&format!(
            " (killed by signal {sig}, {})",
            crate::summary::signal_name(sig)
        )),
        Some((code, _)) if code > 0 => why.push_str(&format!(" (exit {code})")),
        _ => {}
    }
    if !state.reason.is_empty() && state.reason != "None" {
        why.push_str(&format!(" [{}]", state.reason));
    }
    why
}

/// `WHY when: EVIDENCE` — e.g. `… ended FAILED (killed by signal 9) while this file ran:
/// slurmstepd: error: Exceeded job memory limit`.
fn with_evidence(why: &str, when: &str, s: &Shard) -> String {
    match telling_line(&s.log_lines) {
        Some(line) => format!("{why} {when}: {line}"),
        None => format!("{why} {when}"),
    }
}

/// The log line that best says why a task ended: memory first, then limits and cancellation,
/// then fanout's own last words, then the last line.
fn telling_line(lines: &VecDeque<String>) -> Option<&str> {
    let find =
        |pred: &dyn Fn(&str) -> bool| lines.iter().rev().find(|l| pred(&l.to_ascii_lowercase()));
    // slurmstepd's first memory line has the numbers ("exceeded memory limit (A > B)").
    lines
        .iter()
        .find(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("memory") || l.contains("oom")
        })
        .or_else(|| {
            find(&|l| {
                l.contains("time limit") || l.contains("cancelled") || l.contains("node fail")
            })
        })
        .or_else(|| find(&|l| l.starts_with("fanout") || l.contains("error")))
        .or_else(|| lines.back())
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(job: u64, w: u64) -> Input {
        Input {
            job,
            path: PathBuf::from(format!("f{job}")),
            problem: None,
            weight: Some(w),
        }
    }

    #[test]
    fn shards_are_balanced_by_weight_and_keep_job_order() {
        let todo = vec![
            input(1, 100),
            input(2, 10),
            input(3, 10),
            input(4, 80),
            input(5, 10),
        ];
        let shards = assign(todo, 2);
        let weight = |s: &Vec<PlannedFile>| s.iter().map(|f| f.weight_bytes).sum::<u64>();
        assert_eq!(shards.len(), 2);
        assert_eq!(weight(&shards[0]) + weight(&shards[1]), 210);
        assert!(weight(&shards[0]).abs_diff(weight(&shards[1])) <= 20);
        for s in &shards {
            assert!(s.windows(2).all(|w| w[0].job < w[1].job));
        }
    }

    #[test]
    fn more_shards_than_files_leaves_none_empty() {
        let shards = assign(vec![input(1, 0), input(2, 0)], 5);
        assert_eq!(shards.len(), 2);
    }

    #[test]
    fn the_memory_line_explains_a_killed_task() {
        let lines: VecDeque<String> = [
            "fanout: removed 1 temporary file(s)",
            "slurmstepd-n1: error: StepId=16.batch exceeded memory limit (434749440 > 104857600), being killed",
            "slurmstepd-n1: error: *** JOB 16 ON n1 CANCELLED AT 2026-11-22T06:24:25 ***",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(telling_line(&lines)
            .unwrap()
            .contains("exceeded memory limit"));
    }
}
