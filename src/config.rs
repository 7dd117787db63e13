//! `Config`: the validated, read-only description of a run, built once from the command line.
//!
//! Cross-flag checks, defaults that depend on the environment (CPU count, terminal), parsing
//! the template, compiling globs, checking that roots exist and resolving the program on PATH
//! all happen here, before anything runs. Nothing here starts threads or processes.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{Cli, Executor, Halt, Order, PerJob};
use crate::inplace::InPlaceOptions;
use crate::memory::Amount;
use crate::template::Template;
use crate::walk::{build_overrides, OwnFiles, Root, WalkOptions};

#[derive(Debug)]
pub(crate) struct Config {
    /// What to discover and how.
    pub walk: WalkOptions,
    /// The parsed command template.
    pub template: Template,
    /// The program, resolved on PATH at start-up; `None` when it comes from a placeholder.
    pub program: Option<PathBuf>,
    /// At most this many jobs at once.
    pub jobs: usize,
    /// `{threads}`: max(1, logical CPUs / jobs).
    pub threads: usize,
    /// Capture job output (false with one job: output streams live).
    pub capture: bool,
    /// Print job output in input order.
    pub keep_order: bool,
    /// How the run goes: where jobs run, or that nothing runs.
    pub mode: Mode,
    /// Where to write the JSON Lines journal.
    pub summary: Option<PathBuf>,
    /// Show the progress bar.
    pub progress: bool,
    /// Hide progress and the end summary.
    pub quiet: bool,
    /// Per-job time limit.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when a job is stopped.
    pub kill_grace: Duration,
    /// Extra attempts for a failed or timed-out job.
    pub retries: u32,
    /// What the first failure stops.
    pub halt: Option<Halt>,
    /// An earlier journal whose finished files are skipped.
    pub resume: Option<PathBuf>,
    /// Rewrite files in place through `{out}`.
    pub in_place: Option<InPlaceOptions>,
    /// `--mem-limit`; `None`: 80% of available.
    pub mem_limit: Option<Amount>,
    /// `--mem-per-job SIZE`; `None`: learn (`auto`).
    pub mem_per_job: Option<u64>,
    /// `--mem-reserve`; `None`: 5% of memory, at most 1 GiB.
    pub mem_reserve: Option<u64>,
    /// Input order or heaviest first.
    pub order: Order,
    /// The command words as given (for a Slurm plan).
    pub command: Vec<OsString>,
    /// `-s`: the command runs through `sh -c`.
    pub shell: bool,
}

/// How a run goes. One value, so the settings of different modes cannot disagree.
#[derive(Debug)]
pub(crate) enum Mode {
    /// `--dry-run`: print each command and run nothing; with `--executor slurm`, its settings
    /// (the dry run prints the sbatch plan).
    DryRun(Option<SlurmOptions>),
    /// Jobs run on this machine.
    Local,
    /// `--executor srun`: each job is a step of the allocation fanout runs in.
    Srun(crate::cluster::Allocation),
    /// `--executor slurm`: one job array, submitted and watched from here.
    Slurm(SlurmOptions),
    /// `fanout worker`: one array task of a Slurm run; job output goes to the plan's files.
    Worker,
}

impl Mode {
    pub(crate) fn is_dry_run(&self) -> bool {
        matches!(self, Mode::DryRun(_))
    }
}

/// How a Slurm run is submitted.
#[derive(Debug, Clone)]
pub(crate) struct SlurmOptions {
    /// Array tasks; `None`: min(files, 32).
    pub shards: Option<usize>,
    /// Extra sbatch options, as given.
    pub args: Vec<String>,
    /// Where the plan goes; `None`: a new directory under `.fanout/`.
    pub plan_dir: Option<PathBuf>,
}

impl Config {
    /// The Slurm settings of a `--executor slurm` run or dry run.
    pub(crate) fn slurm(&self) -> Option<&SlurmOptions> {
        match &self.mode {
            Mode::Slurm(s) | Mode::DryRun(Some(s)) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn from_cli(cli: Cli) -> Result<Config> {
        let roots = roots(&cli.paths)?;
        let extensions = cli
            .ext
            .iter()
            .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
            .collect::<Vec<_>>();
        if extensions.iter().any(String::is_empty) {
            bail!("-e/--ext needs an extension, e.g. -e parquet");
        }
        build_overrides(Path::new("."), &cli.glob).context("invalid -g/--glob pattern")?;

        if cli.summary.as_deref() == Some(Path::new("-")) {
            bail!("--summary -: standard output carries the jobs' output; give the journal a file name (or /dev/stdout to mix the two)");
        }
        // A zero limit would race every job against its own start.
        if cli.timeout.is_some_and(|t| t.is_zero()) {
            bail!("--timeout must be more than 0 (leave it out for no limit)");
        }
        let template = Template::parse(&cli.command, cli.shell, cli.in_place)?;
        let program = match template.program() {
            Some(p) => Some(resolve_program(Path::new(&p))?),
            None => None,
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cli.executor != Executor::Slurm {
            for (given, flag) in [
                (cli.shards.is_some(), "--shards"),
                (!cli.slurm_arg.is_empty(), "--slurm-arg"),
                (cli.plan_dir.is_some(), "--plan-dir"),
            ] {
                if given {
                    bail!("{flag} goes with --executor slurm");
                }
            }
        }
        let srun = match cli.executor {
            Executor::Srun => Some(crate::cluster::Allocation::find(cli.cpus_per_job)?),
            _ => None,
        };
        if cli.executor == Executor::Slurm {
            if let Some(Amount::Percent(_)) = cli.mem_limit {
                bail!("with --executor slurm, --mem-limit takes a size: the memory budget of the jobs in each array task (e.g. --mem-limit 8G)");
            }
            if let Some(a) = cli.slurm_arg.iter().find(|a| {
                ["--array", "-a", "--requeue", "--no-requeue"]
                    .iter()
                    .any(|f| a.starts_with(f))
            }) {
                bail!("--slurm-arg={a}: fanout sets the array and requeueing itself (the array size with --shards)");
            }
        }
        let jobs = match (&srun, cli.executor) {
            (_, Executor::Local) => cli.jobs.unwrap_or(cpus),
            (Some(alloc), _) => cli.jobs.unwrap_or(alloc.default_jobs()),
            // Under sbatch, parallelism comes from the array tasks; -j packs jobs into a task.
            (None, _) => cli.jobs.unwrap_or(1),
        };
        let threads = match (cli.cpus_per_job, cli.executor) {
            (Some(n), _) => n,
            (None, Executor::Local) => (cpus / jobs).max(1),
            (None, _) => 1,
        };
        // With one job, output streams straight to the terminal: a bar would be drawn into it.
        let progress = !cli.quiet
            && !cli.no_progress
            && !cli.dry_run
            && (jobs > 1 || cli.executor == Executor::Slurm)
            && (cli.progress || std::io::stderr().is_terminal());
        let slurm = (cli.executor == Executor::Slurm).then(|| SlurmOptions {
            shards: cli.shards,
            args: cli.slurm_arg.clone(),
            plan_dir: cli.plan_dir.clone(),
        });
        let mem_limit = cli
            .mem_limit
            .or(srun.as_ref().and_then(|a| a.mem_bytes).map(Amount::Bytes));
        let mode = match (cli.dry_run, slurm, srun) {
            (true, slurm, _) => Mode::DryRun(slurm),
            (false, Some(slurm), _) => Mode::Slurm(slurm),
            (false, None, Some(alloc)) => Mode::Srun(alloc),
            (false, None, None) => Mode::Local,
        };
        Ok(Config {
            walk: WalkOptions {
                roots,
                extensions,
                globs: cli.glob,
                hidden: cli.hidden,
                no_ignore: cli.no_ignore,
                follow: cli.follow,
                max_depth: cli.max_depth,
                null: cli.null,
                own: own_files(cli.summary.as_deref(), cli.resume.as_deref()),
                in_place: cli.in_place,
            },
            template,
            program,
            jobs,
            threads,
            capture: jobs > 1,
            keep_order: cli.keep_order,
            summary: cli.summary,
            progress,
            quiet: cli.quiet,
            timeout: cli.timeout,
            kill_grace: cli.kill_grace,
            retries: cli.retries,
            halt: cli.halt,
            resume: cli.resume,
            mem_limit,
            mem_per_job: match cli.mem_per_job {
                Some(PerJob::Fixed(b)) => Some(b),
                _ => None,
            },
            mem_reserve: cli.mem_reserve.map(|a| match a {
                Amount::Bytes(b) => b,
                Amount::Percent(_) => unreachable!("the parser refuses percentages here"),
            }),
            order: cli.order,
            in_place: cli.in_place.then_some(InPlaceOptions {
                verify: cli.verify,
                force: cli.force,
            }),
            command: cli.command,
            shell: cli.shell,
            mode,
        })
    }
}

/// The journals of the run, and the replacements of them that earlier runs left behind: never
/// inputs.
fn own_files(summary: Option<&Path>, resume: Option<&Path>) -> OwnFiles {
    let mut paths = Vec::new();
    for journal in summary.into_iter().chain(resume) {
        paths.push(journal.to_path_buf());
        paths.extend(
            crate::resume::leftovers(journal)
                .into_iter()
                .map(|(p, _)| p),
        );
    }
    OwnFiles::new(paths)
}

fn roots(paths: &[PathBuf]) -> Result<Vec<Root>> {
    if paths.is_empty() {
        return Ok(vec![Root::Dir {
            path: PathBuf::from("."),
            implicit: true,
        }]);
    }
    let mut roots = Vec::with_capacity(paths.len());
    for path in paths {
        if path.as_os_str() == "-" {
            if roots.contains(&Root::Stdin) {
                bail!("`-` (read paths from standard input) is given more than once");
            }
            roots.push(Root::Stdin);
            continue;
        }
        let md = std::fs::metadata(path)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::error::io_reason(&e)))?;
        roots.push(if md.is_dir() {
            Root::Dir {
                path: path.clone(),
                implicit: false,
            }
        } else {
            Root::File(path.clone())
        });
    }
    Ok(roots)
}

/// Finds the program once, so "not found" is one message at start-up, not one per file.
fn resolve_program(program: &Path) -> Result<PathBuf> {
    if program.as_os_str().is_empty() {
        bail!("the command is empty");
    }
    if program.components().count() > 1 || program.starts_with(".") {
        let md = std::fs::metadata(program).map_err(|e| {
            anyhow::anyhow!(
                "command {}: {}",
                program.display(),
                crate::error::io_reason(&e)
            )
        })?;
        if !md.is_file() || md.permissions().mode() & 0o111 == 0 {
            bail!("command {}: not an executable file", program.display());
        }
        return Ok(program.to_path_buf());
    }
    which::which(program).map_err(|_| {
        anyhow::anyhow!(
            "command not found: {} (not an executable on PATH; use -s/--shell for shell built-ins)",
            program.display()
        )
    })
}
