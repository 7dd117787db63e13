//! Building a Config: from the command line (`from_cli`) or, in a Slurm worker, from the plan's
//! `RunSpec` (`for_worker`), both checked by the same code. Cross-flag checks, defaults that
//! depend on the environment (CPU count, terminal), parsing the template, compiling globs,
//! checking that roots exist and resolving the program on PATH all happen here, before
//! anything runs. Nothing here starts threads or processes.

use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::choices::{Halt, Order};
use super::model::{Config, Mode, RemoteOptions, SlurmOptions};
use super::spec::{InPlaceOptions, OutputOptions, Relax, RunSpec};
use super::srun::Allocation;
use crate::batch::Batching;
use crate::cli::{Cli, ExecutorKind, PerJob};
use crate::memory::Amount;
use crate::template::{TargetTemplate, Template};
use crate::walk::{build_overrides, OwnFiles, Root, WalkOptions};

impl Config {
    /// The Config of a run from its command line.
    pub(crate) fn from_cli(mut cli: Cli) -> Result<Config> {
        if cli.command.is_empty() {
            return Err(missing_command(&cli.paths));
        }
        let walk = walk_options(&cli)?;
        if cli.summary.as_deref() == Some(Path::new("-")) {
            bail!("--summary -: standard output carries the jobs' output; give the journal a file name (or /dev/stdout to mix the two)");
        }
        if cli.verify.is_some() && !cli.in_place && cli.output.is_none() {
            bail!("--verify goes with -i/--in-place or -o/--output");
        }
        check_batch(&cli)?;
        let relax = check_trust(&cli, &walk.roots)?;
        let mode = mode(&cli)?;
        if !mode.is_dry_run() {
            check_remote_writes(&cli, &walk.roots)?;
        }
        let (jobs, threads) = parallelism(&cli, &mode);
        // On Slurm, output is relayed task by task as records arrive: ordering it by job number
        // would hold it back until earlier tasks end (docs/cluster.md: -k does not apply there).
        let keep_order = cli.keep_order && !matches!(mode, Mode::Slurm(_));
        // With one job, output streams straight to the terminal: a bar would be drawn into it.
        // --tag needs whole lines, so it captures output even with one job. The dry run's
        // lines stay commands that `sh` can replay: they are not tagged.
        let tag = cli.tag && !mode.is_dry_run();
        let capture = jobs > 1 || tag;
        let progress = !cli.quiet
            && !cli.no_progress
            && !mode.is_dry_run()
            && (capture || matches!(mode, Mode::Slurm(_)))
            && (cli.progress || std::io::stderr().is_terminal());
        // Job lines need a terminal that can redraw them: a forced bar (--progress) into a
        // file or pipe gets none. Slurm jobs run elsewhere: their lines are not known here.
        let job_lines = progress
            && !cli.no_job_lines
            && !matches!(mode, Mode::Slurm(_))
            && std::io::stderr().is_terminal();
        if cli.status_every.is_some_and(|d| d.is_zero()) {
            bail!("--status-every must be more than 0");
        }
        let status_every = cli.status_every.filter(|_| !progress && !mode.is_dry_run());
        if let (Mode::Srun(alloc), Some(PerJob::Fixed(b))) = (&mode, &cli.mem_per_job) {
            alloc.check_fits(Some(*b))?;
        }
        let mem_limit = match &mode {
            Mode::Srun(alloc) => cli.mem_limit.or(alloc.mem_bytes.map(Amount::Bytes)),
            _ => cli.mem_limit,
        };
        let spec = run_spec(&mut cli, jobs, threads, relax);
        let remote = RemoteOptions {
            stage_dir: cli.stage_dir.clone().unwrap_or_else(std::env::temp_dir),
            transfers: cli.transfers.unwrap_or(4),
            command_hash: crate::remote::provenance::command_hash(&spec.command, spec.shell),
        };
        let command = CheckedCommand::check(&spec, cli.timeout)?;
        let mut walk = walk;
        walk.target_tree = spec.output.as_ref().and_then(|o| target_tree(&o.template));
        Ok(Config::assemble(
            spec,
            command,
            Setting {
                walk,
                mode,
                capture,
                keep_order,
                tag,
                summary: cli.summary,
                resume: cli.resume,
                progress,
                job_lines,
                status_every,
                quiet: cli.quiet,
                verbose: cli.verbose,
                mem_limit,
                batch: cli
                    .batch
                    .then(|| Batching::new(cli.batch_size, cli.split_failed)),
                remote,
            },
        ))
    }

    /// The one place a Config is put together, from how its jobs go, their checked command,
    /// and what surrounds them.
    fn assemble(spec: RunSpec, command: CheckedCommand, setting: Setting) -> Config {
        Config {
            run: spec,
            walk: setting.walk,
            template: command.template,
            target: command.target,
            program: command.program,
            capture: setting.capture,
            keep_order: setting.keep_order,
            tag: setting.tag,
            mode: setting.mode,
            summary: setting.summary,
            progress: setting.progress,
            job_lines: setting.job_lines,
            status_every: setting.status_every,
            quiet: setting.quiet,
            verbose: setting.verbose,
            resume: setting.resume,
            mem_limit: setting.mem_limit,
            batch: setting.batch,
            remote: setting.remote,
        }
    }

    /// The Config of `fanout worker`, one array task of a Slurm run: its jobs go as `spec` says
    /// (checked here as `from_cli` checks them: the program is found on this node), its inputs
    /// are given, its journal is `summary`, and its jobs share `budget` bytes.
    pub(crate) fn for_worker(spec: RunSpec, summary: PathBuf, budget: u64) -> Result<Config> {
        let in_place = spec.in_place.is_some();
        let command = CheckedCommand::check(&spec, spec.timeout)?;
        let command_hash = crate::remote::provenance::command_hash(&spec.command, spec.shell);
        let walk = WalkOptions {
            own: own_files(Some(&summary), None),
            in_place,
            ..WalkOptions::default()
        };
        Ok(Config::assemble(
            spec,
            command,
            Setting {
                walk,
                mode: Mode::Worker,
                // Output is always captured whole, so the submitter can relay it job by job.
                capture: true,
                // Job numbers in a shard are not consecutive: ordering by them would hold every
                // record back until the task ends (and lose them if it is killed). The
                // submitter orders the output it relays.
                keep_order: false,
                // The submitter tags the output it relays.
                tag: false,
                summary: Some(summary),
                resume: None,
                progress: false,
                job_lines: false,
                status_every: None,
                quiet: true,
                verbose: false,
                mem_limit: Some(Amount::Bytes(budget)),
                // Objects are staged on the node's own temporary directory.
                remote: RemoteOptions {
                    command_hash,
                    ..RemoteOptions::default()
                },
                // Batches are refused with the Slurm executors.
                batch: None,
            },
        ))
    }

    /// How this run's jobs go, for a Slurm plan.
    pub(crate) fn spec(&self) -> RunSpec {
        self.run.clone()
    }
}

/// How each job of a run goes, from its command line (the command words and `-o`'s template
/// are taken from it).
fn run_spec(cli: &mut Cli, jobs: usize, threads: usize, relax: Relax) -> RunSpec {
    RunSpec {
        command: std::mem::take(&mut cli.command),
        shell: cli.shell,
        in_place: cli.in_place.then_some(InPlaceOptions {
            verify: cli.verify,
            force: cli.force,
            relax,
        }),
        output: cli.output.take().map(|template| OutputOptions {
            template,
            verify: cli.verify,
            update: cli.update,
            relax,
        }),
        jobs,
        threads,
        timeout: cli.timeout,
        kill_grace: cli.kill_grace,
        retries: cli.retries,
        halt: cli.halt.map(Halt::from),
        order: Order::from(cli.order),
        mem_per_job: match cli.mem_per_job {
            Some(PerJob::Fixed(b)) => Some(b),
            _ => None,
        },
        mem_reserve: cli.mem_reserve.map(|a| match a {
            Amount::Bytes(b) => b,
            Amount::Percent(_) => unreachable!("the parser refuses percentages here"),
        }),
    }
}

/// A run's command, checked: the template parsed and the program found, once, before anything
/// runs.
struct CheckedCommand {
    template: Template,
    target: Option<TargetTemplate>,
    program: Option<PathBuf>,
}

impl CheckedCommand {
    fn check(spec: &RunSpec, timeout: Option<Duration>) -> Result<CheckedCommand> {
        // A zero limit would race every job against its own start.
        if timeout.is_some_and(|t| t.is_zero()) {
            bail!("--timeout must be more than 0 (leave it out for no limit)");
        }
        let with_out = spec.in_place.is_some() || spec.output.is_some();
        let template = Template::parse(&spec.command, spec.shell, with_out)?;
        let target = spec
            .output
            .as_ref()
            .map(|o| TargetTemplate::parse(&o.template))
            .transpose()?;
        let program = template.program().map(|p| resolve_program(Path::new(&p)));
        if !spec.shell {
            let found = matches!(program, Some(Ok(_)));
            // fanout's own command line, to show the corrected one in full.
            let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
            if let Some(err) = super::shell_line::refused(&spec.command, found, with_out, &args) {
                return Err(err);
            }
        }
        let program = program.transpose()?;
        Ok(CheckedCommand {
            template,
            target,
            program,
        })
    }
}

/// The directory every `-o` target lies under, when the template begins with one: its text
/// up to the last `/` before the first placeholder.
fn target_tree(template: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = template.as_bytes();
    let literal = &bytes[..bytes.iter().position(|b| *b == b'{').unwrap_or(bytes.len())];
    let slash = literal.iter().rposition(|b| *b == b'/')?;
    let dir = &literal[..slash.max(1)];
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir)))
}

/// What surrounds a run's jobs: where the inputs come from, where the output and the journal
/// go, how the run shows itself, how it goes.
struct Setting {
    walk: WalkOptions,
    mode: Mode,
    capture: bool,
    keep_order: bool,
    tag: bool,
    summary: Option<PathBuf>,
    resume: Option<PathBuf>,
    progress: bool,
    job_lines: bool,
    status_every: Option<Duration>,
    quiet: bool,
    verbose: bool,
    mem_limit: Option<Amount>,
    batch: Option<Batching>,
    remote: RemoteOptions,
}

/// What `-X/--batch` cannot go with, refused before anything runs.
fn check_batch(cli: &Cli) -> Result<()> {
    if !cli.batch {
        return Ok(());
    }
    if cli.in_place {
        bail!("-X/--batch cannot go with -i/--in-place: each file is replaced from its own job's {{out}}; leave out -X");
    }
    if cli.output.is_some() {
        bail!("-X/--batch cannot go with -o/--output: each target is committed from its own job's {{out}}; leave out -X");
    }
    if cli.shell {
        bail!("-X/--batch cannot go with -s/--shell: a script has no words to repeat; hand the files to a shell yourself: fanout -X -- sh -c 'cmd \"$@\"' sh {{}}");
    }
    if cli.executor != ExecutorKind::Local {
        bail!("-X/--batch runs on this machine only: the Slurm executors run one job per file (leave out --executor or -X)");
    }
    Ok(())
}

/// What to discover: roots that exist, filters that parse, and the run's own files.
fn walk_options(cli: &Cli) -> Result<WalkOptions> {
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
    Ok(WalkOptions {
        roots,
        extensions,
        globs: cli.glob.clone(),
        hidden: cli.hidden,
        no_ignore: cli.no_ignore,
        follow: cli.follow,
        max_depth: cli.max_depth,
        null: cli.null,
        own: own_files(cli.summary.as_deref(), cli.resume.as_deref()),
        in_place: cli.in_place,
        target_tree: None,
    })
}

/// The run's mode, with the flags that go with each executor checked.
fn mode(cli: &Cli) -> Result<Mode> {
    if cli.executor != ExecutorKind::Slurm {
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
    let slurm = match cli.executor {
        ExecutorKind::Slurm => {
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
            Some(SlurmOptions {
                shards: cli.shards,
                args: cli.slurm_arg.clone(),
                plan_dir: cli.plan_dir.clone(),
            })
        }
        _ => None,
    };
    Ok(match (cli.dry_run, cli.executor, slurm) {
        (true, _, slurm) => Mode::DryRun(slurm),
        (false, _, Some(slurm)) => Mode::Slurm(slurm),
        (false, ExecutorKind::Srun, None) => Mode::Srun(Allocation::find(cli.cpus_per_job)?),
        (false, _, None) => Mode::Local,
    })
}

/// Jobs at once and `{threads}`: locally from the CPUs, under srun from the allocation, under
/// sbatch 1 per array task by default (the array gives the parallelism).
fn parallelism(cli: &Cli, mode: &Mode) -> (usize, usize) {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let jobs = match (mode, cli.executor) {
        (_, ExecutorKind::Local) => cli.jobs.unwrap_or(cpus),
        (Mode::Srun(alloc), _) => cli.jobs.unwrap_or(alloc.default_jobs()),
        (_, _) => cli.jobs.unwrap_or(1),
    };
    let threads = match (cli.cpus_per_job, cli.executor) {
        (Some(n), _) => n,
        (None, ExecutorKind::Local) => (cpus / jobs).max(1),
        (None, _) => 1,
    };
    (jobs, threads)
}

/// The journals of the run, and the replacements of them that earlier runs left behind: never
/// inputs.
/// The trust rules the flags relax, checked against the walk's roots: `-i` (and `-o` as
/// root) must start from directories no other user can change, or a job's write to `{out}`
/// could be redirected, or what root's job reads could be swapped (README "Security").
/// Directories below are checked per file, when their first job is prepared.
fn check_trust(cli: &Cli, roots: &[Root]) -> Result<Relax> {
    let relax = Relax {
        shared_dirs: cli.allow_shared_dirs,
        foreign_links: cli.allow_foreign_links,
    };
    if (relax.shared_dirs || relax.foreign_links) && !cli.in_place && cli.output.is_none() {
        bail!("--allow-shared-dirs and --allow-foreign-links go with -i/--in-place or -o/--output");
    }
    if relax.shared_dirs || !(cli.in_place || (cli.output.is_some() && crate::os::is_root())) {
        return Ok(relax);
    }
    for root in roots {
        let dir = match root {
            Root::Dir { path, .. } => path.as_path(),
            Root::File(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
            Root::Stdin | Root::Remote(_) => continue,
        };
        // A file named through links is read (or rewritten) where they lead: that directory
        // is held to the same rule.
        let resolved = match root {
            Root::File(path) if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) => {
                std::fs::canonicalize(path)
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
            }
            _ => None,
        };
        let checked = crate::os::trust::check_dir(dir).and_then(|_| match &resolved {
            Some(dir) => crate::os::trust::check_dir(dir).map(drop),
            None => Ok(()),
        });
        if let Err(u) = checked {
            if cli.in_place {
                bail!("-i: {u}: another user could redirect a job's write there; nothing was run (--allow-shared-dirs allows it)");
            }
            bail!("-o as root: {u}: another user could change what a job reads there; nothing was run (--allow-shared-dirs allows it)");
        }
    }
    Ok(relax)
}

/// The stores a run writes to (`-i` on objects, `-o` to a store whose bucket the template
/// names) must enforce conditional writes, or a second writer could be overwritten without a
/// `conflict`: a probe object finds out before any job runs (the dry run writes nothing).
fn check_remote_writes(cli: &Cli, roots: &[Root]) -> Result<()> {
    use crate::remote::{looks_remote, RemoteUrl};
    let mut written: Vec<RemoteUrl> = Vec::new();
    if cli.in_place {
        written.extend(roots.iter().filter_map(|r| match r {
            Root::Remote(url) => Some(url.clone()),
            _ => None,
        }));
    }
    if let Some(template) = cli.output.as_deref().and_then(|t| t.to_str()) {
        // The literal part before the first placeholder names the bucket, if it reaches it.
        let literal = &template[..template.find('{').unwrap_or(template.len())];
        if looks_remote(literal) {
            if let Ok(url) = RemoteUrl::parse(literal) {
                written.push(url.with_key(""));
            }
        }
    }
    written.dedup_by(|a, b| a.base == b.base);
    for url in &written {
        if let Some(ignored) = crate::remote::stores().probe(url)? {
            if cli.allow_unconditional {
                continue;
            }
            bail!("{}: the store ignores {ignored}: a second writer could be overwritten without a conflict; nothing was run (--allow-unconditional writes anyway)", url.base);
        }
    }
    Ok(())
}

fn own_files(summary: Option<&Path>, resume: Option<&Path>) -> OwnFiles {
    let mut paths = Vec::new();
    for journal in summary.into_iter().chain(resume) {
        paths.push(journal.to_path_buf());
        paths.extend(
            crate::tempname::leftovers(journal)
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
        if let Some(text) = path.to_str().filter(|p| crate::remote::looks_remote(p)) {
            let url = crate::remote::RemoteUrl::parse(text)?;
            // A missing credential, unknown bucket or unreachable store: one line, now.
            crate::remote::stores().check(&url)?;
            roots.push(Root::Remote(url));
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
/// The error for a command line without a command. Most often `--` was forgotten, so the
/// command's words were taken as paths: the message names the word where the command seems to
/// start (a program on PATH that is no file here, or a placeholder) and shows the fix.
fn missing_command(paths: &[PathBuf]) -> anyhow::Error {
    const USAGE: &str = "fanout [OPTIONS] [PATH]... -- COMMAND [ARG]...";
    let is_placeholder = |p: &Path| {
        let s = p.as_os_str().as_bytes();
        [
            &b"{}"[..],
            b"{.}",
            b"{/}",
            b"{//}",
            b"{/.}",
            b"{#}",
            b"{%}",
            b"{out}",
        ]
        .iter()
        .any(|ph| s.windows(ph.len()).any(|w| w == *ph))
    };
    let is_program = |p: &Path| {
        p.components().count() == 1
            && std::fs::symlink_metadata(p).is_err()
            && which::which(p).is_ok()
    };
    let show = |ps: &[PathBuf]| {
        ps.iter()
            .map(|p| {
                let bytes = p.as_os_str().as_bytes();
                // A bare placeholder needs no quotes in a shell (`{}`); anything else is quoted.
                let bare = is_placeholder(p) && bytes.iter().all(|b| b"{}./#%out".contains(b));
                if bare {
                    p.display().to_string()
                } else {
                    String::from_utf8_lossy(&crate::template::shell_quote(bytes)).into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some(i) = paths.iter().position(|p| is_program(p)) {
        let before = if i == 0 {
            ".".to_string()
        } else {
            show(&paths[..i])
        };
        return anyhow::anyhow!(
            "no command to run: `{}` is a program, not a file here; put `--` before the command: fanout [OPTIONS] {before} -- {}",
            paths[i].display(),
            show(&paths[i..])
        );
    }
    if let Some(p) = paths.iter().find(|p| is_placeholder(p)) {
        return anyhow::anyhow!(
            "no command to run: `{}` is among the paths; put `--` before the command: {USAGE}",
            p.display()
        );
    }
    anyhow::anyhow!("no command to run: give it after `--`: {USAGE}")
}

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

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    use clap::{Parser, ValueEnum};

    use super::*;
    use crate::config::{Halt, Order};
    use crate::parquet::Verify;

    fn config(args: &[&[u8]]) -> Config {
        let args = args.iter().map(|a| OsString::from_vec(a.to_vec()));
        Config::from_cli(Cli::try_parse_from(args).unwrap()).unwrap()
    }

    /// A spec through JSON and into a worker's Config, and back: nothing is lost or changed.
    fn round_trip(config: &Config) -> (String, Config) {
        let spec = config.spec();
        let json = serde_json::to_string_pretty(&spec).unwrap();
        let back: RunSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec, "{json}");
        let summary = PathBuf::from("plan/records/shard-3.jsonl");
        let worker = Config::for_worker(back, summary.clone(), 3 << 30).unwrap();
        assert_eq!(worker.spec(), spec, "{json}");
        assert_eq!(worker.program, config.program);
        assert!(matches!(worker.mode, Mode::Worker));
        assert!(worker.capture && worker.quiet && !worker.progress && !worker.keep_order);
        assert_eq!(worker.summary, Some(summary));
        assert_eq!(worker.resume, None);
        assert_eq!(worker.mem_limit, Some(Amount::Bytes(3 << 30)));
        assert_eq!(worker.walk.in_place, spec.in_place.is_some());
        (json, worker)
    }

    #[test]
    fn a_spec_round_trips_with_every_option() {
        let local = config(&[
            b"fanout",
            b"-i",
            b"--verify",
            b"parquet-schema",
            b"--force",
            b"-j",
            b"3",
            b"--cpus-per-job",
            b"2",
            b"--timeout",
            b"0.0005",
            b"--kill-grace",
            b"250us",
            b"--retries",
            b"4",
            b"--halt",
            b"now",
            b"--order",
            b"largest-first",
            b"--mem-per-job",
            b"600M",
            b"--mem-reserve",
            b"1G",
            b"-k",
            b"--",
            b"sh",
            b"-c",
            b"cp \"$1\" \"$2\"",
            b"caf\xe9 \xff",
            b"{}",
            b"{out}",
        ]);
        let spec = local.spec();
        assert_eq!(spec.command[3].as_bytes(), b"caf\xe9 \xff");
        assert_eq!(
            spec.in_place,
            Some(InPlaceOptions {
                verify: Some(Verify::ParquetSchema),
                force: true,
                relax: Relax::default(),
            })
        );
        assert_eq!((spec.jobs, spec.threads, spec.retries), (3, 2, 4));
        assert_eq!(spec.timeout, Some(Duration::from_micros(500)));
        assert_eq!(spec.kill_grace, Duration::from_micros(250));
        assert_eq!(
            (spec.halt, spec.order),
            (Some(Halt::Now), Order::LargestFirst)
        );
        assert_eq!(
            (spec.mem_per_job, spec.mem_reserve),
            (Some(600 << 20), Some(1 << 30))
        );
        let (json, _) = round_trip(&local);
        // The plan stays readable: the modes by their command-line names, a word that is not
        // UTF-8 in a readable form next to its bytes.
        for word in [
            "\"parquet-schema\"",
            "\"now\"",
            "\"largest-first\"",
            "caf\u{fffd}",
        ] {
            assert!(json.contains(word), "{word} in {json}");
        }
    }

    #[test]
    fn a_spec_round_trips_with_the_defaults_and_a_shell() {
        let local = config(&[b"fanout", b"-s", b"--halt", b"soon", b"--", b"echo {} >&2"]);
        let (_, worker) = round_trip(&local);
        assert!(worker.run.shell && worker.run.in_place.is_none());
        assert_eq!(worker.run.timeout, None);
        assert_eq!(worker.run.kill_grace, Duration::from_secs(5));
    }

    #[test]
    fn modes_travel_by_their_command_line_names() {
        fn check<
            T: ValueEnum
                + serde::Serialize
                + serde::de::DeserializeOwned
                + PartialEq
                + std::fmt::Debug,
        >() {
            for v in T::value_variants() {
                let name = v.to_possible_value().unwrap().get_name().to_string();
                assert_eq!(serde_json::to_value(v).unwrap(), name);
                assert_eq!(&serde_json::from_value::<T>(name.into()).unwrap(), v);
            }
        }
        check::<Verify>();
    }

    #[test]
    fn a_worker_checks_its_spec_as_a_command_line_is_checked() {
        let mut spec = config(&[b"fanout", b"--", b"echo"]).spec();
        let worker = |spec: &RunSpec| {
            Config::for_worker(spec.clone(), PathBuf::from("s.jsonl"), 1 << 30)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        spec.command = vec![OsString::from("fanout-no-such-program")];
        assert!(
            worker(&spec).contains("command not found"),
            "{}",
            worker(&spec)
        );
        spec.command = vec![OsString::from("echo")];
        spec.timeout = Some(Duration::ZERO);
        assert!(worker(&spec).contains("--timeout"), "{}", worker(&spec));
        spec.timeout = None;
        spec.in_place = Some(InPlaceOptions {
            verify: None,
            force: false,
            relax: Relax::default(),
        });
        assert!(worker(&spec).contains("{out}"), "{}", worker(&spec));
    }

    #[test]
    fn a_command_word_with_bad_bytes_is_refused() {
        let mut json = serde_json::to_value(config(&[b"fanout", b"--", b"echo"]).spec()).unwrap();
        json["command"] = serde_json::json!(["echo", {"b64": "not base64!"}]);
        let err = serde_json::from_value::<RunSpec>(json).unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    }
}
