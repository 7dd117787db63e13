//! The command line as clap sees it: flags, help text and value parsers for our units.
//!
//! Nothing here touches the file system or the environment; `config.rs` turns these raw values
//! into a validated `Config`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueHint};

pub(crate) const AFTER_LONG_HELP: &str = "\
PLACEHOLDERS (usable anywhere inside a command word):
  {}        the path                         data/year=2024/part-0.parquet
  {.}       the path without its extension   data/year=2024/part-0
  {/}       the base name                    part-0.parquet
  {//}      the parent directory             data/year=2024
  {/.}      the base name without extension  part-0
  {#}       job number, 1-based, in input order
  {%}       worker slot, 1..=jobs
  {rel}     the path below the root it was found under (walking data/): year=2024/part-0.parquet
  {rel.}    {rel} without its extension      year=2024/part-0
  {threads} max(1, logical CPUs / jobs): hand it to multi-threaded tools
  {out}     with -i or -o: where the job writes (committed by fanout after --verify)
  {mem}     the job's memory reservation in MiB (hand it to a tool's memory limit)
  {url}     an object's URL (s3://, gs://, az:// inputs; {} is then a staged copy,
            downloaded only when the command uses {} or what derives from it)
  {{}}      a placeholder in doubled braces is literal text: {{}} is {}
Other brace text is the command's own and stays literal (awk '{print $1}', jq '{a, b}',
JSON, {a,b}, ${var}); a near miss of a placeholder ({rel..}, {Rel}, {out.}) is refused.
A template without a path placeholder gets {} appended as its last argument.
With -X/--batch a word with a path placeholder is repeated once per file of the batch
(`--in={}` gives `--in=a --in=b ...`) and {#} is the batch number.

EXAMPLES:
  Print every parquet file's row count with a tool of your own:
    fanout -e parquet data/ -- python3 rows.py {}
  Compress every CSV, four at a time:
    fanout -j 4 -e csv data/ -- gzip -k {}
  Use shell syntax (pipes, redirections); substituted values are quoted for you, so
  write {} without quotes (\"{}\" would let a file name run as a command; it is refused):
    fanout -s -e log logs/ -- 'grep -c ERROR {} > {}.count'
  See what would run, without running it:
    fanout -n -e parquet data/ -- duckdb -c \"COPY (FROM '{}') TO '{.}.csv'\"
  A parquet copy of a CSV dataset, mirrored, redoing only what is out of date:
    fanout -u -e csv raw/ -o 'clean/{rel.}.parquet' -- \
      duckdb -c \"COPY (FROM read_csv('{}')) TO '{out}' (FORMAT parquet)\"
  Sort a dataset in a bucket in place (conditional writes: a changed object is a conflict):
    fanout -i -e parquet s3://lake/events/ -- python3 sort.py {} {out}
  Paths from another program:
    git ls-files -z '*.json' | fanout -0 - -- jq -e . {}
  Many files per command (like xargs or fd -X), still a record per file:
    fanout -X -e gz logs/ -- gzip -t {}

Output of different jobs never interleaves; by default each job's output appears when it
finishes (order unspecified), -k/--keep-order prints in input order.

EXIT STATUS: 0 all jobs succeeded (or nothing matched), 1 some file failed or a walk step failed,
2 usage or preflight error (nothing ran), 130 after SIGINT, 143 after SIGTERM, 141 when fanout's
own standard output was closed.

A PAGE OF A RUN:
  fanout report run.jsonl [-o run.html]
writes one self-contained HTML page from a --summary journal: a timeline of the jobs, memory
over time, durations, the slowest and the failed files (fanout report --help).

ON A SLURM CLUSTER:
  fanout --executor slurm --shards 16 -j 2 --slurm-arg=--partition=batch -i -e parquet data/ -- \\
    python3 sort.py {} {out}
writes a plan under .fanout/, submits one job array and reports per file as usual; --dry-run
prints the sbatch script and the shard plan. Inside an allocation (salloc, sbatch),
--executor srun runs each job as its own srun step.";

/// What `-h` prints: one screen for a newcomer. `--help` has every option.
pub(crate) const SHORT_HELP: &str = "\
fanout: run a command over many files, in parallel, with a per-file summary

Usage: fanout [OPTIONS] [PATH]... -- COMMAND [ARG]...   (PATH: files or directories; - : stdin)
       fanout report JOURNAL [-o FILE]                  (an HTML page of a run)

Which files   -e EXT       only this extension       -g GLOB    only matching (!GLOB excludes)
              -H           hidden files too          -I         do not read .gitignore
              -d N         at most N levels deep     -0         NUL-separated paths on stdin
How to run    -j N         at most N jobs at once    -s         COMMAND is an sh script
              -X           many files per command    -k         output in input order
              -n           print each command, run nothing (dry run)
              --split-failed  with -X, re-run a failed batch by halves to find its bad files
              --timeout DURATION   --retries N   --halt soon|now   --mem-limit SIZE|PCT
New files     -i           rewrite each file in place: the command writes {out}
              -o TEMPLATE  a new file per input, e.g. -o 'clean/{rel.}.parquet'; -u: stale only
              --verify MODE  how an output is checked first (exists, parquet, parquet-schema...)
Results       --summary FILE  a JSON Lines record per file; --resume FILE skips what was ok
              -q quiet, -v verbose, --tag (prefix output lines with the path),
              --color auto|always|never
Elsewhere     --executor slurm|srun (one Slurm job array, or steps of an allocation)
              PATH may be s3://, gs://, az:// ({url}; --stage-dir, --transfers)

Placeholders  {}    the path               {.}   the path without its extension
              {/}   the base name          {/.}  the base name without its extension
              {//}  the parent directory   {rel} {rel.}  the path below its root (PATH)
              {#}   the job number         {%}   the worker slot
              {threads} CPUs per job, {mem} memory per job (MiB), {out} where -i/-o write
              Without a path placeholder, {} is appended. Other brace text is the
              command's own (awk '{print $1}', jq '{a, b}', JSON) and passes as it is.

Examples
  fanout -e csv data/ -- gzip -k {}                            every CSV, in parallel
  fanout -i -e parquet data/ --summary run.jsonl -- python3 sort.py {} {out}
                                                 rewrite in place, verified, with a journal
  fanout -s -e log logs/ -- 'grep -c ERROR {} > {}.count'      shell syntax: write {} bare

More: fanout --help (every option, more examples), fanout report --help, the man page
(fanout --generate man), and docs/reference.md in the sources.
";

/// Run a command over many files: in parallel, safely, with a per-file summary.
#[derive(Debug, Parser)]
#[command(
    name = "fanout",
    version,
    about,
    after_long_help = AFTER_LONG_HELP,
    override_usage = "fanout [OPTIONS] [PATH]... -- COMMAND [ARG]...",
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Files or directories to process; directories are walked recursively. `-` reads paths
    /// from standard input (one per line, or NUL-separated with -0). Default: `.`
    #[arg(value_name = "PATH", value_hint = ValueHint::AnyPath)]
    pub paths: Vec<PathBuf>,

    // Not required here: config.rs explains a missing command (most often the `--` was
    // forgotten and the command's words were taken as paths).
    /// The command template, after `--`
    #[arg(
        last = true,
        value_name = "COMMAND",
        num_args = 1..,
        value_hint = ValueHint::CommandWithArguments
    )]
    pub command: Vec<OsString>,

    /// Only files with this extension (no dot, case-insensitive; repeatable)
    #[arg(short = 'e', long = "ext", value_name = "EXT")]
    pub ext: Vec<String>,

    /// Only files matching this gitignore-style glob (repeatable; `!GLOB` excludes)
    #[arg(
        short = 'g',
        long = "glob",
        value_name = "GLOB",
        allow_hyphen_values = true
    )]
    pub glob: Vec<String>,

    /// Include hidden files and directories
    #[arg(short = 'H', long)]
    pub hidden: bool,

    /// Do not read .gitignore, .ignore or git's exclude files
    #[arg(short = 'I', long)]
    pub no_ignore: bool,

    /// Follow symbolic links while walking
    #[arg(short = 'L', long)]
    pub follow: bool,

    /// Descend at most N directory levels below each PATH
    #[arg(short = 'd', long, value_name = "N")]
    pub max_depth: Option<usize>,

    /// Paths read from standard input (`-`) are NUL-separated
    #[arg(short = '0', long = "null")]
    pub null: bool,

    /// Run at most N jobs at once [default: logical CPUs]
    #[arg(short = 'j', long, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,

    /// Run the command with `sh -c`; every substituted value is shell-quoted for you, so
    /// write {} without quotes (`"{}"` and `'{}'` are refused)
    #[arg(short = 's', long)]
    pub shell: bool,

    /// Run many files per command: a command word with a path placeholder is repeated once
    /// per file of the batch (`-X -- gzip -t {}` runs `gzip -t a b c ...`); {#} is the batch
    /// number
    #[arg(short = 'X', long)]
    pub batch: bool,

    /// With -X: at most N files per command [default: sized to keep every job slot busy,
    /// within the system's argument-size limit]
    #[arg(long, value_name = "N", value_parser = parse_jobs, requires = "batch")]
    pub batch_size: Option<usize>,

    /// With -X: when a batch fails, run its files again in halves, down to one file, to find
    /// the files that fail (for commands that are safe to repeat)
    #[arg(long, requires = "batch")]
    pub split_failed: bool,

    /// Print job output in input order (default: as jobs finish)
    #[arg(short = 'k', long)]
    pub keep_order: bool,

    /// Prefix every line of a job's output (stdout and stderr) with its input path and a tab
    #[arg(long)]
    pub tag: bool,

    /// Print each command (shell-quoted) instead of running it
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Stop a job that runs longer than this (`30s`, `5m`, `1h30m`; a bare number is seconds;
    /// more than 0)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// After SIGTERM, wait this long before a stopped job's process group gets SIGKILL (`0`:
    /// SIGKILL at once)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub kill_grace: Duration,

    /// Rewrite each file in place: the command writes to {out}, which replaces the file only
    /// when the command succeeded and the output passed --verify
    #[arg(short = 'i', long)]
    pub in_place: bool,

    /// Make a new file per input at the target TEMPLATE names (every placeholder works;
    /// {rel} and {rel.} mirror the input's tree): the command writes to {out}, which becomes
    /// the target only when the command succeeded and the output passed --verify
    #[arg(
        short = 'o',
        long,
        value_name = "TEMPLATE",
        conflicts_with = "in_place"
    )]
    pub output: Option<OsString>,

    /// With -o: skip an input whose target is a regular file newer than the input (make's
    /// rule, nanosecond times; equal times count as stale)
    #[arg(short = 'u', long, requires = "output")]
    pub update: bool,

    /// How an output (-i or -o) is checked before it replaces its input or becomes its target
    /// [default: parquet for .parquet targets, else exists]
    #[arg(long, value_name = "MODE")]
    pub verify: Option<crate::parquet::Verify>,

    /// With -i: also rewrite read-only files
    #[arg(long, requires = "in_place")]
    pub force: bool,

    /// With -i or -o: let jobs write {out} (and, as root, read {}) in directories that
    /// another user owns or can write (not sticky), or reached through a link of theirs; by
    /// default fanout refuses, since that user could redirect the job's write (or swap what
    /// it reads)
    #[arg(long)]
    pub allow_shared_dirs: bool,

    /// With -i or -o as root: follow a symbolic link owned by a user who could not write the
    /// file it leads to; by default such an input is not rewritten (as the kernel's
    /// protected_symlinks rule)
    #[arg(long)]
    pub allow_foreign_links: bool,

    /// Memory budget for the jobs running at once: a size (`12G`) or a share of the memory
    /// available at start, cgroup limits included (`60%`) [default: 100%, less --mem-reserve]
    #[arg(long, value_name = "SIZE|PCT", value_parser = |s: &str| crate::memory::parse_amount(s, true))]
    pub mem_limit: Option<crate::memory::Amount>,

    /// Memory to reserve per job: a size (`600M`), or `auto` to learn it from finished jobs
    /// and each input's weight [default: auto]
    #[arg(long, value_name = "SIZE|auto", value_parser = parse_per_job)]
    pub mem_per_job: Option<PerJob>,

    /// Start no new job while the machine's available memory is below this [default: 5% of
    /// memory, at most 1G]
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| crate::memory::parse_amount(s, false))]
    pub mem_reserve: Option<crate::memory::Amount>,

    /// Input order, or the heaviest inputs first (collects all inputs before starting)
    #[arg(long, value_enum, default_value_t = Order::Input)]
    pub order: Order,

    /// Run a failed or timed-out job again, up to N more times
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,

    /// After the first failure: `soon` starts nothing new, `now` also stops running jobs
    #[arg(long, value_name = "WHEN")]
    pub halt: Option<Halt>,

    /// Skip files that this earlier --summary journal recorded ok and that are unchanged since
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub resume: Option<PathBuf>,

    /// Write a JSON Lines record per file, and a final record, to FILE
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub summary: Option<PathBuf>,

    /// Show a progress bar even when standard error is not a terminal
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,

    /// Never show a progress bar
    #[arg(long)]
    pub no_progress: bool,

    /// Under the progress bar, no line per running job (slot, path, time, memory, its latest
    /// stderr line): only the bar
    #[arg(long)]
    pub no_job_lines: bool,

    /// When no progress bar is drawn (standard error is not a terminal): print a status line
    /// this often (done/total, rate, ETA, failed, the longest-running job), e.g. `1m`
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub status_every: Option<Duration>,

    /// Hide the progress bar and the end summary
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Say more: the dry run adds its memory plan and the heaviest inputs; the end report
    /// always has its memory line
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Colour fanout's messages on standard error: `auto` (when it is a terminal, unless
    /// NO_COLOR is set; CLICOLOR_FORCE forces it), `always` or `never`
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = clap::ColorChoice::Auto)]
    pub color: clap::ColorChoice,

    /// Where jobs run: `local` (this machine), `slurm` (one Slurm job array, submitted and
    /// watched from here) or `srun` (each job a step of the Slurm allocation fanout runs in)
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,

    /// CPUs each job may use: Slurm's --cpus-per-task per job, and {threads} [default: 1 with
    /// a Slurm executor]
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    pub cpus_per_job: Option<usize>,

    /// With --executor slurm: split the files into N array tasks [default: min(files, 32)]
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    pub shards: Option<usize>,

    /// With --executor slurm: one more option for sbatch, e.g. `--slurm-arg=--partition=long`
    /// (repeatable)
    #[arg(long = "slurm-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub slurm_arg: Vec<String>,

    /// With --executor slurm: the directory for the plan, the records and the logs, on storage
    /// the nodes share; new, or empty and yours alone; made private (0700) [default:
    /// .fanout/slurm-TIME-PID-RANDOM under the current directory]
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub plan_dir: Option<PathBuf>,

    /// Where objects are staged for the jobs that read them ({} of an s3://, gs:// or az://
    /// input) and where their outputs wait for upload; a private directory is made in it for
    /// the run [default: the temporary directory, $TMPDIR]
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub stage_dir: Option<PathBuf>,

    /// Downloads and uploads of objects that may go on at once, besides the jobs [default: 4]
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    pub transfers: Option<usize>,

    /// Write to a store that does not enforce conditional writes (found by a probe object at
    /// start): a second writer's object can then be overwritten without a `conflict`
    #[arg(long)]
    pub allow_unconditional: bool,

    /// Print a shell completion script or the man page to standard output and exit:
    /// `complete-bash`, `complete-zsh`, `complete-fish` or `man`
    #[arg(long, value_name = "WHAT", value_enum, exclusive = true)]
    pub generate: Option<Generate>,
}

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Generate {
    /// A bash completion script.
    CompleteBash,
    /// A zsh completion script.
    CompleteZsh,
    /// A fish completion script.
    CompleteFish,
    /// The man page (roff).
    Man,
}

impl Cli {
    /// Parses the command line; help, version and clap's errors end the process as clap does.
    /// An unexpected option with no `--` on the line is most often the command's own option
    /// (`fanout data python3 -c ...`): that gets a one-line error that says to add `--`.
    pub(crate) fn parse_args(args: Vec<OsString>) -> anyhow::Result<Cli> {
        // `-h` is a one-screen summary of our own; `--help` is clap's full help.
        if args
            .iter()
            .skip(1)
            .take_while(|a| *a != "--")
            .any(|a| a == "-h")
        {
            use std::io::Write;
            // As clap's help: standard output, exit 0 (a closed pipe is no error here).
            let _ = std::io::stdout().write_all(SHORT_HELP.as_bytes());
            std::process::exit(0);
        }
        let no_separator = !args.iter().skip(1).any(|a| a == "--");
        // Colour is decided before parsing, so clap's own messages follow `--color` too.
        let color = crate::error::decide_color(color_choice(&args));
        let command = <Cli as clap::CommandFactory>::command().color(if color {
            clap::ColorChoice::Always
        } else {
            clap::ColorChoice::Never
        });
        let parsed = command
            .try_get_matches_from(args)
            .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
        match parsed {
            Ok(cli) => Ok(cli),
            Err(err) => {
                let unexpected = match err.get(clap::error::ContextKind::InvalidArg) {
                    Some(clap::error::ContextValue::String(arg)) => Some(arg.clone()),
                    _ => None,
                };
                match unexpected {
                    Some(arg)
                        if no_separator
                            && err.kind() == clap::error::ErrorKind::UnknownArgument =>
                    {
                        anyhow::bail!(
                            "unexpected argument '{arg}': if it is the command's, put `--` before the command: fanout [OPTIONS] [PATH]... -- COMMAND [ARG]..."
                        )
                    }
                    _ => clap_exit(&err, color),
                }
            }
        }
    }
}

/// The `--color` of a command line, read before clap parses it (an invalid value is clap's
/// to report): the last one before the command's `--`.
fn color_choice(args: &[OsString]) -> clap::ColorChoice {
    use clap::ValueEnum;
    let mut choice = clap::ColorChoice::Auto;
    let mut words = args.iter().skip(1).take_while(|a| *a != "--");
    while let Some(word) = words.next() {
        let value = match word.to_str() {
            Some("--color") => words.next().and_then(|v| v.to_str()),
            Some(w) => w.strip_prefix("--color="),
            None => None,
        };
        if let Some(c) = value.and_then(|v| clap::ColorChoice::from_str(v, false).ok()) {
            choice = c;
        }
    }
    choice
}

/// Prints clap's error as fanout prints its own, `fanout: error: …`, and exits 2; help and
/// `--version` go to standard output as clap prints them.
fn clap_exit(err: &clap::Error, color: bool) -> ! {
    use std::io::Write;
    if !err.use_stderr() {
        err.exit()
    }
    let text = if color {
        err.render().ansi().to_string()
    } else {
        err.render().to_string()
    };
    let _ = write!(std::io::stderr(), "fanout: {text}");
    crate::error::ExitStatus::Usage.exit()
}

/// Where jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExecutorKind {
    /// On this machine.
    Local,
    /// As one Slurm job array (`sbatch`), watched from here.
    Slurm,
    /// Each job as `srun --exact` inside the current Slurm allocation.
    Srun,
}

/// fanout's entry points besides a run, tried before the ordinary command line: real clap
/// subcommands, so `fanout worker --plan DIR --shard N` and `fanout report RUN.jsonl` parse as
/// such, while `fanout worker -- cmd` and `fanout report -- cmd` (a directory named `worker` or
/// `report`) still parse as a path.
#[derive(Debug, Parser)]
#[command(name = "fanout", disable_help_subcommand = true, max_term_width = 100)]
pub(crate) enum Entry {
    /// Run one shard of a Slurm plan (started by sbatch).
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// Write an HTML page that shows a run, from its --summary journal
    Report(ReportArgs),
}

/// `fanout worker --plan DIR --shard N`: one array task of an `--executor slurm` run.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The plan directory written by the submitting fanout
    #[arg(long, value_name = "DIR")]
    pub plan: PathBuf,

    /// Which shard (the array task id)
    #[arg(long, value_name = "N")]
    pub shard: usize,

    /// The SHA-256 of the plan's plan.json, as submitted: any other plan is refused
    #[arg(long, value_name = "HEX")]
    pub plan_sha256: String,
}

/// `fanout report RUN.jsonl [-o FILE]`: one self-contained HTML page of a run.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "The page needs no network: its styles, script and pictures are inside it. \
A journal cut short (a run that was killed) still gives a page, marked incomplete."
)]
pub(crate) struct ReportArgs {
    /// The --summary journal of a run (local or Slurm)
    #[arg(value_name = "JOURNAL")]
    pub journal: PathBuf,

    /// Where to write the page; `-` writes it to standard output [default: the journal's
    /// name with .html, beside it]
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl Entry {
    /// The entry point `args` ask for, when they are not an ordinary run. A command line that
    /// starts as one (`worker --plan`, `report FILE`) but does not parse is refused here with
    /// clap's message.
    pub(crate) fn find(args: &[OsString]) -> Option<Entry> {
        let first = args.get(1)?;
        if first == "report" {
            // A run always has `--` before its command; a report never does.
            if args[2..].iter().any(|a| a == "--") {
                return None;
            }
            // No --color here: colour as `auto` says, for clap's messages and fanout's.
            let color = crate::error::decide_color(clap::ColorChoice::Auto);
            let command = <Entry as clap::CommandFactory>::command().color(if color {
                clap::ColorChoice::Always
            } else {
                clap::ColorChoice::Never
            });
            let parsed = command
                .try_get_matches_from(args)
                .and_then(|m| <Entry as clap::FromArgMatches>::from_arg_matches(&m));
            return Some(parsed.unwrap_or_else(|err| clap_exit(&err, color)));
        }
        if first != "worker" {
            return None;
        }
        match Entry::try_parse_from(args) {
            Ok(entry) => Some(entry),
            Err(err) => {
                let flag = |a: &OsString| {
                    let a = a.as_encoded_bytes();
                    a.starts_with(b"--plan") || a.starts_with(b"--shard")
                };
                if args.get(2).is_some_and(flag) {
                    err.exit()
                }
                None
            }
        }
    }
}

/// `--mem-per-job`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PerJob {
    Auto,
    Fixed(u64),
}

fn parse_per_job(s: &str) -> anyhow::Result<PerJob> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(PerJob::Auto);
    }
    match crate::memory::parse_amount(s, false).map_err(anyhow::Error::msg)? {
        crate::memory::Amount::Bytes(b) => Ok(PerJob::Fixed(b)),
        crate::memory::Amount::Percent(_) => anyhow::bail!("a percentage is not allowed here"),
    }
}

/// The order in which inputs start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Order {
    /// As discovered.
    Input,
    /// Heaviest first (by parquet decoded size or file size).
    LargestFirst,
}

/// What to do after the first failed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Halt {
    /// Start nothing new; running jobs finish.
    Soon,
    /// Start nothing new and stop running jobs.
    Now,
}

fn parse_jobs(s: &str) -> anyhow::Result<usize> {
    match s.parse::<usize>() {
        Ok(0) => anyhow::bail!("must be at least 1"),
        Ok(n) => Ok(n),
        Err(_) => anyhow::bail!("'{s}' is not a whole number"),
    }
}

/// The longest duration fanout keeps: 100 years, "effectively never". Larger values (`1e19`,
/// `inf`) are clamped to it, so adding any parsed duration to the clock cannot overflow.
pub(crate) const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parses `30s`, `5m`, `1h30m`, `250ms`; a bare number means seconds. Huge values, infinity
/// included, mean [`NEVER`]; negative numbers and NaN are refused.
pub(crate) fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            anyhow::bail!("'{s}' is not a duration");
        }
        return Ok(Duration::try_from_secs_f64(secs).map_or(NEVER, |d| d.min(NEVER)));
    }
    match humantime::parse_duration(s) {
        Ok(d) => Ok(d.min(NEVER)),
        Err(humantime::DurationError::NumberOverflow) => Ok(NEVER),
        Err(e) => anyhow::bail!("'{s}' is not a duration ({e}); try 30s, 5m or 1h30m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
        Entry::command().debug_assert();
    }

    #[test]
    fn worker_is_a_subcommand_and_still_a_path() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let Some(Entry::Worker(w)) = Entry::find(&args(&[
            "fanout",
            "worker",
            "--plan",
            "p",
            "--shard",
            "3",
            "--plan-sha256",
            "ab",
        ])) else {
            panic!("not a worker")
        };
        assert_eq!((w.plan, w.shard), (PathBuf::from("p"), 3));
        assert!(Entry::find(&args(&["fanout", "worker", "--", "echo"])).is_none());
        assert!(Entry::find(&args(&["fanout", "-j", "2", "worker", "--", "echo"])).is_none());
    }

    #[test]
    fn report_is_a_subcommand_and_still_a_path() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let Some(Entry::Report(r)) = Entry::find(&args(&["fanout", "report", "run.jsonl"])) else {
            panic!("not a report")
        };
        assert_eq!((r.journal, r.output), (PathBuf::from("run.jsonl"), None));
        let Some(Entry::Report(r)) =
            Entry::find(&args(&["fanout", "report", "-o", "-", "run.jsonl"]))
        else {
            panic!("not a report")
        };
        assert_eq!(r.output, Some(PathBuf::from("-")));
        // A directory named `report`, walked.
        assert!(Entry::find(&args(&["fanout", "report", "--", "wc", "-l"])).is_none());
        assert!(Entry::find(&args(&["fanout", "report", "other", "--", "wc"])).is_none());
        assert!(Entry::find(&args(&["fanout", "-j", "2", "report", "--", "wc"])).is_none());
        let cli = Cli::try_parse_from(["fanout", "report", "--", "wc", "-l"]).unwrap();
        assert_eq!(cli.paths, vec![PathBuf::from("report")]);
    }

    #[test]
    fn jobs_must_be_positive() {
        assert!(parse_jobs("0").is_err());
        assert!(parse_jobs("x").is_err());
        assert_eq!(parse_jobs("8").ok(), Some(8));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_duration("1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(parse_duration("2").ok(), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5").ok(), Some(Duration::from_millis(500)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn huge_durations_mean_effectively_never() {
        for s in [
            "1e19",
            "1e400",
            "inf",
            "infinity",
            "99999999999999999999999h",
        ] {
            assert_eq!(parse_duration(s).ok(), Some(NEVER), "{s}");
        }
        assert_eq!(parse_duration("200 years").ok(), Some(NEVER));
        assert_eq!(
            parse_duration("1y").ok(),
            Some(Duration::from_secs(31_557_600))
        );
        for s in ["nan", "-1", "-inf", "-1e400"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        // Whatever is parsed can be added to now.
        let now = std::time::Instant::now();
        assert!(now.checked_add(NEVER).is_some());
    }

    #[test]
    fn command_after_double_dash_keeps_hyphens() {
        let cli = Cli::try_parse_from(["fanout", "-j", "2", "d", "--", "ls", "-l", "{}"]).unwrap();
        assert_eq!(cli.paths, vec![PathBuf::from("d")]);
        assert_eq!(cli.command, vec!["ls", "-l", "{}"]);
    }
}
