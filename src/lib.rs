//! fanout: run a command over many files, in parallel, safely, with a per-file summary.
//!
//! The run flows one way: parse (`cli`) → validate (`config`) → discover (`walk`) → expand
//! (`template`) → admit and run (an executor: `exec`, `dry_run`, `cluster`) → collect and
//! report (`run`, `summary`). `main` below picks the mode once, as ripgrep's `match
//! args.mode()` does; the binary (`src/main.rs`) is a thin shell over it.
//!
//! The library exists for fanout's own binary and tests: `record` (the journal's records, to
//! read them back typed) and `testing` are public; nothing else is a stable interface.

mod aws_profile;
mod batch;
mod cancel;
mod cli;
mod cluster;
mod config;
mod dry_run;
mod error;
mod exec;
mod executor;
mod generate;
mod inplace;
mod input;
mod live;
mod memory;
mod os;
mod output;
mod parquet;
mod progress;
mod read_ahead;
pub mod record;
mod remote;
mod report;
mod resume;
mod run;
mod shell_check;
mod summary;
mod targets;
mod template;
mod tempname;
#[doc(hidden)]
pub mod testing;
mod units;
mod walk;

use std::ffi::OsString;

use crate::config::{Config, Mode};
use crate::error::ExitStatus;
use crate::output::Io;
use crate::run::drive;
use crate::walk::Source;

/// Runs fanout with these arguments (the program name first) and exits as the run says: with
/// its exit code, or, after SIGINT or SIGTERM, by that signal.
pub fn main(args: Vec<OsString>) -> ! {
    let status = match cli::Entry::find(&args) {
        // A Slurm array task runs its shard through the local pool.
        Some(cli::Entry::Worker(worker)) => {
            cluster::worker::prepare(&worker.plan, worker.shard, &worker.plan_sha256)
                .and_then(|t| drive(&t.config, &mut exec::Pool, t.inputs, t.io))
        }
        Some(cli::Entry::Report(args)) => report::write(&args.journal, args.output.as_deref()),
        None => cli::Cli::parse_args(args).and_then(|cli| match cli.generate {
            Some(what) => generate::print(what),
            None => Config::from_cli(cli).and_then(|c| run(&c)),
        }),
    };
    let status = status.unwrap_or_else(|err| {
        error::print_error(&err);
        ExitStatus::Usage
    });
    status.exit()
}

/// Runs a validated configuration in its mode.
fn run(config: &Config) -> anyhow::Result<ExitStatus> {
    shell_check::check(config)?;
    match &config.mode {
        Mode::DryRun(None) => drive(
            config,
            &mut dry_run::DryRun::new(config),
            Source::Walk,
            Io::terminal(),
        ),
        Mode::DryRun(Some(_)) => drive(
            config,
            &mut cluster::SlurmPlan,
            Source::Walk,
            Io::terminal(),
        ),
        Mode::Local | Mode::Srun(_) => drive(config, &mut exec::Pool, Source::Walk, Io::terminal()),
        Mode::Slurm(_) => drive(
            config,
            &mut cluster::SlurmArray::find()?,
            Source::Walk,
            Io::terminal(),
        ),
        Mode::Worker => {
            anyhow::bail!("a worker runs from a Slurm plan: fanout worker --plan DIR --shard N")
        }
    }
}
