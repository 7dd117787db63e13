//! `--dry-run` as an executor: every job is expanded exactly as a real run would expand it and
//! handed back as one shell-quoted line of output, and nothing runs or is written. The run core
//! discovers, triages and orders the inputs as usual (so the dry run lists what a real run
//! would run, in its order); the plan (jobs, filters, memory budget, the heaviest inputs) is
//! said after the lines, on stderr.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::Result;

use crate::config::Config;
use crate::error::counted;
use crate::exec::unit::{self, Commit, Unit};
use crate::executor::{Done, Executor, Extra, Queue};
use crate::inplace::InPlace;
use crate::memory::{self, Meter};
use crate::record::{JobRecord, Status};
use crate::template::{display_argv, shell_quote, single_quote};
use crate::units::human;

/// Inputs named with their weight in the plan.
const HEAVIEST_SHOWN: usize = 10;

pub(crate) struct DryRun {
    in_place: Option<InPlace>,
}

impl DryRun {
    pub(crate) fn new(config: &Config) -> DryRun {
        DryRun {
            in_place: config.run.commit_options().map(InPlace::new),
        }
    }

    /// One job's line: the command, shell-quoted, as the job loop expands it (in the slot the
    /// job would take in a steady run, with the reservation of a first admission); in place,
    /// what it then replaces; with `-o`, what it then writes.
    fn line(&self, config: &Config, unit: &Unit, weight: u64) -> Vec<u8> {
        let commit = match unit {
            Unit::One(input) => unit::commit_of(input, self.in_place.as_ref()),
            Unit::Batch(_) => None,
        };
        let out = self
            .in_place
            .as_ref()
            .zip(commit.as_ref())
            .map(|(ip, c)| match c {
                Commit::Replace(target) => ip.out_path(target, unit.number(), true),
                Commit::Write(target) => ip.out_path(target, unit.number(), false),
            });
        let slot = ((unit.number() - 1) % config.run.jobs as u64) as usize + 1;
        let reserved = memory::first_reservation(config.run.mem_per_job, weight);
        let values = unit.values(config, slot, reserved, out.as_deref());
        let mut line = display_argv(&unit.argv(config, &values));
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
        line
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

impl Executor for DryRun {
    fn execute(&mut self, jobs: &Queue<'_>) -> Result<Extra> {
        let config = jobs.ctx.config;
        let mut weights: Vec<(u64, PathBuf)> = Vec::new();
        if let Some(batching) = &config.batch {
            let mut batches = 0;
            crate::batch::form(
                batching,
                &config.template,
                config.run.jobs,
                jobs.inputs(),
                &mut |batch| {
                    batches += 1;
                    self.batch_lines(config, &Unit::Batch(batch), jobs, &mut weights)
                },
            );
            let mut notes = plan(config, &mut weights);
            notes[0] = format!(
                "dry run: {} files in {batches} batches (commands), at most {} at once; {}",
                weights.len(),
                config.run.jobs,
                filters(config)
            );
            return Ok(Extra {
                notes,
                ..Extra::default()
            });
        }
        for input in jobs.inputs() {
            // A read-only file a real run would skip is not listed (its record says why).
            if let Some(reason) = self
                .in_place
                .as_ref()
                .and_then(|ip| ip.would_skip(&input.path))
            {
                let mut record = JobRecord::new(input.job, &input.path, Status::Skipped);
                record.reason = Some(reason);
                record.action = Some(crate::record::Action::Kept);
                if !jobs.hand_back(Done::bare(record)) {
                    break;
                }
                continue;
            }
            let weight = unit::weight(&input);
            let unit = Unit::One(input);
            let first = &unit.inputs()[0];
            let d = Done::listed(first.job, &first.path, &self.line(config, &unit, weight));
            weights.push((weight, first.path.clone()));
            if !jobs.hand_back(d) {
                break;
            }
        }
        let mut notes = plan(config, &mut weights);
        if config.run.output.as_ref().is_some_and(|o| o.update) {
            let fresh = jobs
                .ctx
                .up_to_date
                .load(std::sync::atomic::Ordering::Relaxed);
            notes.insert(
                1,
                format!(
                    "-u: {} stale (listed above), {} up to date (not listed)",
                    crate::error::counted(weights.len() as u64, "input"),
                    fresh
                ),
            );
        }
        Ok(Extra {
            notes,
            ..Extra::default()
        })
    }
}

impl DryRun {
    /// A batch's line (with its first input's record; the others' records carry no text), as a
    /// real run would expand it. Returns false when the core takes no more records.
    fn batch_lines(
        &self,
        config: &Config,
        batch: &Unit,
        jobs: &Queue<'_>,
        weights: &mut Vec<(u64, PathBuf)>,
    ) -> bool {
        let w = unit::weights(batch.inputs());
        let line = self.line(config, batch, w.iter().sum());
        for (k, input) in batch.inputs().iter().enumerate() {
            let text: &[u8] = if k == 0 { &line } else { b"" };
            let mut d = Done::listed(input.job, &input.path, text);
            d.record.batch = Some(batch.number());
            weights.push((w[k], input.path.clone()));
            if !jobs.hand_back(d) {
                return false;
            }
        }
        true
    }
}

/// What the dry run says after its lines: filters, memory, the heaviest inputs.
fn plan(config: &Config, weights: &mut [(u64, PathBuf)]) -> Vec<String> {
    let mut notes = vec![format!(
        "dry run: {}, at most {} at once; {}",
        counted(weights.len() as u64, "job"),
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
    filters.push(
        if w.no_ignore {
            "ignore files not read"
        } else {
            ".gitignore/.ignore honoured"
        }
        .into(),
    );
    if let Some(d) = w.max_depth {
        filters.push(format!("max depth {d}"));
    }
    filters.join(", ")
}
