//! The submitter's inputs: the walk run to its end (every shard is planned before anything
//! is submitted), then triage: an input the walk could not use fails, one `--resume` finds
//! done is skipped; both are recorded before submitting. The rest is dealt into shards (`deal`).

use std::sync::atomic::AtomicU64;

use anyhow::Result;
use crossbeam_channel::unbounded;

use crate::cancel::Cancel;
use crate::error::print_notice;
use crate::resume::Resume;
use crate::summary::{JobRecord, Status};
use crate::walk::{self, Input, Notice, WalkReport};

/// Every input, sorted into what runs and what was decided here.
pub(crate) struct Triaged {
    /// Records decided before submitting (skipped by `--resume`, bad inputs).
    pub early: Vec<JobRecord>,
    /// The inputs to run.
    pub todo: Vec<Input>,
    pub walk: WalkReport,
}

/// Walks and triages the inputs.
pub(crate) fn triage(
    config: &crate::config::Config,
    cancel: &Cancel,
    resume: Option<&Resume>,
) -> Result<Triaged> {
    let (inputs, walk) = discover(config, cancel)?;
    let mut early = Vec::new();
    let mut todo = Vec::new();
    for input in inputs {
        if let Some(problem) = &input.problem {
            let mut r = JobRecord::new(input.job, &input.path, Status::Failed);
            r.reason = Some(problem.clone());
            early.push(r);
        } else if let Some((reason, id)) = resume.and_then(|r| r.skip(&input.path)) {
            let mut r = JobRecord::new(input.job, &input.path, Status::Skipped);
            r.reason = Some(reason);
            r.file_size = Some(id.size);
            r.file_mtime_ns = Some(id.mtime_ns);
            early.push(r);
        } else {
            todo.push(input);
        }
    }
    Ok(Triaged { early, todo, walk })
}

/// Runs the walk to the end and returns every input; the walk's messages are shown as they come.
fn discover(config: &crate::config::Config, cancel: &Cancel) -> Result<(Vec<Input>, WalkReport)> {
    let (tx, rx) = unbounded();
    let (ntx, nrx) = unbounded();
    let found = AtomicU64::new(0);
    let report = std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let r = walk::scan(&config.walk, &tx, &ntx, cancel, &found);
            drop(tx);
            drop(ntx);
            r
        });
        let mut inputs = Vec::new();
        for input in rx.iter() {
            inputs.push(input);
            for n in nrx.try_iter() {
                let (Notice::Error(m) | Notice::Info(m)) = n;
                print_notice(&m);
            }
        }
        for n in nrx.iter() {
            let (Notice::Error(m) | Notice::Info(m)) = n;
            print_notice(&m);
        }
        walker
            .join()
            .expect("walker thread")
            .map(|report| (inputs, report))
    })?;
    Ok(report)
}
