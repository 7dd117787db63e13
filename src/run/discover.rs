//! Discovery as the run sees it: the walk (or a given list) feeds triage, which turns what needs
//! no executor into records and sends the rest on as jobs: to the executor's thread, or to an
//! executor that lists them on this thread (`Lister`, the dry run), whose lines go to the
//! collector many at once. With `-o` the walk ends first and
//! every target is computed and checked for collisions before any input moves on; with
//! `--order largest-first` every input is weighed, then the heaviest go first. After a stop,
//! discovery goes on only briefly: what it reaches gets a `not_started` record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::Sender;

use super::triage::Triage;
use crate::config::Order;
use crate::executor::{Bulk, Context, Done, Extra, Inline};
use crate::input::Input;
use crate::walk::{self, Source, WalkReport};

/// How long discovery goes on after a stop (Ctrl-C, `--halt`, a closed stdout).
const WALK_AFTER_STOP: Duration = Duration::from_millis(250);

/// Where discovery sends the inputs that need an executor.
pub(super) enum Sink<'s, 'c, 'a> {
    /// To the executor's thread, one at a time.
    Channel(Sender<Input>),
    /// To an executor that takes them here.
    Inline(Lister<'s, 'c, 'a>),
}

/// An inline executor's jobs as discovery reaches them: their lines gather here and go to the
/// collector in one message per `CHUNK` bytes (or after `WAIT`, so lines of a slow walk do not
/// wait long), with the number of jobs they stand for.
pub(super) struct Lister<'s, 'c, 'a> {
    ctx: &'c Context<'a>,
    inline: &'s mut dyn Inline,
    out: Sender<Bulk>,
    text: Vec<u8>,
    /// Jobs whose lines are in `text`.
    jobs: u64,
    /// Records of inputs it did not list.
    records: Vec<Done>,
    since: Instant,
}

impl<'s, 'c, 'a> Lister<'s, 'c, 'a> {
    const CHUNK: usize = 64 << 10;
    const WAIT: Duration = Duration::from_millis(20);
    const RECORDS: usize = 512;

    pub(super) fn new(ctx: &'c Context<'a>, inline: &'s mut dyn Inline, out: Sender<Bulk>) -> Self {
        Lister {
            ctx,
            inline,
            out,
            text: Vec::with_capacity(Self::CHUNK + 4096),
            jobs: 0,
            records: Vec::new(),
            since: Instant::now(),
        }
    }

    /// False when the collector takes no more.
    fn take(&mut self, input: Input) -> bool {
        if self.jobs == 0 && self.records.is_empty() {
            self.since = Instant::now();
        }
        match self.inline.list(self.ctx, input, &mut self.text) {
            None => self.jobs += 1,
            Some(done) => {
                self.ctx.halt_after(done.record.status);
                self.records.push(done);
            }
        }
        // The clock is read once every 64 jobs: a line costs less than reading it.
        let due = self.jobs.is_multiple_of(64) && self.since.elapsed() >= Self::WAIT;
        if due || self.text.len() >= Self::CHUNK || self.records.len() >= Self::RECORDS {
            return self.flush();
        }
        true
    }

    fn flush(&mut self) -> bool {
        let mut taken = true;
        if !self.records.is_empty() {
            taken &= self
                .out
                .send(Bulk::Records(std::mem::take(&mut self.records)))
                .is_ok();
        }
        if self.jobs > 0 {
            let text = std::mem::replace(&mut self.text, Vec::with_capacity(Self::CHUNK + 4096));
            let jobs = std::mem::take(&mut self.jobs);
            taken &= self.out.send(Bulk::Listed { text, jobs }).is_ok();
        }
        taken
    }

    /// Sends what is left, and returns what the executor says at the end.
    fn end(&mut self) -> Extra {
        self.flush();
        self.inline.end(self.ctx)
    }
}

pub(super) struct Discovery<'s, 'c, 'a> {
    ctx: &'c Context<'a>,
    triage: Triage<'c, 'a>,
    found: &'c AtomicU64,
    jobs: Sink<'s, 'c, 'a>,
    /// `--order largest-first`: every input, to be weighed once all are known.
    kept: Option<Vec<Input>>,
    /// `-o`: every input, until all targets are known and checked.
    held: Option<Vec<Input>>,
    stopped_at: Option<Instant>,
}

impl<'s, 'c, 'a> Discovery<'s, 'c, 'a> {
    pub(super) fn new(
        ctx: &'c Context<'a>,
        triage: Triage<'c, 'a>,
        found: &'c AtomicU64,
        jobs: Sink<'s, 'c, 'a>,
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

    /// Discovers every input of `source` and sends it on (or its record). An inline executor's
    /// end comes with the report.
    pub(super) fn run(mut self, source: Source) -> Result<(WalkReport, Option<Extra>)> {
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
            // With -k, output is in input order: lines listed here are not put in order
            // later, so they are listed in that order (weighed all the same).
            let sort = !(self.ctx.config.keep_order && matches!(self.jobs, Sink::Inline(_)));
            heaviest_first(kept, &mut self.jobs, sort);
        }
        let extra = match &mut self.jobs {
            Sink::Inline(lister) => Some(lister.end()),
            Sink::Channel(_) => None,
        };
        released?;
        Ok((report?, extra))
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
            (Some(input), None) => match &mut self.jobs {
                Sink::Channel(jobs) => self.triage.send(jobs, input),
                // Triage's records go on by its own clock: nothing here waits for them.
                Sink::Inline(lister) => lister.take(input),
            },
        }
    }
}

/// Weighs every input in parallel and sends them on, heaviest first when `sort` (the dry run
/// shows that order too).
fn heaviest_first(mut all: Vec<Input>, out: &mut Sink<'_, '_, '_>, sort: bool) {
    use rayon::prelude::*;
    if all.is_empty() {
        return;
    }
    all.par_iter_mut()
        .for_each(|i| i.weight = Some(crate::parquet::weight(&i.path)));
    if sort {
        // Stable: equal weights keep input order.
        all.sort_by_key(|i| std::cmp::Reverse(i.weight.unwrap_or(0)));
    }
    let mut pace = super::triage::Pace::default();
    for input in all {
        let sent = match out {
            Sink::Channel(jobs) => pace.send(jobs, input),
            Sink::Inline(lister) => lister.take(input),
        };
        if !sent {
            return;
        }
    }
}
