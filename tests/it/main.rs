//! fanout's integration tests: one crate (one link step), one module per area of issue 2.
//!
//! Every test builds its own small temporary tree with `harness::TestEnv` and runs the real
//! binary in it. Order-sensitive tests use `-j 1` or `-k`.

mod harness;
mod pq;

mod batch;
mod brace_corpus;
mod docs;
mod dry_run;
mod exit_status;
mod faults;
mod filters;
mod generate;
mod help;
mod hints;
mod hostile;
mod inplace;
mod inplace_hostile;
mod inputs;
mod journal;
mod journal_schema;
mod layers;
mod live;
mod memory;
mod outputs;
mod preflight;
mod processes;
mod read_ahead;
mod readme;
mod remote;
mod report;
mod review;
mod run_core;
mod running;
mod servers;
mod shell_line;
mod signals;
mod slurm;
mod summary;
mod tag;
mod template;
mod trust;
