//! Running on a Slurm cluster, as executors of the run core. fanout schedules nothing here
//! itself: it hands the jobs to Slurm and keeps its own guarantees (per-file records, in-place
//! safety, memory reservations).
//!
//! `--executor slurm` (`submit`): the core walks and triages as usual; `SlurmArray` deals the
//! jobs into shards (`deal`), writes the plan (`plan`, `script`) to a directory the nodes share
//! and submits one job array (`slurm`). It follows the shards' files (`follow`) and Slurm's view
//! of the tasks (`watch`, `state`), explains files left without a record (`explain`), and hands
//! every record with its job's output back to the core. Each array task runs `fanout worker`
//! (`worker`), the ordinary local pool over its shard, whose journal lines both sides share as
//! types (`records`). `SlurmPlan` is the dry run. (`--executor srun` needs no module here: its
//! jobs are the local pool's, each wrapped as a step of the allocation, `config::Allocation`.)

mod deal;
mod explain;
mod follow;
pub(crate) mod plan;
mod private;
mod records;
mod script;
mod slurm;
pub(crate) use slurm::refuse_if_running;
mod state;
mod submit;
pub(crate) use submit::{SlurmArray, SlurmPlan};
mod watch;
pub(crate) mod worker;
