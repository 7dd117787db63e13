//! Discovery as the run sees it: the walk (or a given list) feeds triage, which turns what needs
//! no executor into records and sends the rest on as jobs. With `-o` the walk ends first and
//! every target is computed and checked for collisions before any input moves on; with
//! `--order largest-first` every input is weighed, then the heaviest go first. After a stop,
//! discovery goes on only briefly: what it reaches gets a `not_started` record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::Sender;

use super::triage::Triage;
use crate::config::Order;
use crate::executor::Context;
use crate::input::Input;
use crate::walk::{self, Source, WalkReport};

/// How long discovery goes on after a stop (Ctrl-C, `--halt`, a closed stdout).
const WALK_AFTER_STOP: Duration = Duration::from_millis(250);

pub(super) struct Discovery<'c, 'a> {
    ctx: &'c Context<'a>,
    triage: Triage<'c, 'a>,
    found: &'c AtomicU64,
    jobs: Sender<Input>,
    /// `--order largest-first`: every input, to be weighed once all are known.
    kept: Option<Vec<Input>>,
    /// `-o`: every input, until all targets are known and checked.
    held: Option<Vec<Input>>,
    stopped_at: Option<Instant>,
}

impl<'c, 'a> Discovery<'c, 'a> {
    pub(super) fn new(
        ctx: &'c Context<'a>,
        triage: Triage<'c, 'a>,
        found: &'c AtomicU64,
        jobs: Sender<Input>,
    ) -> Self {
        let config = ctx.config;
        Discovery {
            ctx,
            triage,
            found,
            jobs,
            kept: (config.run.order == Order::LargestFirst).then(Vec::new),
            held: config.target.as_ref().map(|_| Vec::new()),
            stopped_at: None,
        }
    }

    /// Discovers every input of `source` and sends it on (or its record).
    pub(super) fn run(mut self, source: Source) -> Result<WalkReport> {
        let (ctx, found) = (self.ctx, self.found);
        let mut report = match source {
            Source::Walk => walk::scan(
                &ctx.config.walk,
                &mut |input| self.take(input),
                &ctx.notices,
                ctx.cancel,
                found,
            ),
            Source::Given(inputs) => Ok(self.given(inputs)),
        };
        // What the walk reached before an error still moves on.
        let released = self.release_held(report.as_mut().ok());
        self.triage.flush();
        if let Some(kept) = self.kept.take() {
            heaviest_first(kept, &self.jobs);
        }
        released?;
        report
    }

    fn given(&mut self, inputs: Vec<Input>) -> WalkReport {
        let mut report = WalkReport::default();
        for input in inputs {
            self.found.fetch_add(1, Ordering::Relaxed);
            if !self.take(input) {
                report.cut_short = true;
                break;
            }
        }
        report
    }

    /// With `-o`: every target is assigned and checked, then the inputs move on.
    fn release_held(&mut self, report: Option<&mut WalkReport>) -> Result<()> {
        let (Some(mut all), Some(template)) = (self.held.take(), &self.ctx.config.target) else {
            return Ok(());
        };
        let config = self.ctx.config;
        let shared_dirs = config
            .run
            .output
            .as_ref()
            .is_some_and(|o| o.relax.shared_dirs);
        let checked = crate::targets::assign(template, config.run.threads, &mut all, shared_dirs);
        // A run stopped during the walk starts nothing: its inputs get their not_started
        // records, whatever their targets.
        if let (Err(why), false) = (checked, self.ctx.cancel.no_new_jobs()) {
            return Err(why);
        }
        for input in all {
            if !self.take(input) {
                if let Some(report) = report {
                    report.cut_short = true;
                }
                break;
            }
        }
        Ok(())
    }

    /// Takes one discovered input; false when discovery should stop.
    fn take(&mut self, input: Input) -> bool {
        if let Some(all) = self.held.as_mut() {
            if self.ctx.cancel.no_new_jobs() {
                return false;
            }
            all.push(input);
            return true;
        }
        // After a stop, discovery goes on only briefly: what it reaches gets a not_started
        // record, and however much is queued, fanout ends soon.
        if self.ctx.cancel.no_new_jobs()
            && self.stopped_at.get_or_insert_with(Instant::now).elapsed() > WALK_AFTER_STOP
        {
            return false;
        }
        match (self.triage.take(input), self.kept.as_mut()) {
            (None, _) => true,
            (Some(input), Some(kept)) => {
                kept.push(input);
                true
            }
            (Some(input), None) => self.triage.send(&self.jobs, input),
        }
    }
}

/// Weighs every input in parallel and sends them on, heaviest first (the dry run shows that
/// order too).
fn heaviest_first(mut all: Vec<Input>, out: &Sender<Input>) {
    use rayon::prelude::*;
    if all.is_empty() {
        return;
    }
    all.par_iter_mut()
        .for_each(|i| i.weight = Some(crate::parquet::weight(&i.path)));
    // Stable: equal weights keep input order.
    all.sort_by_key(|i| std::cmp::Reverse(i.weight.unwrap_or(0)));
    let mut pace = super::triage::Pace::default();
    for input in all {
        if !pace.send(out, input) {
            return;
        }
    }
}
