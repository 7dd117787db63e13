//! `--dry-run`: discover and expand exactly as a real run would, print each command as one
//! shell-quoted line on stdout, and run or write nothing. The plan (jobs, filters, memory
//! budget, the heaviest inputs) goes to stderr.

use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

use anyhow::Result;
use crossbeam_channel::bounded;

use crate::cancel::Cancel;
use crate::cli::Order;
use crate::config::Config;
use crate::error::{print_notice, ExitStatus};
use crate::inplace::InPlace;
use crate::memory::{self, human, Meter};
use crate::resume::Resume;
use crate::template::{display_argv, shell_quote, JobValues};
use crate::walk::{self, Input, Notice};

/// Inputs named with their weight in the plan.
const HEAVIEST_SHOWN: usize = 10;

pub(crate) fn run(config: &Config) -> Result<ExitStatus> {
    let cancel = Cancel::default();
    let found = AtomicU64::new(0);
    let resume = config.resume.as_deref().map(Resume::load).transpose()?;
    let in_place = config.in_place.clone().map(InPlace::new);
    let snapshot = Meter::new().snapshot();
    let (budget, reserve) = memory::plan(config.mem_limit, config.mem_reserve, &snapshot);
    // Before anything is learned a job gets the prior for its weight, as in a real run.
    let reservation = |weight: u64| config.mem_per_job.unwrap_or(memory::prior(weight));

    let (input_tx, input_rx) = bounded(256);
    let (notice_tx, notice_rx) = bounded(64);
    let mut stdout = BufWriter::new(io::stdout().lock());
    let mut listed = 0u64;
    let mut problems = 0u64;
    let mut skipped = 0u64;
    let mut closed = false;
    let mut weights: Vec<(u64, PathBuf)> = Vec::new();
    let report = std::thread::scope(|s| -> Result<walk::WalkReport> {
        let walker = s.spawn(|| {
            let r = walk::scan(&config.walk, &input_tx, &notice_tx, &cancel, &found);
            drop(input_tx);
            drop(notice_tx);
            r
        });
        let print_notices = || {
            for notice in notice_rx.try_iter() {
                let (Notice::Error(msg) | Notice::Info(msg)) = notice;
                print_notice(&msg);
            }
        };
        let mut show = |input: Input| {
            if closed {
                return;
            }
            let target = in_place
                .as_ref()
                .map(|_| InPlace::target(&input.path).unwrap_or(input.path.clone()));
            let out = in_place
                .as_ref()
                .zip(target.as_ref())
                .map(|(ip, t)| ip.out_path(t, input.job));
            let argv = config.template.expand(&JobValues {
                path: &input.path,
                job: input.job,
                slot: ((input.job - 1) % config.jobs as u64) as usize + 1,
                threads: config.threads,
                out: out.as_deref(),
                mem_mib: reservation(crate::parquet::weight(&input.path)) >> 20,
            });
            let mut line = display_argv(&argv);
            if let Some(target) = &target {
                line.extend_from_slice(b"  # then replaces ");
                line.extend_from_slice(&shell_quote(target.as_os_str().as_bytes()));
            }
            line.push(b'\n');
            if stdout.write_all(&line).is_err() {
                closed = true;
            }
        };
        let mut pending: Vec<(Input, u64)> = Vec::new();
        for input in &input_rx {
            print_notices();
            if let Some(problem) = &input.problem {
                problems += 1;
                print_notice(&format!("would fail: {}: {problem}", input.path.display()));
                continue;
            }
            if let Some(first) = &input.duplicate_of {
                let why = crate::inplace::same_file_reason(&input.path, first);
                print_notice(&format!("would skip: {}: {why}", input.path.display()));
                continue;
            }
            if resume
                .as_ref()
                .is_some_and(|r| r.skip(&input.path).is_some())
            {
                skipped += 1;
                continue;
            }
            let weight = crate::parquet::weight(&input.path);
            weights.push((weight, input.path.clone()));
            listed += 1;
            match config.order {
                Order::Input => show(input),
                Order::LargestFirst => pending.push((input, weight)),
            }
        }
        pending.sort_by_key(|(_, w)| std::cmp::Reverse(*w));
        for (input, _) in pending {
            show(input);
        }
        print_notices();
        walker.join().expect("walker thread")
    })?;
    if closed || stdout.flush().is_err() {
        return Ok(ExitStatus::ClosedStdout);
    }
    if !config.quiet {
        if skipped > 0 {
            print_notice(&format!(
                "{skipped} files skipped: ok in the resumed run and unchanged since"
            ));
        }
        if listed + problems + skipped == 0 {
            print_notice(&crate::exec::nothing_matched(report.hint.as_deref()));
        }
        print_notice(&plan(config, listed, problems, report.errors));
        print_notice(&format!(
            "memory: {} available{}; budget {} for jobs at once, new jobs wait while less than {} is available; per job: {}",
            human(snapshot.available),
            snapshot.cgroup_limit.map_or(String::new(), |l| format!(" (cgroup limit {})", human(l))),
            human(budget),
            human(reserve),
            match config.mem_per_job {
                Some(b) => format!("{} fixed", human(b)),
                None => format!(
                    "learned from finished jobs (before that {} or more, {{mem}} above)",
                    human(reservation(0))
                ),
            }
        ));
        weights.sort_by_key(|(w, _)| std::cmp::Reverse(*w));
        for (w, path) in weights.iter().take(HEAVIEST_SHOWN) {
            print_notice(&format!("weight {:>9}  {}", human(*w), path.display()));
        }
        if weights.len() > HEAVIEST_SHOWN {
            let rest: u64 = weights[HEAVIEST_SHOWN..].iter().map(|(w, _)| w).sum();
            print_notice(&format!(
                "weight {:>9}  in {} lighter files",
                human(rest),
                weights.len() - HEAVIEST_SHOWN
            ));
        }
    }
    Ok(ExitStatus::Success)
}

fn plan(config: &Config, listed: u64, problems: u64, walk_errors: u64) -> String {
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
    let mut text = format!(
        "dry run: {listed} jobs, at most {} at once; {}",
        config.jobs,
        filters.join(", ")
    );
    if problems > 0 {
        text.push_str(&format!("; {problems} inputs would fail"));
    }
    if walk_errors > 0 {
        text.push_str(&format!("; {walk_errors} walk errors"));
    }
    text.push_str("; nothing was run");
    text
}
