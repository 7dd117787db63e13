//! fanout: run a command over many files, in parallel, safely, with a per-file summary.
//!
//! The run flows one way: parse (cli) → validate (config) → discover (walk) → expand
//! (template) → run (exec) → collect and report (summary).

mod cancel;
mod cli;
mod config;
mod dry_run;
mod error;
mod exec;
mod inplace;
mod memory;
mod parquet;
mod progress;
mod resume;
mod summary;
mod template;
mod walk;

use clap::Parser;

use crate::error::ExitStatus;

fn main() {
    let cli = cli::Cli::parse();
    let status = match config::Config::from_cli(cli) {
        Err(err) => {
            error::print_error(&err);
            ExitStatus::Usage
        }
        Ok(config) => {
            let outcome = if config.dry_run {
                dry_run::run(&config)
            } else {
                exec::run(&config)
            };
            outcome.unwrap_or_else(|err| {
                error::print_error(&err);
                ExitStatus::Usage
            })
        }
    };
    std::process::exit(status.code());
}
