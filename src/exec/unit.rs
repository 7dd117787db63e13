//! A unit of work and its facts, computed in one place each: one input, or a batch of inputs
//! (`-X`) that run as one command. The job loop (`job.rs`) runs either the same way; the dry
//! run asks the same functions, so what it prints is what a run executes.
//!
//! A batch is admitted like a job whose weight is the sum of its inputs' weights, runs under
//! the same timeout, retries and stops, and every input gets a copy of the batch's record with
//! its own job number, path, weight and file identity, and `batch`/`batch_size`, sharing one
//! copy of the command as it ran (`batch_argv`). The batch's output travels with the record of
//! its first input. A batch of several files that failed as a whole marks every record not
//! attributed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::batch::Batch;
use crate::config::Config;
use crate::config::Order;
use crate::executor::Done;
use crate::inplace::InPlace;
use crate::input::Input;
use crate::record::{JobRecord, Status};
use crate::template::JobValues;

use super::admit::Place;

/// One command's worth of inputs.
pub(crate) enum Unit {
    One(Input),
    Batch(Batch),
}

/// What a job commits after it ran, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Commit {
    /// In place (`-i`): `{out}` replaces this file (a symbolic link's final target).
    Replace(PathBuf),
    /// `-o`: `{out}` becomes this target.
    Write(PathBuf),
}

/// An input's memory weight: as discovery found it, else read now.
pub(crate) fn weight(input: &Input) -> u64 {
    input.weight.unwrap_or_else(|| match &input.remote {
        Some(object) => crate::remote::weight(object),
        None => crate::parquet::weight(&input.path),
    })
}

/// The memory weights of a unit's inputs, as [`weight`] reads them; a file that is not
/// parquet weighs its size, read by its directory's descriptor (a batch's files share few).
pub(crate) fn weights(inputs: &[Input]) -> Vec<u64> {
    let mut stat = crate::os::StatAt::default();
    inputs
        .iter()
        .map(|input| match input.weight {
            Some(w) => w,
            None if input.remote.is_some() || crate::parquet::is_parquet_name(&input.path) => {
                weight(input)
            }
            None => stat.size_and_mtime(&input.path).map_or(0, |(size, _)| size),
        })
        .collect()
}

/// What the job of `input` commits: its `-o` target, or in place the file it replaces.
pub(crate) fn commit_of(input: &Input, in_place: Option<&InPlace>) -> Option<Commit> {
    match (&input.target, in_place) {
        (Some(target), _) => Some(Commit::Write(target.clone())),
        (None, Some(_)) => Some(Commit::Replace(
            InPlace::target(&input.path).unwrap_or_else(|_| input.path.clone()),
        )),
        (None, None) => None,
    }
}

impl Unit {
    /// Its inputs, in order.
    pub(crate) fn inputs(&self) -> &[Input] {
        match self {
            Unit::One(input) => std::slice::from_ref(input),
            Unit::Batch(batch) => &batch.inputs,
        }
    }

    /// The value of `{#}`: the job number, or the batch number.
    pub(crate) fn number(&self) -> u64 {
        match self {
            Unit::One(input) => input.job,
            Unit::Batch(batch) => batch.number,
        }
    }

    /// Its place in the start order. Batches start in the order they were formed.
    pub(crate) fn place(&self, order: Order, weight: u64) -> Place {
        match (self, order) {
            (Unit::One(input), Order::LargestFirst) => {
                Place::HeaviestFirst(std::cmp::Reverse(weight), input.job)
            }
            _ => Place::InOrder(self.number()),
        }
    }

    /// How notices name it.
    pub(crate) fn name(&self) -> String {
        match self {
            Unit::One(input) => input.path.display().to_string(),
            Unit::Batch(batch) => {
                format!("batch {} ({} files)", batch.number, batch.inputs.len())
            }
        }
    }

    /// The placeholders' values for its command in `slot` with `reserved` bytes of memory,
    /// `out` for `{out}`, and for an object `copy`, its staged copy (`{}`).
    pub(crate) fn values<'a>(
        &'a self,
        config: &Config,
        slot: usize,
        reserved: u64,
        out: Option<&'a Path>,
        copy: Option<&'a Path>,
    ) -> JobValues<'a> {
        let first = &self.inputs()[0];
        let path = copy.unwrap_or(&first.path);
        JobValues {
            slot,
            out,
            mem_mib: reserved >> 20,
            url: first
                .remote
                .as_ref()
                .filter(|_| matches!(self, Unit::One(_)))
                .map(|_| first.path.as_path()),
            ..JobValues::of(path, self.number(), first.rel_at, config.run.threads)
        }
    }

    /// Its command, as it runs (not yet wrapped for srun). `copies`: a batch's staged copies
    /// of its objects, in order (empty when none were staged).
    pub(crate) fn argv(
        &self,
        config: &Config,
        values: &JobValues,
        copies: &[PathBuf],
    ) -> Vec<OsString> {
        match self {
            Unit::One(_) => config.template.expand(values),
            Unit::Batch(batch) if copies.len() == batch.inputs.len() => {
                let paths: Vec<&Path> = copies.iter().map(PathBuf::as_path).collect();
                let urls: Vec<Option<&Path>> = batch
                    .inputs
                    .iter()
                    .map(|i| i.remote.as_ref().map(|_| i.path.as_path()))
                    .collect();
                config
                    .template
                    .expand_batch(&paths, &batch.rels(), &urls, values)
            }
            Unit::Batch(batch) => {
                config
                    .template
                    .expand_batch(&batch.paths(), &batch.rels(), &[], values)
            }
        }
    }

    /// The records of its inputs from the record of its command (`base`, with the command's
    /// output; `argv` is the command as it ran), in order.
    pub(crate) fn records(
        &self,
        config: &Config,
        mut base: Done,
        argv: &[OsString],
        weights: &[u64],
    ) -> Vec<Done> {
        let Unit::Batch(batch) = self else {
            base.record.set_command(argv);
            return vec![base];
        };
        let Done {
            record: mut base,
            mut stdout,
            mut stderr,
            ..
        } = base;
        let size = batch.inputs.len() as u64;
        base.batch = Some(batch.number);
        base.batch_size = Some(size);
        if size > 1 && matches!(base.status, Status::Failed | Status::Timeout) {
            base.not_attributed(size);
        }
        // The command as it ran, shared by its records (one copy): the journal writes it once,
        // in the batch's line. A command of one file is that file's, as without -X.
        let ran = (size > 1).then(|| {
            std::sync::Arc::new(
                argv.iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect::<Vec<_>>(),
            )
        });
        // The file identity is what --resume reads from the journal: without one, no stat.
        let journal = config.summary.is_some();
        let mut stat = crate::os::StatAt::default();
        let mut all = Vec::with_capacity(batch.inputs.len());
        for (input, &weight) in batch.inputs.iter().zip(weights) {
            let mut record = base.for_input(input.job, &input.path);
            record.weight_bytes = Some(weight);
            match &ran {
                Some(ran) => record.batch_argv = Some(std::sync::Arc::clone(ran)),
                None => record.set_command(argv),
            }
            if journal {
                if let Some((bytes, mtime_ns)) = stat.size_and_mtime(&input.path) {
                    record.file_size = Some(bytes);
                    record.file_mtime_ns = Some(mtime_ns);
                }
            }
            // Not formatted here: the journal writes a batch's facts once, then a short line
            // per file (`JournalWriter`), on the collector's thread.
            all.push(Done {
                record,
                stdout: stdout.take(),
                stderr: stderr.take(),
                line: None,
            });
        }
        all
    }
}

/// Sets the file's identity (size, modification time) in its record, for `--resume`.
pub(crate) fn identify(record: &mut JobRecord, path: &Path) {
    if let Some(id) = crate::resume::identity(path) {
        record.file_size = Some(id.size);
        record.file_mtime_ns = Some(id.mtime_ns);
    }
}
