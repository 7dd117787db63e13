//! The end of a run, in one place: the exit status, the human report on stderr and the
//! journal's final record.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;

use super::{Collector, Extra};
use crate::cancel::{Cancel, Reason};
use crate::error::counted;
use crate::error::{print_notice, ExitStatus};
use crate::memory;
use crate::walk::WalkReport;

pub(super) fn finish(
    config: &crate::config::Config,
    cancel: &Cancel,
    collector: Collector<'_>,
    mut extra: Extra,
    walk: &WalkReport,
    start: Instant,
) -> Result<ExitStatus> {
    let journal = collector.journal;
    let mut totals = collector.totals;
    totals.walk_errors += walk.errors;
    let wall = start.elapsed();
    let stopped = cancel.reason();
    let mut exit = totals.exit_status(stopped);
    if config.mode.is_dry_run() && exit == ExitStatus::Failure {
        // Nothing ran, so nothing failed: inputs that would fail are named on stderr.
        exit = ExitStatus::Success;
    }
    if collector.journal_error.is_some() {
        // A journal that could not be written is a failure scripts must see.
        exit = exit.max_with(ExitStatus::Failure);
    }
    let cpu = crate::os::own_cpu();
    extra.memory.fanout_cpu_ms = cpu.as_millis() as u64;
    if totals.ran > 0 {
        let per_job = cpu.as_secs_f64() * 1000.0 / totals.ran as f64;
        extra.memory.fanout_cpu_ms_per_job = (per_job * 1000.0).round() / 1000.0;
    }
    let dry = config.mode.is_dry_run();
    if !config.quiet && stopped != Some(Reason::ClosedStdout) {
        if totals.total() == 0 {
            print_notice(&nothing_matched(walk.hint.as_deref()));
        } else if dry {
            dry_report(&totals, walk, &mut extra);
        } else {
            let _ = writeln!(std::io::stderr(), "{}", totals.report(wall));
            let m = &extra.memory;
            // Jobs shorter than the sampling interval leave nothing to say about memory.
            if m.max_memory_bytes > 0 {
                let net = match (m.mem_pauses, m.mem_requeues) {
                    (0, 0) => String::new(),
                    (p, r) => format!("; {p} paused to free memory, {r} stopped and run again"),
                };
                print_notice(&format!(
                    "memory: at most {} at once, peak {} of a {} budget{net}",
                    counted(m.max_running as u64, "job"),
                    memory::human(m.max_memory_bytes),
                    memory::human(m.mem_limit_bytes)
                ));
            }
        }
        if walk.cut_short && totals.total() > 0 {
            print_notice("discovery stopped with the run: files it had not reached have no record");
        }
        if let Some(msg) = &collector.journal_error {
            print_notice(&format!("error: {msg}: the journal is incomplete"));
        }
        for note in &extra.notes {
            print_notice(note);
        }
    }
    if let (Some(j), None) = (journal, &collector.journal_error) {
        if walk.cut_short {
            // Not every input has its record.
            j.walk_cut_short();
        }
        if let Err(err) = j.finish(
            &totals,
            wall,
            exit,
            stopped,
            &extra.memory,
            extra.cluster.as_ref(),
        ) {
            print_notice(&format!(
                "error: cannot write the summary {}: {}",
                j.path().display(),
                crate::error::io_reason(&err)
            ));
            return Ok(exit.max_with(ExitStatus::Failure));
        }
    }
    Ok(exit)
}

/// What a run that found nothing says.
fn nothing_matched(hint: Option<&str>) -> String {
    match hint {
        Some(h) => format!("no files matched; {h}"),
        None => "no files matched".to_string(),
    }
}

/// A dry run's report: what would fail, what `--resume` skips, and the plan the dry run made.
fn dry_report(totals: &crate::summary::Totals, walk: &WalkReport, extra: &mut Extra) {
    use crate::record::Status;
    for (path, _, reason) in totals.failures() {
        print_notice(&format!("would fail: {path}: {reason}"));
    }
    if totals.resumed > 0 {
        print_notice(&format!(
            "{} skipped: {}",
            counted(totals.resumed, "file"),
            crate::resume::UNCHANGED
        ));
    }
    if let Some(plan) = extra.notes.first_mut() {
        let failing = totals.count(Status::Failed);
        if failing > 0 {
            plan.push_str(&format!("; {} would fail", counted(failing, "input")));
        }
        if walk.errors > 0 {
            plan.push_str(&format!("; {}", counted(walk.errors, "walk error")));
        }
        plan.push_str("; nothing was run");
    }
}
