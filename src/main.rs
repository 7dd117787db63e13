//! fanout: run a command over many files, in parallel, safely, with a per-file summary.
//!
//! The run flows one way: parse (cli) → validate (config) → discover (walk) → expand
//! (template) → run (exec) → collect and report (summary).

mod cancel;
mod cli;
mod cluster;
mod config;
mod dry_run;
mod error;
mod exec;
mod inplace;
mod memory;
mod os;
mod parquet;
mod progress;
mod resume;
mod summary;
mod template;
mod walk;

use clap::Parser;

use crate::error::ExitStatus;

fn main() {
    // `fanout worker --plan DIR --shard N` is how a Slurm array task starts.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // (A directory named `worker` still works as a path: `fanout worker -- cmd`.)
    let worker_flag = |a: &std::ffi::OsString| {
        let a = a.as_encoded_bytes();
        a == b"--plan" || a == b"--shard" || a.starts_with(b"--plan=") || a.starts_with(b"--shard=")
    };
    if args.len() > 2 && args[1] == "worker" && worker_flag(&args[2]) {
        let worker = cli::WorkerCli::parse_from(&args[1..]);
        let status = cluster::worker::run(&worker.plan, worker.shard).unwrap_or_else(|err| {
            error::print_error(&err);
            ExitStatus::Usage
        });
        std::process::exit(status.code());
    }
    let cli = cli::Cli::parse_from(args);
    let status = match config::Config::from_cli(cli) {
        Err(err) => {
            error::print_error(&err);
            ExitStatus::Usage
        }
        Ok(config) => {
            let slurm = config.executor == cli::Executor::Slurm;
            let outcome = match (config.dry_run, slurm) {
                (true, true) => cluster::submit::dry_run(&config),
                (true, false) => dry_run::run(&config),
                (false, true) => cluster::submit::run(&config),
                (false, false) => exec::run(&config),
            };
            outcome.unwrap_or_else(|err| {
                error::print_error(&err);
                ExitStatus::Usage
            })
        }
    };
    std::process::exit(status.code());
}
