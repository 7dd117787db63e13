//! `Config`, the validated, read-only description of a run, and its `Mode`: what the rest of
//! fanout reads. Built in `build.rs`; nothing here checks or computes anything.

use std::path::PathBuf;
use std::time::Duration;

use super::spec::RunSpec;
use super::srun::Allocation;
use crate::batch::Batching;
use crate::memory::Amount;
use crate::template::{TargetTemplate, Template};
use crate::walk::WalkOptions;

#[derive(Debug)]
pub(crate) struct Config {
    /// How each job goes (what a Slurm plan carries to the workers).
    pub run: RunSpec,
    /// What to discover and how.
    pub walk: WalkOptions,
    /// The parsed command template.
    pub template: Template,
    /// `-o`: the parsed target template.
    pub target: Option<TargetTemplate>,
    /// The program, resolved on PATH at start-up; `None` when it comes from a placeholder.
    pub program: Option<PathBuf>,
    /// Capture job output (false with one job: output streams live).
    pub capture: bool,
    /// Print job output in input order.
    pub keep_order: bool,
    /// Prefix each line of a job's output with its path and a tab (`--tag`).
    pub tag: bool,
    /// How the run goes: where jobs run, or that nothing runs.
    pub mode: Mode,
    /// Where to write the JSON Lines journal.
    pub summary: Option<PathBuf>,
    /// Show the progress bar.
    pub progress: bool,
    /// Under the bar, a line per running job (on a terminal, unless `--no-job-lines`).
    pub job_lines: bool,
    /// Print a status line this often (`--status-every`, when no bar is drawn).
    pub status_every: Option<Duration>,
    /// Hide progress and the end summary.
    pub quiet: bool,
    /// Say more (`-v`): the dry run's memory plan and input weights.
    pub verbose: bool,
    /// An earlier journal whose finished files are skipped.
    pub resume: Option<PathBuf>,
    /// `--mem-limit`; `None`: all that is available (the reserve stays free).
    pub mem_limit: Option<Amount>,
    /// `-X/--batch`: many inputs per command, grouped this way.
    pub batch: Option<Batching>,
    /// Objects: where they are staged, and how many transfers go on at once.
    pub remote: RemoteOptions,
}

/// How a run treats objects in stores.
#[derive(Debug, Clone)]
pub(crate) struct RemoteOptions {
    /// `--stage-dir`: where a private staging directory is made.
    pub stage_dir: PathBuf,
    /// `--transfers`: downloads and uploads at once.
    pub transfers: usize,
    /// A hash of the command, carried by every object written (provenance).
    pub command_hash: String,
}

impl Default for RemoteOptions {
    fn default() -> RemoteOptions {
        RemoteOptions {
            stage_dir: std::env::temp_dir(),
            transfers: 4,
            command_hash: String::new(),
        }
    }
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
    Srun(Allocation),
    /// `--executor slurm`: one job array, submitted and watched from here.
    Slurm(SlurmOptions),
    /// `fanout worker`: one array task of a Slurm run; job output goes to the plan's files.
    Worker,
}

impl Config {
    /// Whether the run reads or writes objects in stores (a URL root or `-o` to a store):
    /// transfers then get workers of their own beside the job slots.
    pub(crate) fn has_objects(&self) -> bool {
        self.walk
            .roots
            .iter()
            .any(|r| matches!(r, crate::walk::Root::Remote(_)))
            || self
                .run
                .output
                .as_ref()
                .is_some_and(|o| o.template.to_str().is_some_and(crate::remote::looks_remote))
    }
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
}
