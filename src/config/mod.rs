//! `Config`: the validated, read-only description of a run, built once from the command line.
//!
//! Cross-flag checks, defaults that depend on the environment (CPU count, terminal), parsing
//! the template, compiling globs, checking that roots exist and resolving the program on PATH
//! all happen here, before anything runs. Nothing here starts threads or processes.
//!
//! A Slurm worker runs its shard as the submitting fanout would: the submitter writes the part of
//! its Config that says how each job goes (`RunSpec`) into the plan, and each worker builds its
//! own Config from it with `Config::for_worker`, checked by the same code as `from_cli`.
//!
//! mod.rs only declares and re-exports: `choices.rs` (Order, Halt) and `srun.rs` (the srun
//! allocation) come first, then `spec.rs` (RunSpec), `model.rs` (Config, Mode) and
//! `build.rs` (from_cli, for_worker); each imports only the ones before it.

mod build;
mod choices;
mod model;
mod shell_line;
mod spec;
mod srun;

pub(crate) use choices::{Halt, Order};
pub(crate) use model::{Config, Mode};
pub(crate) use spec::{InPlaceOptions, RunSpec};
