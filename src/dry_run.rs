//! `--dry-run` as an executor: every job is expanded exactly as a real run would expand it and
//! listed as one shell-quoted line of output, and nothing runs or is written. The run core
//! discovers, triages and orders the inputs as usual (so the dry run lists what a real run
//! would run, in its order); the plan (jobs, filters, memory budget, the heaviest inputs) is
//! said after the lines, on stderr. Without `-X` it lists on discovery's thread
//! ([`Inline`]): a line costs its expansion and its bytes, no hand-off between threads and no
//! look at the file unless `{mem}` or `-v` needs its weight.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::Result;

use crate::config::Config;
use crate::error::counted;
use crate::exec::unit::{self, Commit, Unit};
use crate::executor::{Context, Done, Executor, Extra, Inline, Queue};
use crate::inplace::InPlace;
use crate::input::Input;
use crate::memory::{self, Meter};
use crate::record::{JobRecord, Status};
use crate::template::{display_argv, shell_quote, single_quote, Placeholder};
use crate::units::human;
use crate::walk::Root;

/// Inputs named with their weight in the plan.
const HEAVIEST_SHOWN: usize = 10;

pub(crate) struct DryRun {
    in_place: Option<InPlace>,
    /// `-X`: batches are formed on the executor's thread, as a real run forms them.
    batched: bool,
    /// An input's weight is read only when a line (`{mem}`) or the plan (`-v`) shows it.
    weighed: bool,
    /// Jobs (files, with `-X`) listed.
    listed: u64,
    /// With `-v`: every listed input's weight, for the heaviest in the plan.
    weights: Vec<(u64, PathBuf)>,
    /// Where each word is expanded before it is quoted.
    scratch: Vec<u8>,
}

impl DryRun {
    pub(crate) fn new(config: &Config) -> DryRun {
        DryRun {
            in_place: config.run.commit_options().map(InPlace::new),
            batched: config.batch.is_some(),
            weighed: config.verbose
                || (config.run.mem_per_job.is_none() && config.template.uses(Placeholder::Mem)),
            listed: 0,
            weights: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// An object's weight is its listed size: a parquet footer would take a GET, and the dry
    /// run sends LIST and HEAD requests only.
    fn weight(&self, input: &Input) -> u64 {
        match (&input.remote, input.weight) {
            _ if !self.weighed => 0,
            (_, Some(w)) => w,
            (Some(object), None) => object.size,
            (None, None) => unit::weight(input),
        }
    }

    /// Counts a listed input (and keeps its weight for the plan, with `-v`).
    fn count(&mut self, config: &Config, weight: u64, input: &Input) {
        self.listed += 1;
        if config.verbose {
            self.weights.push((weight, input.path.clone()));
        }
    }

    /// One job's line, appended to `line`: the command, shell-quoted, as the job loop expands
    /// it (in the slot the job would take in a steady run, with the reservation of a first
    /// admission); in place, what it then replaces; with `-o`, what it then writes.
    fn line(&mut self, config: &Config, unit: &Unit, weight: u64, line: &mut Vec<u8>) {
        let commit = match unit {
            Unit::One(input) => unit::commit_of(input, self.in_place.as_ref()),
            Unit::Batch(_) => None,
        };
        let first = &unit.inputs()[0];
        // Objects: where a run would stage the copy a command reads and the output it uploads.
        let staged = |what: &str, name: &str| {
            config.remote.stage_dir.join(format!(
                "fanout-stage-RUN/job{}/{what}/{name}",
                unit.number()
            ))
        };
        let upload = match (&commit, &first.remote) {
            (Some(Commit::Replace(_)), Some(object)) => Some(object.url.to_string()),
            (Some(Commit::Write(t)), _) => t
                .to_str()
                .filter(|t| crate::remote::looks_remote(t))
                .map(str::to_string),
            _ => None,
        };
        let out = match &upload {
            Some(url) => Some(staged("out", url.rsplit('/').next().unwrap_or(url))),
            None => self
                .in_place
                .as_ref()
                .zip(commit.as_ref())
                .map(|(ip, c)| match c {
                    Commit::Replace(target) => ip.out_path(target, unit.number(), true),
                    Commit::Write(target) => ip.out_path(target, unit.number(), false),
                }),
        };
        let copy = first
            .remote
            .as_ref()
            .filter(|_| config.template.reads_file())
            .map(|o| staged("in", o.url.file_name()));
        let slot = ((unit.number() - 1) % config.run.jobs as u64) as usize + 1;
        let reserved = memory::first_reservation(config.run.mem_per_job, weight);
        let values = unit.values(config, slot, reserved, out.as_deref(), copy.as_deref());
        match unit {
            Unit::One(_) => config
                .template
                .display_into(&values, &mut self.scratch, line),
            Unit::Batch(_) => {
                line.extend_from_slice(&display_argv(&unit.argv(config, &values, &[])));
            }
        }
        if let (Some(object), Some(_)) = (&first.remote, &copy) {
            line.extend_from_slice(b"  # after downloading ");
            line.extend_from_slice(&in_comment(&single_quote(
                object.url.to_string().as_bytes(),
            )));
        }
        if let Some(url) = &upload {
            line.extend_from_slice(b"  # then uploads to ");
            line.extend_from_slice(&in_comment(&single_quote(url.as_bytes())));
            line.extend_from_slice(
                b" if nobody changed it meanwhile (replaying this line does not)\n",
            );
            return;
        }
        match &commit {
            Some(Commit::Write(target)) => {
                line.extend_from_slice(b"  # then writes ");
                line.extend_from_slice(&in_comment(&single_quote(target.as_os_str().as_bytes())));
                line.extend_from_slice(
                    b" (fanout -o verifies and renames; replaying this line does not)",
                );
            }
            Some(Commit::Replace(target)) => {
                // Replaying these lines runs the commands but commits nothing: say so.
                line.extend_from_slice(b"  # then replaces ");
                line.extend_from_slice(&in_comment(&shell_quote(target.as_os_str().as_bytes())));
                line.extend_from_slice(
                    b" (fanout -i verifies and renames; replaying this line does not)",
                );
            }
            None => {}
        }
        line.push(b'\n');
    }

    /// Lists one input's job on `out`, or returns the record of an input a real run would
    /// skip: a read-only file in place is not listed (its record says why).
    fn list_one(&mut self, config: &Config, input: Input, out: &mut Vec<u8>) -> Option<Done> {
        if let Some(reason) = self
            .in_place
            .as_ref()
            .and_then(|ip| ip.would_skip(&input.path))
        {
            let mut record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(reason);
            record.action = Some(crate::record::Action::Kept);
            return Some(Done::bare(record));
        }
        let weight = self.weight(&input);
        self.count(config, weight, &input);
        self.line(config, &Unit::One(input), weight, out);
        None
    }

    /// The plan said after the lines.
    fn plan(&mut self, ctx: &Context<'_>) -> Vec<String> {
        let config = ctx.config;
        let mut notes = plan(config, self.listed, &mut self.weights);
        if config.run.output.as_ref().is_some_and(|o| o.update) {
            let fresh = ctx.up_to_date.load(std::sync::atomic::Ordering::Relaxed);
            notes.insert(
                1,
                format!(
                    "-u: {} stale (listed above), {} up to date (not listed)",
                    crate::error::counted(self.listed, "input"),
                    fresh
                ),
            );
        }
        notes
    }
}

/// A quoted path made fit for a `#` comment: a line break in a file name would end the
/// comment, and the rest of the name would run when the plan is replayed with `sh`; so line
/// breaks are written `\n` and `\r` (the comment only informs).
fn in_comment(quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(quoted.len());
    for &b in quoted {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
    out
}

impl Inline for DryRun {
    fn list(&mut self, ctx: &Context<'_>, input: Input, out: &mut Vec<u8>) -> Option<Done> {
        self.list_one(ctx.config, input, out)
    }

    fn end(&mut self, ctx: &Context<'_>) -> Extra {
        Extra {
            notes: self.plan(ctx),
            ..Extra::default()
        }
    }
}

impl Executor for DryRun {
    fn inline(&mut self) -> Option<&mut dyn Inline> {
        (!self.batched).then_some(self as &mut dyn Inline)
    }

    fn execute(&mut self, jobs: &Queue<'_>) -> Result<Extra> {
        let config = jobs.ctx.config;
        if let Some(batching) = &config.batch {
            let mut batches = 0;
            crate::batch::form(
                batching,
                &config.template,
                config.run.jobs,
                jobs.inputs(),
                &mut |batch| {
                    batches += 1;
                    self.batch_lines(config, &Unit::Batch(batch), jobs)
                },
            );
            let mut notes = plan(config, self.listed, &mut self.weights);
            notes[0] = format!(
                "dry run: {} files in {batches} batches (commands), at most {} at once; {}",
                self.listed,
                config.run.jobs,
                filters(config)
            );
            return Ok(Extra {
                notes,
                ..Extra::default()
            });
        }
        let mut line = Vec::new();
        for input in jobs.inputs() {
            let (job, path) = (input.job, input.path.clone());
            line.clear();
            let d = match self.list_one(config, input, &mut line) {
                Some(record) => record,
                None => Done::listed(job, &path, &line),
            };
            if !jobs.hand_back(d) {
                break;
            }
        }
        Ok(self.end(jobs.ctx))
    }
}

impl DryRun {
    /// A batch's line (with its first input's record; the others' records carry no text), as a
    /// real run would expand it, its records in one message. Returns false when the core
    /// takes no more records.
    fn batch_lines(&mut self, config: &Config, batch: &Unit, jobs: &Queue<'_>) -> bool {
        let w: Vec<u64> = batch.inputs().iter().map(|i| self.weight(i)).collect();
        let mut line = Vec::new();
        self.line(config, batch, w.iter().sum(), &mut line);
        let mut all = Vec::with_capacity(w.len());
        for (k, input) in batch.inputs().iter().enumerate() {
            let text: &[u8] = if k == 0 { &line } else { b"" };
            let mut d = Done::listed(input.job, &input.path, text);
            d.record.batch = Some(batch.number());
            self.count(config, w[k], input);
            all.push(d);
        }
        jobs.hand_back_all(all)
    }
}

/// What the dry run says after its lines: filters, memory, the heaviest inputs.
fn plan(config: &Config, listed: u64, weights: &mut [(u64, PathBuf)]) -> Vec<String> {
    let mut notes = vec![format!(
        "dry run: {}, at most {} at once; {}",
        counted(listed, "job"),
        config.run.jobs,
        filters(config)
    )];
    // The memory plan and the heaviest inputs only when asked for (-v): the short plan fits
    // on a line.
    if !config.verbose {
        return notes;
    }
    let snapshot = Meter::new().snapshot();
    let (budget, reserve) = memory::plan(config.mem_limit, config.run.mem_reserve, &snapshot);
    notes.push(format!(
        "memory: {} available{}; budget {} for jobs at once, new jobs wait while less than {} is available; per job: {}",
        human(snapshot.available),
        snapshot.cgroup_limit.map_or(String::new(), |l| format!(" (cgroup limit {})", human(l))),
        human(budget),
        human(reserve),
        match config.run.mem_per_job {
            Some(b) => format!("{} fixed", human(b)),
            None => format!(
                "learned from finished jobs (before that {} or more, {{mem}} above)",
                human(memory::prior(0))
            ),
        }
    ));
    weights.sort_by_key(|(w, _)| std::cmp::Reverse(*w));
    for (w, path) in weights.iter().take(HEAVIEST_SHOWN) {
        notes.push(format!("weight {:>9}  {}", human(*w), path.display()));
    }
    if weights.len() > HEAVIEST_SHOWN {
        let rest: u64 = weights[HEAVIEST_SHOWN..].iter().map(|(w, _)| w).sum();
        notes.push(format!(
            "weight {:>9}  in {}",
            human(rest),
            counted((weights.len() - HEAVIEST_SHOWN) as u64, "lighter file")
        ));
    }
    notes
}

fn filters(config: &Config) -> String {
    let w = &config.walk;
    let mut filters = Vec::new();
    if !w.extensions.is_empty() {
        filters.push(format!("-e {}", w.extensions.join(",")));
    }
    for g in &w.globs {
        filters.push(format!("-g {g}"));
    }
    filters.push(
        if w.hidden {
            "hidden files included"
        } else {
            "hidden files skipped"
        }
        .into(),
    );
    // Ignore files are read only under local directories (not for keys, named files or
    // standard input).
    if w.roots.iter().any(|r| matches!(r, Root::Dir { .. })) {
        filters.push(
            if w.no_ignore {
                "ignore files not read"
            } else {
                ".gitignore/.ignore honoured"
            }
            .into(),
        );
    }
    if let Some(d) = w.max_depth {
        filters.push(format!("max depth {d}"));
    }
    filters.join(", ")
}
